// Command deconomain calls deco.Synchronized without deco.Main or deco.Run,
// for cluster_test: it prints the squares of 0..4 and exits 0, or prints
// the block's error and exits 1.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/decorun/decorun/deco"
)

var square = deco.Concurrent(func(n int) int { return n * n })

func main() {
	out := make([]int, 5)
	err := deco.Synchronized(context.Background(), func(s *deco.Scope) {
		for i := range out {
			square.Assign(s, &out[i], i)
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(out)
}
