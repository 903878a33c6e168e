package deco_test

import (
	"context"
	"fmt"

	"github.com/decorun/decorun/deco"
)

func slowSquare(n int) int { return n * n }

var squareOf = deco.Concurrent(slowSquare)

func count(words []string, counts map[string]int) {
	for _, w := range words {
		counts[w]++
	}
}

var countWords = deco.Action2(count)

// Without decorun the tasks run on a goroutine pool; under decorun (with
// deco.Main or deco.Run) on every rank. The code is the same.
func ExampleSynchronized() {
	ctx := context.Background()
	squares := make([]int, 5)
	byLen := map[int]int{}
	counts := map[string]int{}
	err := deco.Synchronized(ctx, func(s *deco.Scope) {
		for i := range squares {
			squareOf.Assign(s, &squares[i], i)           // squares[i] = square(i)
			squareOf.Then(s, deco.Entry(byLen, i), i+10) // byLen[i] = square(i+10)
		}
		countWords.Go(s, []string{"a", "b"}, counts) // its writes to counts come back
		countWords.Go(s, []string{"c"}, counts)
	})
	fmt.Println(squares, byLen[4], counts, err)
	// Output: [0 1 4 9 16] 196 map[a:1 b:1 c:1] <nil>
}

func ExampleFunc_Future() {
	ctx := context.Background()
	deco.Synchronized(ctx, func(s *deco.Scope) {
		f := squareOf.Future(s, 12)
		v, err := f.Wait(ctx) // as soon as that task is done
		fmt.Println(v, err)
	})
	// Output: 144 <nil>
}
