package tcp

import (
	"fmt"
	"testing"
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
