package collectives_test

import (
	"context"
	"fmt"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

// A nonblocking Allreduce goes on while the rank does other work; Wait
// returns its result.
func ExampleIallreduce() {
	ranks(4, func(ctx context.Context, c *comm.Comm) (string, error) {
		q := collectives.Iallreduce(ctx, c, c.Rank()+1, collectives.Sum[int])
		local := 0
		for i := range 1000 { // work that does not need the sum
			local += i % (c.Rank() + 2)
		}
		sum, err := q.Wait(ctx)
		return fmt.Sprint("sum ", sum, ", local ", local), err
	})
	// Output:
	// rank 0: sum 10, local 500
	// rank 1: sum 10, local 999
	// rank 2: sum 10, local 1500
	// rank 3: sum 10, local 2000
}

// Requests may be waited for in any order; Test polls without blocking.
// Calls on one communicator run in the order they were started, so once
// the Igather is complete the Ibcast started before it is too.
func ExampleRequest_Test() {
	ranks(3, func(ctx context.Context, c *comm.Comm) (string, error) {
		b := collectives.Ibcast(ctx, c, "hello", 0)
		g := collectives.Igather(ctx, c, []int{c.Rank() * 10}, 2)
		all, err := g.Wait(ctx)
		if err != nil {
			return "", err
		}
		msg, done, err := b.Test()
		return fmt.Sprint(done, " ", msg, " ", all), err
	})
	// Output:
	// rank 0: true hello []
	// rank 1: true hello []
	// rank 2: true hello [0 10 20]
}
