// Command pipeline runs a pipeline with one stage per rank: rank 0 produces
// the items 1..-items, every later rank applies its stage (add its rank,
// then double) and passes each item on with Send/Recv as soon as it is
// done, and the last rank prints the results. A zero-length message ends
// the stream; all ranks then meet in a Barrier before the last rank reports.
//
//	go run ./cmd/decorun -n 4 ./examples/pipeline
package main

import (
	"context"
	"flag"
	"fmt"
	"log"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

const tagItem = 1

func main() {
	items := flag.Int("items", 5, "number of items")
	flag.Parse()
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := run(ctx, c, *items); err != nil {
		log.Fatal(err)
	}
}

func stage(rank int, x int64) int64 { return 2 * (x + int64(rank)) }

func run(ctx context.Context, c *comm.Comm, items int) error {
	me, last := c.Rank(), c.Size()-1
	emit := func(x int64) error {
		if me == last {
			fmt.Printf("item %d\n", x)
			return nil
		}
		return comm.SendValue(ctx, c, me+1, tagItem, []int64{x})
	}
	if me == 0 {
		for i := 1; i <= items; i++ {
			if err := emit(int64(i)); err != nil {
				return err
			}
		}
	} else {
		for {
			v, _, err := comm.RecvValue[[]int64](ctx, c, me-1, tagItem)
			if err != nil {
				return err
			}
			if len(v) == 0 {
				break
			}
			if err := emit(stage(me, v[0])); err != nil {
				return err
			}
		}
	}
	if me != last {
		if err := comm.SendValue(ctx, c, me+1, tagItem, []int64{}); err != nil {
			return err
		}
	}
	if err := collectives.Barrier(ctx, c); err != nil {
		return err
	}
	if me == last {
		fmt.Printf("pipeline of %d stages done\n", c.Size())
	}
	return nil
}
