package cluster_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Collectives between real rank processes on one host (where they can use
// shared memory): mismatched calls, and ranks that die or stop in the
// middle of collectives. The rank program is testdata/colls.

// TestCollectiveMismatchesBetweenProcesses: ranks (separate processes)
// that call different collectives, pass different types, roots or lengths,
// or call comm's Split while others call Barrier, all get an error that
// names two ranks and their values, and the next Allreduce is right. Some
// cases have one rank's data large and the others' small, so that ranks
// that choose a data path by size may choose different ones.
func TestCollectiveMismatchesBetweenProcesses(t *testing.T) {
	const m, inv = "is-mismatch=true is-invalid=false", "is-mismatch=false is-invalid=true"
	cases := []struct {
		name string
		text string // in every rank's error
		kind string // the is-mismatch / is-invalid line, fields included
		// the ranks whose error is another package's (comm's Split),
		// which carries no collectives.MismatchError fields, and its text
		other     []int
		otherText string
	}{
		{"roots", "collectives: Bcast: rank 0 passed root 0 but rank 1 passed root 1", m + " fields=root,0,0,1,1", nil, ""},
		{"roots-1MiB", "collectives: Bcast: rank 0 passed root 0 but rank 3 passed root 1", m + " fields=root,0,0,3,1", nil, ""},
		{"collectives", "collectives: rank 0 called Bcast but rank 3 called Reduce", m + " fields=collective,0,", nil, ""},
		{"barrier-allreduce", "collectives: rank 1 called Barrier but rank 0 called Allreduce", m + " fields=collective,1,", nil, ""},
		{"lengths", "collectives: AllreduceSlice: rank 0 passed length 4 but rank 4 passed length 5", m + " fields=length,0,4,4,5", nil, ""},
		{"lengths-large", "collectives: AllreduceSlice: rank 0 passed length 70000 but rank 4 passed length 70001", m + " fields=length,0,70000,4,70001", nil, ""},
		{"reduce-lengths", "collectives: ReduceSlice: rank 4 passed length 1 but rank 0 passed length 3", m + " fields=length,4,1,0,3", nil, ""},
		{"gather-lengths", "collectives: Allgather: rank 0 passed length 2 but rank 4 passed length 3", m + " fields=length,0,2,4,3", nil, ""},
		{"types", "collectives: Allreduce: ranks 0 and 2 passed values of different types", m + " fields=type,", nil, ""},
		{"gather-types", "collectives: Gather: ranks 0 and 2 passed values of different types", m + " fields=type,", nil, ""},
		{"one-negative-root", "collectives: Reduce: rank 4 passed root -1 but rank 0 passed root 0", m + " fields=root,4,-1,0,0", nil, ""},
		{"indivisible", "collectives: Scatter: root 3 passed 7 elements, not divisible by 5 ranks", inv, nil, ""},
		{"lengths-straddle", "collectives: AllreduceSlice: rank 0 passed length 8 but rank 4 passed length 40008", m + " fields=length,0,8,4,40008", nil, ""},
		{"allgather-straddle", "collectives: Allgather: rank 0 passed length 1 but rank 4 passed length 100001", m + " fields=length,0,1,4,100001", nil, ""},
		{"collectives-straddle", "collectives: rank 0 called Bcast but rank 4 called ReduceSlice", m + " fields=collective,0,", nil, ""},
		{"split-barrier", "collectives: rank 3 called Barrier but rank 0 called Split", m + " fields=collective,3,",
			[]int{0, 1, 2}, "comm: Split: rank 3 called Barrier but rank 0 called Split"},
	}
	for _, tr := range []string{"auto", "shm"} {
		t.Run(tr, func(t *testing.T) {
			p := start(t, "-n", "5", "--transport="+tr, "--timeout", "5m", prog(t, "colls"), "mismatch")
			code := p.wait(6 * time.Minute)
			out := p.out()
			if code != 0 {
				t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, out, p.errText())
			}
			lines := map[string]bool{}
			for _, l := range strings.Split(out, "\n") {
				lines[l] = true
			}
			has := func(prefix, want string) bool {
				for l := range lines {
					if strings.HasPrefix(l, prefix) && strings.Contains(l[len(prefix):], want) {
						return true
					}
				}
				return false
			}
			for _, tc := range cases {
				for r := range 5 {
					text, kind := tc.text, tc.kind
					for _, o := range tc.other {
						if o == r {
							text, kind = tc.otherText, "is-mismatch=true is-invalid=false"
						}
					}
					if !has(fmt.Sprintf("%d %s: ", r, tc.name), text) {
						t.Errorf("%s: rank %d's error does not say %q", tc.name, r, text)
					}
					if !has(fmt.Sprintf("%d %s is-", r, tc.name), strings.TrimPrefix(kind, "is-")) {
						t.Errorf("%s: rank %d's error is not %q", tc.name, r, kind)
					}
				}
			}
			for r := range 5 {
				if !lines[fmt.Sprintf("%d done", r)] {
					t.Errorf("rank %d did not get through every case", r)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s", out)
			}
			checkNoJobSegments(t, out)
		})
	}
}

// jobID is the job's id from the rank program's "job R ID" lines.
func jobID(t *testing.T, out string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		var r int
		var id string
		if _, err := fmt.Sscanf(l, "job %d %s", &r, &id); err == nil && id != "" {
			return id
		}
	}
	t.Fatalf("no job id in the output:\n%s", out)
	return ""
}

