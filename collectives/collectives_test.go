package collectives_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// affine is x -> a·x + b (mod 2^32), packed as a<<32 | b. Composition
// (first f, then g) is associative and not commutative, so a fold of
// affine maps checks that a reduction kept rank order.
type affine = uint64

func compose(f, g affine) affine {
	a1, b1 := uint32(f>>32), uint32(f)
	a2, b2 := uint32(g>>32), uint32(g)
	return uint64(a2*a1)<<32 | uint64(a2*b1+b2)
}

func aff(r, i int) affine { return uint64(2*r+3+i)<<32 | uint64(7*r+i+1) }

func concat(a, b string) string { return a + b }

// vec is rank r's input vector of length n.
func vec(r, n int) []affine {
	v := make([]affine, n)
	for i := range v {
		v[i] = aff(r, i)
	}
	return v
}

func ints(r, n int) []int32 {
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(1000*r + i)
	}
	return v
}

func strs(r, n int) []string {
	v := make([]string, n)
	for i := range v {
		v[i] = fmt.Sprintf("r%d.%d", r, i)
	}
	return v
}

// fold is the serial fold of f over inputs 0..p-1.
func fold[T any](p int, in func(r int) T, f func(a, b T) T) T {
	acc := in(0)
	for r := 1; r < p; r++ {
		acc = f(acc, in(r))
	}
	return acc
}

func foldVec(lo, hi, n int) []affine {
	out := vec(lo, n)
	for r := lo + 1; r < hi; r++ {
		out = collectives.Elementwise(compose)(out, vec(r, n))
	}
	return out
}

type payload struct {
	Name string
	Vals []int
}

func check[T any](what string, got, want T, eq func(a, b T) bool) error {
	if !eq(got, want) {
		g, w := fmt.Sprint(got), fmt.Sprint(want)
		if len(g) > 200 {
			g = g[:200] + "..."
		}
		if len(w) > 200 {
			w = w[:200] + "..."
		}
		return fmt.Errorf("%s = %s; want %s", what, g, w)
	}
	return nil
}

func eqS[E comparable](a, b []E) bool { return slices.Equal(a, b) }

func eqSS[E comparable](a, b [][]E) bool {
	return slices.EqualFunc(a, b, func(x, y []E) bool { return slices.Equal(x, y) })
}

func eqV[T comparable](a, b T) bool { return a == b }

