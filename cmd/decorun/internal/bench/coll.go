package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/decorun/decorun/collectives"
)

// collective runs one collective benchmark over every size: each op timed
// alone with an untimed barrier between ops; rank 0 reports the max, mean
// and min over ranks of each rank's mean time per op.
func (r *runner) collective(ctx context.Context, b string) error {
	c, p := r.c, r.c.Size()
	for _, n := range r.cfg.sizes(b) {
		warm, iters := r.cfg.Iterations(b, n)
		op, err := r.collOp(b, n)
		if err != nil {
			return err
		}
		mean, err := r.timeEach(ctx, n, warm, iters, op)
		if err != nil {
			return err
		}
		all, err := collectives.Gather(ctx, c, []float64{mean}, 0)
		if err != nil {
			return err
		}
		if c.Rank() != 0 {
			continue
		}
		var sum float64
		for _, m := range all {
			sum += m
		}
		res := Result{Bench: b, Size: ptr(n), Iters: iters, Warmup: warm,
			MaxUS: slices.Max(all), AvgUS: sum / float64(p), MinUS: slices.Min(all)}
		if err := r.print(res); err != nil {
			return err
		}
	}
	return nil
}

// collOp returns one call of collective b moving n bytes (per rank for
// gather and scatter, per pair for alltoall), with its buffers allocated
// once.
func (r *runner) collOp(b string, n int) (func(context.Context) error, error) {
	c, p := r.c, r.c.Size()
	switch b {
	case Barrier:
		return func(ctx context.Context) error { return collectives.Barrier(ctx, c) }, nil
	case Bcast: // into the buffer on every rank, as osu_bcast
		buf := make([]byte, n)
		return func(ctx context.Context) error {
			return collectives.BcastInto(ctx, c, buf, 0)
		}, nil
	case Allreduce: // into a result buffer allocated once, as osu_allreduce
		v, out := make([]float64, n/8), make([]float64, n/8)
		for i := range v {
			v[i] = float64(i)
		}
		return func(ctx context.Context) error {
			return collectives.AllreduceSliceInto(ctx, c, v, out, collectives.Sum)
		}, nil
	case Reduce: // to rank 0, into a result buffer allocated once, as osu_reduce
		v, out := make([]float64, n/8), make([]float64, n/8)
		for i := range v {
			v[i] = float64(i)
		}
		return func(ctx context.Context) error {
			return collectives.ReduceSliceInto(ctx, c, v, out, collectives.Sum, 0)
		}, nil
	case Gather: // into a result buffer allocated once, as osu_gather
		part := make([]byte, n)
		var out []byte
		if c.Rank() == 0 {
			out = make([]byte, n*p)
		}
		return func(ctx context.Context) error {
			return collectives.GatherInto(ctx, c, part, out, 0)
		}, nil
	case Scatter: // into a buffer allocated once, as osu_scatter
		var data []byte
		if c.Rank() == 0 {
			data = make([]byte, n*p)
		}
		out := make([]byte, n)
		return func(ctx context.Context) error {
			return collectives.ScatterInto(ctx, c, data, out, 0)
		}, nil
	case Alltoall:
		data := make([]byte, n*p)
		return func(ctx context.Context) error {
			_, err := collectives.Alltoall(ctx, c, data)
			return err
		}, nil
	}
	return nil, fmt.Errorf("not a collective: %q", b)
}

// timeEach runs op warm times, then iters times, each timed alone between
// untimed barriers, and returns this rank's mean µs per call (n, the size,
// names a failure).
func (r *runner) timeEach(ctx context.Context, n, warm, iters int, op func(context.Context) error) (float64, error) {
	for range warm {
		if err := op(ctx); err != nil {
			return 0, fmt.Errorf("size %d: %w", n, err)
		}
	}
	if err := r.barrier(ctx); err != nil {
		return 0, err
	}
	var acc time.Duration
	for range iters {
		t0 := nanotime()
		if err := op(ctx); err != nil {
			return 0, fmt.Errorf("size %d: %w", n, err)
		}
		acc += since(t0)
		if err := r.barrier(ctx); err != nil {
			return 0, err
		}
	}
	return meanUS(acc, iters), nil
}
