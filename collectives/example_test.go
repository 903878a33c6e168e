package collectives_test

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// ranks runs body as every rank of an n-rank job inside this process (under
// decorun each rank is its own process and runs body once) and prints each
// rank's line, in rank order.
func ranks(n int, body func(ctx context.Context, c *comm.Comm) (string, error)) {
	cs, stop, err := commtest.Start(n)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	lines := make([]string, n)
	var wg sync.WaitGroup
	for r, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := body(context.Background(), c)
			if err != nil {
				out = "error: " + err.Error()
			}
			lines[r] = fmt.Sprintf("rank %d: %s", r, out)
		}()
	}
	wg.Wait()
	fmt.Println(strings.Join(lines, "\n"))
}

// Every rank contributes rank+1; every rank gets the sum.
func ExampleAllreduce() {
	ranks(4, func(ctx context.Context, c *comm.Comm) (string, error) {
		sum, err := collectives.Allreduce(ctx, c, c.Rank()+1, collectives.Sum[int])
		return fmt.Sprint(sum), err
	})
	// Output:
	// rank 0: 10
	// rank 1: 10
	// rank 2: 10
	// rank 3: 10
}

// Element-wise reductions of vectors, and MaxLoc: which rank holds the
// largest value.
func ExampleAllreduceSlice() {
	ranks(4, func(ctx context.Context, c *comm.Comm) (string, error) {
		r := c.Rank()
		v, err := collectives.AllreduceSlice(ctx, c, []int{r, 10 * r}, collectives.Sum[int])
		if err != nil {
			return "", err
		}
		best, err := collectives.Allreduce(ctx, c, collectives.Loc[int]{Value: (r * 7) % 4, Index: r},
			collectives.MaxLoc[int])
		return fmt.Sprintf("%v, max %d at rank %d", v, best.Value, best.Index), err
	})
	// Output:
	// rank 0: [6 60], max 3 at rank 1
	// rank 1: [6 60], max 3 at rank 1
	// rank 2: [6 60], max 3 at rank 1
	// rank 3: [6 60], max 3 at rank 1
}

// The result goes into a buffer of the caller's, reused from call to call
// (MPI_Allreduce with a receive buffer), or into the input itself (out =
// in, MPI_IN_PLACE). An out of the wrong length, here on rank 1 only,
// fails the call on every rank.
func ExampleAllreduceSliceInto() {
	ranks(3, func(ctx context.Context, c *comm.Comm) (string, error) {
		r := float64(c.Rank())
		in, out := []float64{r, 0.5}, make([]float64, 2)
		for step := range 2 { // no allocation of out per call
			in[1] = float64(step)
			if err := collectives.AllreduceSliceInto(ctx, c, in, out, collectives.Sum); err != nil {
				return "", err
			}
		}
		v := []float64{1, r}
		if err := collectives.AllreduceSliceInto(ctx, c, v, v, collectives.Max); err != nil { // in place
			return "", err
		}
		bad := out
		if c.Rank() == 1 {
			bad = out[:1]
		}
		err := collectives.AllreduceSliceInto(ctx, c, in, bad, collectives.Sum)
		return fmt.Sprintf("%v %v; %v", out, v, err), nil
	})
	// Output:
	// rank 0: [3 3] [1 2]; collectives: AllreduceSliceInto: rank 1 passed out of length 1 for in of length 2
	// rank 1: [3 3] [1 2]; collectives: AllreduceSliceInto: rank 1 passed out of length 1 for in of length 2
	// rank 2: [3 3] [1 2]; collectives: AllreduceSliceInto: rank 1 passed out of length 1 for in of length 2
}

// Any value that CBOR can encode can be broadcast: here a struct from rank 0.
func ExampleBcast() {
	type config struct {
		Name  string
		Steps int
	}
	ranks(4, func(ctx context.Context, c *comm.Comm) (string, error) {
		var cfg config
		if c.Rank() == 0 {
			cfg = config{Name: "grid", Steps: 100}
		}
		cfg, err := collectives.Bcast(ctx, c, cfg, 0)
		return fmt.Sprintf("%+v", cfg), err
	})
	// Output:
	// rank 0: {Name:grid Steps:100}
	// rank 1: {Name:grid Steps:100}
	// rank 2: {Name:grid Steps:100}
	// rank 3: {Name:grid Steps:100}
}

