package collectives_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// TestCancelWaitingForTurn: a blocking collective whose ctx ends while it
// waits for its turn behind a nonblocking one still running gives the turn
// up without breaking the communicator: once the nonblocking call is done,
// later collectives work (the abandoned call's step is consumed on every
// rank, as the ranks that ran it consumed theirs).
func TestCancelWaitingForTurn(t *testing.T) {
	const n = 3
	cs := commtest.World(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var expired sync.WaitGroup
	expired.Add(n - 1)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		if c.Rank() == 0 {
			expired.Wait()
		}
		q := collectives.Ibarrier(ctx, c)
		sctx, scancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := collectives.Barrier(sctx, c)
		scancel()
		t.Logf("rank %d: Barrier: %v", c.Rank(), err)
		if c.Rank() != 0 {
			expired.Done()
		}
		if _, err := q.Wait(ctx); err != nil {
			t.Logf("rank %d: Ibarrier: %v", c.Rank(), err)
		}
		return healthy(ctx, c)
	})
}
