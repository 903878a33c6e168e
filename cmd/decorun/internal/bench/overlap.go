package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/decorun/decorun/collectives"
)

// Iallreduce is OSU's osu_iallreduce overlap measurement (the project's C
// reference: bench_iallreduce in ../shared/bench/mpi/osu_like.c).
const Iallreduce = "iallreduce"

// iallreduceSizes is the default sweep of the overlap measurement.
var iallreduceSizes = []int{8, 64 << 10, 1 << 20}

// iallreduceIters are osu_like's iteration counts: 1000 up to 8 KiB, 200
// up to 64 KiB, 50 above; a tenth of them to warm up.
func iallreduceIters(n int) (warmup, iters int) {
	switch {
	case n <= smallLimit:
		iters = 1000
	case n <= 64<<10:
		iters = 200
	default:
		iters = 50
	}
	return iters / 10, iters
}

// overlap measures, for each size, how much of a compute phase an
// Iallreduce of size/8 float64s (into a result buffer allocated once) hides:
// pure is Iallreduce + Wait alone; then each iteration starts the
// Iallreduce, computes for pure µs (busy, no calls), and waits (total).
// Each is a rank's mean over the iterations, with an untimed barrier
// between iterations; pure, compute and total are the max over ranks, and
// overlap = 100·(1 − (total − compute)/pure), clamped to 0..100.
func (r *runner) overlap(ctx context.Context) error {
	c := r.c
	for _, n := range r.cfg.sizes(Iallreduce) {
		warm, iters := r.cfg.Iterations(Iallreduce, n)
		v, out := make([]float64, n/8), make([]float64, n/8)
		for i := range v {
			v[i] = float64(i)
		}
		op := func(ctx context.Context) error {
			_, err := collectives.IallreduceSliceInto(ctx, c, v, out, collectives.Sum).Wait(ctx)
			return err
		}
		mine, err := r.timeEach(ctx, n, warm, iters, op)
		if err != nil {
			return err
		}
		pure, err := collectives.Allreduce(ctx, c, mine, collectives.Max)
		if err != nil {
			return err
		}
		var tacc, cacc time.Duration
		for range iters {
			t0 := nanotime()
			q := collectives.IallreduceSliceInto(ctx, c, v, out, collectives.Sum)
			c0 := nanotime()
			computeFor(time.Duration(pure * 1e3))
			cacc += since(c0)
			if _, err := q.Wait(ctx); err != nil {
				return fmt.Errorf("size %d: %w", n, err)
			}
			tacc += since(t0)
			if err := r.barrier(ctx); err != nil {
				return err
			}
		}
		tc, err := collectives.ReduceSlice(ctx, c, []float64{meanUS(tacc, iters), meanUS(cacc, iters)},
			collectives.Max, 0)
		if err != nil {
			return err
		}
		if c.Rank() != 0 {
			continue
		}
		total, compute := tc[0], tc[1]
		ov := 0.0
		if pure > 0 {
			ov = min(max(100*(1-(total-compute)/pure), 0), 100)
		}
		res := Result{Bench: Iallreduce, Size: ptr(n), Iters: iters, Warmup: warm,
			PureUS: pure, ComputeUS: compute, TotalUS: total, OverlapPct: &ov}
		if err := r.print(res); err != nil {
			return err
		}
	}
	return nil
}

func meanUS(d time.Duration, iters int) float64 {
	return float64(d.Nanoseconds()) / 1e3 / float64(max(iters, 1))
}

// sink keeps computeFor's arithmetic from being optimised away.
var sink float64

// computeFor computes, without any call, for d (osu_like's compute_for).
func computeFor(d time.Duration) {
	t0 := nanotime()
	x := 1.0
	for since(t0) < d {
		for range 64 {
			x = x*1.0000001 + 1e-9
		}
	}
	sink = x
}
