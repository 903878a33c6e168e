package conformance

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

// affine is the map x ↦ mul·x + add (mod 2³²), packed as mul<<32 | add:
// a fixed-size number (so it travels as its memory image, through every
// large-message algorithm), and compose is associative but not
// commutative, so a result in any other than rank order is caught bit for
// bit.
type affine uint64

// compose is "a, then b".
func compose(a, b affine) affine {
	ma, ca := uint32(a>>32), uint32(a)
	mb, cb := uint32(b>>32), uint32(b)
	return affine(uint64(mb*ma)<<32 | uint64(mb*ca+cb))
}

// aff is rank r's i-th affine map: odd multipliers, all different.
func aff(r, i int) affine { return affine(uint64(2*r+3+4*i)<<32 | uint64(7*r+i+1)) }

func affs(r, n int) []affine {
	v := make([]affine, n)
	for i := range v {
		v[i] = aff(r, i)
	}
	return v
}

// foldAff is aff(lo, i) ∘ ... in rank order lo..hi-1, element i of a vector.
func foldAff(lo, hi, i int) affine {
	f := aff(lo, i)
	for r := lo + 1; r < hi; r++ {
		f = compose(f, aff(r, i))
	}
	return f
}

func foldAffs(lo, hi, n int) []affine {
	v := make([]affine, n)
	for i := range v {
		v[i] = foldAff(lo, hi, i)
	}
	return v
}

func concat(a, b string) string { return a + b }

// word is rank r's string; their concatenation in rank order is "0.1.2.".
func word(r int) string { return strconv.Itoa(r) + "." }

func words(lo, hi int) string {
	s := ""
	for r := lo; r < hi; r++ {
		s += word(r)
	}
	return s
}

// part is rank r's i-th block for rank d: length (r+d+i)%3, so some are
// empty and their lengths differ.
func part(r, d, i int) []int32 {
	v := make([]int32, (r+d+i)%3)
	for k := range v {
		v[k] = int32(1000*r + 10*d + k)
	}
	return v
}

// same compares got and want (nil and empty slices alike) and shows both
// on failure.
func same[T any](what string, got, want T) error {
	if g, ok := any(got).([]int32); ok && slices.Equal(g, any(want).([]int32)) { // fast for long vectors
		return nil
	}
	if reflect.DeepEqual(got, want) {
		return nil
	}
	if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
		if len(g) > 200 {
			g, w = g[:200]+"...", w[:min(len(w), 200)]+"..."
		}
		return fmt.Errorf("%s = %s; want %s", what, g, w)
	}
	return nil
}

// TestCollectivesEverySizeEveryRoot: every collective, at every size from
// 1 to 9 ranks and with every root, with uneven counts (empty parts
// included) and non-commutative ops, gives MPI's result: reductions
// combine in rank order, bit for bit.
func TestCollectivesEverySizeEveryRoot(t *testing.T) {
	for _, n := range sizes() {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			run(t, n, func(ctx context.Context, c *comm.Comm) error {
				if err := unrooted(ctx, c); err != nil {
					return err
				}
				for root := range c.Size() {
					if err := rooted(ctx, c, root); err != nil {
						return fmt.Errorf("root %d: %w", root, err)
					}
				}
				return nil
			})
		})
	}
}

