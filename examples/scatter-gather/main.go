// Command scatter-gather shows the scatter/gather pattern: rank 0 makes a
// slice of 4·size numbers and scatters it, every rank squares its part and
// adds its rank, and rank 0 gathers the parts back and prints the result.
//
//	go run ./cmd/decorun -n 3 ./examples/scatter-gather
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

const perRank = 4

func main() {
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := run(ctx, c); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, c *comm.Comm) error {
	var data []int
	if c.Rank() == 0 {
		for i := range perRank * c.Size() {
			data = append(data, i)
		}
		fmt.Println("scatter:", data)
	}
	part, err := collectives.Scatter(ctx, c, data, 0)
	if err != nil {
		return err
	}
	for i, x := range part {
		part[i] = x*x + c.Rank()
	}
	all, err := collectives.Gather(ctx, c, part, 0)
	if err != nil {
		return err
	}
	if c.Rank() == 0 {
		fmt.Println("gather: ", all)
	}
	return nil
}
