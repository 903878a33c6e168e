// Command decoerrors runs six failing tasks for cluster_test and prints how
// many of their errors errors.Is and errors.As recognise:
//
//	is 6/6        errors.Is(err, ErrX) for "item i: %w" of a sentinel
//	as 6/6        errors.As(err, *CodeError) with the right code
//	ranks [...]   the ranks the tasks ran on
//	once 6/6      task errors naming their rank exactly once
package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/decorun/decorun/deco"
)

var ErrX = errors.New("x failed")

type CodeError struct{ Code int }

func (e *CodeError) Error() string { return fmt.Sprintf("code %d", e.Code) }

var work = deco.ConcurrentErr(func(i int) (int, error) {
	time.Sleep(100 * time.Millisecond)
	return 0, fmt.Errorf("item %d: %w", i, errors.Join(ErrX, &CodeError{Code: i}))
})

func main() {
	deco.Main(func(ctx context.Context) error {
		out := make([]int, 6)
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			for i := range out {
				work.Assign(s, &out[i], i)
			}
		})
		is, as, once, ranks := 0, 0, 0, map[int]bool{}
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var te *deco.TaskError
			errors.As(e, &te)
			ranks[te.Rank] = true
			if errors.Is(e, ErrX) {
				is++
			}
			var ce *CodeError
			if errors.As(e, &ce) && ce.Code == te.Task {
				as++
			}
			if strings.Count(e.Error(), "on rank") == 1 {
				once++
			}
		}
		var rs []int
		for r := range ranks {
			rs = append(rs, r)
		}
		sort.Ints(rs)
		fmt.Printf("is %d/6\nas %d/6\nonce %d/6\nranks %v\n", is, as, once, rs)
		return nil
	}, deco.Slots(1))
}
