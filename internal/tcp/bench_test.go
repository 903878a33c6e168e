package tcp

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkStream sends b.N frames from rank 0 to rank 1, at most 16 MiB
// in flight (as comm's credit window would allow).
func BenchmarkStream(b *testing.B) {
	for _, size := range []int{8, 64 << 10, 1 << 20} {
		for _, tls := range []bool{false, true} {
			b.Run(fmt.Sprintf("size=%d/tls=%v", size, tls), func(b *testing.B) {
				credit := make(chan struct{}, max(1, 16<<20/size))
				l1, err := Listen(Config{Rank: 1, Size: 2, Key: testKey, TLS: tls}, func([]byte) { <-credit }, func(error) {})
				if err != nil {
					b.Fatal(err)
				}
				defer l1.Close()
				l0, err := Listen(Config{Rank: 0, Size: 2, Key: testKey, TLS: tls}, func([]byte) {}, func(error) {})
				if err != nil {
					b.Fatal(err)
				}
				defer l0.Close()
				if reach, why := l0.Connect(b.Context(), map[int]Peer{1: l1.Self()}); !reach[1] {
					b.Fatal(why[1])
				}
				f := make([]byte, size)
				b.SetBytes(int64(size))
				b.ResetTimer()
				for range b.N {
					credit <- struct{}{}
					l0.Send(1, f)
				}
				for len(credit) > 0 {
				}
			})
		}
	}
}

// BenchmarkPingPong bounces a frame between two links, each waiting for
// the other's as comm's blocked receives do: polling the link (no TLS) or
// waiting for the reader goroutine (TLS). One op is a round trip.
func BenchmarkPingPong(b *testing.B) {
	for _, size := range []int{8, 1 << 10, 8 << 10, 64 << 10} {
		for _, tls := range []bool{false, true} {
			b.Run(fmt.Sprintf("size=%d/tls=%v", size, tls), func(b *testing.B) {
				var got [2]atomic.Int64
				ls := make([]*Link, 2)
				for r := range ls {
					l, err := Listen(Config{Rank: r, Size: 2, Key: testKey, TLS: tls}, func([]byte) { got[r].Add(1) }, func(error) {})
					if err != nil {
						b.Fatal(err)
					}
					defer l.Close()
					ls[r] = l
				}
				for r, l := range ls {
					if reach, why := l.Connect(b.Context(), map[int]Peer{1 - r: ls[1-r].Self()}); !reach[1-r] {
						b.Fatal(why[1-r])
					}
				}
				f := make([]byte, size)
				wait := func(r int, n int64) {
					ls[r].Drive(func() bool { return got[r].Load() >= n }, time.Hour)
				}
				b.SetBytes(int64(2 * size))
				b.ResetTimer()
				done := make(chan struct{})
				go func() {
					defer close(done)
					for i := range int64(b.N) {
						wait(1, i+1)
						ls[1].Send(0, f)
					}
				}()
				for i := range int64(b.N) {
					ls[0].Send(1, f)
					wait(0, i+1)
				}
				<-done
			})
		}
	}
}
