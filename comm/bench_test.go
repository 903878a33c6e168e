package comm

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkPingPong measures a round trip between two ranks (each with its
// own NATS connection to a real embedded server) for several sizes.
// -benchmem shows allocations per round trip: two messages.
func BenchmarkPingPong(b *testing.B) {
	for _, n := range []int{8, 1 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cs := world(b, 2)
			ctx := context.Background()
			buf := make([]byte, n)
			rbuf := make([]byte, n)
			done := make(chan error, 1)
			go func() {
				for i := 0; i < b.N; i++ {
					if _, err := cs[1].RecvInto(ctx, rbuf, 0, 0); err != nil {
						done <- err
						return
					}
					if err := cs[1].Send(ctx, 0, 0, rbuf); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			b.SetBytes(int64(2 * n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := cs[0].Send(ctx, 1, 0, buf); err != nil {
					b.Fatal(err)
				}
				if _, err := cs[0].RecvInto(ctx, buf, 1, 0); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkStream measures one-way bandwidth with a window of 64 Isends.
func BenchmarkStream(b *testing.B) {
	for _, n := range []int{64 << 10, 1 << 20, 4 << 20} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cs := world(b, 2)
			ctx := context.Background()
			buf := make([]byte, n)
			const window = 64
			done := make(chan error, 1)
			go func() {
				rbuf := make([]byte, n)
				for i := 0; i < b.N*window; i++ {
					if _, err := cs[1].RecvInto(ctx, rbuf, 0, 1); err != nil {
						done <- err
						return
					}
				}
				done <- cs[1].Send(ctx, 0, 2, nil)
			}()
			b.SetBytes(int64(window * n))
			b.ResetTimer()
			reqs := make([]*Request, window)
			for i := 0; i < b.N; i++ {
				for w := range reqs {
					var err error
					if reqs[w], err = cs[0].Isend(1, 1, buf); err != nil {
						b.Fatal(err)
					}
				}
				if err := WaitAll(ctx, reqs...); err != nil {
					b.Fatal(err)
				}
			}
			if _, _, err := cs[0].Recv(ctx, 1, 2); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}
