package collectives_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// BenchmarkIallreduceCost measures what an Iallreduce costs its caller
// when nobody waits for anybody, the case an overlapping program is in
// once its compute has outlasted the other ranks' starts: one goroutine
// drives two in-process ranks with a shared-memory region, so that no
// time is spent waiting or in the scheduler. first-ns is the start of the
// rank that posts first, second-ns the start of the rank that posts last
// (which finds every part there), wait-ns the first rank's Wait after
// that. OSU's overlap at n=2 is 1 − (first+wait)/pure (and the second
// rank's 1 − second/pure).
func BenchmarkIallreduceCost(b *testing.B) {
	for _, m := range []int{1, 8 << 10} {
		b.Run(fmt.Sprintf("%dB", m*8), func(b *testing.B) {
			cs := commtest.WorldOn(b, 2, "shm")
			ctx := context.Background()
			in := [2][]float64{make([]float64, m), make([]float64, m)}
			out := [2][]float64{make([]float64, m), make([]float64, m)}
			for i := range m {
				in[0][i], in[1][i] = 1, 2
			}
			var wg sync.WaitGroup
			for r, c := range cs { // the first call attaches to the region
				wg.Go(func() {
					if err := collectives.Barrier(ctx, c); err != nil {
						b.Errorf("rank %d: %v", r, err)
					}
				})
			}
			wg.Wait()
			var first, second, wait time.Duration
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				q0 := collectives.IallreduceSliceInto(ctx, cs[0], in[0], out[0], collectives.Sum)
				t1 := time.Now()
				q1 := collectives.IallreduceSliceInto(ctx, cs[1], in[1], out[1], collectives.Sum)
				t2 := time.Now()
				if _, err := q0.Wait(ctx); err != nil {
					b.Fatal(err)
				}
				t3 := time.Now()
				if _, err := q1.Wait(ctx); err != nil {
					b.Fatal(err)
				}
				first += t1.Sub(t0)
				second += t2.Sub(t1)
				wait += t3.Sub(t2)
			}
			b.StopTimer()
			if out[0][m-1] != 3 || out[1][0] != 3 {
				b.Fatalf("sums %v and %v, want 3", out[0][m-1], out[1][0])
			}
			n := float64(b.N)
			b.ReportMetric(float64(first.Nanoseconds())/n, "first-ns")
			b.ReportMetric(float64(second.Nanoseconds())/n, "second-ns")
			b.ReportMetric(float64(wait.Nanoseconds())/n, "wait-ns")
		})
	}
}

// TestNonblockingPolledWhileRecycled: goroutines that keep calling Test
// and Wait on a request while it completes, and after, while the next
// calls on the communicator reuse what the request's call was (a complete
// call goes back to the pool), get the call's own result every time
// (and, under -race, touch nothing the next calls write).
func TestNonblockingPolledWhileRecycled(t *testing.T) {
	const n, calls, pollers = 2, 200, 3
	cs := commtest.WorldOn(t, n, "shm")
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		var wg sync.WaitGroup
		errs := make(chan error, calls*pollers)
		for i := range calls {
			in, out := []float64{float64(i + c.Rank())}, []float64{-1}
			want := float64(2*i + n - 1)
			q := collectives.IallreduceSliceInto(ctx, c, in, out, collectives.Sum)
			for p := range pollers {
				wg.Go(func() {
					for k := 0; ; k++ {
						var done bool
						var err error
						if p == 0 {
							_, err = q.Wait(ctx)
							done = true
						} else {
							_, done, err = q.Test()
						}
						if err != nil {
							errs <- fmt.Errorf("call %d: %w", i, err)
							return
						}
						if done && out[0] != want {
							errs <- fmt.Errorf("call %d: complete with %v; want %v", i, out[0], want)
							return
						}
						if done && k > 20 {
							return // polled on past completion while later calls run
						}
						runtime.Gosched()
					}
				})
			}
			if _, err := q.Wait(ctx); err != nil {
				return err
			}
		}
		wg.Wait()
		close(errs)
		return <-errs
	})
	if err := noWorkers(tctx(t)); err != nil {
		t.Fatal(err)
	}
}
