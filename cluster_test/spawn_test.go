package cluster_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// spawnLines is out's non-empty lines, sorted.
func spawnLines(out string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		if l != "" {
			ls = append(ls, l)
		}
	}
	slices.Sort(ls)
	return ls
}

// spawnTalk is what testdata/spawner -mode talk prints with 2 parents and
// 3 children under --tag-output.
var spawnTalk = []string{
	"[0] merged rank 0 of 5: ranks in order [0 1 100 101 102], sum 5",
	"[0] rank 0: Barrier on Remote: ErrInterCollective true",
	"[0] rank 0: answers from children [0 1 2]",
	"[0] rank 0: local 0 of 2, remote 3",
	"[1] merged rank 1 of 5: ranks in order [0 1 100 101 102], sum 5",
	"[1] rank 1: Barrier on Remote: ErrInterCollective true",
	"[1] rank 1: answers from children [0 1 2]",
	"[1] rank 1: local 1 of 2, remote 3",
	"[s1.0] child 0 of 3, spawn 1, parents 2",
	"[s1.1] child 1 of 3, spawn 1, parents 2",
	"[s1.2] child 2 of 3, spawn 1, parents 2",
}

// TestSpawnTalk: 2 ranks spawn 3 children (root rank 1) on every data
// path; parents and children exchange typed messages over the
// intercommunicator, with AnySource seeing remote ranks, the children
// Allreduce in their own world of 3, the Remote view refuses a
// collective, and Merge (children high) orders parents first for an
// Allgather and Allreduce over all 5; spawned ranks' lines are tagged
// [s1.R].
func TestSpawnTalk(t *testing.T) {
	spawner := prog(t, "spawner")
	for _, tr := range []string{"auto", "nats", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			p := start(t, "-n", "2", "--tag-output", "--transport", tr, spawner, "-mode", "talk", "-n", "3")
			if code := p.wait(2 * time.Minute); code != 0 {
				t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, p.out(), p.errText())
			}
			if got := spawnLines(p.out()); !slices.Equal(got, spawnTalk) {
				t.Fatalf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(spawnTalk, "\n"))
			}
			noLeftovers(t)
		})
	}
}

// TestSpawnMisuse: a missing program (named in the error on every rank,
// nothing started, the job goes on), n = 0, different arguments or n on
// different ranks (MismatchError naming both), Merge on the nil Parent of
// a program that was not spawned.
func TestSpawnMisuse(t *testing.T) {
	spawner := prog(t, "spawner")
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{"missing", []string{
			`rank 0: ErrSpawn true: comm: Spawn refused: cannot execute "./no-such-program": exec: "./no-such-program": stat ./no-such-program: no such file or directory`,
			`rank 1: ErrSpawn true: comm: Spawn refused: cannot execute "./no-such-program": exec: "./no-such-program": stat ./no-such-program: no such file or directory`}},
		{"badn", []string{
			fmt.Sprintf(`rank 0: comm: rank 0: Spawn of %q: n must be at least 1, got 0`, spawner),
			fmt.Sprintf(`rank 1: comm: rank 1: Spawn of %q: n must be at least 1, got 0`, spawner)}},
		{"mismatch", []string{
			"rank 0: MismatchError true, ErrMismatch true",
			"rank 0: comm: Spawn: rank 0 called Spawn with n=2 but rank 1 called Spawn with n=3",
			"rank 1: MismatchError true, ErrMismatch true",
			"rank 1: comm: Spawn: rank 0 called Spawn with n=2 but rank 1 called Spawn with n=3"}},
		{"notspawned", []string{
			"rank 0: parent nil true, Merge: comm: not an intercommunicator: Merge on a nil *Intercomm (Parent is nil in a program that Spawn did not start), ErrNotInter true",
			"rank 1: parent nil true, Merge: comm: not an intercommunicator: Merge on a nil *Intercomm (Parent is nil in a program that Spawn did not start), ErrNotInter true"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			p := start(t, "-n", "2", spawner, "-mode", tc.mode)
			if code := p.wait(2 * time.Minute); code != 0 {
				t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, p.out(), p.errText())
			}
			if got := spawnLines(p.out()); !slices.Equal(got, tc.want) {
				t.Fatalf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if strings.Contains(p.out()+p.errText(), "child") {
				t.Errorf("a child ran:\n%s\n%s", p.out(), p.errText())
			}
			noLeftovers(t)
		})
	}
}

