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

// TestNonblockingOnePhase: once every rank has posted a nonblocking
// element-wise reduction in the region, its rest is reading, whatever its
// size (also above the size where the blocking form folds by blocks in a
// second phase): the first Test on each rank completes it with the right
// values, with no other rank doing anything meanwhile and no progress
// goroutine.
func TestNonblockingOnePhase(t *testing.T) {
	if os.Getenv("COMMTEST_HOSTS") != "" {
		t.Skip("the ranks are on pretend hosts: no region for the world")
	}
	release := collectives.HoldProgress()
	defer release()
	for _, n := range []int{2, 3} {
		for _, m := range []int{1, 8 << 10, 25 << 10} { // float64s: 8 B, 64 KiB, 200 KiB
			t.Run(fmt.Sprintf("n=%d/%dB", n, m*8), func(t *testing.T) {
				testOnePhase(t, n, m)
			})
		}
	}
}

func testOnePhase(t *testing.T, n, m int) {
	const iters = 6
	cs := commtest.WorldOn(t, n, "shm")
	ctx := tctx(t)
	// posted[i]: every rank has started the calls of iteration i.
	posted := make([]sync.WaitGroup, iters)
	for i := range posted {
		posted[i].Add(n)
	}
	commtest.Run(t, cs, func(c *comm.Comm) error {
		me := c.Rank()
		in := make([]float64, m)
		out, red := make([]float64, m), make([]float64, m)
		for it := range iters {
			if err := collectives.Barrier(ctx, c); err != nil { // the steps before are read: the calls post ahead
				return err
			}
			for i := range in {
				in[i] = float64(me*m + i + it)
			}
			root := it % n
			qa := collectives.IallreduceSliceInto(ctx, c, in, out, collectives.Sum)
			if !collectives.Ahead(qa) {
				return fmt.Errorf("iteration %d: the Iallreduce was not posted ahead", it)
			}
			posted[it].Done()
			posted[it].Wait()
			if _, done, err := qa.Test(); !done || err != nil {
				// Complete it (the region is held until it is) and fail.
				_, werr := qa.Wait(ctx)
				return fmt.Errorf("iteration %d: Iallreduce of %d B: Test after every rank posted: done %v, err %v; want done (Wait: %v)",
					it, m*8, done, err, werr)
			}
			for i, v := range out {
				if want := float64(n*(n-1)/2*m + n*(i+it)); v != want {
					return fmt.Errorf("iteration %d: Iallreduce out[%d] = %v; want %v", it, i, v, want)
				}
			}
			// Then a rooted reduction, completed by the next Barrier.
			qr := collectives.IreduceSliceInto(ctx, c, in, red, collectives.Sum, root)
			if err := collectives.Barrier(ctx, c); err != nil {
				return err
			}
			if _, err := qr.Wait(ctx); err != nil {
				return err
			}
			if me == root {
				for i, v := range red {
					if want := float64(n*(n-1)/2*m + n*(i+it)); v != want {
						return fmt.Errorf("iteration %d: Ireduce out[%d] = %v; want %v", it, i, v, want)
					}
				}
			}
		}
		return nil
	})
}

// TestNonblockingOnePhaseMixed: a blocking element-wise reduction on some
// ranks and its nonblocking form on the others are one call, above the
// size where the blocking form alone folds by blocks too: the blocking
// ranks follow the nonblocking ones' one phase and every rank gets the
// fold in rank order.
func TestNonblockingOnePhaseMixed(t *testing.T) {
	const n, m = 3, 8 << 10
	cs := commtest.WorldOn(t, n, "shm")
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		me := c.Rank()
		in, out := make([]float64, m), make([]float64, m)
		for it := range 2 * n {
			for i := range in {
				in[i] = float64(me*m + i + it)
			}
			blocking := me == it%n
			for _, root := range []int{-1, (it + 1) % n} {
				var err error
				switch {
				case blocking && root < 0:
					err = collectives.AllreduceSliceInto(ctx, c, in, out, collectives.Sum)
				case blocking:
					err = collectives.ReduceSliceInto(ctx, c, in, out, collectives.Sum, root)
				case root < 0:
					_, err = collectives.IallreduceSliceInto(ctx, c, in, out, collectives.Sum).Wait(ctx)
				default:
					_, err = collectives.IreduceSliceInto(ctx, c, in, out, collectives.Sum, root).Wait(ctx)
				}
				if err != nil {
					return fmt.Errorf("iteration %d, root %d: %w", it, root, err)
				}
				if root >= 0 && me != root {
					continue
				}
				for i, v := range out {
					if want := float64(n*(n-1)/2*m + n*(i+it)); v != want {
						return fmt.Errorf("iteration %d, root %d (blocking here: %v): out[%d] = %v; want %v",
							it, root, blocking, i, v, want)
					}
				}
			}
		}
		return nil
	})
}

// TestNonblockingProgressDelay: the progress goroutine takes a posted call
// that nobody finished only progressDelay after that call started, even
// when the timer was set for an earlier call: a call started just before
// an earlier call's time is its caller's to finish meanwhile.
func TestNonblockingProgressDelay(t *testing.T) {
	if os.Getenv("COMMTEST_HOSTS") != "" {
		t.Skip("the ranks are on pretend hosts: no region for the world")
	}
	const delay = 2 * time.Second
	defer collectives.SetProgressDelay(delay)()
	cs := commtest.WorldOn(t, 2, "shm")
	ctx := tctx(t)
	var first, second sync.WaitGroup // rank 0 has started its first call; has looked at its second
	first.Add(1)
	second.Add(1)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		me := c.Rank()
		if err := collectives.Barrier(ctx, c); err != nil { // attaches the region
			return err
		}
		// The first call, which rank 0 posts first, sets its timer for
		// delay after t0; it is complete at once.
		if me == 1 {
			first.Wait()
		}
		t0 := time.Now()
		q0 := collectives.Iallreduce(ctx, c, me, collectives.Sum)
		if me == 0 {
			first.Done()
		}
		if _, err := q0.Wait(ctx); err != nil {
			return err
		}
		if me == 1 {
			second.Wait() // rank 0 posts its second call alone
			_, err := collectives.Iallreduce(ctx, c, me, collectives.Sum).Wait(ctx)
			return err
		}
		// The second, started delay/2 later, is posted and waits for rank 1.
		time.Sleep(time.Until(t0.Add(delay / 2)))
		q := collectives.Iallreduce(ctx, c, me, collectives.Sum)
		if !collectives.Ahead(q) {
			return fmt.Errorf("the second call was not posted ahead")
		}
		// Past the first call's time, well before the second's.
		time.Sleep(time.Until(t0.Add(delay * 5 / 4)))
		due := collectives.Due(q)
		second.Done()
		v, err := q.Wait(ctx)
		if err != nil || v != 1 {
			return fmt.Errorf("second call: %d, %v; want 1", v, err)
		}
		if due {
			return fmt.Errorf("the second call was given to the progress goroutine %v after it started; want it only after %v",
				delay*3/4, delay)
		}
		return nil
	})
	if err := noWorkers(ctx); err != nil {
		t.Fatal(err)
	}
}
