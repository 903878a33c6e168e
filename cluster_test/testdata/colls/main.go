// Command colls runs collectives for cluster_test's checks of mismatches
// and of ranks that die or stop in the middle of collectives.
//
//	colls mismatch
//	colls loop small|large|both [STOPFILE]
//
// Every rank first prints "pid R PID" and "job R ID".
//
// mismatch runs the cases of mismatchCases one after the other on 5 ranks:
// each makes the ranks' calls not fit together; every rank prints
//
//	R NAME: ERROR
//	R NAME is-mismatch=BOOL is-invalid=BOOL fields=ARG,RANKA,VALUEA,RANKB,VALUEB
//
// (fields only for a *MismatchError), checks that an Allreduce afterwards
// is right, and prints "R done" at the end.
//
// loop runs rounds of collectives (small: Barrier, Allreduce and Bcast of
// one number; large: AllreduceSlice and Bcast of 1 MiB; both), checking every
// result, and rank 0 prints "round I" after each. Without STOPFILE it
// loops until a call fails; then the rank prints
//
//	R failed: ERROR
//	R rank-lost=BOOL
//	R lost K               (the rank that comm's Lost() reports)
//
// and the survivors (run it with decorun --keep-going) meet by
// point-to-point at the lowest of them before they close, so that none
// closes while another is still in its call. With STOPFILE, rank 0 checks
// in every round whether the file exists and broadcasts the answer; 10
// rounds after it appeared every rank prints "R done ROUNDS" and closes.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"slices"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: colls mismatch | colls loop small|large|both [STOPFILE]")
	}
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("pid %d %d\njob %d %s\n", c.Rank(), os.Getpid(), c.Rank(), c.JobID())
	switch os.Args[1] {
	case "mismatch":
		err = mismatch(ctx, c)
	case "loop":
		if len(os.Args) < 3 {
			log.Fatal("usage: colls loop small|large|both [STOPFILE]")
		}
		stop := ""
		if len(os.Args) > 3 {
			stop = os.Args[3]
		}
		err = loop(ctx, c, os.Args[2], stop)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		log.Fatalf("rank %d: %v", c.Rank(), err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
}

func mismatch(ctx context.Context, c *comm.Comm) error {
	if c.Size() != 5 {
		return fmt.Errorf("mismatch needs 5 ranks, not %d", c.Size())
	}
	for _, tc := range mismatchCases {
		err := tc.call(ctx, c)
		fmt.Printf("%d %s: %v\n", c.Rank(), tc.name, err)
		fields := ""
		var me *collectives.MismatchError
		if errors.As(err, &me) {
			fields = fmt.Sprintf(" fields=%s,%d,%d,%d,%d", me.Arg, me.RankA, me.ValueA, me.RankB, me.ValueB)
		}
		fmt.Printf("%d %s is-mismatch=%t is-invalid=%t%s\n", c.Rank(), tc.name,
			errors.Is(err, collectives.ErrMismatch), errors.Is(err, collectives.ErrInvalidArg), fields)
		got, err := collectives.Allreduce(ctx, c, c.Rank()+1, collectives.Sum)
		if err != nil || got != 15 {
			return fmt.Errorf("Allreduce after case %s: %d, %v; want 15", tc.name, got, err)
		}
	}
	fmt.Printf("%d done\n", c.Rank())
	return nil
}

// mismatchCases are calls that do not fit together on 5 ranks.
var mismatchCases = []struct {
	name string
	call func(ctx context.Context, c *comm.Comm) error
}{
	{"roots", func(ctx context.Context, c *comm.Comm) error {
		_, err := collectives.Bcast(ctx, c, 1, c.Rank()%2)
		return err
	}},
	{"roots-1MiB", func(ctx context.Context, c *comm.Comm) error {
		_, err := collectives.Bcast(ctx, c, make([]byte, 1<<20), c.Rank()/3)
		return err
	}},
	{"collectives", func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() == 3 {
			_, err := collectives.Reduce(ctx, c, 1, collectives.Sum, 0)
			return err
		}
		_, err := collectives.Bcast(ctx, c, 1, 0)
		return err
	}},
	{"barrier-allreduce", func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() == 1 {
			return collectives.Barrier(ctx, c)
		}
		_, err := collectives.Allreduce(ctx, c, 1, collectives.Sum)
		return err
	}},
	{"lengths", func(ctx context.Context, c *comm.Comm) error {
		_, err := collectives.AllreduceSlice(ctx, c, make([]float64, 4+c.Rank()/4), collectives.Sum)
		return err
	}},
	{"lengths-large", func(ctx context.Context, c *comm.Comm) error {
		_, err := collectives.AllreduceSlice(ctx, c, make([]int64, 70000+c.Rank()/4), collectives.Sum)
		return err
	}},
	{"reduce-lengths", func(ctx context.Context, c *comm.Comm) error {
		_, err := collectives.ReduceSlice(ctx, c, make([]int, 3-c.Rank()/2), collectives.Sum, 1)
		return err
	}},
	{"gather-lengths", func(ctx context.Context, c *comm.Comm) error {
		_, err := collectives.Allgather(ctx, c, make([]int32, 2+c.Rank()/4))
		return err
	}},
	{"types", func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() == 2 {
			_, err := collectives.Allreduce(ctx, c, 1.0, collectives.Sum)
			return err
		}
		_, err := collectives.Allreduce(ctx, c, 1, collectives.Sum)
		return err
	}},
	{"gather-types", func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() == 2 {
			_, err := collectives.Gather(ctx, c, []float64{1}, 4)
			return err
		}
		_, err := collectives.Gather(ctx, c, []int64{1}, 4)
		return err
	}},
	{"one-negative-root", func(ctx context.Context, c *comm.Comm) error {
		root := 0
		if c.Rank() == 4 {
			root = -1
		}
		_, err := collectives.Reduce(ctx, c, 1, collectives.Sum, root)
		return err
	}},
	{"indivisible", func(ctx context.Context, c *comm.Comm) error {
		_, err := collectives.Scatter(ctx, c, make([]int, 7), 3)
		return err
	}},
	// Lengths and calls on both sides of the sizes where an implementation
	// may take another data path: rank 4's data is large, the others' small.
	{"lengths-straddle", func(ctx context.Context, c *comm.Comm) error {
		_, err := collectives.AllreduceSlice(ctx, c, make([]int64, 8+c.Rank()/4*40000), collectives.Sum)
		return err
	}},
	{"allgather-straddle", func(ctx context.Context, c *comm.Comm) error {
		_, err := collectives.Allgather(ctx, c, make([]int32, 1+c.Rank()/4*100000))
		return err
	}},
	{"collectives-straddle", func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() == 4 {
			_, err := collectives.ReduceSlice(ctx, c, make([]int64, 40000), collectives.Sum, 0)
			return err
		}
		_, err := collectives.Bcast(ctx, c, int64(1), 0)
		return err
	}},
	{"split-barrier", func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() >= 3 {
			return collectives.Barrier(ctx, c)
		}
		s, err := c.Split(ctx, 0, 0)
		if err == nil {
			s.Close()
		}
		return err
	}},
}