// unrooted checks the collectives without a root on c.
func unrooted(ctx context.Context, c *comm.Comm) error {
	r, p := c.Rank(), c.Size()
	if err := collectives.Barrier(ctx, c); err != nil {
		return err
	}
	all, err := collectives.Allgather(ctx, c, []int32{int32(r), int32(-r)})
	if err != nil {
		return err
	}
	var wantAll []int32
	for s := range p {
		wantAll = append(wantAll, int32(s), int32(-s))
	}
	if err := same("Allgather", all, wantAll); err != nil {
		return err
	}
	allv, err := collectives.Allgatherv(ctx, c, part(r, 0, 0))
	if err != nil {
		return err
	}
	for s := range p {
		if err := same(fmt.Sprintf("Allgatherv[%d]", s), allv[s], part(s, 0, 0)); err != nil {
			return err
		}
	}
	var a2a, wantA2a []int32
	for d := range p {
		a2a = append(a2a, int32(100*r+d), int32(-100*r-d))
		wantA2a = append(wantA2a, int32(100*d+r), int32(-100*d-r))
	}
	got, err := collectives.Alltoall(ctx, c, a2a)
	if err != nil {
		return err
	}
	if err := same("Alltoall", got, wantA2a); err != nil {
		return err
	}
	parts := make([][]int32, p)
	for d := range p {
		parts[d] = part(r, d, 1)
	}
	gotv, err := collectives.Alltoallv(ctx, c, parts)
	if err != nil {
		return err
	}
	for s := range p {
		if err := same(fmt.Sprintf("Alltoallv from %d", s), gotv[s], part(s, r, 1)); err != nil {
			return err
		}
	}
	f, err := collectives.Allreduce(ctx, c, aff(r, 0), compose)
	if err != nil {
		return err
	}
	if err := same("Allreduce(compose)", f, foldAff(0, p, 0)); err != nil {
		return err
	}
	s, err := collectives.Allreduce(ctx, c, word(r), concat)
	if err != nil {
		return err
	}
	if err := same("Allreduce(concat)", s, words(0, p)); err != nil {
		return err
	}
	// Short and long vectors (the long one, 80 KB, takes the
	// bandwidth-optimal algorithm), of lengths no size divides.
	for _, m := range []int{5, 10007} {
		v, err := collectives.AllreduceSlice(ctx, c, affs(r, m), compose)
		if err != nil {
			return err
		}
		if err := same(fmt.Sprintf("AllreduceSlice(compose) of %d", m), v, foldAffs(0, p, m)); err != nil {
			return err
		}
	}
	rs, err := collectives.ReduceScatter(ctx, c, affs(r, 3*p), compose)
	if err != nil {
		return err
	}
	if err := same("ReduceScatter(compose)", rs, foldAffs(0, p, 3*p)[3*r:3*r+3]); err != nil {
		return err
	}
	sc, err := collectives.Scan(ctx, c, word(r), concat)
	if err != nil {
		return err
	}
	if err := same("Scan(concat)", sc, words(0, r+1)); err != nil {
		return err
	}
	ex, err := collectives.Exscan(ctx, c, aff(r, 0), compose)
	if err != nil {
		return err
	}
	var wantEx affine
	if r > 0 {
		wantEx = foldAff(0, r, 0)
	}
	if err := same("Exscan(compose)", ex, wantEx); err != nil {
		return err
	}
	scs, err := collectives.ScanSlice(ctx, c, affs(r, 4), compose)
	if err != nil {
		return err
	}
	if err := same("ScanSlice(compose)", scs, foldAffs(0, r+1, 4)); err != nil {
		return err
	}
	exs, err := collectives.ExscanSlice(ctx, c, affs(r, 4), compose)
	if err != nil {
		return err
	}
	var wantExs []affine
	if r > 0 {
		wantExs = foldAffs(0, r, 4)
	}
	if err := same("ExscanSlice(compose)", exs, wantExs); err != nil {
		return err
	}
	return sameFloatEverywhere(ctx, c)
}

