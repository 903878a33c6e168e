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

// TestMergeWords: merging members' posted words gives the summary that
// unpacking every header and merging every field gives, whatever differs
// between them (nothing, only whether a payload came, or anything).
func TestMergeWords(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pick := func(vs ...int64) int64 { return vs[rng.IntN(len(vs))] }
	for range 20000 {
		p := 1 + rng.IntN(6)
		var hs []Header
		var ns []int
		base := Header{FOp: int64(Bcast), FType: 77, FRoot: 1, FLen: 8, FFan: 4096, FEq: 1}
		for range p {
			h := base
			switch rng.IntN(4) {
			case 0: // the same as the others
			case 1: // a payload or not
				h[FData] = pick(-1, 8)
			case 2:
				h[FData] = pick(-1, 0, 8, 16)
				h[FLen] = pick(8, 9)
			default:
				h[pick(FOp, FType, FRoot, FBad, FEq, FFan, FRegion, FCrowded, FOnePhase)] = pick(0, 1, 2, 5)
			}
			n := 0
			if h[FData] >= 0 {
				n = int(h[FData])
			}
			hs, ns = append(hs, h), append(ns, n)
		}
		var want, got Summary
		w0 := pack(&hs[0])
		h0 := unpack(&w0, ns[0])
		for i := range want {
			want[i] = Field{Min: h0[i], Max: h0[i]}
		}
		got = want
		for q := 1; q < p; q++ {
			w := pack(&hs[q])
			h := unpack(&w, ns[q])
			for i := range want {
				want[i].merge(h[i], q)
			}
			mergeWords(&got, q, &w, ns[q], &w0, ns[0])
		}
		if got != want {
			t.Fatalf("headers %v, payloads %v: merged words give %v; want %v", hs, ns, got, want)
		}
	}
}