// TestSpawnedRankFails: a spawned rank that exits 3 ends the job with
// its code, named as s1.1; none of the job's processes is left.
func TestSpawnedRankFails(t *testing.T) {
	p := start(t, "-n", "2", prog(t, "spawner"), "-mode", "fail", "-n", "3", "-fail", "1")
	if code := p.wait(2 * time.Minute); code != 3 {
		t.Fatalf("exit %d, want 3; stderr:\n%s", code, p.errText())
	}
	if e := p.errText(); !strings.Contains(e, "decorun: rank s1.1 (pid ") || !strings.Contains(e, ") exited with code 3") {
		t.Fatalf("stderr:\n%s", e)
	}
	noLeftovers(t)
}

// TestSpawnedRankLost: with --keep-going a spawned rank that exits 3 is
// announced on the intercommunicator (Lost gives its remote rank, a Recv
// from it fails with ErrRankLost) and the others go on; the job exits 0.
func TestSpawnedRankLost(t *testing.T) {
	p := start(t, "-n", "2", "--keep-going", prog(t, "spawner"), "-mode", "keepgoing", "-n", "3", "-fail", "1")
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, p.out(), p.errText())
	}
	want := []string{
		"child 0 of 3, spawn 1, parents 2", "child 1 of 3, spawn 1, parents 2", "child 2 of 3, spawn 1, parents 2",
		"rank 0: 2 children answered", "rank 0: lost remote rank 1, Recv: ErrRankLost true",
		"rank 1: 2 children answered", "rank 1: lost remote rank 1, Recv: ErrRankLost true",
	}
	if got := spawnLines(p.out()); !slices.Equal(got, want) {
		t.Fatalf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if e := p.errText(); !strings.Contains(e, "decorun: rank s1.1 (pid ") || !strings.Contains(e, "exited with code 3; the job goes on without it (--keep-going)") {
		t.Fatalf("stderr:\n%s", e)
	}
	noLeftovers(t)
}

// TestSpawnNotComm: spawning a program that never calls comm.Init (its
// parents would wait for it in Spawn) ends the job with a message naming
// the rank.
func TestSpawnNotComm(t *testing.T) {
	p := start(t, "-n", "2", prog(t, "spawner"), "-mode", "notcomm")
	if code := p.wait(2 * time.Minute); code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, p.errText())
	}
	if e := p.errText(); !strings.Contains(e, "exited with code 0 without calling comm.Init; a program started by comm.Spawn must join its parents") ||
		!strings.Contains(e, "decorun: rank s1.") {
		t.Fatalf("stderr:\n%s", e)
	}
	noLeftovers(t)
}

// TestSpawnOutputDir: with --output-filename, spawned rank R of spawn K
// writes to DIR/spawn.K/rank.R.
func TestSpawnOutputDir(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "-n", "2", "--output-filename", dir, prog(t, "spawner"), "-mode", "talk", "-n", "3")
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	for r := range 3 {
		b, err := os.ReadFile(filepath.Join(dir, "spawn.1", fmt.Sprintf("rank.%d", r), "stdout"))
		if want := fmt.Sprintf("child %d of 3, spawn 1, parents 2\n", r); err != nil || string(b) != want {
			t.Errorf("spawn.1/rank.%d/stdout: %q, %v; want %q", r, b, err, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "rank.1", "stdout")); err != nil || !strings.Contains(string(b), "rank 1: local 1 of 2, remote 3") {
		t.Errorf("rank.1/stdout: %q, %v", b, err)
	}
}

