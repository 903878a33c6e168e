// Command allreduce checks an element-wise Allreduce of a large vector and a
// scalar Allreduce against the serial answer, on every rank; rank 0 prints
// "allreduce ok" with the size.
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

func main() {
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	const n = 300_000 // 2.4 MB of float64: the bandwidth-optimal path
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(c.Rank()*n + i)
	}
	got, err := collectives.AllreduceSlice(ctx, c, v, collectives.Sum[float64])
	if err != nil {
		log.Fatal(err)
	}
	p := float64(c.Size())
	for i, x := range got {
		// sum over r of (r*n + i) = n*p(p-1)/2 + p*i
		if want := float64(n)*p*(p-1)/2 + p*float64(i); x != want {
			log.Fatalf("rank %d: element %d is %v, want %v", c.Rank(), i, x, want)
		}
	}
	s, err := collectives.Allreduce(ctx, c, c.Rank()+1, collectives.Sum[int])
	if err != nil {
		log.Fatal(err)
	}
	if want := c.Size() * (c.Size() + 1) / 2; s != want {
		log.Fatalf("rank %d: scalar sum %d, want %d", c.Rank(), s, want)
	}
	if c.Rank() == 0 {
		fmt.Printf("allreduce ok: %d ranks, %d elements\n", c.Size(), n)
	}
}
