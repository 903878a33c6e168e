// Command pi estimates π by Monte Carlo: every rank throws -samples points
// into the unit square with a random source seeded from its rank, counts
// those inside the quarter circle, and the counts are summed at rank 0 with
// collectives.Reduce. The output depends only on -n and -samples.
//
//	go run ./cmd/decorun -n 4 ./examples/pi
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

func main() {
	samples := flag.Int64("samples", 1_000_000, "points per rank")
	flag.Parse()
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := run(ctx, c, *samples); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, c *comm.Comm, samples int64) error {
	rng := rand.New(rand.NewPCG(uint64(c.Rank()), 0x9e3779b97f4a7c15))
	var inside int64
	for range samples {
		x, y := rng.Float64(), rng.Float64()
		if x*x+y*y <= 1 {
			inside++
		}
	}
	total, err := collectives.Reduce(ctx, c, inside, collectives.Sum, 0)
	if err != nil {
		return err
	}
	if c.Rank() == 0 {
		n := samples * int64(c.Size())
		pi := 4 * float64(total) / float64(n)
		fmt.Printf("pi is approximately %.10f from %d samples on %d ranks, error %.10f\n",
			pi, n, c.Size(), math.Abs(pi-math.Pi))
	}
	return nil
}
