// Command paths is cluster_test's data-path check: every rank sends a
// message of SIZE bytes (default 1 MiB) to every other rank, checks what
// it receives, and prints the path its frames take to each peer:
//
//	R: 0=self 1=shm 2=tcp ...
package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"

	"github.com/decorun/decorun/comm"
)

func main() {
	size := 1 << 20
	if len(os.Args) > 1 {
		size, _ = strconv.Atoi(os.Args[1])
	}
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	me, n := c.Rank(), c.Size()
	msg := func(from, to int) []byte {
		return bytes.Repeat([]byte{byte(from*31 + to)}, size)
	}
	var reqs []*comm.Request
	for p := range n {
		if p != me {
			r, err := c.Isend(p, 1, msg(me, p))
			if err != nil {
				log.Fatal(err)
			}
			reqs = append(reqs, r)
		}
	}
	for p := range n {
		if p == me {
			continue
		}
		b, _, err := c.Recv(ctx, p, 1)
		if err != nil {
			log.Fatal(err)
		}
		if !bytes.Equal(b, msg(p, me)) {
			log.Fatalf("rank %d: the message from rank %d has %d bytes or other content", me, p, len(b))
		}
	}
	if err := comm.WaitAll(ctx, reqs...); err != nil {
		log.Fatal(err)
	}
	var paths []string
	for p := range n {
		paths = append(paths, fmt.Sprintf("%d=%s", p, c.Path(p)))
	}
	fmt.Printf("%d: %s\n", me, strings.Join(paths, " "))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
}
