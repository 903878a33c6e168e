package deco_test

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
	"github.com/decorun/decorun/deco"
)

// wordCount is a concurrent function: declared at package level, so that
// every rank registers it.
var wordCount = deco.Concurrent(func(line string) int { return len(strings.Fields(line)) })

// Concurrent wraps a function so that calls issued in a synchronized block
// run at once (on other ranks under decorun); Assign writes each result into
// its place when the block ends.
func ExampleConcurrent() {
	lines := []string{"a b c", "d e", "f", "g h i j"}
	counts := make([]int, len(lines))
	err := deco.Synchronized(context.Background(), func(s *deco.Scope) {
		for i, l := range lines {
			wordCount.Assign(s, &counts[i], l)
		}
	})
	fmt.Println(counts, err)
	// Output: [3 2 1 4] <nil>
}

// Main is a deco program's whole main function: body runs on rank 0 (here,
// without decorun, a world of one rank with a goroutine pool), the other
// ranks run the tasks, and an error is printed with exit status 1. Run the
// program with decorun -n 4 to spread the tasks over 4 processes.
func ExampleMain() {
	deco.Main(func(ctx context.Context) error {
		total := 0
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			for _, l := range []string{"one two", "three"} {
				wordCount.Then(s, func(n int) { total += n }, l)
			}
		})
		fmt.Println("words:", total)
		return err
	})
	// Output: words: 3
}

// Run is Main for a communicator of the caller's: every rank calls it, rank
// 0 runs body and the others serve its tasks. Here three ranks run in one
// process (under decorun each is a process and gets c from comm.Init).
func ExampleRun() {
	cs, stop, err := commtest.Start(3)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func(c *comm.Comm) {
			defer wg.Done()
			err := deco.Run(context.Background(), c, func(ctx context.Context) error {
				counts := make([]int, 3)
				err := deco.Synchronized(ctx, func(s *deco.Scope) {
					for i, l := range []string{"x", "x y", "x y z"} {
						wordCount.Assign(s, &counts[i], l)
					}
				})
				fmt.Println("rank", c.Rank(), "ran body:", counts, err)
				return err
			})
			if err != nil {
				fmt.Println("rank", c.Rank(), err)
			}
		}(c)
	}
	wg.Wait()
	// Output: rank 0 ran body: [1 2 3] <nil>
}
