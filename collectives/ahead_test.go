package collectives_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// TestPostAhead: on a communicator whose calls go through a shared-memory
// region, a nonblocking call posts its part when it starts if nothing
// before it holds the region, and queues otherwise; a blocking call after
// it, Waits in any order, and a call whose ctx ends after it posted all
// give what MPI's rules say.
func TestPostAhead(t *testing.T) {
	if os.Getenv("COMMTEST_HOSTS") != "" {
		t.Skip("the ranks are on pretend hosts: no region for the world")
	}
	const n = 3
	cs := commtest.WorldOn(t, n, "shm")
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		me := c.Rank()
		if err := collectives.Barrier(ctx, c); err != nil { // the first call attaches to the region
			return err
		}
		for it := range 50 {
			// After a Barrier every rank has finished the calls before it,
			// so the step's line is free and the Iallreduce can post ahead.
			if err := collectives.Barrier(ctx, c); err != nil {
				return err
			}
			in, out := []float64{float64(me + it)}, []float64{-1}
			q1 := collectives.IallreduceSliceInto(ctx, c, in, out, collectives.Sum)
			if !collectives.Ahead(q1) {
				return fmt.Errorf("iteration %d: the first Iallreduce was not posted ahead", it)
			}
			// Queued behind it (or posted ahead, if the Iallreduce's
			// timer finished it meanwhile).
			q2 := collectives.Ibcast(ctx, c, me*10+it, it%n)
			// A blocking call after both, before either is waited for.
			v, err := collectives.Allreduce(ctx, c, 1, collectives.Sum)
			if err != nil || v != n {
				return fmt.Errorf("iteration %d: Allreduce = %d, %v; want %d", it, v, err, n)
			}
			b, err := q2.Wait(ctx)
			if err != nil || b != (it%n)*10+it {
				return fmt.Errorf("iteration %d: Ibcast = %d, %v; want %d", it, b, err, (it%n)*10+it)
			}
			if _, err := q1.Wait(ctx); err != nil {
				return err
			}
			if want := float64(n*(n-1)/2 + n*it); out[0] != want {
				return fmt.Errorf("iteration %d: Iallreduce = %v; want %v", it, out[0], want)
			}
		}
		// Test alone completes a call posted ahead, with the right value.
		tq := collectives.Iallreduce(ctx, c, me, collectives.Sum)
		for {
			v, ok, err := tq.Test()
			if err != nil {
				return fmt.Errorf("Test: %w", err)
			}
			if ok {
				if v != n*(n-1)/2 {
					return fmt.Errorf("Iallreduce by Test = %d; want %d", v, n*(n-1)/2)
				}
				break
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("Test never reported the call complete: %w", err)
			}
		}
		// A call posted ahead whose ctx ends before it completes fails with
		// the ctx's error on that rank only; the others complete it.
		cctx, cancel := context.WithCancel(ctx)
		if me != 1 {
			cancel()
			defer cancel()
		} else {
			defer cancel()
		}
		q := collectives.Iallreduce(cctx, c, me, collectives.Sum)
		if me == 1 && !collectives.Ahead(q) {
			return errors.New("the Iallreduce was not posted ahead")
		}
		cancel()
		_, err := q.Wait(ctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("Wait after cancel: %w", err)
		}
		// The communicator goes on.
		v, err := collectives.Allreduce(ctx, c, me, collectives.Sum)
		if err != nil || v != n*(n-1)/2 {
			return fmt.Errorf("Allreduce after a cancelled call = %d, %v", v, err)
		}
		return nil
	})
}
