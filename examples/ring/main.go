// Command ring passes a message around all ranks, as in the PyPar ring
// example: rank 0 sends "P0" to rank 1, each rank appends "P<rank>" and
// passes it on to (rank+1) % size, and rank 0 prints what comes back.
//
//	go run ./cmd/decorun -n 8 ./examples/ring
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/decorun/decorun/comm"
)

func main() {
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := ring(ctx, c); err != nil {
		log.Fatal(err)
	}
}

func ring(ctx context.Context, c *comm.Comm) error {
	me, size := c.Rank(), c.Size()
	next, prev := (me+1)%size, (me-1+size)%size
	if me == 0 {
		if err := c.Send(ctx, next, 0, []byte("P0")); err != nil {
			return err
		}
		msg, st, err := c.Recv(ctx, prev, 0)
		if err != nil {
			return err
		}
		fmt.Printf("Processor 0 received message %q from rank %d\n", msg, st.Source)
		return nil
	}
	msg, _, err := c.Recv(ctx, prev, 0)
	if err != nil {
		return err
	}
	return c.Send(ctx, next, 0, fmt.Appendf(msg, "P%d", me))
}
