package collectives_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// serial is the element-wise fold of op over in(0..p-1), in rank order.
func serial[E any](p int, in func(r int) []E, op func(a, b E) E) []E {
	acc := in(0)
	for r := 1; r < p; r++ {
		v := in(r)
		for i := range acc {
			acc[i] = op(acc[i], v[i])
		}
	}
	return acc
}

// checkAllreduceSlice runs AllreduceSlice of in(rank) with op and compares
// the result with the serial fold.
func checkAllreduceSlice[E comparable](ctx context.Context, c *comm.Comm, what string, in func(r int) []E, op func(a, b E) E) error {
	got, err := collectives.AllreduceSlice(ctx, c, in(c.Rank()), op)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return check(what, got, serial(c.Size(), in, op), eqS)
}

// TestAllreduceSliceLarge checks the large-vector algorithms (Rabenseifner's,
// with the fold for ranks beyond a power of two; ReduceSlice's halving and
// blocks to the root) on 1 to 9 ranks, at and around the switch point, with
// uneven halves, every built-in op on raw kinds of every element size, and
// a non-commutative op that checks rank order.
func TestAllreduceSliceLarge(t *testing.T) {
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
				// Rank order, below, at and above the switch point, with
				// windows that do not halve evenly.
				for _, m := range []int{large/8 - 1, large / 8, 3*large/8 + 5} {
					got, err := collectives.AllreduceSlice(ctx, c, vec(c.Rank(), m), compose)
					add(err)
					add(check(fmt.Sprintf("AllreduceSlice(compose, %d elems)", m), got, foldVec(0, n, m), eqS))
				}
				// ReduceSlice to every root, below and above the switch.
				for root := range n {
					for _, m := range []int{large/8 - 1, 3*large/8 + 5} {
						got, err := collectives.ReduceSlice(ctx, c, vec(c.Rank(), m), compose, root)
						add(err)
						var want []affine
						if c.Rank() == root {
							want = foldVec(0, n, m)
						}
						add(check(fmt.Sprintf("ReduceSlice(compose, %d elems, root %d)", m, root), got, want, eqS))
					}
				}
				// Every op kind, just above the switch point.
				m := large/4 + 3
				i32 := func(r int) []int32 {
					v := make([]int32, m)
					for i := range v {
						v[i] = int32((r*7919+i*31)%2003 - 1000)
						if (i+r)%5 == 0 {
							v[i] = 0
						}
					}
					return v
				}
				for _, op := range []struct {
					name string
					f    func(a, b int32) int32
				}{
					{"Sum", collectives.Sum[int32]}, {"Prod", collectives.Prod[int32]},
					{"Min", collectives.Min[int32]}, {"Max", collectives.Max[int32]},
					{"LAnd", collectives.LAnd[int32]}, {"LOr", collectives.LOr[int32]}, {"LXor", collectives.LXor[int32]},
					{"BAnd", collectives.BAnd[int32]}, {"BOr", collectives.BOr[int32]}, {"BXor", collectives.BXor[int32]},
				} {
					add(checkAllreduceSlice(ctx, c, "AllreduceSlice(int32 "+op.name+")", i32, op.f))
					got, err := collectives.ReduceSlice(ctx, c, i32(c.Rank()), op.f, n-1)
					add(err)
					var want []int32
					if c.Rank() == n-1 {
						want = serial(n, i32, op.f)
					}
					add(check("ReduceSlice(int32 "+op.name+")", got, want, eqS))
				}
				i8 := func(r int) []int8 {
					v := make([]int8, large+1)
					for i := range v {
						v[i] = int8((i + r) % 3)
					}
					return v
				}
				add(checkAllreduceSlice(ctx, c, "AllreduceSlice(int8 LXor)", i8, collectives.LXor[int8]))
				add(checkAllreduceSlice(ctx, c, "AllreduceSlice(uint8 BOr)", func(r int) []uint8 {
					v := make([]uint8, large)
					for i := range v {
						v[i] = uint8(1 << ((i + r) % 8))
					}
					return v
				}, collectives.BOr[uint8]))
				add(checkAllreduceSlice(ctx, c, "AllreduceSlice(float32 Max)", func(r int) []float32 {
					v := make([]float32, m)
					for i := range v {
						v[i] = float32(math.Sin(float64(i*(r+1)))) * 100
					}
					return v
				}, collectives.Max[float32]))
				add(checkAllreduceSlice(ctx, c, "AllreduceSlice(complex128 Sum)", func(r int) []complex128 {
					v := make([]complex128, large/16+1)
					for i := range v {
						v[i] = complex(float64(i+r), float64(i-r)) // exact sums
					}
					return v
				}, collectives.Sum[complex128]))
				add(checkAllreduceSlice(ctx, c, "AllreduceSlice(bool-like uint16 BAnd)", func(r int) []uint16 {
					v := make([]uint16, large/2+7)
					for i := range v {
						v[i] = ^uint16(1 << ((i * (r + 1)) % 16))
					}
					return v
				}, collectives.BAnd[uint16]))
				// Inexact float sums: the same bits on every rank, close to
				// the serial sum.
				fl := func(r int) []float64 {
					v := make([]float64, large/8*2+1)
					for i := range v {
						v[i] = 0.1*float64(r+1) + 1e-7*float64(i) + 1/float64(i+r+3)
					}
					return v
				}
				sum, err := collectives.AllreduceSlice(ctx, c, fl(c.Rank()), collectives.Sum)
				add(err)
				if err == nil {
					root, err := collectives.Bcast(ctx, c, sum, 0)
					add(err)
					for i, x := range serial(n, fl, collectives.Sum) {
						if math.Float64bits(sum[i]) != math.Float64bits(root[i]) {
							add(fmt.Errorf("AllreduceSlice(float64 Sum): element %d = %v here, %v on rank 0", i, sum[i], root[i]))
							break
						}
						if math.Abs(sum[i]-x) > 1e-12*math.Abs(x) {
							add(fmt.Errorf("AllreduceSlice(float64 Sum): element %d = %v; want %v", i, sum[i], x))
							break
						}
					}
				}
				return errors.Join(errs...)
			})
		})
	}
}

