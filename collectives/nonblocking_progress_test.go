package collectives_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// TestNonblockingProgressWithoutWait: a nonblocking Allreduce whose caller
// never calls Wait or Test completes in the background, with the right
// result, while the other ranks wait for theirs; its caller started it
// before anyone else, so nothing of it could finish in its start. Small
// and large (two-phase) sizes, through a shared-memory region and by
// messages.
func TestNonblockingProgressWithoutWait(t *testing.T) {
	const n = 3
	for _, path := range []string{"shm", "nats"} {
		for _, m := range []int{1, 8 << 10} { // 8 B and 64 KiB of float64s
			t.Run(fmt.Sprintf("%s/%d", path, m*8), func(t *testing.T) {
				cs := commtest.WorldOn(t, n, path)
				ctx := tctx(t)
				first := make(chan struct{})
				commtest.Run(t, cs, func(c *comm.Comm) error {
					me := c.Rank()
					if err := collectives.Barrier(ctx, c); err != nil { // the first call attaches to a region
						return err
					}
					for it := range 3 {
						in, out := make([]float64, m), make([]float64, m)
						for i := range in {
							in[i] = float64(me*1000 + i + it)
						}
						if me != 0 {
							<-first
						}
						q := collectives.IallreduceSliceInto(ctx, c, in, out, collectives.Sum)
						if me == 0 {
							first <- struct{}{}
							first <- struct{}{}
							for !collectives.Complete(q) {
								if err := ctx.Err(); err != nil {
									return fmt.Errorf("iteration %d: the call never completed without Wait: %w", it, err)
								}
								time.Sleep(100 * time.Microsecond)
							}
						} else if _, err := q.Wait(ctx); err != nil {
							return err
						}
						for i, v := range out {
							if want := float64((0+1+2)*1000 + n*(i+it)); v != want {
								return fmt.Errorf("iteration %d: out[%d] = %v; want %v", it, i, v, want)
							}
						}
						if _, ok, err := q.Test(); !ok || err != nil {
							return fmt.Errorf("iteration %d: Test after completion: %v, %v", it, ok, err)
						}
					}
					return nil
				})
				if err := noWorkers(ctx); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestNonblockingWaitCtxPosted: a Wait whose ctx ends returns ctx.Err()
// also for a call posted in a shared-memory region whose other ranks have
// not started it (Wait finishes such a call on its caller's core, but only
// once every rank has posted); a later Wait gets the result.
func TestNonblockingWaitCtxPosted(t *testing.T) {
	const n = 3
	cs := commtest.WorldOn(t, n, "shm")
	ctx := tctx(t)
	var expired sync.WaitGroup
	expired.Add(n - 1)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		if err := collectives.Barrier(ctx, c); err != nil { // attaches to the region; the next call can post ahead
			return err
		}
		if c.Rank() == 0 {
			expired.Wait() // the call cannot complete before rank 0 starts it
		}
		q := collectives.Iallreduce(ctx, c, c.Rank()+1, collectives.Sum)
		if c.Rank() != 0 {
			if !collectives.Ahead(q) {
				return errors.New("the Iallreduce was not posted ahead")
			}
			wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			_, err := q.Wait(wctx)
			cancel()
			expired.Done()
			if err != context.DeadlineExceeded {
				return fmt.Errorf("Wait with an expired ctx: %v; want context.DeadlineExceeded unchanged", err)
			}
		}
		got, err := q.Wait(ctx)
		if err != nil {
			return fmt.Errorf("second Wait: %w", err)
		}
		if got != n*(n+1)/2 {
			return fmt.Errorf("Iallreduce = %d; want %d", got, n*(n+1)/2)
		}
		return nil
	})
}
