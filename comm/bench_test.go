package comm

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
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

// BenchmarkRawNATSPingPong is the baseline for BenchmarkPingPong: the same
// round trip with bare nats.go connections through the same kind of server
// (async subscription callbacks handing messages to the waiting goroutine).
func BenchmarkRawNATSPingPong(b *testing.B) {
	for _, n := range []int{8, 1 << 10, 64 << 10} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			url, secret := startServer(b)
			a, err := nats.Connect(url, nats.Token(secret))
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			c, err := nats.Connect(url, nats.Token(secret))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			toA, toC := make(chan []byte, 1), make(chan []byte, 1)
			a.Subscribe("a", func(m *nats.Msg) { toA <- m.Data })
			c.Subscribe("c", func(m *nats.Msg) { toC <- m.Data })
			a.Flush()
			c.Flush()
			stop := make(chan struct{})
			go func() {
				for {
					select {
					case d := <-toC:
						c.Publish("a", d)
					case <-stop:
						return
					}
				}
			}()
			buf := make([]byte, n)
			b.SetBytes(int64(2 * n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.Publish("c", buf)
				<-toA
			}
			b.StopTimer()
			close(stop)
		})
	}
}