// TestAllreduceSliceLargeCancel cancels one rank's large AllreduceSlice:
// its posted receives are withdrawn, and the communicator stays usable.
func TestAllreduceSliceLargeCancel(t *testing.T) {
	for _, n := range []int{4, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := commtest.World(t, n)
			ctx := tctx(t)
			commtest.Run(t, cs, func(c *comm.Comm) error {
				cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
				if c.Rank() == 1 {
					cancel()
				}
				_, err := collectives.AllreduceSlice(cctx, c, make([]float64, 1<<14), collectives.Sum)
				switch {
				case c.Rank() == 1 && err != context.Canceled:
					return fmt.Errorf("err = %#v; want context.Canceled unchanged", err)
				case c.Rank() != 1 && err != nil && err != context.DeadlineExceeded:
					return fmt.Errorf("err = %#v; want nil or context.DeadlineExceeded unchanged", err)
				}
				if err := healthy(ctx, c); err != nil {
					return err
				}
				return checkAllreduceSlice(ctx, c, "AllreduceSlice afterwards", func(r int) []int64 {
					v := make([]int64, 1<<14)
					for i := range v {
						v[i] = int64(i * (r + 1))
					}
					return v
				}, collectives.Sum[int64])
			})
		})
	}
}

// TestAllreduceSliceLargeMismatch: ranks whose lengths differ across the
// switch point post the large algorithm's receives or not; all get the
// mismatch, and the posted receives are withdrawn.
func TestAllreduceSliceLargeMismatch(t *testing.T) {
	const n = 5
	cs := commtest.World(t, n)
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		m := 1 << 13 // 64 KiB of float64
		if c.Rank() == 3 {
			m--
		}
		_, err := collectives.AllreduceSlice(ctx, c, make([]float64, m), collectives.Sum)
		if !errors.Is(err, collectives.ErrMismatch) {
			return fmt.Errorf("err = %v; want ErrMismatch", err)
		}
		if err := healthy(ctx, c); err != nil {
			return err
		}
		return largeAllreduceWorks(ctx, c)
	})
}

// TestReduceSliceLargePanic: an op that panics on one rank's values makes
// the root of a large ReduceSlice, wherever it is, return the OpError, and
// leaves the communicator usable.
func TestReduceSliceLargePanic(t *testing.T) {
	for _, n := range []int{3, 6, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := commtest.World(t, n)
			ctx := tctx(t)
			neg := func(a, b int64) int64 {
				if a < 0 || b < 0 {
					panic("negative input")
				}
				return a + b
			}
			commtest.Run(t, cs, func(c *comm.Comm) error {
				for _, root := range []int{0, 1, n - 1} {
					v := make([]int64, 20_000)
					for i := range v {
						v[i] = int64(c.Rank())
					}
					if c.Rank() == n/2 {
						v[len(v)-1] = -1
					}
					got, err := collectives.ReduceSlice(ctx, c, v, neg, root)
					var oe *collectives.OpError
					switch {
					case c.Rank() == root && !errors.As(err, &oe):
						return fmt.Errorf("root %d: err = %v; want an OpError", root, err)
					case err != nil && !errors.As(err, &oe):
						return fmt.Errorf("root %d: err = %v; want nil or an OpError", root, err)
					case c.Rank() != root && got != nil:
						return fmt.Errorf("root %d: non-root got a result", root)
					case oe != nil && (oe.Rank < 0 || oe.Msg != "op panicked: negative input"):
						return fmt.Errorf("root %d: OpError %+v", root, oe)
					}
					if err := healthy(ctx, c); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

// largeAllreduceWorks checks a large AllreduceSlice (64 KiB of float64) on
// c, as the test of a communicator that must still be usable.
func largeAllreduceWorks(ctx context.Context, c *comm.Comm) error {
	return checkAllreduceSlice(ctx, c, "AllreduceSlice afterwards", func(r int) []float64 {
		v := make([]float64, 1<<13)
		for i := range v {
			v[i] = float64(i + r)
		}
		return v
	}, collectives.Sum[float64])
}