// Rank 0 scatters a slice in equal blocks, every rank squares its block,
// and rank 0 gathers the blocks back in rank order.
func ExampleScatter() {
	ranks(4, func(ctx context.Context, c *comm.Comm) (string, error) {
		var data []int
		if c.Rank() == 0 {
			data = []int{1, 2, 3, 4, 5, 6, 7, 8}
		}
		part, err := collectives.Scatter(ctx, c, data, 0)
		if err != nil {
			return "", err
		}
		for i := range part {
			part[i] *= part[i]
		}
		all, err := collectives.Gather(ctx, c, part, 0)
		return fmt.Sprintf("part %v, gathered %v", part, all), err
	})
	// Output:
	// rank 0: part [1 4], gathered [1 4 9 16 25 36 49 64]
	// rank 1: part [9 16], gathered []
	// rank 2: part [25 36], gathered []
	// rank 3: part [49 64], gathered []
}

// Scan gives each rank the fold over ranks 0..itself; Exscan over the ranks
// before it (rank 0's result is the zero value).
func ExampleScan() {
	ranks(4, func(ctx context.Context, c *comm.Comm) (string, error) {
		in, err := collectives.Scan(ctx, c, c.Rank()+1, collectives.Sum[int])
		if err != nil {
			return "", err
		}
		ex, err := collectives.Exscan(ctx, c, c.Rank()+1, collectives.Sum[int])
		return fmt.Sprintf("scan %d, exscan %d", in, ex), err
	})
	// Output:
	// rank 0: scan 1, exscan 0
	// rank 1: scan 3, exscan 1
	// rank 2: scan 6, exscan 3
	// rank 3: scan 10, exscan 6
}

// A mismatch that can be detected is an error on every rank, naming the
// ranks and values, never a hang.
func ExampleReduce_mismatch() {
	ranks(3, func(ctx context.Context, c *comm.Comm) (string, error) {
		root := 0
		if c.Rank() == 2 {
			root = 1
		}
		_, err := collectives.Reduce(ctx, c, 1, collectives.Sum[int], root)
		return "", err
	})
	// Output:
	// rank 0: error: collectives: Reduce: rank 0 passed root 0 but rank 2 passed root 1
	// rank 1: error: collectives: Reduce: rank 0 passed root 0 but rank 2 passed root 1
	// rank 2: error: collectives: Reduce: rank 0 passed root 0 but rank 2 passed root 1
}

// Split makes sub-communicators; collectives on them never match traffic of
// the parent.
func ExampleBarrier() {
	ranks(4, func(ctx context.Context, c *comm.Comm) (string, error) {
		half, err := c.Split(ctx, c.Rank()%2, c.Rank())
		if err != nil {
			return "", err
		}
		defer half.Close()
		sum, err := collectives.Allreduce(ctx, half, c.Rank(), collectives.Sum[int])
		if err != nil {
			return "", err
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return "", err
		}
		return fmt.Sprintf("rank %d of %d in my half, whose ranks sum to %d", half.Rank(), half.Size(), sum), nil
	})
	// Output:
	// rank 0: rank 0 of 2 in my half, whose ranks sum to 2
	// rank 1: rank 0 of 2 in my half, whose ranks sum to 4
	// rank 2: rank 1 of 2 in my half, whose ranks sum to 2
	// rank 3: rank 1 of 2 in my half, whose ranks sum to 4
}

// Gather collects every rank's part at the root, in rank order; the other
// ranks get nil.
func ExampleGather() {
	ranks(3, func(ctx context.Context, c *comm.Comm) (string, error) {
		names, err := collectives.Gather(ctx, c, []string{fmt.Sprint("worker-", c.Rank())}, 1)
		return fmt.Sprint(names), err
	})
	// Output:
	// rank 0: []
	// rank 1: [worker-0 worker-1 worker-2]
	// rank 2: []
}

// Reduce folds op over every rank's value in rank order and returns the
// result at the root (the zero value elsewhere); op may be any associative
// function, here one on a struct.
func ExampleReduce() {
	type stats struct{ N, Sum, Max int }
	merge := func(a, b stats) stats { return stats{a.N + b.N, a.Sum + b.Sum, max(a.Max, b.Max)} }
	ranks(4, func(ctx context.Context, c *comm.Comm) (string, error) {
		v := (c.Rank() * 5) % 7 // 0 5 3 1
		s, err := collectives.Reduce(ctx, c, stats{1, v, v}, merge, 0)
		return fmt.Sprintf("%+v", s), err
	})
	// Output:
	// rank 0: {N:4 Sum:9 Max:5}
	// rank 1: {N:0 Sum:0 Max:0}
	// rank 2: {N:0 Sum:0 Max:0}
	// rank 3: {N:0 Sum:0 Max:0}
}
