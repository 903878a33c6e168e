package cluster_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// wantPaths is the output of testdata/paths for n ranks placed perHost to
// a host, in order (by slot), when ranks of one host take same and
// ranks of different hosts take other.
func wantPaths(n, perHost int, same, other string) string {
	var lines []string
	for r := range n {
		var ps []string
		for p := range n {
			path := other
			switch {
			case p == r:
				path = "self"
			case p/perHost == r/perHost:
				path = same
			}
			ps = append(ps, fmt.Sprintf("%d=%s", p, path))
		}
		lines = append(lines, fmt.Sprintf("%d: %s", r, strings.Join(ps, " ")))
	}
	return strings.Join(lines, "\n")
}

func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestTCPOneHost: --transport=tcp carries every pair's frames over direct
// TCP on one host (and DECORUN_TRANSPORT=tcp does the same); auto keeps
// shared memory there. (Each case names its path, so that the suite also
// passes with DECORUN_TRANSPORT set.)
func TestTCPOneHost(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--transport=tcp"}, wantPaths(3, 3, "tcp", "tcp")},
		{[]string{"-x", "DECORUN_TRANSPORT=tcp"}, wantPaths(3, 3, "tcp", "tcp")},
		{[]string{"--transport=auto"}, wantPaths(3, 3, "shm", "shm")},
	} {
		p := start(t, append(append([]string{"-n", "3"}, tt.args...), prog(t, "paths"))...)
		if code := p.wait(time.Minute); code != 0 {
			t.Fatalf("%v: exit %d; stderr:\n%s", tt.args, code, p.errText())
		}
		if got := sortedLines(p.out()); got != tt.want {
			t.Errorf("%v: paths\n%s\nwant\n%s", tt.args, got, tt.want)
		}
	}
	// Ranks that finish as soon as they have joined: a quick rank's Close
	// waits until every slower peer has dialed it (before, about one run
	// in ten failed with "connection refused" at start-up).
	for range 3 {
		p := start(t, "-n", "8", "--transport=tcp", prog(t, "hello"))
		if code := p.wait(time.Minute); code != 0 {
			t.Fatalf("hello -n 8 --transport=tcp: exit %d; stderr:\n%s", code, p.errText())
		}
	}
	noLeftovers(t)
}
