package shm

import (
	"bytes"
	"testing"
)

// TestPublish: Publish copies exactly what copy would, whatever the
// alignment of either side and the length (below and above ntMin, with
// and without a partial last line), and touches nothing past the copy.
func TestPublish(t *testing.T) {
	src := make([]byte, 3*ntMin+200)
	for i := range src {
		src[i] = byte(i*7 + 3)
	}
	for _, n := range []int{0, 1, 63, ntMin - 1, ntMin, ntMin + 1, ntMin + 63, 2*ntMin + 100, 3 * ntMin} {
		for _, doff := range []int{0, 1, 8, 17, 63} {
			for _, soff := range []int{0, 5, 64} {
				buf := bytes.Repeat([]byte{0xEE}, n+doff+128)
				dst := buf[doff : doff+n]
				got := Publish(dst, src[soff:soff+n])
				if got != n {
					t.Fatalf("n=%d doff=%d soff=%d: Publish returned %d", n, doff, soff, got)
				}
				if !bytes.Equal(dst, src[soff:soff+n]) {
					t.Fatalf("n=%d doff=%d soff=%d: bytes differ", n, doff, soff)
				}
				for i, b := range buf[:doff] {
					if b != 0xEE {
						t.Fatalf("n=%d doff=%d: byte %d before dst written", n, doff, i)
					}
				}
				for i, b := range buf[doff+n:] {
					if b != 0xEE {
						t.Fatalf("n=%d doff=%d soff=%d: byte %d past dst written", n, doff, soff, i)
					}
				}
			}
		}
	}
	// Lengths differ: as copy, the shorter one.
	dst := make([]byte, ntMin+10)
	if got := Publish(dst, src); got != len(dst) || !bytes.Equal(dst, src[:len(dst)]) {
		t.Fatalf("short dst: %d", got)
	}
	long := make([]byte, 2*ntMin)
	if got := Publish(long, src[:ntMin+5]); got != ntMin+5 || !bytes.Equal(long[:got], src[:got]) {
		t.Fatalf("short src: %d", got)
	}
}

func BenchmarkPublish(b *testing.B) {
	src, dst := make([]byte, 64<<10), make([]byte, 64<<10)
	b.SetBytes(int64(len(src)))
	b.Run("copy", func(b *testing.B) {
		for range b.N {
			copy(dst, src)
		}
	})
	b.Run("Publish", func(b *testing.B) {
		for range b.N {
			Publish(dst, src)
		}
	})
}
