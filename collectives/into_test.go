package collectives_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// garbage is a vector that no reduction below produces, to show that the
// *Into calls never read out before they write it.
func garbage[E any](n int, g E) []E {
	v := make([]E, n)
	for i := range v {
		v[i] = g
	}
	return v
}

// TestAllreduceSliceInto checks AllreduceSliceInto and ReduceSliceInto on
// 1 to 9 ranks, below, at and above the 64 KiB switch point, out of place
// (into a buffer full of garbage, reused) and in place, with a
// non-commutative op (rank order), inexact float sums (the same bits as
// AllreduceSlice and on every rank), a non-raw element type and ranks that
// mix the plain and Into forms.
func TestAllreduceSliceInto(t *testing.T) {
	const large = 64 << 10 // the switch point, in bytes
	for n := 1; n <= 9; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := commtest.World(t, n)
			ctx := tctx(t)
			commtest.Run(t, cs, func(c *comm.Comm) error {
				var errs []error
				add := func(err error) {
					if err != nil {
						errs = append(errs, err)
					}
				}
				me := c.Rank()
				for _, m := range []int{0, 3, large/8 - 1, large / 8, 3*large/8 + 5} {
					want := foldVec(0, n, m)
					out := garbage[affine](m, 0xdeadbeef)
					for rep := range 2 { // the same out again
						add(collectives.AllreduceSliceInto(ctx, c, vec(me, m), out, compose))
						add(check(fmt.Sprintf("AllreduceSliceInto(compose, %d elems) #%d", m, rep), out, want, eqS))
					}
					v := vec(me, m)
					add(collectives.AllreduceSliceInto(ctx, c, v, v, compose))
					add(check(fmt.Sprintf("AllreduceSliceInto(compose, %d elems, in place)", m), v, want, eqS))
					// Ranks mix the two forms in one call.
					if me%2 == 0 {
						got, err := collectives.AllreduceSlice(ctx, c, vec(me, m), compose)
						add(err)
						add(check(fmt.Sprintf("AllreduceSlice(compose, %d elems) beside Into", m), got, want, eqS))
					} else {
						v := vec(me, m)
						add(collectives.AllreduceSliceInto(ctx, c, v, v, compose))
						add(check(fmt.Sprintf("AllreduceSliceInto(compose, %d elems) beside plain", m), v, want, eqS))
					}
					for root := range n {
						for _, inPlace := range []bool{false, true} {
							// Non-roots pass a sentinel out (ignored,
							// untouched) or nil.
							in := vec(me, m)
							var out []affine
							switch {
							case me == root && inPlace:
								out = in
							case me == root || me%2 == 0:
								out = garbage[affine](m, 7)
							}
							add(collectives.ReduceSliceInto(ctx, c, in, out, compose, root))
							what := fmt.Sprintf("ReduceSliceInto(compose, %d elems, root %d, in place %v)", m, root, inPlace)
							switch {
							case me == root:
								add(check(what, out, want, eqS))
							case out != nil:
								add(check(what+" non-root out", out, garbage[affine](m, 7), eqS))
							}
							if me != root || !inPlace {
								add(check(what+" in", in, vec(me, m), eqS))
							}
						}
					}
				}

				// Inexact float sums: the same bits in place, out of place,
				// by AllreduceSlice and on rank 0.
				for _, m := range []int{5, large / 8, 2*large/8 + 1} {
					fl := func(r int) []float64 {
						v := make([]float64, m)
						for i := range v {
							v[i] = 0.1*float64(r+1) + 1e-7*float64(i) + 1/float64(i+r+3)
						}
						return v
					}
					plain, err := collectives.AllreduceSlice(ctx, c, fl(me), collectives.Sum)
					add(err)
					out := garbage(m, math.NaN())
					add(collectives.AllreduceSliceInto(ctx, c, fl(me), out, collectives.Sum))
					inPlace := fl(me)
					add(collectives.AllreduceSliceInto(ctx, c, inPlace, inPlace, collectives.Sum))
					root, err := collectives.Bcast(ctx, c, out, 0)
					add(err)
					bits := func(v []float64) []uint64 {
						b := make([]uint64, len(v))
						for i, x := range v {
							b[i] = math.Float64bits(x)
						}
						return b
					}
					what := fmt.Sprintf("AllreduceSliceInto(float64 Sum, %d elems)", m)
					add(check(what+" vs AllreduceSlice", bits(out), bits(plain), eqS))
					add(check(what+" in place", bits(inPlace), bits(out), eqS))
					add(check(what+" vs rank 0", bits(out), bits(root), eqS))
					for i, x := range serial(n, fl, collectives.Sum) {
						if math.Abs(out[i]-x) > 1e-12*math.Abs(x) {
							add(fmt.Errorf("%s: element %d = %v; want %v", what, i, out[i], x))
							break
						}
					}
				}

				// A non-raw element type (CBOR, the tree and doubling).
				s := strs(me, 3)
				add(collectives.AllreduceSliceInto(ctx, c, s, s, concat))
				add(check("AllreduceSliceInto(strings, in place)", s, serial(n, func(r int) []string { return strs(r, 3) }, concat), eqS))
				return errors.Join(errs...)
			})
		})
	}
}

