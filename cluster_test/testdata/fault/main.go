// Command fault misbehaves on purpose for cluster_test.
//
//	fault MODE RANK [CODE]
//
// Every rank prints "pid <rank> <pid>" once it has joined; once rank RANK
// has heard from all the others:
//   - exit:    rank RANK exits with CODE; the others wait in a Recv from it.
//   - noclose: rank RANK returns from main without closing its communicator.
//   - abort:   rank RANK calls Abort(CODE); the others wait in a Recv.
//   - wait:    every rank waits in a Recv that never completes.
//   - survive: (with decorun --keep-going) rank RANK exits with CODE; rank 0
//     waits for comm's Lost notice, tries to receive from the lost rank and
//     prints the error; everyone closes.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"

	"github.com/decorun/decorun/comm"
)

func main() {
	if len(os.Args) < 3 {
		log.Fatal("usage: fault MODE RANK [CODE]")
	}
	mode := os.Args[1]
	who, _ := strconv.Atoi(os.Args[2])
	code := 0
	if len(os.Args) > 3 {
		code, _ = strconv.Atoi(os.Args[3])
	}
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("pid %d %d\n", c.Rank(), os.Getpid())
	me := c.Rank()
	// Rank RANK waits until every rank has printed its pid line.
	if me == who {
		for i := 1; i < c.Size(); i++ {
			if _, _, err := c.Recv(ctx, comm.AnySource, 1); err != nil {
				log.Fatal(err)
			}
		}
	} else if err := c.Send(ctx, who, 1, nil); err != nil {
		log.Fatal(err)
	}
	if mode == "survive" { // run with --keep-going
		switch me {
		case who:
			os.Exit(code)
		case 0:
			lost := <-c.Lost()
			_, _, err := c.Recv(ctx, lost, 0)
			fmt.Printf("rank 0 saw rank %d lost: %v\n", lost, err)
		}
		if err := c.Close(); err != nil {
			log.Fatal(err)
		}
		return
	}
	switch {
	case mode == "exit" && me == who:
		os.Exit(code)
	case mode == "noclose" && me == who:
		return
	case mode == "abort" && me == who:
		c.Abort(code)
	case mode == "noclose":
		c.Close()
		return
	}
	src := who
	if mode == "wait" || src == me {
		src = comm.AnySource
	}
	_, _, err = c.Recv(ctx, src, 0)
	log.Fatalf("rank %d: Recv returned: %v", me, err)
}
