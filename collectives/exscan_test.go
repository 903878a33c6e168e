package collectives_test

import (
	"fmt"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// TestExscanRankZero: on rank 0 Exscan and ExscanSlice both give the zero
// value of their result (0, and a nil slice), as documented; the other
// ranks get the fold of the ranks before them.
func TestExscanRankZero(t *testing.T) {
	cs := commtest.World(t, 3)
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		r := c.Rank()
		x, err := collectives.Exscan(ctx, c, r+1, collectives.Sum)
		if err != nil {
			return err
		}
		s, err := collectives.ExscanSlice(ctx, c, []int{r + 1, 10}, collectives.Sum)
		if err != nil {
			return err
		}
		if r == 0 {
			if x != 0 || s != nil {
				return fmt.Errorf("rank 0: Exscan = %d, ExscanSlice = %#v; want 0 and nil", x, s)
			}
			return nil
		}
		if want := r * (r + 1) / 2; x != want || len(s) != 2 || s[0] != want || s[1] != 10*r {
			return fmt.Errorf("rank %d: Exscan = %d, ExscanSlice = %v; want %d and [%d %d]", r, x, s, want, want, 10*r)
		}
		return nil
	})
}
