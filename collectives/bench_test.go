package collectives_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// bench runs f b.N times on every rank of an n-rank world at once; the
// reported time is per collective. data is allocated once per rank.
func bench(b *testing.B, f func(ctx context.Context, c *comm.Comm, data []byte) error) {
	benchSetup(b, func(c *comm.Comm, bytes int) func(context.Context) error {
		data := make([]byte, bytes)
		return func(ctx context.Context) error { return f(ctx, c, data) }
	})
}

// benchSetup runs the call that setup returns for each rank (its buffers
// allocated once) b.N times on every rank of an n-rank world at once. The
// reported time is per collective; allocations (-benchmem) are those of
// all n ranks per collective, which share the process.
func benchSetup(b *testing.B, setup func(c *comm.Comm, bytes int) func(context.Context) error) {
	for _, n := range []int{2, 4, 8} {
		for _, bytes := range []int{8, 64 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("n=%d/%dB", n, bytes), func(b *testing.B) {
				cs := commtest.World(b, n)
				ctx := context.Background()
				calls := make([]func(context.Context) error, n)
				for r, c := range cs {
					calls[r] = setup(c, bytes)
				}
				b.SetBytes(int64(bytes))
				b.ResetTimer()
				var wg sync.WaitGroup
				errs := make([]error, n)
				for r, call := range calls {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range b.N {
							if err := call(ctx); err != nil {
								errs[r] = err
								return
							}
						}
					}()
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
}

func BenchmarkBcast(b *testing.B) {
	bench(b, func(ctx context.Context, c *comm.Comm, data []byte) error {
		_, err := collectives.Bcast(ctx, c, data, 0)
		return err
	})
}

// BenchmarkAllreduce sums float64 vectors of the given size in bytes with
// AllreduceSlice (a new result per call; the input allocated once).
func BenchmarkAllreduce(b *testing.B) {
	benchSetup(b, func(c *comm.Comm, bytes int) func(context.Context) error {
		v := make([]float64, bytes/8)
		return func(ctx context.Context) error {
			_, err := collectives.AllreduceSlice(ctx, c, v, collectives.Sum)
			return err
		}
	})
}

// BenchmarkAllreduceInto is BenchmarkAllreduce with AllreduceSliceInto into
// a result allocated once, as osu_allreduce does; with -benchmem it shows
// that the call allocates nothing of the vector's size.
func BenchmarkAllreduceInto(b *testing.B) {
	benchSetup(b, func(c *comm.Comm, bytes int) func(context.Context) error {
		v, out := make([]float64, bytes/8), make([]float64, bytes/8)
		return func(ctx context.Context) error {
			return collectives.AllreduceSliceInto(ctx, c, v, out, collectives.Sum)
		}
	})
}

// BenchmarkAllreduceInPlace is BenchmarkAllreduceInto in place (out = in,
// MPI_IN_PLACE).
func BenchmarkAllreduceInPlace(b *testing.B) {
	benchSetup(b, func(c *comm.Comm, bytes int) func(context.Context) error {
		v := make([]float64, bytes/8)
		return func(ctx context.Context) error {
			return collectives.AllreduceSliceInto(ctx, c, v, v, collectives.Sum)
		}
	})
}

// BenchmarkReduceSlice sums float64 vectors of the given size in bytes at
// rank 0.
func BenchmarkReduceSlice(b *testing.B) {
	benchSetup(b, func(c *comm.Comm, bytes int) func(context.Context) error {
		v := make([]float64, bytes/8)
		return func(ctx context.Context) error {
			_, err := collectives.ReduceSlice(ctx, c, v, collectives.Sum, 0)
			return err
		}
	})
}

// BenchmarkAlltoall sends size/n bytes to every rank (size in all).
func BenchmarkAlltoall(b *testing.B) {
	bench(b, func(ctx context.Context, c *comm.Comm, data []byte) error {
		_, err := collectives.Alltoall(ctx, c, data[:len(data)/c.Size()*c.Size()])
		return err
	})
}
