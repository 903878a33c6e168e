// Command fib computes Fibonacci numbers by naive recursion, one task per
// number, with package deco: DECO's seed workload.
//
//	go run ./examples/fib                        # fib of 38..33 on all local cores
//	decorun -n 2 ./examples/fib 42 41 40 39 38 37 # on two ranks
//
// It prints the results in argument order:
// [39088169 24157817 14930352 9227465 5702887 3524578].
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/decorun/decorun/deco"
)

func fibSerial(n int) int {
	if n < 2 {
		return n
	}
	return fibSerial(n-1) + fibSerial(n-2)
}

var fib = deco.Concurrent(fibSerial) // the same line runs on every rank

func main() {
	ns := []int{38, 37, 36, 35, 34, 33}
	if len(os.Args) > 1 {
		ns = ns[:0]
		for _, a := range os.Args[1:] {
			n, err := strconv.Atoi(a)
			if err != nil {
				fmt.Fprintf(os.Stderr, "fib: %q is not a number\n", a)
				os.Exit(2)
			}
			ns = append(ns, n)
		}
	}
	deco.Main(func(ctx context.Context) error {
		results := make([]int, len(ns))
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			for i, n := range ns {
				fib.Assign(s, &results[i], n)
			}
		})
		fmt.Println(results)
		return err
	})
}
