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

// BenchmarkOverlapCost measures, on two in-process ranks with a
// shared-memory region, what an Iallreduce of one float64 costs its
// caller beside a compute phase long enough for the other rank to post:
// start-ns is the time of the I-call, wait-ns that of the Wait after the
// compute phase (OSU's total − compute is their sum).
func BenchmarkOverlapCost(b *testing.B) {
	cs := commtest.WorldOn(b, 2, "shm")
	ctx := context.Background()
	var wg sync.WaitGroup
	var startNS, waitNS [2]time.Duration
	var notAhead [2]int
	errs := make([]error, 2)
	for r, c := range cs {
		wg.Go(func() { errs[r] = collectives.Barrier(ctx, c) })
	}
	wg.Wait()
	b.ResetTimer()
	for r, c := range cs {
		wg.Go(func() {
			in, out := []float64{1}, []float64{0}
			for range b.N {
				if err := collectives.Barrier(ctx, c); err != nil {
					errs[r] = err
					return
				}
				t0 := time.Now()
				q := collectives.IallreduceSliceInto(ctx, c, in, out, collectives.Sum)
				t1 := time.Now()
				if !collectives.Ahead(q) {
					notAhead[r]++
				}
				for time.Since(t1) < 5*time.Microsecond {
				}
				t2 := time.Now()
				if _, err := q.Wait(ctx); err != nil {
					errs[r] = err
					return
				}
				startNS[r] += t1.Sub(t0)
				waitNS[r] += time.Since(t2)
			}
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			b.Fatalf("rank %d: %v", r, err)
		}
	}
	b.ReportMetric(float64(max(startNS[0], startNS[1]).Nanoseconds())/float64(b.N), "start-ns")
	b.ReportMetric(float64(notAhead[0]+notAhead[1])/float64(b.N), "queued/op")
	b.ReportMetric(float64(max(waitNS[0], waitNS[1]).Nanoseconds())/float64(b.N), "wait-ns")
}
