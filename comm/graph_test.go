package comm

import (
	"fmt"
	"slices"
	"testing"
)

// TestDistGraphCreateAdjacent: a graph whose lists agree gives every rank
// its neighbours and weights; lists that disagree, or a rank out of range,
// fail on every rank with an error naming the ranks.
func TestDistGraphCreateAdjacent(t *testing.T) {
	const n = 4
	cs := world(t, n)
	ctx := tctx(t)
	par(t, cs, func(c *Comm) error {
		r := c.Rank()
		srcs := []int{(r + n - 1) % n, (r + n - 2) % n}
		dsts := []int{(r + 1) % n, (r + 2) % n}
		g, err := DistGraphCreateAdjacent(ctx, c, srcs, []int{1, 2}, dsts, []int{1, 2}, false)
		if err != nil {
			return err
		}
		defer g.Close()
		s, d, err := g.NeighborRanks()
		if err != nil || !slices.Equal(s, srcs) || !slices.Equal(d, dsts) {
			return fmt.Errorf("NeighborRanks = %v, %v, %v", s, d, err)
		}
		if sw, dw, err := g.NeighborWeights(); err != nil || !slices.Equal(sw, []int{1, 2}) || !slices.Equal(dw, []int{1, 2}) {
			return fmt.Errorf("NeighborWeights = %v, %v, %v", sw, dw, err)
		}
		if g.IsCartesian() {
			return fmt.Errorf("a graph says it is Cartesian")
		}
		if _, _, err := g.Shift(0, 1); err == nil {
			return fmt.Errorf("Shift on a graph did not fail")
		}
		// Rank 2 forgets one of its sources.
		bad := srcs
		if r == 2 {
			bad = srcs[:1]
		}
		_, err = DistGraphCreateAdjacent(ctx, c, bad, nil, dsts, nil, false)
		if err := expectErr("DistGraphCreateAdjacent with rank 2's short list", err,
			"rank 0 lists rank 2 as a destination 1 times but rank 2 lists rank 0 as a source 0 times"); err != nil {
			return err
		}
		// Rank 1 names a rank out of range.
		bad = dsts
		if r == 1 {
			bad = []int{9}
		}
		_, err = DistGraphCreateAdjacent(ctx, c, srcs, nil, bad, nil, false)
		want := "rank 1 passed invalid arguments"
		if r == 1 {
			want = "rank 1's destinations[0] = 9 is out of range [0, 4)"
		}
		return expectErr("DistGraphCreateAdjacent with rank 1's rank 9", err, want)
	})
}
