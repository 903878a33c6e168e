package collectives

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// testAddBits checks add (the vector kernel where there is one, then the
// scalar loop) against the scalar a[i] + b[i], bit for bit, for every
// length up to a few vector blocks, at every element offset from the
// backing array's start, into a fresh dst and in place (dst = a, dst = b),
// with dst's elements past its length left alone.
func testAddBits[N Number](t *testing.T, gen func(r *rand.Rand) N) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	var z N
	size := int(unsafe.Sizeof(z))
	bits := func(v N) string { return fmt.Sprintf("%x", unsafe.Slice((*byte)(unsafe.Pointer(&v)), size)) }
	for n := 0; n <= 3*128/size+5; n++ {
		for off := 0; off < 4; off++ {
			a, b := make([]N, n+off+1), make([]N, n+off+1)
			for i := range a {
				a[i], b[i] = gen(r), gen(r)
			}
			want := make([]N, n)
			for i := range want {
				want[i] = a[off+i] + b[off+i]
			}
			const guard = 77
			for _, into := range []string{"fresh", "a", "b"} {
				x, y := append([]N(nil), a...), append([]N(nil), b...)
				var dst []N
				switch into {
				case "fresh":
					dst = make([]N, n+off+1)
				case "a":
					dst = x
				case "b":
					dst = y
				}
				dst[off+n] = guard
				add(dst[off:off+n], x[off:off+n], y[off:off+n])
				for i := range want {
					if bits(dst[off+i]) != bits(want[i]) {
						t.Fatalf("%T, %d elements at offset %d into %s: element %d = %v (%s); want %v (%s)",
							z, n, off, into, i, dst[off+i], bits(dst[off+i]), want[i], bits(want[i]))
					}
				}
				if dst[off+n] != guard {
					t.Fatalf("%T, %d elements at offset %d into %s: wrote past the end (%v)", z, n, off, into, dst[off+n])
				}
			}
		}
	}
}

func TestAddBitIdentical(t *testing.T) {
	specials := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1), math.MaxFloat64, math.SmallestNonzeroFloat64, 1e-310}
	f64 := func(r *rand.Rand) float64 {
		if r.IntN(8) == 0 {
			return specials[r.IntN(len(specials))]
		}
		return (r.Float64() - 0.5) * math.Pow(2, float64(r.IntN(80)-40))
	}
	testAddBits(t, f64)
	testAddBits(t, func(r *rand.Rand) float32 { return float32(f64(r)) })
	testAddBits(t, func(r *rand.Rand) int64 { return int64(r.Uint64()) })
	testAddBits(t, func(r *rand.Rand) int { return int(r.Uint64()) })
	testAddBits(t, func(r *rand.Rand) uint64 { return r.Uint64() })
	testAddBits(t, func(r *rand.Rand) int32 { return int32(r.Uint32()) })
}
