package collectives_test

import (
	"context"
	"testing"

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
