package comm

import (
	"context"
	"testing"
)

// A small send and its receive into the caller's buffer allocate nothing
// on the shared-memory path, on either rank (see the collectives' test of
// the same name for why it matters).
func TestSmallCallsAllocateNothing(t *testing.T) {
	const runs = 2000
	cs := worldOn(t, 2, "shm")
	ctx := context.Background()
	peer := make(chan error, 1)
	go func() {
		b := make([]byte, 8)
		for range runs + 1 { // AllocsPerRun's warm-up run, and the runs
			if _, err := cs[1].RecvInto(ctx, b, 0, 0); err != nil {
				peer <- err
				return
			}
			if err := cs[1].Send(ctx, 0, 0, b); err != nil {
				peer <- err
				return
			}
		}
		peer <- nil
	}()
	b := make([]byte, 8)
	var err error
	allocs := testing.AllocsPerRun(runs, func() {
		if e := cs[0].Send(ctx, 1, 0, b); e != nil && err == nil {
			err = e
		}
		if _, e := cs[0].RecvInto(ctx, b, 1, 0); e != nil && err == nil {
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
		t.Errorf("%v allocations per round trip (both ranks); want none", allocs)
	}
}
