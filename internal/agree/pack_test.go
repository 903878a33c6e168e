package agree

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestPackRoundTrip: every header a call can make comes back from its
// packed words as it went in (FData from the payload length), and a root
// outside int32 comes back as the nearest bound, still unlike any rank.
func TestPackRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 10000 {
		var h Header
		h[FOp] = int64(r.IntN(int(Merge) + 1))
		h[FType] = int64(r.Uint64())
		h[FRoot] = int64(r.IntN(1<<20)) - 3
		h[FLen] = int64(r.Uint64() >> r.IntN(64))
		if r.IntN(3) == 0 {
			h[FLen] = -1
		}
		h[FBad] = int64(r.IntN(3))
		if h[FBad] == 2 {
			h[FBad] += int64(r.Uint64() >> 2)
		}
		h[FEq] = int64(r.IntN(2))
		h[FFan] = int64(r.Uint64() >> 1)
		h[FRegion] = int64(r.IntN(2))
		h[FCrowded] = int64(r.IntN(2))
		h[FOnePhase] = int64(r.IntN(2))
		n := r.IntN(1 << 20)
		h[FData] = int64(n)
		if r.IntN(4) == 0 {
			h[FData], n = -1, 0
		}
		w := pack(&h)
		if got := unpack(&w, n); got != h {
			t.Fatalf("case %d: packed %v, unpacked %v", i, h, got)
		}
	}
	for _, c := range []struct{ in, out int64 }{
		{math.MaxInt32 + 1, math.MaxInt32}, {1 << 40, math.MaxInt32},
		{math.MinInt32 - 1, math.MinInt32}, {math.MinInt64, math.MinInt32},
	} {
		h := Header{FRoot: c.in, FData: -1}
		w := pack(&h)
		if got := unpack(&w, 0)[FRoot]; got != c.out {
			t.Errorf("root %d came back as %d, want %d", c.in, got, c.out)
		}
	}
}
