package launcher

import (
	"os/exec"
	"testing"
	"time"

	"github.com/decorun/decorun/internal/proc"
)

// When several ranks have died on their own before the launcher reacts, the
// lowest rank is reported, whichever exit the launcher sees first.
func TestLowestRankWins(t *testing.T) {
	j := &job{cfg: Config{NP: 3, KillGrace: DefaultKillGrace}}
	for n, code := range []string{"0", "4", "3"} {
		cmd := exec.Command("/bin/sh", "-c", "exit "+code)
		if n == 0 {
			cmd = exec.Command("sleep", "30")
		}
		p, err := proc.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		j.ranks = append(j.ranks, &rank{n: n, p: p})
		j.live++
	}
	// Let ranks 1 and 2 die, unreaped.
	deadline := time.Now().Add(5 * time.Second)
	for _, r := range j.ranks[1:] {
		for {
			if _, ok := r.p.Poll(); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("ranks did not exit")
			}
			time.Sleep(time.Millisecond)
		}
	}
	// The launcher sees rank 2 first.
	st, err := j.ranks[2].p.(*proc.Proc).Wait()
	if err != nil {
		t.Fatal(err)
	}
	j.exited(exitEvent{rank: 2, st: st})
	if j.failure == nil || j.failure.Rank != 1 || j.failure.Code != 4 {
		t.Errorf("failure = %+v; want rank 1, code 4", j.failure)
	}
	if !j.stopping {
		t.Error("job is not stopping")
	}
	for _, n := range []int{0, 1} {
		j.ranks[n].p.Signal(9)
		if _, err := j.ranks[n].p.(*proc.Proc).Wait(); err != nil {
			t.Error(err)
		}
	}
}
