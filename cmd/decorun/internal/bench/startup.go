package bench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Startup times whole runs of the command argv (a `decorun -n N` of a
// trivial rank program): warm untimed runs, then iters timed ones, each
// from fork to exit. ranks is N, for the result.
func Startup(ctx context.Context, argv []string, ranks, warm, iters int) (Result, error) {
	times := make([]float64, 0, iters)
	for i := range warm + iters {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
		}
		if i >= warm {
			times = append(times, float64(d.Nanoseconds())/1e6)
		}
	}
	s := Summarize(times)
	return Result{Bench: StartupB, Ranks: ranks, Iters: iters, Warmup: warm,
		MedianMS: s.Median, MinMS: s.Min, MaxMS: s.Max}, nil
}
