package cluster_test

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostArgs places slots[i] ranks on namespace host i.
func (nh *netHosts) hostArgs(slots ...int) []string {
	var hs []string
	for i, n := range nh.names {
		hs = append(hs, fmt.Sprintf("%s:%d", n, slots[i]))
	}
	return []string{"-H", strings.Join(hs, ","), "--launch-agent", "ip netns exec {host}", "--server-addr", nh.server}
}

// hierLines is out's lines, sorted, without those that start with one
// of the prefixes' words ("pid", "job", or any line containing skip).
func hierLines(out string, skip ...string) []string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && (f[0] == "pid" || f[0] == "job") {
			continue
		}
		drop := false
		for _, s := range skip {
			drop = drop || strings.Contains(l, s)
		}
		if !drop {
			keep = append(keep, l)
		}
	}
	slices.Sort(keep)
	return keep
}

// runBoth runs args across the hosts as they are and with the hierarchy
// off (DECORUN_COLL_HIER=off on every rank), and returns both outputs.
func runBoth(t *testing.T, hostArgs []string, args ...string) (hier, flat string) {
	t.Helper()
	for i, extra := range [][]string{nil, {"-x", "DECORUN_COLL_HIER=off"}} {
		p := start(t, append(append(append([]string{}, hostArgs...), extra...), args...)...)
		if code := p.wait(3 * time.Minute); code != 0 {
			t.Fatalf("%v %v: exit %d; stderr:\n%s", extra, args, code, p.errText())
		}
		if i == 0 {
			hier = p.out()
		} else {
			flat = p.out()
		}
	}
	return hier, flat
}

// TestHierAcrossHosts runs the hierarchical collectives on 3 namespace
// hosts, 2 ranks each, unevenly (3+1+2), and round-robin (which must go
// flat), and checks that every rank's results are those of the same job
// run flat; with non-commutative ops, so that the order of the fold shows.
func TestHierAcrossHosts(t *testing.T) {
	nh := makeHosts(t, 3)
	layouts := []struct {
		name string
		args []string
		hier bool
	}{
		{"3x2", nh.hostArgs(2, 2, 2), true},
		{"3+1+2", nh.hostArgs(3, 1, 2), true},
		{"round-robin", append(nh.hostArgs(2, 2, 2), "--map-by", "node"), false},
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			hier, flat := runBoth(t, l.args, "-n", "6", prog(t, "hier"))
			for r := range 6 {
				if want := fmt.Sprintf("%d hier=%t", r, l.hier); !strings.Contains(hier+"\n", want+"\n") {
					t.Errorf("rank %d does not say %q", r, want)
				}
				if want := fmt.Sprintf("%d hier=false", r); !strings.Contains(flat+"\n", want+"\n") {
					t.Errorf("flat run: rank %d does not say %q", r, want)
				}
				if !strings.Contains(hier+"\n", fmt.Sprintf("%d done\n", r)) {
					t.Errorf("rank %d did not finish", r)
				}
			}
			a, b := hierLines(hier, "hier="), hierLines(flat, "hier=")
			if !slices.Equal(a, b) {
				t.Errorf("results differ from the flat run:\nacross hosts:\n%s\nflat:\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
			}
			if len(a) < 6*20 {
				t.Errorf("only %d result lines", len(a))
			}
			checkNoJobSegments(t, hier)
		})
	}
}

// TestHierMismatchAcrossHosts runs colls mismatch (calls that do not fit
// together: collectives, roots, types, lengths, Split beside Barrier) on 5
// ranks on 3 namespace hosts (2+2+1): every rank's error is the one it
// gets when the job runs flat.
func TestHierMismatchAcrossHosts(t *testing.T) {
	nh := makeHosts(t, 3)
	hier, flat := runBoth(t, nh.hostArgs(2, 2, 1), "-n", "5", prog(t, "colls"), "mismatch")
	a, b := hierLines(hier), hierLines(flat)
	if !slices.Equal(a, b) {
		t.Errorf("errors differ from the flat run:\nacross hosts:\n%s\nflat:\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	for r := range 5 {
		if !strings.Contains(hier+"\n", fmt.Sprintf("%d done\n", r)) {
			t.Errorf("rank %d did not finish", r)
		}
	}
	if !strings.Contains(hier, "0 split-barrier: comm: Split: rank 3 called Barrier but rank 0 called Split") {
		t.Errorf("no Split/Barrier mismatch on rank 0:\n%s", hier)
	}
}

// TestHierRankKilled: on 3 namespace hosts × 2 ranks, a rank SIGKILLed
// while every rank loops over hierarchical collectives, a host's leader
// (rank 2) or not (rank 3). With --keep-going every survivor's call fails
// naming it and wrapping comm.ErrRankLost, Lost() reports it, and the job
// ends with 0; without, decorun ends the job with 137 naming the rank.
// Nothing is left in /dev/shm.
func TestHierRankKilled(t *testing.T) {
	nh := makeHosts(t, 3)
	const n = 6
	type variant struct {
		size   string
		victim int
		keep   bool
	}
	variants := []variant{{"small", 3, true}, {"small", 2, true}, {"large", 3, true}, {"large", 2, true}, {"small", 3, false}}
	for _, v := range variants {
		name := fmt.Sprintf("%s/rank%d", v.size, v.victim)
		args := append(nh.hostArgs(2, 2, 2), "-n", fmt.Sprint(n), "--timeout", "5m")
		if v.keep {
			name += "/keep-going"
			args = append(args, "--keep-going")
		}
		t.Run(name, func(t *testing.T) {
			p := start(t, append(args, prog(t, "colls"), "loop", v.size)...)
			pids := p.pids(n)
			p.waitLine("round 20", 2*time.Minute)
			if err := syscall.Kill(pids[v.victim], syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			code, ended := p.waitOrKill(2 * time.Minute)
			out, stderr := p.out(), p.errText()
			if !ended {
				t.Fatalf("the job still runs 2 minutes after the SIGKILL of rank %d; killed it. stdout:\n%s\nstderr:\n%s",
					v.victim, withoutRounds(out), stderr)
			}
			if !v.keep {
				if code != 128+9 || !strings.Contains(stderr, fmt.Sprintf("rank %d", v.victim)) {
					t.Errorf("exit %d, want 137 naming rank %d; stderr:\n%s", code, v.victim, stderr)
				}
			} else {
				if code != 0 {
					t.Errorf("exit %d, want 0; stdout:\n%s\nstderr:\n%s", code, withoutRounds(out), stderr)
				}
				for r := range n {
					if r == v.victim {
						continue
					}
					failed := fmt.Sprintf("\n%d failed: ", r)
					i := strings.Index("\n"+out, failed)
					if i < 0 {
						t.Errorf("rank %d's call did not fail", r)
						continue
					}
					line, _, _ := strings.Cut(("\n" + out)[i+1:], "\n")
					if !strings.Contains(line, fmt.Sprintf("rank %d", v.victim)) {
						t.Errorf("rank %d's error does not name rank %d: %s", r, v.victim, line)
					}
					if !strings.Contains(out, fmt.Sprintf("%d rank-lost=true", r)) {
						t.Errorf("rank %d's error does not wrap comm.ErrRankLost: %s", r, line)
					}
					if !strings.Contains(out, fmt.Sprintf("%d lost %d", r, v.victim)) {
						t.Errorf("rank %d's Lost() did not report rank %d", r, v.victim)
					}
				}
				if t.Failed() {
					t.Logf("stdout:\n%s\nstderr:\n%s", withoutRounds(out), stderr)
				}
			}
			noLeftovers(t, pids...)
			checkNoJobSegments(t, out)
		})
	}
}