// loop runs rounds of collectives; see the package doc.
func loop(ctx context.Context, c *comm.Comm, sizes string, stopFile string) error {
	r := c.Rank()
	const m = 1 << 17 // 1 MiB of int64
	v := make([]int64, m)
	after := -1 // rounds left once the stop file appeared
	for i := 0; ; i++ {
		var err error
		if sizes != "large" {
			err = smallRound(ctx, c, i)
		}
		if err == nil && sizes != "small" {
			err = largeRound(ctx, c, i, v)
		}
		if err == nil && stopFile != "" {
			seen := false
			if r == 0 && after < 0 {
				_, e := os.Stat(stopFile)
				seen = e == nil
			}
			seen, err = collectives.Bcast(ctx, c, seen, 0)
			if err == nil && seen && after < 0 {
				after = 10
			}
		}
		if err != nil {
			if stopFile != "" {
				return fmt.Errorf("round %d: %w", i, err)
			}
			return survive(ctx, c, err)
		}
		if r == 0 {
			fmt.Printf("round %d\n", i)
		}
		if after == 0 {
			fmt.Printf("%d done %d\n", r, i+1)
			return nil
		}
		if after > 0 {
			after--
		}
	}
}

// smallRound is round i of loop with one number, checking every result.
func smallRound(ctx context.Context, c *comm.Comm, i int) error {
	r, p := c.Rank(), c.Size()
	root := i % p
	if err := collectives.Barrier(ctx, c); err != nil {
		return err
	}
	s, err := collectives.Allreduce(ctx, c, int64(r+i), collectives.Sum)
	if err != nil {
		return err
	}
	if want := int64(p*(p-1)/2 + p*i); s != want {
		return fmt.Errorf("round %d: Allreduce = %d; want %d", i, s, want)
	}
	b, err := collectives.Bcast(ctx, c, int64(1000*r+i), root)
	if err != nil {
		return err
	}
	if want := int64(1000*root + i); b != want {
		return fmt.Errorf("round %d: Bcast = %d; want %d", i, b, want)
	}
	return nil
}

// largeRound is round i of loop with 1 MiB (v), checking every result.
func largeRound(ctx context.Context, c *comm.Comm, i int, v []int64) error {
	r, p := c.Rank(), c.Size()
	root := (i + 1) % p
	for k := range v {
		v[k] = int64(r*k + i)
	}
	if err := collectives.AllreduceSliceInto(ctx, c, v, v, collectives.Sum); err != nil {
		return err
	}
	for k, x := range v {
		if want := int64(k*p*(p-1)/2 + p*i); x != want {
			return fmt.Errorf("round %d: AllreduceSlice element %d = %d; want %d", i, k, x, want)
		}
	}
	for k := range v {
		v[k] = int64(root*k ^ i)
	}
	got, err := collectives.Bcast(ctx, c, v, root)
	if err != nil {
		return err
	}
	for k, x := range got {
		if want := int64(root*k ^ i); x != want {
			return fmt.Errorf("round %d: Bcast element %d = %d; want %d", i, k, x, want)
		}
	}
	return nil
}

// survive reports a failed call and Lost's notice, then meets the other
// survivors at the lowest of them (by point-to-point, which does not
// involve the lost rank) before the rank closes.
func survive(ctx context.Context, c *comm.Comm, failed error) error {
	r := c.Rank()
	fmt.Printf("%d failed: %v\n%d rank-lost=%t\n", r, failed, r, errors.Is(failed, comm.ErrRankLost))
	lost := <-c.Lost()
	fmt.Printf("%d lost %d\n", r, lost)
	var alive []int
	for q := range c.Size() {
		if q != lost {
			alive = append(alive, q)
		}
	}
	const tag = 77
	if r == alive[0] {
		for range alive[1:] {
			if _, _, err := c.Recv(ctx, comm.AnySource, tag); err != nil {
				return err
			}
		}
		for _, q := range alive[1:] {
			if err := c.Send(ctx, q, tag, nil); err != nil {
				return err
			}
		}
		return nil
	}
	if !slices.Contains(alive, r) {
		return errors.New("this rank is the lost one")
	}
	if err := c.Send(ctx, alive[0], tag, nil); err != nil {
		return err
	}
	_, _, err := c.Recv(ctx, alive[0], tag)
	return err
}
