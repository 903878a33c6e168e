package collectives_test

import (
	"context"
	"testing"

	"github.com/decorun/decorun/comm/commtest"
)

// A small blocking collective on a communicator with a shared-memory region
// allocates nothing, on either rank: an iterative solver's per-step
// Allreduce must not bring the garbage collector round (a rank whose core
// the collector borrows holds every other rank up).
func TestSmallCallsAllocateNothing(t *testing.T) {
	const runs = 2000
	for _, tc := range smallCalls() {
		t.Run(tc.name, func(t *testing.T) {
			cs := commtest.WorldOn(t, 2, "shm")
			ctx := context.Background()
			peer := make(chan error, 1)
			go func() {
				for range runs + 2 { // AllocsPerRun's warm-up run, the runs, and the first call below
					if err := tc.f(ctx, cs[1]); err != nil {
						peer <- err
						return
					}
				}
				peer <- nil
			}()
			if err := tc.f(ctx, cs[0]); err != nil { // attaches to the region
				t.Fatal(err)
			}
			var err error
			allocs := testing.AllocsPerRun(runs, func() {
				if e := tc.f(ctx, cs[0]); e != nil && err == nil {
					err = e
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := <-peer; err != nil {
				t.Fatal(err)
			}
			if allocs > 0 {
				t.Errorf("%v allocations per call (both ranks); want none", allocs)
			}
		})
	}
}
