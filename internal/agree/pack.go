package agree

import "math"

// A header travels through a region in packWords words, so that a small
// call's step, header and payload share one cache line (see
// shm.Region's layout): FType, FLen, FBad and FFan whole; FOp, FEq,
// FRegion, FCrowded and FOnePhase in the low bits of the fifth word and FRoot, cut to 32 bits, in
// its high half. FData is not sent: it is the post's payload length, or -1
// when the post carries none (packed's bit hasData).
const packWords = 5

const (
	pkOp      = 0xff // bits 0-7
	pkEq      = 1 << 8
	pkRegion  = 1 << 9
	pkHasData = 1 << 10
	pkCrowded = 1 << 11
	pkOne     = 1 << 12
)

// pack returns h's words for a post. FRoot outside int32 (no rank's) is
// cut to its nearest bound, which still differs from every valid root.
func pack(h *Header) [packWords]int64 {
	w := int64(h[FOp]) & pkOp
	if h[FEq] != 0 {
		w |= pkEq
	}
	if h[FRegion] != 0 {
		w |= pkRegion
	}
	if h[FData] >= 0 {
		w |= pkHasData
	}
	if h[FCrowded] != 0 {
		w |= pkCrowded
	}
	if h[FOnePhase] != 0 {
		w |= pkOne
	}
	root := min(max(h[FRoot], math.MinInt32), math.MaxInt32)
	w |= root << 32
	return [packWords]int64{h[FType], h[FLen], h[FBad], h[FFan], w}
}

// unpack is pack's inverse, given the post's payload length n.
func unpack(w *[packWords]int64, n int) Header {
	var h Header
	h[FType], h[FLen], h[FBad], h[FFan] = w[0], w[1], w[2], w[3]
	p := w[4]
	h[FOp] = p & pkOp
	if p&pkEq != 0 {
		h[FEq] = 1
	}
	if p&pkRegion != 0 {
		h[FRegion] = 1
	}
	if p&pkCrowded != 0 {
		h[FCrowded] = 1
	}
	if p&pkOne != 0 {
		h[FOnePhase] = 1
	}
	h[FData] = -1
	if p&pkHasData != 0 {
		h[FData] = int64(n)
	}
	h[FRoot] = p >> 32
	return h
}

// mergeWords merges into sum the header that member q posted as words w
// with a payload of n bytes, sum holding the summary of members 0..q-1,
// whose member 0 posted w0 and n0. What matters is the cost when the
// members agree: a member that posted what member 0 did changes nothing,
// and one whose post differs only in having a payload or not (a rooted
// call: the root posts its part, the others none) only FData.
func mergeWords(sum *Summary, q int, w *[packWords]int64, n int, w0 *[packWords]int64, n0 int) {
	if *w == *w0 && n == n0 {
		return
	}
	if [4]int64(w[:4]) == [4]int64(w0[:4]) && (w[4]^w0[4])&^pkHasData == 0 {
		d := int64(-1)
		if w[4]&pkHasData != 0 {
			d = int64(n)
		}
		sum[FData].merge(d, q)
		return
	}
	h := unpack(w, n)
	for i := range sum {
		sum[i].merge(h[i], q)
	}
}

// merge adds member q's value v to f (ties keep the lower member, which
// came first).
func (f *Field) merge(v int64, q int) {
	if v < f.Min {
		f.Min, f.MinRank = v, int64(q)
	}
	if v > f.Max {
		f.Max, f.MaxRank = v, int64(q)
	}
}
