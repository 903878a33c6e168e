package collectives_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// TestAllreduceAroundSlot: AllreduceSliceInto and IallreduceSlice of
// vectors around the region's 1 MiB slot (just under it, at it, and
// larger than the slot but with every rank's share under it), with a
// non-commutative op, out of place and in place, on 2 and 3 ranks: every
// rank gets the rank-order fold, whichever way the call went.
func TestAllreduceAroundSlot(t *testing.T) {
	const slot = 1 << 20
	for _, n := range []int{2, 3} {
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
				for _, m := range []int{slot/8 - 5, slot / 8, 3 * slot / 16, 5*slot/16 + 3} {
					want := foldVec(0, n, m)
					out := garbage[affine](m, 0xdeadbeef)
					add(collectives.AllreduceSliceInto(ctx, c, vec(me, m), out, compose))
					add(check(fmt.Sprintf("AllreduceSliceInto(%d elems)", m), out, want, eqS))
					v := vec(me, m)
					add(collectives.AllreduceSliceInto(ctx, c, v, v, compose))
					add(check(fmt.Sprintf("AllreduceSliceInto(%d elems, in place)", m), v, want, eqS))
					got, err := collectives.IallreduceSlice(ctx, c, vec(me, m), compose).Wait(ctx)
					add(err)
					add(check(fmt.Sprintf("IallreduceSlice(%d elems)", m), got, want, eqS))
				}
				return errors.Join(errs...)
			})
		})
	}
}
