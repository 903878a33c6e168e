package proc

import (
	"errors"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/decorun/decorun/internal/jobenv"
)

func TestShare(t *testing.T) {
	cpus := []int{0, 1, 2, 3, 4, 5, 6, 7}
	for _, c := range []struct {
		cpus        []int
		local, size int
		want        []int
	}{
		{cpus[:2], 0, 2, []int{0}},
		{cpus[:2], 1, 2, []int{1}},
		{cpus[:1], 0, 1, []int{0}},
		{cpus, 0, 3, []int{0, 1, 2}}, // 8 over 3: 3, 3, 2
		{cpus, 1, 3, []int{3, 4, 5}},
		{cpus, 2, 3, []int{6, 7}},
		{cpus, 1, 2, []int{4, 5, 6, 7}},
		{[]int{2, 5, 9}, 2, 3, []int{9}}, // the allowed CPUs, not 0..n-1
		{cpus[:2], 0, 3, nil},            // more ranks than CPUs: unbound
		{cpus[:2], 2, 2, nil},            // not one of the ranks
		{cpus[:2], -1, 2, nil},
		{nil, 0, 1, nil},
		{cpus, 0, 0, nil},
	} {
		if got := Share(c.cpus, c.local, c.size); !slices.Equal(got, c.want) {
			t.Errorf("Share(%v, %d, %d) = %v; want %v", c.cpus, c.local, c.size, got, c.want)
		}
	}
}

func TestBinding(t *testing.T) {
	cpus, add := Binding([]int{0, 1, 2, 3}, 1, 2, []string{"PATH=/bin"})
	if !slices.Equal(cpus, []int{2, 3}) || !slices.Equal(add, []string{"DECORUN_CPUS=2-3", "GOMAXPROCS=2"}) {
		t.Errorf("Binding(4 CPUs, 1, 2) = %v, %q", cpus, add)
	}
	cpus, add = Binding([]int{0, 1, 2, 3, 4, 5}, 0, 2, []string{"GOMAXPROCS=1"})
	if !slices.Equal(cpus, []int{0, 1, 2}) || !slices.Equal(add, []string{"DECORUN_CPUS=0-2"}) {
		t.Errorf("Binding(6 CPUs, 0, 2, GOMAXPROCS set) = %v, %q; want the user's GOMAXPROCS kept", cpus, add)
	}
	if cpus, add = Binding([]int{0}, 0, 2, nil); cpus != nil || add != nil {
		t.Errorf("Binding(1 CPU, 2 ranks) = %v, %q; want unbound", cpus, add)
	}
}

// TestStartOn starts a real process bound to one CPU: the kernel reports
// that CPU alone for it, and the starting thread keeps its own mask.
func TestStartOn(t *testing.T) {
	runtime.LockOSThread() // StartOn's lock nests in this one: same thread before and after
	defer runtime.UnlockOSThread()
	before, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	last := before[len(before)-1]
	cmd := exec.Command("/bin/sh", "-c", "grep Cpus_allowed_list /proc/self/status")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartOn(cmd, []int{last})
	if err != nil {
		t.Fatalf("StartOn: %v", err)
	}
	var b strings.Builder
	buf := make([]byte, 256)
	for {
		n, err := out.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if st, err := p.Wait(); err != nil || st.Failed() {
		t.Fatalf("Wait = %v, %v", st, err)
	}
	if got, want := strings.Fields(b.String()), []string{"Cpus_allowed_list:", jobenv.FormatRanks([]int{last})}; !slices.Equal(got, want) {
		t.Errorf("the child says %q; want %q", got, want)
	}
	after, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(after, before) {
		t.Errorf("the starting thread's CPUs are %v after StartOn; want %v, as before", after, before)
	}
	var be *BindError
	if _, err := StartOn(exec.Command("/bin/true"), []int{1 << 20}); !errors.As(err, &be) || err.Error() != "cannot bind to CPUs 1048576: no CPU 1048576" {
		t.Errorf("StartOn(CPU 1<<20) = %v; want a BindError naming the CPU", err)
	}
}
