package comm

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/decorun/decorun/internal/agree"
)

// distGraph is a communicator's distributed graph: this rank's in- and
// out-neighbours, with their weights (nil: unweighted).
type distGraph struct {
	sources, destinations []int
	sw, dw                []int
}

// graphTag carries DistGraphCreateAdjacent's check on the new
// communicator, before anyone else can use it.
const graphTag = 0

// DistGraphCreateAdjacent makes a communicator of c's ranks with a
// distributed graph topology (MPI_Dist_graph_create_adjacent): each rank
// names the ranks it receives from (sources) and sends to (destinations),
// with optional weights (nil, or one per neighbour). Neighbourhood
// collectives on it exchange along these edges: a rank receives block i
// from sources[i] and sends block j to destinations[j]; a rank listed
// more than once gets one block per listing, matched in list order. It is
// a collective call on c, and it checks that the ranks' lists agree (r
// lists s as a destination as often as s lists r as a source): a
// disagreement, or a rank out of range, is an error on every rank that
// names the ranks. reorder is accepted for MPI's sake; the ranks keep
// their order.
func DistGraphCreateAdjacent(ctx context.Context, c *Comm, sources, sourceWeights, destinations, destWeights []int, reorder bool) (*Comm, error) {
	_ = reorder
	if err := c.alive("DistGraphCreateAdjacent"); err != nil {
		return nil, err
	}
	bad := checkAdjacency(c, sources, sourceWeights, destinations, destWeights)
	typ := int64(0)
	if bad != nil {
		typ = -1
	}
	sum, err := c.agree(ctx, agree.DistGraphCreate, typ, false)
	if err != nil {
		return nil, err
	}
	if err := gridAgreed("DistGraphCreateAdjacent", "arguments", sum, bad); err != nil {
		return nil, err
	}
	nc, err := c.splitAgreed(ctx, 0, c.rank)
	if err != nil {
		return nil, err
	}
	// Rank 0 of the new communicator (which nobody else has yet) checks
	// that the lists agree and tells every rank.
	if err := nc.checkGraph(ctx, sources, destinations); err != nil {
		nc.Close()
		return nil, err
	}
	nc.graph = &distGraph{sources: slices.Clone(sources), destinations: slices.Clone(destinations),
		sw: slices.Clone(sourceWeights), dw: slices.Clone(destWeights)}
	return nc, nil
}

func checkAdjacency(c *Comm, sources, sw, destinations, dw []int) error {
	for _, l := range []struct {
		name    string
		ranks   []int
		weights []int
	}{{"sources", sources, sw}, {"destinations", destinations, dw}} {
		for i, r := range l.ranks {
			if r < 0 || r >= c.size {
				return fmt.Errorf("comm: DistGraphCreateAdjacent: rank %d's %s[%d] = %d is out of range [0, %d)", c.rank, l.name, i, r, c.size)
			}
		}
		if l.weights != nil && len(l.weights) != len(l.ranks) {
			return fmt.Errorf("comm: DistGraphCreateAdjacent: rank %d passed %d weights for %d %s", c.rank, len(l.weights), len(l.ranks), l.name)
		}
	}
	return nil
}

// checkGraph gathers every rank's lists at rank 0, which checks that each
// edge is listed at both ends as often, and sends every rank the verdict.
func (c *Comm) checkGraph(ctx context.Context, sources, destinations []int) error {
	if c.rank != 0 {
		if err := SendValue(ctx, c, 0, graphTag, [][]int{sources, destinations}); err != nil {
			return fmt.Errorf("comm: DistGraphCreateAdjacent: %w", err)
		}
		verdict, _, err := RecvValue[string](ctx, c, 0, graphTag)
		if err != nil {
			return fmt.Errorf("comm: DistGraphCreateAdjacent: %w", err)
		}
		if verdict != "" {
			return errors.New(verdict)
		}
		return nil
	}
	in := make([][]int, c.size)  // sources by rank
	out := make([][]int, c.size) // destinations by rank
	in[0], out[0] = sources, destinations
	for r := 1; r < c.size; r++ {
		l, _, err := RecvValue[[][]int](ctx, c, r, graphTag)
		if err != nil {
			return fmt.Errorf("comm: DistGraphCreateAdjacent: %w", err)
		}
		if len(l) != 2 {
			return fmt.Errorf("comm: DistGraphCreateAdjacent: rank %d sent %d lists", r, len(l))
		}
		in[r], out[r] = l[0], l[1]
	}
	verdict := ""
	count := func(l []int, x int) int {
		n := 0
		for _, y := range l {
			if y == x {
				n++
			}
		}
		return n
	}
check:
	for s := range c.size {
		for _, d := range out[s] {
			if a, b := count(out[s], d), count(in[d], s); a != b {
				verdict = fmt.Sprintf("comm: DistGraphCreateAdjacent: rank %d lists rank %d as a destination %d times but rank %d lists rank %d as a source %d times",
					s, d, a, d, s, b)
				break check
			}
		}
		for _, src := range in[s] {
			if a, b := count(in[s], src), count(out[src], s); a != b {
				verdict = fmt.Sprintf("comm: DistGraphCreateAdjacent: rank %d lists rank %d as a source %d times but rank %d lists rank %d as a destination %d times",
					s, src, a, src, s, b)
				break check
			}
		}
	}
	for r := 1; r < c.size; r++ {
		if err := SendValue(ctx, c, r, graphTag, verdict); err != nil {
			return fmt.Errorf("comm: DistGraphCreateAdjacent: %w", err)
		}
	}
	if verdict != "" {
		return errors.New(verdict)
	}
	return nil
}

// NeighborRanks returns the ranks this rank receives from (sources) and
// sends to (destinations) in the neighbourhood collectives, in their
// order: a distributed graph's lists (MPI_Dist_graph_neighbors), or for a
// Cartesian grid Neighbors() twice. It is an error on a communicator
// without a topology.
func (c *Comm) NeighborRanks() (sources, destinations []int, err error) {
	if c.graph != nil {
		return slices.Clone(c.graph.sources), slices.Clone(c.graph.destinations), nil
	}
	if c.topo == nil {
		return nil, nil, errors.New("comm: the communicator has no topology (make one with CartCreate or DistGraphCreateAdjacent)")
	}
	nb, _ := c.Neighbors()
	return nb, slices.Clone(nb), nil
}

// NeighborWeights returns a distributed graph's edge weights, as given to
// DistGraphCreateAdjacent (nil when it was given none).
func (c *Comm) NeighborWeights() (sourceWeights, destWeights []int, err error) {
	if c.graph == nil {
		return nil, nil, errors.New("comm: NeighborWeights: the communicator has no distributed graph topology")
	}
	return slices.Clone(c.graph.sw), slices.Clone(c.graph.dw), nil
}

// IsCartesian reports whether c has a Cartesian topology (CartCreate).
func (c *Comm) IsCartesian() bool { return c.topo != nil }
