package cluster_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// runExample runs examples/name on n ranks with decorun and returns its
// stdout, failing the test on a non-zero exit.
func runExample(t *testing.T, name string, n int, args ...string) string {
	t.Helper()
	p := start(t, append([]string{"-n", fmt.Sprint(n), prog(t, name)}, args...)...)
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	noLeftovers(t)
	return p.out()
}

func TestExamplePi(t *testing.T) {
	// The estimate depends only on the number of ranks (seeds come from
	// ranks), so the output is pinned.
	want := map[int]string{
		1: "pi is approximately 3.1395480000 from 1000000 samples on 1 ranks, error 0.0020446536",
		3: "pi is approximately 3.1394040000 from 3000000 samples on 3 ranks, error 0.0021886536",
		8: "pi is approximately 3.1404355000 from 8000000 samples on 8 ranks, error 0.0011571536",
	}
	for _, n := range []int{1, 3, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			if got := runExample(t, "pi", n); got != want[n] {
				t.Errorf("output %q; want %q", got, want[n])
			}
		})
	}
}

func TestExampleScatterGather(t *testing.T) {
	for _, n := range []int{1, 3, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var in, out []string
			for i := range 4 * n {
				in = append(in, fmt.Sprint(i))
				out = append(out, fmt.Sprint(i*i+i/4))
			}
			want := "scatter: [" + strings.Join(in, " ") + "]\ngather:  [" + strings.Join(out, " ") + "]"
			if got := runExample(t, "scatter-gather", n); got != want {
				t.Errorf("output\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestExamplePipeline(t *testing.T) {
	for _, n := range []int{1, 3, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var want []string
			for i := 1; i <= 5; i++ {
				x := int64(i)
				for r := 1; r < n; r++ {
					x = 2 * (x + int64(r))
				}
				want = append(want, fmt.Sprintf("item %d", x))
			}
			want = append(want, fmt.Sprintf("pipeline of %d stages done", n))
			if got := runExample(t, "pipeline", n); got != strings.Join(want, "\n") {
				t.Errorf("output\n%s\nwant\n%s", got, strings.Join(want, "\n"))
			}
		})
	}
}
