package collectives_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"unsafe"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// sumVecSizes are element counts around the vector kernel's blocks and the
// region's pieces and blocks: odd ones, one under and over 64 KiB of
// float64, and a vector of just under the region's 1 MiB slot.
var sumVecSizes = []int{16, 17, 1000, 8191, 8193, 16389, 131071}

// checkSumBits runs AllreduceSliceInto and ReduceSliceInto (to the first
// and the last rank) with sum (collectives.Sum, named at a non-generic
// call site, which the calls add in their own vector loop) and with plus,
// a user op computing the same a + b (called per element), and checks that
// the results are the same bits: the same algorithm with the same
// parentheses, whichever loop adds.
func checkSumBits[E ~float64 | ~float32 | ~int64 | ~int32](ctx context.Context, c *comm.Comm, sum, plus func(a, b E) E, val func(r, i int) E) error {
	me, p := c.Rank(), c.Size()
	bits := func(v E) string {
		return fmt.Sprintf("%x", unsafe.Slice((*byte)(unsafe.Pointer(&v)), unsafe.Sizeof(v)))
	}
	for _, m := range sumVecSizes {
		in := make([]E, m)
		for i := range in {
			in[i] = val(me, i)
		}
		for _, root := range []int{-1, 0, p - 1} {
			got, want := make([]E, m), make([]E, m)
			var err error
			if root < 0 {
				err = collectives.AllreduceSliceInto(ctx, c, in, got, sum)
				if err == nil {
					err = collectives.AllreduceSliceInto(ctx, c, in, want, plus)
				}
			} else {
				err = collectives.ReduceSliceInto(ctx, c, in, got, sum, root)
				if err == nil {
					err = collectives.ReduceSliceInto(ctx, c, in, want, plus, root)
				}
			}
			if err != nil {
				return err
			}
			if root >= 0 && me != root {
				continue
			}
			for i := range got {
				if bits(got[i]) != bits(want[i]) {
					return fmt.Errorf("%T Sum of %d elements on %d ranks, root %d: element %d = %v; the op a + b gives %v", got[i], m, p, root, i, got[i], want[i])
				}
			}
		}
	}
	return nil
}

// TestSumVectorBits checks that element-wise Sum, which the region's folds
// add with vector instructions where the CPU has them, gives bit for bit
// what an op computing a + b gives, for float64, float32, int64 and int32,
// at odd sizes, on 2 to 4 ranks through shared memory.
func TestSumVectorBits(t *testing.T) {
	for n := 2; n <= 4; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := commtest.WorldOn(t, n, "shm")
			ctx := tctx(t)
			commtest.Run(t, cs, func(c *comm.Comm) error {
				// Values whose sums round, with a NaN, infinities and a
				// negative zero among them.
				f64 := func(r, i int) float64 {
					switch i % 97 {
					case 3:
						return math.Inf(1 - 2*(r%2))
					case 5:
						return math.Copysign(0, -1)
					case 7:
						if r == 1 {
							return math.NaN()
						}
					}
					return 0.1*float64(r+1) + 1e-7*float64(i) + 1/float64(i+r+3)
				}
				if err := checkSumBits(ctx, c, collectives.Sum[float64], func(a, b float64) float64 { return a + b }, f64); err != nil {
					return err
				}
				if err := checkSumBits(ctx, c, collectives.Sum[float32], func(a, b float32) float32 { return a + b },
					func(r, i int) float32 { return float32(f64(r, i)) }); err != nil {
					return err
				}
				if err := checkSumBits(ctx, c, collectives.Sum[int64], func(a, b int64) int64 { return a + b },
					func(r, i int) int64 { return math.MaxInt64/3 + int64(r)*int64(i)*7919 - int64(i) }); err != nil {
					return err
				}
				return checkSumBits(ctx, c, collectives.Sum[int32], func(a, b int32) int32 { return a + b },
					func(r, i int) int32 { return math.MaxInt32/3 + int32(r*i*7919) - int32(i) })
			})
		})
	}
}
