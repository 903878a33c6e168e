package collectives_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// BenchmarkIallreduceInto is BenchmarkAllreduceInto with the nonblocking
// form, started and waited for at once: the difference is the cost of the
// request and the hand-over to the communicator's worker.
func BenchmarkIallreduceInto(b *testing.B) {
	benchSetup(b, func(c *comm.Comm, bytes int) func(context.Context) error {
		v, out := make([]float64, bytes/8), make([]float64, bytes/8)
		return func(ctx context.Context) error {
			_, err := collectives.IallreduceSliceInto(ctx, c, v, out, collectives.Sum).Wait(ctx)
			return err
		}
	})
}

// BenchmarkNonblockingAlone measures the nonblocking machinery alone: an
// Iallreduce and its Wait on a communicator of one rank, where the call
// itself moves nothing, beside the blocking Allreduce.
func BenchmarkNonblockingAlone(b *testing.B) {
	c := commtest.World(b, 1)[0]
	ctx := context.Background()
	b.Run("Allreduce", func(b *testing.B) {
		for range b.N {
			if _, err := collectives.Allreduce(ctx, c, 1.0, collectives.Sum); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Iallreduce+Wait", func(b *testing.B) {
		for range b.N {
			if _, err := collectives.Iallreduce(ctx, c, 1.0, collectives.Sum).Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOverlap is OSU's osu_iallreduce overlap measurement on two
// in-process ranks with a shared-memory region: per size, pure-ns is an
// IallreduceSliceInto and its Wait alone; then the ranks start it, compute
// for pure-ns, and Wait; start-ns and wait-ns are the time of the I-call
// and of the Wait after computing (OSU's total − compute is their sum),
// overlap-% is 100·(1 − (start+wait)/pure). Each is the mean of the
// slower rank.
func BenchmarkOverlap(b *testing.B) {
	for _, m := range []int{1, 8 << 10, 128 << 10} {
		b.Run(fmt.Sprintf("%dB", m*8), func(b *testing.B) {
			cs := commtest.WorldOn(b, 2, "shm")
			ctx := context.Background()
			var wg sync.WaitGroup
			var pure, startT, waitT [2]time.Duration
			errs := make([]error, 2)
			b.ResetTimer()
			// Two phases, each on both ranks: pure, then with compute.
			phase := func(compute func() time.Duration) {
				for r, c := range cs {
					wg.Go(func() {
						in, out := make([]float64, m), make([]float64, m)
						d := compute()
						for range b.N {
							if err := collectives.Barrier(ctx, c); err != nil {
								errs[r] = err
								return
							}
							t0 := time.Now()
							q := collectives.IallreduceSliceInto(ctx, c, in, out, collectives.Sum)
							t1 := time.Now()
							for time.Since(t1) < d {
							}
							t2 := time.Now()
							if _, err := q.Wait(ctx); err != nil {
								errs[r] = err
								return
							}
							if d == 0 {
								pure[r] += time.Since(t0)
							} else {
								startT[r] += t1.Sub(t0)
								waitT[r] += time.Since(t2)
							}
						}
					})
				}
				wg.Wait()
			}
			phase(func() time.Duration { return 0 })
			d := max(pure[0], pure[1]) / time.Duration(b.N)
			phase(func() time.Duration { return d })
			for r, err := range errs {
				if err != nil {
					b.Fatalf("rank %d: %v", r, err)
				}
			}
			n := float64(b.N)
			p := float64(max(pure[0], pure[1]).Nanoseconds()) / n
			st := float64(max(startT[0], startT[1]).Nanoseconds()) / n
			wt := float64(max(waitT[0], waitT[1]).Nanoseconds()) / n
			b.ReportMetric(p, "pure-ns")
			b.ReportMetric(st, "start-ns")
			b.ReportMetric(wt, "wait-ns")
			b.ReportMetric(min(max(100*(1-(st+wt)/p), 0), 100), "overlap-%")
		})
	}
}