// checkNoJobSegments fails if anything of the job is left in /dev/shm.
func checkNoJobSegments(t *testing.T, out string) {
	t.Helper()
	if left, _ := filepath.Glob("/dev/shm/decorun-" + jobID(t, out) + "-*"); len(left) != 0 {
		t.Errorf("left in /dev/shm after the job: %v", left)
	}
}

// TestCollectiveRankKilled: a rank SIGKILLed while every rank loops over
// collectives (Barrier, Allreduce and Bcast of one number; or
// AllreduceSlice and Bcast of 1 MiB). Without --keep-going decorun ends
// the job naming the rank, with exit code 137; with --keep-going every
// survivor's call fails with an error naming the lost rank (wrapping
// comm.ErrRankLost), and Lost() reports it, and the job ends with 0 (on
// auto, NATS and TCP). Either way nothing of the job is left: no process,
// nothing in /dev/shm.
func TestCollectiveRankKilled(t *testing.T) {
	const n, victim = 4, 2
	type variant struct {
		size, transport string
		keep            bool
	}
	var variants []variant
	for _, size := range []string{"small", "large"} {
		variants = append(variants, variant{size, "auto", false})
		for _, tr := range []string{"auto", "nats", "tcp"} {
			variants = append(variants, variant{size, tr, true})
		}
	}
	for _, v := range variants {
		size, keep := v.size, v.keep
		name := size + "/" + v.transport
		args := []string{"-n", fmt.Sprint(n), "--timeout", "5m", "--transport=" + v.transport}
		if keep {
			name += "/keep-going"
			args = append(args, "--keep-going")
		}
		t.Run(name, func(t *testing.T) {
			p := start(t, append(args, prog(t, "colls"), "loop", size)...)
			pids := p.pids(n)
			p.waitLine("round 20", 2*time.Minute) // well inside the loop
			killed := time.Now()
			if err := syscall.Kill(pids[victim], syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			code, ended := p.waitOrKill(2 * time.Minute)
			out, stderr := p.out(), p.errText()
			if !ended {
				t.Fatalf("the job still runs 2 minutes after the SIGKILL of rank %d; killed it. stdout (without the rounds):\n%s\nstderr:\n%s",
					victim, withoutRounds(out), stderr)
			}
			t.Logf("job gone %v after the SIGKILL", p.ended.Sub(killed))
			if !keep {
				if code != 128+9 {
					t.Errorf("exit %d, want 137; stderr:\n%s", code, stderr)
				}
				if !strings.Contains(stderr, fmt.Sprintf("rank %d", victim)) || !strings.Contains(stderr, "SIGKILL") {
					t.Errorf("stderr does not name rank %d and SIGKILL:\n%s", victim, stderr)
				}
			} else {
				if code != 0 {
					t.Errorf("exit %d, want 0 (the survivors succeeded); stdout:\n%s\nstderr:\n%s", code, out, stderr)
				}
				for r := range n {
					if r == victim {
						continue
					}
					failed := fmt.Sprintf("%d failed: ", r)
					if !strings.Contains(out, failed) {
						t.Errorf("rank %d's call did not fail", r)
						continue
					}
					line := out[strings.Index(out, failed):]
					line, _, _ = strings.Cut(line, "\n")
					if !strings.Contains(line, fmt.Sprintf("rank %d", victim)) {
						t.Errorf("rank %d's error does not name rank %d: %s", r, victim, line)
					}
					if !strings.Contains(out, fmt.Sprintf("%d rank-lost=true", r)) {
						t.Errorf("rank %d's error does not wrap comm.ErrRankLost: %s", r, line)
					}
					if !strings.Contains(out, fmt.Sprintf("%d lost %d", r, victim)) {
						t.Errorf("rank %d's Lost() did not report rank %d", r, victim)
					}
				}
				if t.Failed() {
					t.Logf("stdout:\n%s\nstderr:\n%s", out, stderr)
				}
			}
			noLeftovers(t, pids...)
			checkNoJobSegments(t, out)
		})
	}
}

// waitOrKill waits up to d for decorun to exit and returns its exit code;
// if it has not exited by then, it kills it and returns false.
func (p *proc) waitOrKill(d time.Duration) (int, bool) {
	select {
	case <-p.done:
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		return p.exit, false
	}
	for range p.lines {
	}
	return p.exit, true
}

// withoutRounds drops rank 0's "round I" lines from out.
func withoutRounds(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "round ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestCollectiveRankStopped: a rank SIGSTOPped for 10 s in the middle of a
// loop of collectives (small and 1 MiB), then SIGCONT: the others wait for
// it, every result afterwards is right, and the job exits 0.
func TestCollectiveRankStopped(t *testing.T) {
	const n, victim = 4, 1
	stop := filepath.Join(t.TempDir(), "stop")
	p := start(t, "-n", fmt.Sprint(n), "--timeout", "5m", prog(t, "colls"), "loop", "both", stop)
	pids := p.pids(n)
	p.waitLine("round 10", 2*time.Minute)
	if err := syscall.Kill(pids[victim], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second)
	if err := syscall.Kill(pids[victim], syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stop, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code := p.wait(3 * time.Minute)
	out := p.out()
	if code != 0 {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, out, p.errText())
	}
	for r := range n {
		if !strings.Contains(out, fmt.Sprintf("%d done ", r)) {
			t.Errorf("rank %d did not finish its rounds; stdout:\n%s", r, out)
		}
	}
	noLeftovers(t, pids...)
	checkNoJobSegments(t, out)
}