// suite runs every collective with every root on c and checks the results
// against serial folds; big adds vectors beyond the large-message switch
// points.
func suite(ctx context.Context, c *comm.Comm, big bool) error {
	p, me := c.Size(), c.Rank()
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	lens := []int{0, 1, 7}
	if big {
		lens = append(lens, 40_000) // 320 KB of uint64: Bcast's and AllreduceSlice's large paths
	}
	add(collectives.Barrier(ctx, c))
	for root := range p {
		// Bcast
		got, err := collectives.Bcast(ctx, c, 42+root*me, root)
		add(err)
		add(check(fmt.Sprintf("Bcast(int, root %d)", root), got, 42+root*root, eqV))
		for _, n := range lens {
			v, err := collectives.Bcast(ctx, c, vec(me, n), root)
			add(err)
			add(check(fmt.Sprintf("Bcast(%d elems, root %d)", n, root), v, vec(root, n), eqS))
		}
		pl, err := collectives.Bcast(ctx, c, payload{Name: fmt.Sprint("from", me), Vals: []int{me, 2}}, root)
		add(err)
		add(check("Bcast(struct)", fmt.Sprint(pl), fmt.Sprint(payload{Name: fmt.Sprint("from", root), Vals: []int{root, 2}}), eqV))
		s, err := collectives.Bcast(ctx, c, strings.Repeat("x", me), root)
		add(err)
		add(check("Bcast(string)", s, strings.Repeat("x", root), eqV))

		// Scatter, Gather and their v forms
		for _, m := range []int{0, 1, 3} {
			all := ints(root, p*m)
			part, err := collectives.Scatter(ctx, c, ints(me, p*m), root)
			add(err)
			add(check(fmt.Sprintf("Scatter(%d each, root %d)", m, root), part, all[me*m:(me+1)*m], eqS))
			sp, err := collectives.Scatter(ctx, c, strs(me, p*m), root)
			add(err)
			add(check("Scatter(strings)", sp, strs(root, p*m)[me*m:(me+1)*m], eqS))
			g, err := collectives.Gather(ctx, c, ints(me, m), root)
			add(err)
			var want []int32
			if me == root {
				want = fold(p, func(r int) []int32 { return ints(r, m) }, func(a, b []int32) []int32 { return append(a, b...) })
			}
			add(check(fmt.Sprintf("Gather(%d each, root %d)", m, root), g, want, eqS))
			gs, err := collectives.Gather(ctx, c, strs(me, m), root)
			add(err)
			var wants []string
			if me == root {
				wants = fold(p, func(r int) []string { return strs(r, m) }, func(a, b []string) []string { return append(a, b...) })
			}
			add(check("Gather(strings)", gs, wants, eqS))
		}
		parts := make([][]int32, p)
		for i := range parts {
			parts[i] = ints(root*100+i, (i+root)%3)
		}
		sv, err := collectives.Scatterv(ctx, c, parts, root)
		add(err)
		add(check("Scatterv", sv, ints(root*100+me, (me+root)%3), eqS))
		gv, err := collectives.Gatherv(ctx, c, strs(me, me%3), root)
		add(err)
		var wantv [][]string
		if me == root {
			for r := range p {
				wantv = append(wantv, strs(r, r%3))
			}
		}
		add(check("Gatherv", gv, wantv, eqSS))

		// Reduce, ReduceSlice
		rv, err := collectives.Reduce(ctx, c, aff(me, 0), compose, root)
		add(err)
		var wantr affine
		if me == root {
			wantr = fold(p, func(r int) affine { return aff(r, 0) }, compose)
		}
		add(check(fmt.Sprintf("Reduce(affine, root %d)", root), rv, wantr, eqV))
		rs, err := collectives.Reduce(ctx, c, fmt.Sprint(me), concat, root)
		add(err)
		wants := ""
		if me == root {
			wants = fold(p, func(r int) string { return fmt.Sprint(r) }, concat)
		}
		add(check("Reduce(concat)", rs, wants, eqV))
		for _, n := range lens {
			got, err := collectives.ReduceSlice(ctx, c, vec(me, n), compose, root)
			add(err)
			var want []affine
			if me == root {
				want = foldVec(0, p, n)
			}
			add(check(fmt.Sprintf("ReduceSlice(%d elems, root %d)", n, root), got, want, eqS))
		}
	}

	// Allgather(v), Alltoall(v)
	for _, m := range []int{0, 1, 5} {
		ag, err := collectives.Allgather(ctx, c, ints(me, m))
		add(err)
		add(check("Allgather", ag, fold(p, func(r int) []int32 { return ints(r, m) }, func(a, b []int32) []int32 { return append(a, b...) }), eqS))
		ags, err := collectives.Allgather(ctx, c, strs(me, m))
		add(err)
		add(check("Allgather(strings)", ags, fold(p, func(r int) []string { return strs(r, m) }, func(a, b []string) []string { return append(a, b...) }), eqS))
		// rank r's block for rank d holds ints(r*10+d, m)
		send := make([]int32, 0, p*m)
		var want []int32
		for d := range p {
			send = append(send, ints(me*10+d, m)...)
			want = append(want, ints(d*10+me, m)...)
		}
		a2a, err := collectives.Alltoall(ctx, c, send)
		add(err)
		add(check(fmt.Sprintf("Alltoall(%d each)", m), a2a, want, eqS))
		var sends, wants []string
		for d := range p {
			sends = append(sends, strs(me*10+d, m)...)
			wants = append(wants, strs(d*10+me, m)...)
		}
		a2as, err := collectives.Alltoall(ctx, c, sends)
		add(err)
		add(check("Alltoall(strings)", a2as, wants, eqS))
	}
	agv, err := collectives.Allgatherv(ctx, c, ints(me, me))
	add(err)
	var wantagv [][]int32
	for r := range p {
		wantagv = append(wantagv, ints(r, r))
	}
	add(check("Allgatherv", agv, wantagv, func(a, b [][]int32) bool {
		return slices.EqualFunc(a, b, func(x, y []int32) bool { return len(x) == len(y) && (len(x) == 0 || slices.Equal(x, y)) })
	}))
	vparts := make([][]string, p)
	wantvp := make([][]string, p)
	for d := range p {
		vparts[d] = strs(me*10+d, (me+d)%3)
		wantvp[d] = strs(d*10+me, (me+d)%3)
	}
	a2av, err := collectives.Alltoallv(ctx, c, vparts)
	add(err)
	add(check("Alltoallv", a2av, wantvp, func(a, b [][]string) bool {
		return slices.EqualFunc(a, b, func(x, y []string) bool { return len(x) == len(y) && (len(x) == 0 || slices.Equal(x, y)) })
	}))

	// Allreduce, AllreduceSlice, ReduceScatter, Scan, Exscan, built-in ops
	ar, err := collectives.Allreduce(ctx, c, aff(me, 1), compose)
	add(err)
	add(check("Allreduce(affine)", ar, fold(p, func(r int) affine { return aff(r, 1) }, compose), eqV))
	as, err := collectives.Allreduce(ctx, c, fmt.Sprint(me, ","), concat)
	add(err)
	add(check("Allreduce(concat)", as, fold(p, func(r int) string { return fmt.Sprint(r, ",") }, concat), eqV))
	for _, n := range lens {
		got, err := collectives.AllreduceSlice(ctx, c, vec(me, n), compose)
		add(err)
		add(check(fmt.Sprintf("AllreduceSlice(%d elems)", n), got, foldVec(0, p, n), eqS))
	}
	for _, m := range []int{0, 2, 3000} {
		got, err := collectives.ReduceScatter(ctx, c, vec(me, p*m), compose)
		add(err)
		add(check(fmt.Sprintf("ReduceScatter(%d each)", m), got, foldVec(0, p, p*m)[me*m:(me+1)*m], eqS))
	}
	sc, err := collectives.Scan(ctx, c, aff(me, 2), compose)
	add(err)
	add(check("Scan(affine)", sc, fold(me+1, func(r int) affine { return aff(r, 2) }, compose), eqV))
	ss, err := collectives.Scan(ctx, c, fmt.Sprint(me), concat)
	add(err)
	add(check("Scan(concat)", ss, fold(me+1, func(r int) string { return fmt.Sprint(r) }, concat), eqV))
	ex, err := collectives.Exscan(ctx, c, fmt.Sprint(me), concat)
	add(err)
	wantex := ""
	if me > 0 {
		wantex = fold(me, func(r int) string { return fmt.Sprint(r) }, concat)
	}
	add(check("Exscan(concat)", ex, wantex, eqV))
	sv, err := collectives.Scan(ctx, c, vec(me, 3), collectives.Elementwise(compose))
	add(err)
	add(check("Scan(Elementwise)", sv, foldVec(0, me+1, 3), eqS))
	for _, n := range []int{0, 3, 1000} {
		got, err := collectives.ScanSlice(ctx, c, vec(me, n), compose)
		add(err)
		add(check(fmt.Sprintf("ScanSlice(%d elems)", n), got, foldVec(0, me+1, n), eqS))
		got, err = collectives.ExscanSlice(ctx, c, vec(me, n), compose)
		add(err)
		var want []affine
		if me > 0 {
			want = foldVec(0, me, n)
		}
		add(check(fmt.Sprintf("ExscanSlice(%d elems)", n), got, want, eqS))
	}
	ax, err := collectives.Allreduce(ctx, c, vec(me, 5), collectives.Elementwise(compose))
	add(err)
	add(check("Allreduce(Elementwise)", ax, foldVec(0, p, 5), eqS))

	sum, err := collectives.Allreduce(ctx, c, float64(me)+0.5, collectives.Sum)
	add(err)
	add(check("Allreduce(Sum)", sum, float64(p*(p-1))/2+0.5*float64(p), eqV))
	mx, err := collectives.AllreduceSlice(ctx, c, []int{me, -me, me % 2}, collectives.Max)
	add(err)
	add(check("AllreduceSlice(Max)", mx, []int{p - 1, 0, min(p-1, 1)}, eqS))
	mn, err := collectives.Allreduce(ctx, c, collectives.Loc[float64]{Value: float64((me + 2) % p), Index: me}, collectives.MinLoc)
	add(err)
	add(check("Allreduce(MinLoc)", mn, collectives.Loc[float64]{Value: 0, Index: (p - 2 + 2*p) % p}, eqV))
	ml, err := collectives.Allreduce(ctx, c, collectives.Loc[int]{Value: me / 2, Index: me}, collectives.MaxLoc)
	add(err)
	add(check("Allreduce(MaxLoc)", ml, collectives.Loc[int]{Value: (p - 1) / 2, Index: (p - 1) / 2 * 2}, eqV))
	bx, err := collectives.Allreduce(ctx, c, uint8(1)<<(me%8), collectives.BXor)
	add(err)
	add(check("Allreduce(BXor)", bx, fold(p, func(r int) uint8 { return 1 << (r % 8) }, collectives.BXor[uint8]), eqV))
	la, err := collectives.AllreduceSlice(ctx, c, []int8{1, int8(me % 2), 0}, collectives.LAnd)
	add(err)
	add(check("AllreduceSlice(LAnd)", la, []int8{1, 0, 0}, eqS))
	lo, err := collectives.Allreduce(ctx, c, int64(me%2), collectives.LOr)
	add(err)
	add(check("Allreduce(LOr)", lo, int64(min(p-1, 1)), eqV))
	if len(errs) > 4 {
		errs = append(errs[:4], fmt.Errorf("and %d more", len(errs)-4))
	}
	return joinErrs(errs)
}

