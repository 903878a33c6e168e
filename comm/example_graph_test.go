package comm_test

import (
	"context"
	"fmt"

	"github.com/decorun/decorun/comm"
)

// A distributed graph: each rank names the ranks it receives from and sends
// to, with weights. (In a world of one rank, the one edge is a self-loop.)
func ExampleDistGraphCreateAdjacent() {
	ctx := context.Background()
	c, _ := comm.Connect(ctx, comm.Job{Rank: 0, Size: 1})
	defer c.Close()
	g, err := comm.DistGraphCreateAdjacent(ctx, c, []int{0}, []int{5}, []int{0}, []int{5}, false)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	src, dst, _ := g.NeighborRanks()
	sw, dw, _ := g.NeighborWeights()
	fmt.Println("from", src, sw, "to", dst, dw)
	// Output:
	// from [0] [5] to [0] [5]
}

// A typed nonblocking receive: post it, do other work, then Wait decodes
// the value.
func ExampleIrecvValue() {
	ctx := context.Background()
	c, _ := comm.Connect(ctx, comm.Job{Rank: 0, Size: 1})
	defer c.Close()
	q, _ := comm.IrecvValue[map[string]int](c, 0, 3)
	comm.SendValue(ctx, c, 0, 3, map[string]int{"steps": 40})
	v, st, err := q.Wait(ctx)
	fmt.Println(v, st.Source, st.Tag, err)
	// Output:
	// map[steps:40] 0 3 <nil>
}
