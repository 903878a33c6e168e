// Command sweep is a parameter sweep farmed out to spawned workers: the
// job's ranks call comm.Spawn to start -workers copies of this program,
// rank 0 hands each worker one growth rate r of the logistic map
// x ← r·x·(1−x) at a time and gathers what it computes (the mean of x
// over the last 100 of 2000 steps), and once every point is done both
// groups Merge into one communicator and count the points each worker
// did with collectives.Gather. The workers find their parents with
// comm.Parent. The output depends only on -points, never on -workers or
// -n; -serial computes the same lines in one process, without decorun.
//
//	go build -o sweep ./examples/sweep
//	decorun -n 1 ./sweep -workers 4 -points 32
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

// Tags of the farm.
const (
	tagTask   = 1 // parent to worker: the index of a point
	tagStop   = 2 // parent to worker: no more points
	tagResult = 3 // worker to parent: a result
)

type result struct {
	I int
	X float64
}

func main() {
	workers := flag.Int("workers", 3, "workers to spawn")
	points := flag.Int("points", 24, "growth rates r from 2.8 to 4 to sweep")
	serial := flag.Bool("serial", false, "compute every point in this process, without decorun")
	worker := flag.Bool("worker", false, "(set by the parent for the spawned workers)")
	flag.Parse()
	if *serial {
		for i := range *points {
			fmt.Println(line(*points, result{i, logistic(rate(*points, i))}))
		}
		return
	}
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if *worker {
		err = work(ctx, *points)
	} else {
		err = farm(ctx, c, *workers, *points)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// farm spawns the workers, gives out the points and prints the results
// in order (rank 0), then merges with the workers and prints how many
// points each did.
func farm(ctx context.Context, c *comm.Comm, workers, points int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ic, err := comm.Spawn(ctx, c, self, []string{"-worker", "-points", fmt.Sprint(points)}, workers, nil)
	if err != nil {
		return err
	}
	defer ic.Close()
	if c.Rank() == 0 {
		results := make([]float64, points)
		next, busy := 0, 0
		for w := range ic.RemoteSize() { // one point each to start with
			tag := tagStop
			if next < points {
				tag, busy = tagTask, busy+1
			}
			if err := comm.SendValue(ctx, ic.Remote(), w, tag, next); err != nil {
				return err
			}
			next++
		}
		for busy > 0 {
			res, st, err := comm.RecvValue[result](ctx, ic.Remote(), comm.AnySource, tagResult)
			if err != nil {
				return err
			}
			results[res.I] = res.X
			tag := tagTask
			if next >= points {
				tag, busy = tagStop, busy-1
			}
			if err := comm.SendValue(ctx, ic.Remote(), st.Source, tag, next); err != nil {
				return err
			}
			next++
		}
		for i, x := range results {
			fmt.Println(line(points, result{i, x}))
		}
	}
	all, err := ic.Merge(ctx, false) // parents first: the workers are ranks c.Size()...
	if err != nil {
		return err
	}
	defer all.Close()
	done, err := collectives.Gather(ctx, all, []int{0}, 0)
	if err != nil {
		return err
	}
	if all.Rank() == 0 {
		sum := 0
		for _, d := range done[c.Size():] {
			sum += d
		}
		fmt.Printf("%d points by %d workers\n", sum, ic.RemoteSize())
	}
	return nil
}

// work computes the points the parent sends until it says stop, then
// joins the Merge and tells how many it did.
func work(ctx context.Context, points int) error {
	p := comm.Parent()
	if p == nil {
		return fmt.Errorf("-worker: this program was not started by comm.Spawn")
	}
	did := 0
	for {
		i, st, err := comm.RecvValue[int](ctx, p.Remote(), 0, comm.AnyTag)
		if err != nil {
			return err
		}
		if st.Tag == tagStop {
			break
		}
		if err := comm.SendValue(ctx, p.Remote(), 0, tagResult, result{i, logistic(rate(points, i))}); err != nil {
			return err
		}
		did++
	}
	all, err := p.Merge(ctx, true)
	if err != nil {
		return err
	}
	defer all.Close()
	_, err = collectives.Gather(ctx, all, []int{did}, 0)
	return err
}

// rate is the i-th of n growth rates from 2.8 to 4.
func rate(n, i int) float64 {
	if n == 1 {
		return 2.8
	}
	return 2.8 + 1.2*float64(i)/float64(n-1)
}

// logistic is the mean of x over the last 100 of 2000 steps of the
// logistic map with growth rate r from x = 0.3.
func logistic(r float64) float64 {
	x, sum := 0.3, 0.0
	for k := range 2000 {
		x = r * x * (1 - x)
		if k >= 1900 {
			sum += x
		}
	}
	return sum / 100
}

func line(n int, res result) string {
	return fmt.Sprintf("r=%.4f mean x=%.12f", rate(n, res.I), res.X)
}
