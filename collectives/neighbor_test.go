package collectives_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// TestNeighbor: NeighborAllgather and NeighborAlltoall (and their
// I-forms) on grids with ProcNull edges, periodic dimensions of 2 (one
// rank is both neighbours) and of 1 (a rank is its own neighbour), with
// values of varying length; every entry is checked against what the
// neighbour at that place sent.
func TestNeighbor(t *testing.T) {
	for _, tc := range []struct {
		dims    []int
		periods []bool
	}{
		{[]int{2, 3}, []bool{true, false}},
		{[]int{4}, []bool{false}},
		{[]int{2, 1}, []bool{true, true}},
		{[]int{3, 2}, []bool{false, true}},
	} {
		n := 1
		for _, d := range tc.dims {
			n *= d
		}
		for _, tr := range []string{"shm", "nats", "tcp"} {
			t.Run(fmt.Sprint(tc.dims, tc.periods, tr), func(t *testing.T) {
				cs := commtest.WorldOn(t, n, tr)
				ctx := tctx(t)
				commtest.Run(t, cs, func(c *comm.Comm) error {
					g, err := comm.CartCreate(ctx, c, tc.dims, tc.periods, false)
					if err != nil {
						return err
					}
					defer g.Close()
					r := g.Rank()
					nb, _ := g.Neighbors()
					for round := range 3 {
						mine := slices.Repeat([]int{r + 100}, r%3+round) // lengths differ by rank
						var all [][]int
						if round == 2 {
							all, err = collectives.IneighborAllgather(ctx, g, mine).Wait(ctx)
						} else {
							all, err = collectives.NeighborAllgather(ctx, g, mine)
						}
						if err != nil {
							return fmt.Errorf("NeighborAllgather: %w", err)
						}
						for i, src := range nb {
							var want []int
							if src != comm.ProcNull {
								want = slices.Repeat([]int{src + 100}, src%3+round)
							}
							if !slices.Equal(all[i], want) {
								return fmt.Errorf("NeighborAllgather[%d] (rank %d) = %v; want %v", i, src, all[i], want)
							}
						}
						vs := make([]int, len(nb))
						for i := range vs {
							vs[i] = 1000*r + 10*round + i
						}
						var got []int
						if round == 2 {
							got, err = collectives.IneighborAlltoall(ctx, g, vs).Wait(ctx)
						} else {
							got, err = collectives.NeighborAlltoall(ctx, g, vs)
						}
						if err != nil {
							return fmt.Errorf("NeighborAlltoall: %w", err)
						}
						for i, src := range nb {
							want := 0
							if src != comm.ProcNull {
								want = 1000*src + 10*round + (i ^ 1) // its slot on the other side
							}
							if got[i] != want {
								return fmt.Errorf("NeighborAlltoall[%d] (rank %d) = %d; want %d", i, src, got[i], want)
							}
						}
					}
					// Errors on every rank: a communicator without a grid,
					// and one rank's wrong number of values.
					if _, err := collectives.NeighborAllgather(ctx, c, 1); !errors.Is(err, collectives.ErrInvalidArg) {
						return fmt.Errorf("NeighborAllgather on the world: %v", err)
					}
					vs := make([]int, len(nb))
					if r == 0 {
						vs = vs[:1]
					}
					if _, err := collectives.NeighborAlltoall(ctx, g, vs); !errors.Is(err, collectives.ErrInvalidArg) {
						return fmt.Errorf("NeighborAlltoall with rank 0's 1 value: %v", err)
					}
					return nil
				})
			})
		}
	}
}

// TestNeighborGraph: on a distributed graph in which every rank sends to
// the next rank twice and to the one after once, each block arrives in the
// place of its source's listing (the k-th listing of a source gets the
// k-th block that source sends to this rank).
func TestNeighborGraph(t *testing.T) {
	const n = 4
	cs := commtest.World(t, n)
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		r := c.Rank()
		prev, prev2 := (r+n-1)%n, (r+n-2)%n
		g, err := comm.DistGraphCreateAdjacent(ctx, c, []int{prev, prev2, prev}, nil,
			[]int{(r + 1) % n, (r + 2) % n, (r + 1) % n}, nil, false)
		if err != nil {
			return err
		}
		defer g.Close()
		got, err := collectives.NeighborAlltoall(ctx, g, []int{100 * r, 100*r + 1, 100*r + 2})
		if err != nil {
			return err
		}
		if want := []int{100 * prev, 100*prev2 + 1, 100*prev + 2}; !slices.Equal(got, want) {
			return fmt.Errorf("NeighborAlltoall = %v; want %v", got, want)
		}
		all, err := collectives.NeighborAllgather(ctx, g, r)
		if err != nil {
			return err
		}
		if want := []int{prev, prev2, prev}; !slices.Equal(all, want) {
			return fmt.Errorf("NeighborAllgather = %v; want %v", all, want)
		}
		return nil
	})
}
