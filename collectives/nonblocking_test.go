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
)

// waits collects the checks of outstanding requests, to be run later in
// any order.
type waits []func() error

// expect adds a check that q's result is want.
func expect[T any](w *waits, ctx context.Context, what string, q *collectives.Request[T], want T, eq func(a, b T) bool) {
	*w = append(*w, func() error {
		got, err := q.Wait(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return check(what, got, want, eq)
	})
}

// reverse runs the checks last first and returns their errors.
func (w waits) reverse() error {
	var errs []error
	for i := len(w) - 1; i >= 0; i-- {
		if err := w[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return joinErrs(errs)
}

func eqSSNil[E comparable](a, b [][]E) bool {
	return slices.EqualFunc(a, b, func(x, y []E) bool { return len(x) == len(y) && (len(x) == 0 || slices.Equal(x, y)) })
}

// isuite starts every nonblocking collective on c at once, with roots 0
// and p-1 and several lengths, and then checks the results, last started
// first, against serial folds.
func isuite(ctx context.Context, c *comm.Comm, lens []int) error {
	p, me := c.Size(), c.Rank()
	var w waits
	expect(&w, ctx, "Ibarrier", collectives.Ibarrier(ctx, c), struct{}{}, eqV)
	for _, root := range []int{0, p - 1} {
		expect(&w, ctx, "Ibcast(int)", collectives.Ibcast(ctx, c, 42+root*me, root), 42+root*root, eqV)
		for _, n := range lens {
			expect(&w, ctx, fmt.Sprintf("Ibcast(%d elems, root %d)", n, root), collectives.Ibcast(ctx, c, vec(me, n), root), vec(root, n), eqS)
		}
		expect(&w, ctx, "Ibcast(string)", collectives.Ibcast(ctx, c, strings.Repeat("x", me), root), strings.Repeat("x", root), eqV)
		for _, m := range []int{0, 3} {
			all := ints(root, p*m)
			expect(&w, ctx, fmt.Sprintf("Iscatter(%d each, root %d)", m, root), collectives.Iscatter(ctx, c, ints(me, p*m), root), all[me*m:(me+1)*m], eqS)
			var want []int32
			if me == root {
				want = fold(p, func(r int) []int32 { return ints(r, m) }, func(a, b []int32) []int32 { return append(a, b...) })
			}
			expect(&w, ctx, fmt.Sprintf("Igather(%d each, root %d)", m, root), collectives.Igather(ctx, c, ints(me, m), root), want, eqS)
		}
		parts := make([][]int32, p)
		for i := range parts {
			parts[i] = ints(root*100+i, (i+root)%3)
		}
		expect(&w, ctx, "Iscatterv", collectives.Iscatterv(ctx, c, parts, root), ints(root*100+me, (me+root)%3), eqS)
		var wantv [][]string
		if me == root {
			for r := range p {
				wantv = append(wantv, strs(r, r%3))
			}
		}
		expect(&w, ctx, "Igatherv", collectives.Igatherv(ctx, c, strs(me, me%3), root), wantv, eqSSNil)
		var wantr affine
		if me == root {
			wantr = fold(p, func(r int) affine { return aff(r, 0) }, compose)
		}
		expect(&w, ctx, "Ireduce(affine)", collectives.Ireduce(ctx, c, aff(me, 0), compose, root), wantr, eqV)
		for _, n := range lens {
			var want []affine
			if me == root {
				want = foldVec(0, p, n)
			}
			expect(&w, ctx, fmt.Sprintf("IreduceSlice(%d elems, root %d)", n, root), collectives.IreduceSlice(ctx, c, vec(me, n), compose, root), want, eqS)
			out := make([]affine, n)
			into := collectives.IreduceSliceInto(ctx, c, vec(me, n), out, compose, root)
			w = append(w, func() error {
				if _, err := into.Wait(ctx); err != nil {
					return fmt.Errorf("IreduceSliceInto: %w", err)
				}
				if me != root {
					return nil
				}
				return check(fmt.Sprintf("IreduceSliceInto(%d elems, root %d)", n, root), out, foldVec(0, p, n), eqS)
			})
		}
	}
	for _, m := range []int{0, 1, 5} {
		expect(&w, ctx, "Iallgather", collectives.Iallgather(ctx, c, ints(me, m)),
			fold(p, func(r int) []int32 { return ints(r, m) }, func(a, b []int32) []int32 { return append(a, b...) }), eqS)
		send := make([]int32, 0, p*m)
		var want []int32
		for d := range p {
			send = append(send, ints(me*10+d, m)...)
			want = append(want, ints(d*10+me, m)...)
		}
		expect(&w, ctx, fmt.Sprintf("Ialltoall(%d each)", m), collectives.Ialltoall(ctx, c, send), want, eqS)
	}
	var wantagv [][]int32
	for r := range p {
		wantagv = append(wantagv, ints(r, r))
	}
	expect(&w, ctx, "Iallgatherv", collectives.Iallgatherv(ctx, c, ints(me, me)), wantagv, eqSSNil)
	vparts := make([][]string, p)
	wantvp := make([][]string, p)
	for d := range p {
		vparts[d] = strs(me*10+d, (me+d)%3)
		wantvp[d] = strs(d*10+me, (me+d)%3)
	}
	expect(&w, ctx, "Ialltoallv", collectives.Ialltoallv(ctx, c, vparts), wantvp, eqSSNil)
	expect(&w, ctx, "Iallreduce(affine)", collectives.Iallreduce(ctx, c, aff(me, 1), compose),
		fold(p, func(r int) affine { return aff(r, 1) }, compose), eqV)
	expect(&w, ctx, "Iallreduce(concat)", collectives.Iallreduce(ctx, c, fmt.Sprint(me, ","), concat),
		fold(p, func(r int) string { return fmt.Sprint(r, ",") }, concat), eqV)
	for _, n := range lens {
		expect(&w, ctx, fmt.Sprintf("IallreduceSlice(%d elems)", n), collectives.IallreduceSlice(ctx, c, vec(me, n), compose), foldVec(0, p, n), eqS)
		in := vec(me, n)
		into := collectives.IallreduceSliceInto(ctx, c, in, in, compose) // in place
		w = append(w, func() error {
			if _, err := into.Wait(ctx); err != nil {
				return fmt.Errorf("IallreduceSliceInto: %w", err)
			}
			return check(fmt.Sprintf("IallreduceSliceInto(%d elems, in place)", n), in, foldVec(0, p, n), eqS)
		})
	}
	for _, m := range []int{0, 2, 3000} {
		expect(&w, ctx, fmt.Sprintf("IreduceScatter(%d each)", m), collectives.IreduceScatter(ctx, c, vec(me, p*m), compose),
			foldVec(0, p, p*m)[me*m:(me+1)*m], eqS)
	}
	expect(&w, ctx, "Iscan(affine)", collectives.Iscan(ctx, c, aff(me, 2), compose), fold(me+1, func(r int) affine { return aff(r, 2) }, compose), eqV)
	wantex := ""
	if me > 0 {
		wantex = fold(me, func(r int) string { return fmt.Sprint(r) }, concat)
	}
	expect(&w, ctx, "Iexscan(concat)", collectives.Iexscan(ctx, c, fmt.Sprint(me), concat), wantex, eqV)
	for _, n := range []int{0, 3, 1000} {
		expect(&w, ctx, fmt.Sprintf("IscanSlice(%d elems)", n), collectives.IscanSlice(ctx, c, vec(me, n), compose), foldVec(0, me+1, n), eqS)
		var want []affine
		if me > 0 {
			want = foldVec(0, me, n)
		}
		expect(&w, ctx, fmt.Sprintf("IexscanSlice(%d elems)", n), collectives.IexscanSlice(ctx, c, vec(me, n), compose), want, eqS)
	}
	expect(&w, ctx, "Iallreduce(Sum)", collectives.Iallreduce(ctx, c, float64(me)+0.5, collectives.Sum),
		float64(p*(p-1))/2+0.5*float64(p), eqV)
	return w.reverse()
}

// noWorkers waits until no nonblocking-call worker runs: every worker ends
// once its communicator has no call left to run. ctx is a hang guard.
func noWorkers(ctx context.Context) error {
	for collectives.Workers() != 0 {
		if ctx.Err() != nil {
			return fmt.Errorf("%d nonblocking-call workers still running after every request completed", collectives.Workers())
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// TestNonblocking starts every nonblocking collective at once on
// communicators of 1 to 9 ranks, completes them in reverse order and
// checks their results against serial folds; afterwards no worker
// goroutine is left.
func TestNonblocking(t *testing.T) {
	for n := 1; n <= 9; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := commtest.World(t, n)
			ctx := tctx(t)
			lens := []int{0, 1, 7}
			if n == 2 || n == 3 || n == 8 {
				lens = append(lens, 40_000) // the large paths of Bcast and the slice reductions
			}
			commtest.Run(t, cs, func(c *comm.Comm) error { return isuite(ctx, c, lens) })
			if err := noWorkers(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
