package collectives_test

import (
	"context"
	"sync"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// smallCall is one of the small calls an iterative solver makes every step,
// on a world of two ranks.
type smallCall struct {
	name string
	f    func(ctx context.Context, c *comm.Comm) error
}

// smallCalls returns the calls of BenchmarkSmall and
// TestSmallCallsAllocateNothing, with a buffer per rank for the calls that
// write into one.
func smallCalls() []smallCall {
	one := []float64{1}
	out := [2][]float64{{0}, {0}}
	return []smallCall{
		{"Barrier", func(ctx context.Context, c *comm.Comm) error { return collectives.Barrier(ctx, c) }},
		{"Allreduce", func(ctx context.Context, c *comm.Comm) error {
			_, err := collectives.Allreduce(ctx, c, 1.0, collectives.Sum)
			return err
		}},
		{"AllreduceSliceInto", func(ctx context.Context, c *comm.Comm) error {
			return collectives.AllreduceSliceInto(ctx, c, one, out[c.Rank()], collectives.Sum)
		}},
		{"BcastInto", func(ctx context.Context, c *comm.Comm) error {
			buf := out[c.Rank()]
			buf[0] = 1
			return collectives.BcastInto(ctx, c, buf, 0)
		}},
	}
}

// BenchmarkSmall runs the small calls that an iterative solver makes every
// step on two in-process ranks with a shared-memory region; -benchmem
// reports the allocations of both ranks per call (each allocation is
// garbage, whose collection, on a host whose ranks busy every core, stalls
// the ranks waiting for the one whose core the collector borrowed).
func BenchmarkSmall(b *testing.B) {
	for _, bc := range smallCalls() {
		b.Run(bc.name, func(b *testing.B) {
			cs := commtest.WorldOn(b, 2, "shm")
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make([]error, len(cs))
			for r, c := range cs { // the first call attaches to the region
				wg.Go(func() { errs[r] = collectives.Barrier(ctx, c) })
			}
			wg.Wait()
			b.ReportAllocs()
			b.ResetTimer()
			for r, c := range cs {
				wg.Go(func() {
					for range b.N {
						if err := bc.f(ctx, c); err != nil {
							errs[r] = err
							return
						}
					}
				})
			}
			wg.Wait()
			for r, err := range errs {
				if err != nil {
					b.Fatalf("rank %d: %v", r, err)
				}
			}
		})
	}
}
