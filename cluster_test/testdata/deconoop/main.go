// Command deconoop measures deco's per-task overhead: N calls of a no-op
// function in one synchronized block, timed on rank 0 from the first call
// to the end of the block.
//
//	decorun -n 3 deconoop [N]
//
// prints "N tasks in S s: R tasks/s".
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/decorun/decorun/deco"
)

var noop = deco.Concurrent(func(i int) int { return i })

func main() {
	n := 200_000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	deco.Main(func(ctx context.Context) error {
		out := make([]int, n)
		start := time.Now()
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			for i := range out {
				noop.Assign(s, &out[i], i)
			}
		})
		d := time.Since(start)
		for i, v := range out {
			if v != i {
				return fmt.Errorf("out[%d] = %d", i, v)
			}
		}
		fmt.Printf("%d tasks in %.3f s: %.0f tasks/s\n", n, d.Seconds(), float64(n)/d.Seconds())
		return err
	})
}