// TestAllreduceSliceIntoBadOut: a rank whose out has the wrong length, or
// overlaps its in without being it, makes every rank fail with
// ErrInvalidArg naming it (and the lengths), below and above the switch
// point, without a hang; the ranks that posted the large algorithm's
// receives withdraw them, and the communicator stays usable.
func TestAllreduceSliceIntoBadOut(t *testing.T) {
	const n = 5
	cs := commtest.World(t, n)
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		me := c.Rank()
		for _, m := range []int{4, 1 << 13} {
			for _, tc := range []struct {
				name string
				call func() error
				mine string // this rank's error, at the bad rank
				want string // every other rank's error
			}{
				{"length", func() error {
					out := make([]float64, m)
					if me == 3 {
						out = out[:m-1]
					}
					return collectives.AllreduceSliceInto(ctx, c, make([]float64, m), out, collectives.Sum)
				}, fmt.Sprintf("collectives: AllreduceSliceInto: rank 3 passed out of length %d for in of length %d", m-1, m),
					fmt.Sprintf("collectives: AllreduceSliceInto: rank 3 passed out of length %d for in of length %d", m-1, m)},
				{"nil out", func() error {
					var out []float64
					if me != 1 {
						out = make([]float64, m)
					}
					return collectives.AllreduceSliceInto(ctx, c, make([]float64, m), out, collectives.Sum)
				}, fmt.Sprintf("collectives: AllreduceSliceInto: rank 1 passed out of length 0 for in of length %d", m),
					fmt.Sprintf("collectives: AllreduceSliceInto: rank 1 passed out of length 0 for in of length %d", m)},
				{"overlap", func() error {
					buf := make([]float64, m+1)
					in, out := buf[:m], buf[1:]
					if me != 2 {
						out = make([]float64, m)
					}
					return collectives.AllreduceSliceInto(ctx, c, in, out, collectives.Sum)
				}, "collectives: AllreduceSliceInto: rank 2 passed in and out that overlap without being the same slice",
					"collectives: AllreduceSliceInto: rank 2 passed invalid arguments"},
				{"reduce root", func() error {
					var out []float64 // nil on non-roots: fine
					if me == 4 {
						out = make([]float64, m+1)
					}
					return collectives.ReduceSliceInto(ctx, c, make([]float64, m), out, collectives.Sum, 4)
				}, fmt.Sprintf("collectives: ReduceSliceInto: rank 4 passed out of length %d for in of length %d", m+1, m),
					fmt.Sprintf("collectives: ReduceSliceInto: rank 4 passed out of length %d for in of length %d", m+1, m)},
			} {
				err := tc.call()
				want := tc.want
				if strings.Contains(tc.mine, fmt.Sprintf("rank %d ", me)) {
					want = tc.mine
				}
				if !errors.Is(err, collectives.ErrInvalidArg) || err.Error() != want {
					return fmt.Errorf("%s, %d elems: err = %v; want %q (ErrInvalidArg)", tc.name, m, err, want)
				}
				if err := healthy(ctx, c); err != nil {
					return fmt.Errorf("%s, %d elems: %w", tc.name, m, err)
				}
			}
		}
		return largeAllreduceWorks(ctx, c)
	})
}

