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
// reported time is per collective.
func bench(b *testing.B, f func(ctx context.Context, c *comm.Comm, data []byte) error) {
	for _, n := range []int{2, 4, 8} {
		for _, bytes := range []int{8, 64 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("n=%d/%dB", n, bytes), func(b *testing.B) {
				cs := commtest.World(b, n)
				ctx := context.Background()
				b.SetBytes(int64(bytes))
				b.ResetTimer()
				var wg sync.WaitGroup
				errs := make([]error, n)
				for r, c := range cs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						data := make([]byte, bytes)
						for range b.N {
							if err := f(ctx, c, data); err != nil {
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

// BenchmarkAllreduce sums float64 vectors of the given size in bytes.
func BenchmarkAllreduce(b *testing.B) {
	bench(b, func(ctx context.Context, c *comm.Comm, data []byte) error {
		v := make([]float64, len(data)/8)
		_, err := collectives.AllreduceSlice(ctx, c, v, collectives.Sum)
		return err
	})
}

// BenchmarkReduceSlice sums float64 vectors of the given size in bytes at
// rank 0.
func BenchmarkReduceSlice(b *testing.B) {
	bench(b, func(ctx context.Context, c *comm.Comm, data []byte) error {
		v := make([]float64, len(data)/8)
		_, err := collectives.ReduceSlice(ctx, c, v, collectives.Sum, 0)
		return err
	})
}

// BenchmarkAlltoall sends size/n bytes to every rank (size in all).
func BenchmarkAlltoall(b *testing.B) {
	bench(b, func(ctx context.Context, c *comm.Comm, data []byte) error {
		_, err := collectives.Alltoall(ctx, c, data[:len(data)/c.Size()*c.Size()])
		return err
	})
}
