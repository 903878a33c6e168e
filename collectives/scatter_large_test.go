package collectives_test

import (
	"fmt"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// TestScatterLarge: Scatter and ScatterInto of blocks from below to above
// the size where the message path sends each block straight to its rank,
// and above a region's slot (so on one host too they go by messages),
// from every root, with every element checked.
func TestScatterLarge(t *testing.T) {
	for _, tr := range []string{"shm", "nats"} {
		for _, n := range []int{1, 3, 4} {
			t.Run(fmt.Sprint(tr, n), func(t *testing.T) {
				cs := commtest.WorldOn(t, n, tr)
				ctx := tctx(t)
				commtest.Run(t, cs, func(c *comm.Comm) error {
					for _, m := range []int{8 << 10 / 8, 64 << 10 / 8, 300 << 10 / 8, 1536 << 10 / 8} {
						for root := range n {
							var data []int64
							if c.Rank() == root {
								data = make([]int64, m*n)
								for i := range data {
									data[i] = int64(i*7 + root)
								}
							}
							want := func(i int) int64 { return int64((c.Rank()*m+i)*7 + root) }
							got, err := collectives.Scatter(ctx, c, data, root)
							if err != nil {
								return fmt.Errorf("Scatter m=%d root=%d: %w", m, root, err)
							}
							out := make([]int64, m)
							if err := collectives.ScatterInto(ctx, c, data, out, root); err != nil {
								return fmt.Errorf("ScatterInto m=%d root=%d: %w", m, root, err)
							}
							if len(got) != m {
								return fmt.Errorf("Scatter m=%d root=%d: %d elements", m, root, len(got))
							}
							for i := range m {
								if got[i] != want(i) || out[i] != want(i) {
									return fmt.Errorf("m=%d root=%d: element %d = %d (Scatter), %d (ScatterInto); want %d",
										m, root, i, got[i], out[i], want(i))
								}
							}
						}
					}
					return nil
				})
			})
		}
	}
}