func joinErrs(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n\t" + e.Error())
	}
	return fmt.Errorf("%s", b.String())
}

// TestCollectives runs every collective on communicators of 1 to 9 ranks
// with every root against serial folds.
func TestCollectives(t *testing.T) {
	for n := 1; n <= 9; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := commtest.World(t, n)
			ctx := tctx(t)
			commtest.Run(t, cs, func(c *comm.Comm) error { return suite(ctx, c, n == 3 || n == 8 || n == 2) })
		})
	}
}

// TestLarge moves several MiB through the bandwidth-optimal algorithms.
func TestLarge(t *testing.T) {
	const n = 5
	cs := commtest.World(t, n)
	ctx := tctx(t)
	const size = 4 << 20
	commtest.Run(t, cs, func(c *comm.Comm) error {
		me := c.Rank()
		var data []byte
		if me == 2 {
			data = make([]byte, size)
			for i := range data {
				data[i] = byte(i * 7)
			}
		}
		got, err := collectives.Bcast(ctx, c, data, 2)
		if err != nil {
			return err
		}
		if len(got) != size || got[size-1] != byte((size-1)*7%256) || got[size/2+3] != byte((size/2+3)*7%256) {
			return fmt.Errorf("Bcast of %d bytes: got %d bytes, wrong content", size, len(got))
		}
		v := make([]int64, size/8)
		for i := range v {
			v[i] = int64(i + me)
		}
		sum, err := collectives.AllreduceSlice(ctx, c, v, collectives.Sum)
		if err != nil {
			return err
		}
		for i, x := range sum {
			if want := int64(n*i + n*(n-1)/2); x != want {
				return fmt.Errorf("AllreduceSlice: element %d = %d; want %d", i, x, want)
			}
		}
		m := len(v) / n
		a2a, err := collectives.Alltoall(ctx, c, v[:n*m])
		if err != nil {
			return err
		}
		for src := range n {
			for _, i := range []int{0, m - 1} {
				if got, want := a2a[src*m+i], int64(me*m+i+src); got != want {
					return fmt.Errorf("Alltoall: block %d element %d = %d; want %d", src, i, got, want)
				}
			}
		}
		return nil
	})
}