// serialSweep is examples/sweep's output computed in one process.
func serialSweep(t *testing.T, points int) string {
	t.Helper()
	out, err := exec.Command(prog(t, "sweep"), "-serial", "-points", fmt.Sprint(points)).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestExampleSweep: examples/sweep farmed out to spawned workers prints,
// line for line, what -serial computes alone, for several numbers of
// parents and workers, on every data path.
func TestExampleSweep(t *testing.T) {
	serial := serialSweep(t, 40)
	for _, tc := range []struct {
		n, workers int
		tr         string
	}{{1, 3, "auto"}, {2, 4, "auto"}, {1, 2, "nats"}, {3, 2, "tcp"}} {
		t.Run(fmt.Sprintf("n%d-w%d-%s", tc.n, tc.workers, tc.tr), func(t *testing.T) {
			p := start(t, "-n", fmt.Sprint(tc.n), "--transport", tc.tr, prog(t, "sweep"), "-workers", fmt.Sprint(tc.workers), "-points", "40")
			if code := p.wait(2 * time.Minute); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
			}
			want := serial + fmt.Sprintf("40 points by %d workers", tc.workers)
			if got := p.out(); got != want {
				t.Fatalf("output:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestSpawnAcrossHosts: the job's ranks on 2 namespace hosts spawn
// ranks that the launcher places on them by the same rules, through the
// launch agent; the intercommunicator and Merge work across hosts.
func TestSpawnAcrossHosts(t *testing.T) {
	nh := makeHosts(t, 2)
	spawner := prog(t, "spawner")
	t.Run("talk", func(t *testing.T) {
		p := start(t, append(nh.hostArgs(2, 2), "-n", "2", "--tag-output", spawner, "-mode", "talk", "-n", "3")...)
		if code := p.wait(3 * time.Minute); code != 0 {
			t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, p.out(), p.errText())
		}
		if got := spawnLines(p.out()); !slices.Equal(got, spawnTalk) {
			t.Fatalf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(spawnTalk, "\n"))
		}
	})
	t.Run("sweep", func(t *testing.T) {
		serial := serialSweep(t, 30)
		p := start(t, append(nh.hostArgs(2, 2), "-n", "2", prog(t, "sweep"), "-workers", "4", "-points", "30")...)
		if code := p.wait(3 * time.Minute); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
		}
		if got, want := p.out(), serial+"30 points by 4 workers"; got != want {
			t.Fatalf("output:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("fails", func(t *testing.T) {
		p := start(t, append(nh.hostArgs(2, 2), "-n", "2", spawner, "-mode", "fail", "-n", "3", "-fail", "2")...)
		if code := p.wait(3 * time.Minute); code != 3 {
			t.Fatalf("exit %d, want 3; stderr:\n%s", code, p.errText())
		}
		if e := p.errText(); !strings.Contains(e, "decorun: rank s1.2 (pid ") || !strings.Contains(e, " on host ") {
			t.Fatalf("stderr:\n%s", e)
		}
	})
	noLeftovers(t)
}

// TestSpawnExistingServer: Spawn in a job on an existing NATS server
// (--nats-url): the new worlds live under the job's prefix there.
func TestSpawnExistingServer(t *testing.T) {
	_, urls := natsCluster(t, 1)
	os.Setenv("DECORUN_NATS_PASSWORD", "s3cret")
	defer os.Unsetenv("DECORUN_NATS_PASSWORD")
	p := start(t, "-n", "2", "--tag-output", "--nats-url", urls[0], "--nats-user", "alice", prog(t, "spawner"), "-mode", "talk", "-n", "3")
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, p.out(), p.errText())
	}
	if got := spawnLines(p.out()); !slices.Equal(got, spawnTalk) {
		t.Fatalf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(spawnTalk, "\n"))
	}
	noLeftovers(t)
}

// TestSpawnJoinMode: ranks started by Slurm (join mode, no decorun
// launcher) get ErrNoLauncher from Spawn, on every rank.
func TestSpawnJoinMode(t *testing.T) {
	_, urls := natsCluster(t, 1)
	spawner := prog(t, "spawner")
	const n = 2
	cmds := make([]*exec.Cmd, n)
	outs := make([]strings.Builder, n)
	for r := range n {
		cmd := exec.Command(spawner, "-mode", "joinmode")
		cmd.Env = append(os.Environ(), "DECORUN_NATS_URL="+urls[0], "DECORUN_NATS_USER=alice", "DECORUN_NATS_PASSWORD=s3cret",
			fmt.Sprintf("SLURM_PROCID=%d", r), fmt.Sprintf("SLURM_NTASKS=%d", n), "SLURM_JOB_ID=spawn"+fmt.Sprint(time.Now().UnixNano()), "SLURM_STEP_ID=0")
		if r > 0 {
			cmd.Env = append(cmd.Env[:len(cmd.Env)-2], cmds[0].Env[len(cmds[0].Env)-2:]...) // same job id
		}
		cmd.Stdout, cmd.Stderr = &outs[r], &outs[r]
		cmds[r] = cmd
	}
	runJoined(t, cmds, outs)
	for r := range cmds {
		want := fmt.Sprintf("rank %d: ErrNoLauncher true: comm: rank %d: Spawn of \"./worker\" (this job was started by slurm): comm: Spawn needs the decorun launcher (run the job with decorun)\n", r, r)
		if got := outs[r].String(); got != want {
			t.Errorf("rank %d printed %q, want %q", r, got, want)
		}
	}
}

// TestSpawnNested: spawned ranks spawn in turn (spawn 2 from the ranks of
// spawn 1), and talk with and Merge with their own children.
func TestSpawnNested(t *testing.T) {
	p := start(t, "-n", "1", "--tag-output", prog(t, "spawner"), "-mode", "nested", "-n", "2")
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, p.out(), p.errText())
	}
	want := []string{
		"[0] rank 0: spawned 2",
		"[s1.0] child 0 of 2, spawn 1, parents 1",
		"[s1.0] merged rank 0 of 4: ranks in order [0 1 100 101], sum 4",
		"[s1.0] rank 0: Barrier on Remote: ErrInterCollective true",
		"[s1.0] rank 0: answers from children [0 1]",
		"[s1.0] rank 0: local 0 of 2, remote 2",
		"[s1.1] child 1 of 2, spawn 1, parents 1",
		"[s1.1] merged rank 1 of 4: ranks in order [0 1 100 101], sum 4",
		"[s1.1] rank 1: Barrier on Remote: ErrInterCollective true",
		"[s1.1] rank 1: answers from children [0 1]",
		"[s1.1] rank 1: local 1 of 2, remote 2",
		"[s2.0] child 0 of 2, spawn 2, parents 2",
		"[s2.1] child 1 of 2, spawn 2, parents 2",
	}
	if got := spawnLines(p.out()); !slices.Equal(got, want) {
		t.Fatalf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	noLeftovers(t)
}

// TestSpawnLostBeforeJoined: with --keep-going, a spawned rank that dies
// after it joined its world but before the intercommunicator's start-up
// completed fails Spawn on every parent with ErrRankLost, instead of
// leaving them waiting.
func TestSpawnLostBeforeJoined(t *testing.T) {
	p := start(t, "-n", "2", "--keep-going", prog(t, "spawner"), "-mode", "dieinit")
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, p.out(), p.errText())
	}
	for r := range 2 {
		want := fmt.Sprintf("rank %d: Spawn: ErrRankLost true: comm: rank %d: joining the intercommunicator of spawn 1: ", r, r)
		found := false
		for _, l := range spawnLines(p.out()) {
			found = found || strings.HasPrefix(l, want) && strings.Contains(l, "died") && strings.Contains(l, "(exited with code 3)")
		}
		if !found {
			t.Errorf("no line %q...died (exited with code 3) in:\n%s", want, p.out())
		}
	}
	if e := p.errText(); !strings.Contains(e, "decorun: rank s1.0 (pid ") || !strings.Contains(e, "exited with code 3; the job goes on without it (--keep-going)") {
		t.Fatalf("stderr:\n%s", e)
	}
	noLeftovers(t)
}

// TestSpawnFromSplit: the two halves of a Split world spawn at once, each
// its own child (spawns 1 and 2); each intercommunicator and Merge holds
// its half and its child only.
func TestSpawnFromSplit(t *testing.T) {
	p := start(t, "-n", "4", "--tag-output", prog(t, "spawner"), "-mode", "split", "-n", "1")
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, p.out(), p.errText())
	}
	var want []string
	for w := range 4 {
		r := w / 2 // its rank in its half (rank%2 is the color)
		want = append(want,
			fmt.Sprintf("[%d] merged rank %d of 3: ranks in order [0 1 100], sum 3", w, r),
			fmt.Sprintf("[%d] rank %d: Barrier on Remote: ErrInterCollective true", w, r),
			fmt.Sprintf("[%d] rank %d: answers from children [0]", w, r),
			fmt.Sprintf("[%d] rank %d: local %d of 2, remote 1", w, r, r))
	}
	want = append(want, "[s1.0] child 0 of 1, spawn 1, parents 2", "[s2.0] child 0 of 1, spawn 2, parents 2")
	if got := spawnLines(p.out()); !slices.Equal(got, want) {
		t.Fatalf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	noLeftovers(t)
}