// TestAllreduceSliceIntoCancel cancels one rank's AllreduceSliceInto in
// place, small and large: it returns ctx's error unchanged, and the
// communicator stays usable.
func TestAllreduceSliceIntoCancel(t *testing.T) {
	for _, n := range []int{4, 5} {
		for _, m := range []int{16, 1 << 14} {
			t.Run(fmt.Sprintf("%d/%d", n, m), func(t *testing.T) {
				cs := commtest.World(t, n)
				ctx := tctx(t)
				commtest.Run(t, cs, func(c *comm.Comm) error {
					cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
					defer cancel()
					if c.Rank() == 1 {
						cancel()
					}
					v := make([]float64, m)
					err := collectives.AllreduceSliceInto(cctx, c, v, v, collectives.Sum)
					switch {
					case c.Rank() == 1 && err != context.Canceled:
						return fmt.Errorf("err = %#v; want context.Canceled unchanged", err)
					case c.Rank() != 1 && err != nil && err != context.DeadlineExceeded:
						return fmt.Errorf("err = %#v; want nil or context.DeadlineExceeded unchanged", err)
					}
					if err := healthy(ctx, c); err != nil {
						return err
					}
					in := func(r int) []int64 {
						v := make([]int64, m)
						for i := range v {
							v[i] = int64(i * (r + 1))
						}
						return v
					}
					got := in(c.Rank())
					if err := collectives.AllreduceSliceInto(ctx, c, got, got, collectives.Sum); err != nil {
						return err
					}
					return check("AllreduceSliceInto afterwards", got, serial(c.Size(), in, collectives.Sum[int64]), eqS)
				})
			})
		}
	}
}

// TestReduceSliceIntoBothWays: a fused ReduceSliceInto of 16 KiB or more
// gives the same result, in rank order, whether its root folds every
// payload (two ranks, or a host with more ranks than cores, as every world
// of three or more is on the 2-core test VM) or each rank folds a block.
func TestReduceSliceIntoBothWays(t *testing.T) {
	for _, split := range []bool{false, true} {
		for _, n := range []int{2, 3, 5} {
			t.Run(fmt.Sprintf("split=%v/n=%d", split, n), func(t *testing.T) {
				*collectives.SplitCrowded = split
				defer func() { *collectives.SplitCrowded = false }()
				cs := commtest.WorldOn(t, n, "shm")
				ctx := tctx(t)
				commtest.Run(t, cs, func(c *comm.Comm) error {
					me := c.Rank()
					for _, m := range []int{16 << 10 / 8, 64<<10/8 + 3} {
						want := foldVec(0, n, m)
						for root := range n {
							in := vec(me, m)
							var out []affine
							if me == root {
								out = garbage[affine](m, 9)
							}
							if err := collectives.ReduceSliceInto(ctx, c, in, out, compose, root); err != nil {
								return err
							}
							what := fmt.Sprintf("ReduceSliceInto(%d elems, root %d)", m, root)
							if me == root {
								if err := check(what, out, want, eqS); err != nil {
									return err
								}
							}
							if err := check(what+" in", in, vec(me, m), eqS); err != nil {
								return err
							}
						}
					}
					return nil
				})
			})
		}
	}
}
