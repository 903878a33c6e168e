// Command decohidden returns a result type with unexported fields, as
// package main naturally declares it, for cluster_test: it prints the
// results and exits 0, or prints the block's error and exits 1.
package main

import (
	"context"
	"fmt"

	"github.com/decorun/decorun/deco"
)

type result struct{ sq, rank int }

var work = deco.Concurrent(func(i int) result { return result{i * i, 1} })

func main() {
	deco.Main(func(ctx context.Context) error {
		out := make([]result, 4)
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			for i := range out {
				work.Assign(s, &out[i], i)
			}
		})
		fmt.Println(out)
		return err
	})
}