// sameFloatEverywhere: a floating-point Allreduce, whose value depends on
// the order of the additions, gives every rank the same bits, call after
// call.
func sameFloatEverywhere(ctx context.Context, c *comm.Comm) error {
	x := []float64{1e16, 1, -1e16, 0.1, 3.3e-5, -7}[c.Rank()%6] * float64(c.Rank()+1)
	var first uint64
	for i := range 2 {
		v, err := collectives.Allreduce(ctx, c, x, collectives.Sum)
		if err != nil {
			return err
		}
		bits, err := collectives.Allgather(ctx, c, []uint64{math.Float64bits(v)})
		if err != nil {
			return err
		}
		for s, b := range bits {
			if b != bits[0] {
				return fmt.Errorf("Allreduce(float64): rank %d got %v, rank 0 %v", s, math.Float64frombits(b), math.Float64frombits(bits[0]))
			}
		}
		if i == 0 {
			first = bits[0]
		} else if bits[0] != first {
			return fmt.Errorf("Allreduce(float64) gave %v, then %v", math.Float64frombits(first), math.Float64frombits(bits[0]))
		}
	}
	return nil
}

// rooted checks the collectives with a root on c.
func rooted(ctx context.Context, c *comm.Comm, root int) error {
	r, p := c.Rank(), c.Size()
	in := []int32{int32(r)} // what non-roots pass: ignored
	if r == root {
		in = part(root, 0, 2) // 2, 0 or 1 elements
		in = append(in, int32(root), 7)
	}
	b, err := collectives.Bcast(ctx, c, in, root)
	if err != nil {
		return err
	}
	if err := same("Bcast", b, append(part(root, 0, 2), int32(root), 7)); err != nil {
		return err
	}
	if root == p-1 { // one large Bcast (the scatter-allgather algorithm), of an odd length
		big := make([]int32, 70001)
		if r == root {
			for i := range big {
				big[i] = int32(i ^ root)
			}
		}
		got, err := collectives.Bcast(ctx, c, big, root)
		if err != nil {
			return err
		}
		for i, v := range got {
			if v != int32(i^root) {
				return fmt.Errorf("large Bcast: element %d = %d; want %d", i, v, i^root)
			}
		}
	}
	var data []int32
	parts := make([][]int32, p)
	if r == root {
		for d := range p {
			data = append(data, int32(d), int32(root))
			parts[d] = part(root, d, 0)
		}
	}
	sc, err := collectives.Scatter(ctx, c, data, root)
	if err != nil {
		return err
	}
	if err := same("Scatter", sc, []int32{int32(r), int32(root)}); err != nil {
		return err
	}
	if r != root {
		parts = nil
	}
	scv, err := collectives.Scatterv(ctx, c, parts, root)
	if err != nil {
		return err
	}
	if err := same("Scatterv", scv, part(root, r, 0)); err != nil {
		return err
	}
	g, err := collectives.Gather(ctx, c, []int32{int32(r), int32(root)}, root)
	if err != nil {
		return err
	}
	var wantG []int32
	if r == root {
		for s := range p {
			wantG = append(wantG, int32(s), int32(root))
		}
	}
	if err := same("Gather", g, wantG); err != nil {
		return err
	}
	gv, err := collectives.Gatherv(ctx, c, part(r, root, 0), root)
	if err != nil {
		return err
	}
	if r != root {
		if gv != nil {
			return fmt.Errorf("Gatherv returned %v on a non-root", gv)
		}
	} else {
		for s := range p {
			if err := same(fmt.Sprintf("Gatherv[%d]", s), gv[s], part(s, root, 0)); err != nil {
				return err
			}
		}
	}
	f, err := collectives.Reduce(ctx, c, aff(r, root), compose, root)
	if err != nil {
		return err
	}
	if r == root {
		if err := same("Reduce(compose)", f, foldAff(0, p, root)); err != nil {
			return err
		}
	}
	w, err := collectives.Reduce(ctx, c, word(r), concat, root)
	if err != nil {
		return err
	}
	if r == root {
		if err := same("Reduce(concat)", w, words(0, p)); err != nil {
			return err
		}
	}
	v, err := collectives.ReduceSlice(ctx, c, affs(r, 3+root), compose, root)
	if err != nil {
		return err
	}
	if r == root {
		return same("ReduceSlice(compose)", v, foldAffs(0, p, 3+root))
	}
	return nil
}
