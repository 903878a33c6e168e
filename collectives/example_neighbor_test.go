package collectives_test

import (
	"context"
	"fmt"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

// A neighbourhood collective on a periodic ring (comm.CartCreate): every
// rank gets the values of its neighbours, in the order of
// g.NeighborRanks() (for a Cartesian grid: -1 then +1 along each
// dimension). In a world of one rank both neighbours are the rank itself.
func ExampleNeighborAllgather() {
	ctx := context.Background()
	c, _ := comm.Connect(ctx, comm.Job{Rank: 0, Size: 1})
	defer c.Close()
	g, _ := comm.CartCreate(ctx, c, []int{1}, []bool{true}, false)
	defer g.Close()
	halo, err := collectives.NeighborAllgather(ctx, g, 10*g.Rank()+7)
	fmt.Println(halo, err)
	// Output:
	// [7 7] <nil>
}

// GathervInto gathers parts of any length into one flat buffer at the
// root, part q at displs[q] (MPI's recvcounts and displs).
func ExampleGathervInto() {
	ctx := context.Background()
	c, _ := comm.Connect(ctx, comm.Job{Rank: 0, Size: 1})
	defer c.Close()
	out := make([]float64, 5)
	err := collectives.GathervInto(ctx, c, []float64{1, 2, 3}, out, []int{3}, []int{2}, 0)
	fmt.Println(out, err)
	// Output:
	// [0 0 1 2 3] <nil>
}
