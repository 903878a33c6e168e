package collectives_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// TestGathervInto: parts of different lengths land at their displacements
// (here in reverse rank order, with gaps that stay untouched), at root
// (GathervInto) and everywhere (AllgathervInto), blocking and not, through
// shared memory and by messages, small and larger than a region's slot.
func TestGathervInto(t *testing.T) {
	for _, tr := range []string{"shm", "nats"} {
		for _, n := range []int{1, 2, 3, 5} {
			t.Run(fmt.Sprint(tr, n), func(t *testing.T) {
				cs := commtest.WorldOn(t, n, tr)
				ctx := tctx(t)
				commtest.Run(t, cs, func(c *comm.Comm) error {
					r := c.Rank()
					for _, unit := range []int{1, 100_000} { // 100k int64s: beyond a 1 MiB slot at n ≥ 2
						counts, displs := make([]int, n), make([]int, n)
						end := 0
						for q := n - 1; q >= 0; q-- { // rank n-1's block first, a gap of 1 after each
							counts[q] = (q + 1) * unit
							displs[q] = end
							end += counts[q] + 1
						}
						part := make([]int64, counts[r])
						for i := range part {
							part[i] = int64(r*1_000_000 + i)
						}
						check := func(what string, out []int64) error {
							for q := range n {
								for i := range counts[q] {
									if got, want := out[displs[q]+i], int64(q*1_000_000+i); got != want {
										return fmt.Errorf("%s unit %d: rank %d's element %d = %d; want %d", what, unit, q, i, got, want)
									}
								}
								if gap := displs[q] + counts[q]; out[gap] != -7 {
									return fmt.Errorf("%s unit %d: the gap after rank %d's block was written", what, unit, q)
								}
							}
							return nil
						}
						fresh := func() []int64 {
							out := make([]int64, end)
							for i := range out {
								out[i] = -7
							}
							return out
						}
						for root := range n {
							out := fresh()
							if err := collectives.GathervInto(ctx, c, part, out, counts, displs, root); err != nil {
								return fmt.Errorf("GathervInto root %d: %w", root, err)
							}
							if r == root {
								if err := check("GathervInto", out); err != nil {
									return err
								}
							}
						}
						out := fresh()
						if err := collectives.AllgathervInto(ctx, c, part, out, counts, displs); err != nil {
							return fmt.Errorf("AllgathervInto: %w", err)
						}
						if err := check("AllgathervInto", out); err != nil {
							return err
						}
						out = fresh()
						if _, err := collectives.IallgathervInto(ctx, c, part, out, counts, displs).Wait(ctx); err != nil {
							return fmt.Errorf("IallgathervInto: %w", err)
						}
						if err := check("IallgathervInto", out); err != nil {
							return err
						}
						out = fresh()
						if _, err := collectives.IgathervInto(ctx, c, part, out, counts, displs, 0).Wait(ctx); err != nil {
							return fmt.Errorf("IgathervInto: %w", err)
						}
						if r == 0 {
							if err := check("IgathervInto", out); err != nil {
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

// TestGathervIntoErrors: root's bad layout fails every rank's call; a part
// whose length is not its count fails at root, naming the rank.
func TestGathervIntoErrors(t *testing.T) {
	const n = 3
	cs := commtest.World(t, n)
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		r := c.Rank()
		part := make([]float64, 2)
		out := make([]float64, 6)
		// Root 1 passes two counts for three ranks.
		var counts, displs []int
		if r == 1 {
			counts, displs = []int{2, 2}, []int{0, 2}
		}
		err := collectives.GathervInto(ctx, c, part, out, counts, displs, 1)
		if !errors.Is(err, collectives.ErrInvalidArg) || r == 1 && !strings.Contains(err.Error(), "rank 1 passed 2 counts and 2 displs for 3 ranks") {
			return fmt.Errorf("GathervInto with root's bad counts: %v", err)
		}
		// A block outside out.
		err = collectives.AllgathervInto(ctx, c, part, out, []int{2, 2, 2}, []int{0, 2, 5})
		if !errors.Is(err, collectives.ErrInvalidArg) {
			return fmt.Errorf("AllgathervInto with a block outside out: %v", err)
		}
		// Rank 2's part is longer than its count.
		if r == 2 {
			part = make([]float64, 3)
		}
		err = collectives.GathervInto(ctx, c, part, out, []int{2, 2, 2}, []int{0, 2, 4}, 0)
		switch {
		case r == 0 && (err == nil || !strings.Contains(err.Error(), "rank 2 passed a part of 3 elements where rank 0's counts[2] is 2")):
			return fmt.Errorf("root's GathervInto with rank 2's long part: %v", err)
		case r != 0 && err != nil:
			return fmt.Errorf("GathervInto at a non-root: %v", err)
		}
		// The communicator goes on.
		if _, err := collectives.Allreduce(ctx, c, 1, collectives.Sum); err != nil {
			return err
		}
		return nil
	})
}
