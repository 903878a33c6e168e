package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/decorun/decorun/deco"
)

// TaskCalls is the number of no-op calls in one timed block of the tasks
// benchmark: DECO's per-call overhead measurement (10,000 calls of a
// function that returns its argument, ../shared/notes/deco.md 6b).
const TaskCalls = 10_000

// DECOCallsPerSec is DECO's figure for that measurement on this kind of
// 2-core machine (@concurrent/@synchronized, 2 workers, median of 7), the
// reference the tasks row is compared with.
const DECOCallsPerSec = 25_471

// noopTask is the task of the tasks benchmark. Wrapped at package level, so
// that every rank (the same decorun binary) registers it.
var noopTask = deco.Concurrent(func(i int) int { return i })

// tasks is the tasks benchmark: deco.Run over the whole job, and on rank 0
// warm-up and timed synchronized blocks, each issuing TaskCalls no-op calls
// with Assign and ending when every result is in place. Each block's time
// runs from its first call to the end of the block (DECO's timed region);
// the row gives the median, min and max over blocks of calls per second.
func (r *runner) tasks(ctx context.Context) error {
	warm, iters := r.cfg.Iterations(Tasks, 0)
	out := make([]int, TaskCalls)
	rates := make([]float64, 0, iters)
	err := deco.Run(ctx, r.c, func(ctx context.Context) error {
		for i := range warm + iters {
			t0 := time.Now()
			err := deco.Synchronized(ctx, func(s *deco.Scope) {
				for j := range out {
					noopTask.Assign(s, &out[j], j)
				}
			})
			d := time.Since(t0)
			if err != nil {
				return err
			}
			for j, v := range out {
				if v != j {
					return fmt.Errorf("block %d: result %d is %d", i, j, v)
				}
				out[j] = -1
			}
			if i >= warm {
				rates = append(rates, float64(TaskCalls)/d.Seconds())
			}
		}
		return nil
	}, deco.Progress(false))
	if err != nil {
		return err
	}
	s := Summarize(rates)
	res := Result{Bench: Tasks, Iters: iters, Warmup: warm, Calls: TaskCalls,
		CallsPerSec: s.Median, MinCallsPerSec: s.Min, MaxCallsPerSec: s.Max}
	if s.Median > 0 {
		res.USPerCall = 1e6 / s.Median
		res.Ratio = s.Median / DECOCallsPerSec
	}
	return r.print(res)
}
