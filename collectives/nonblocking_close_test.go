package collectives_test

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// TestNonblockingCloseWhileProgressSleeps: the progress goroutine has
// taken a posted call and sleeps in the region until the other rank
// posts; the caller's Wait finishes the call meanwhile, and the caller
// closes the communicator at once. Close must not unmap the region while
// the progress goroutine is still in it (it would fault, killing the
// process, when it wakes).
func TestNonblockingCloseWhileProgressSleeps(t *testing.T) {
	if os.Getenv("COMMTEST_HOSTS") != "" {
		t.Skip("the ranks are on pretend hosts: no region for the world")
	}
	defer collectives.SetProgressDelay(0)()
	for i := range 40 {
		cs := commtest.WorldOn(t, 2, "shm")
		ctx := tctx(t)
		var taken sync.WaitGroup // rank 0's call is in the progress goroutine
		taken.Add(1)
		commtest.Run(t, cs, func(c *comm.Comm) error {
			if err := collectives.Barrier(ctx, c); err != nil { // attaches the region
				return err
			}
			if c.Rank() == 1 {
				taken.Wait()
				if _, err := collectives.Iallreduce(ctx, c, 1, collectives.Sum).Wait(ctx); err != nil {
					return err
				}
				return c.Close()
			}
			q := collectives.Iallreduce(ctx, c, 1, collectives.Sum)
			for !collectives.Due(q) {
				if ctx.Err() != nil {
					return fmt.Errorf("round %d: the call never went to the progress goroutine", i)
				}
				time.Sleep(10 * time.Microsecond)
			}
			time.Sleep(time.Millisecond) // asleep in the region by now
			taken.Done()
			if v, err := q.Wait(ctx); err != nil || v != 2 {
				return fmt.Errorf("round %d: Iallreduce gave %d, %v; want 2", i, v, err)
			}
			return c.Close()
		})
		if t.Failed() {
			return
		}
	}
	if err := noWorkers(tctx(t)); err != nil {
		t.Fatal(err)
	}
}
