package collectives_test

import (
	"context"
	"math"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// maxIallreduceAllocs bounds the allocations of one small
// IallreduceSliceInto and its Wait on one rank: the request (which holds
// the ctx that carries the call's number) and the closure of its blocking
// form; the call itself goes back to the pool once it is complete. No
// timer, channel or goroutine per call: starting a call must cost little
// beside the compute it overlaps, and garbage made at every call brings
// the collector round, which stalls the ranks waiting for the one whose
// core it borrowed.
const maxIallreduceAllocs = 2

// TestIallreduceAllocations: a small nonblocking Allreduce on a
// communicator with a shared-memory region allocates only its request
// (both ranks counted, so at most twice maxIallreduceAllocs per call), and
// gives the right sum.
func TestIallreduceAllocations(t *testing.T) {
	const runs = 2000
	cs := commtest.WorldOn(t, 2, "shm")
	ctx := context.Background()
	in := [2][]float64{{1}, {2}}
	out := [2][]float64{{0}, {0}}
	f := func(c *comm.Comm) error {
		r := c.Rank()
		out[r][0] = 0
		if _, err := collectives.IallreduceSliceInto(ctx, c, in[r], out[r], collectives.Sum).Wait(ctx); err != nil {
			return err
		}
		if out[r][0] != 3 {
			t.Errorf("rank %d: Iallreduce gave %v; want 3", r, out[r][0])
		}
		return nil
	}
	// AllocsPerRun counts every allocation of the process: a goroutine of
	// another test's world still ending, or a call that took over the
	// progress goroutine's millisecond on a loaded machine, adds some. The
	// least of three measurements is the call's own.
	const attempts = 3
	peer := make(chan error, 1)
	go func() {
		for range attempts*(runs+1) + 1 { // per attempt AllocsPerRun's warm-up run and the runs; the first call below
			if err := f(cs[1]); err != nil {
				peer <- err
				return
			}
		}
		peer <- nil
	}()
	if err := f(cs[0]); err != nil { // attaches to the region
		t.Fatal(err)
	}
	var err error
	allocs := math.Inf(1)
	for range attempts {
		allocs = min(allocs, testing.AllocsPerRun(runs, func() {
			if e := f(cs[0]); e != nil && err == nil {
				err = e
			}
		}))
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := <-peer; err != nil {
		t.Fatal(err)
	}
	// On a loaded machine (CI's two cores running other packages' tests
	// beside this one) the peer may be descheduled past the progress
	// goroutine's delay in every run of all three attempts: the call it
	// takes over allocates one object more per rank (measured: 5 against
	// 4 under go test -race ./... here). Allow that, not more.
	if allocs > 2*maxIallreduceAllocs+2 {
		t.Errorf("%v allocations per Iallreduce and Wait (both ranks); want at most %d", allocs, 2*maxIallreduceAllocs+2)
	}
}
