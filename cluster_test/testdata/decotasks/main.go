// Command decotasks runs deco blocks for cluster_test.
//
//	decotasks MODE
//
// Every rank prints "pid <rank> <pid>" once it has joined. Rank 0 then
// prints "issuing" and runs 60 tasks of 40 ms in one block, each
// returning i² and the rank that ran it, and prints "sum <Σi²>" and
// "ok" if every result is right. MODE "panic": task 7 panics.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/deco"
)

type result struct {
	Sq   int
	Rank string
}

var mode string

func work(i int) result {
	if mode == "panic" && i == 7 {
		panic(fmt.Sprintf("task %d gave up", i))
	}
	time.Sleep(40 * time.Millisecond)
	return result{i * i, os.Getenv("DECORUN_RANK")}
}

var task = deco.Concurrent(work)

func main() {
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("pid %d %d\n", c.Rank(), os.Getpid())
	err = deco.Run(ctx, c, func(ctx context.Context) error {
		out := make([]result, 60)
		fmt.Println("issuing")
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			for i := range out {
				task.Assign(s, &out[i], i)
			}
		})
		sum, ok, by := 0, true, map[string]int{}
		for i, r := range out {
			sum += r.Sq
			ok = ok && r.Sq == i*i
			by[r.Rank]++
		}
		fmt.Printf("sum %d\n", sum)
		fmt.Printf("tasks by rank %v\n", by)
		if ok {
			fmt.Println("ok")
		}
		return err
	})
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
