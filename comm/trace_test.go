package comm

import (
	"context"
	"testing"

	"github.com/decorun/decorun/internal/trace"
)

// TestTraceOffAllocatesNothing: with tracing off (no decorun --trace), the
// hooks on the blocking path cost no allocation: a ping-pong of Send and
// RecvInto over shared memory allocates nothing.
func TestTraceOffAllocatesNothing(t *testing.T) {
	if trace.On() {
		t.Skip("this process records")
	}
	cs := worldOn(t, 2, "shm")
	ctx := context.Background()
	buf, rbuf := make([]byte, 64), make([]byte, 64)
	const rounds = 200
	done := make(chan error, 1)
	go func() {
		for range rounds + 1 { // AllocsPerRun runs f once more to warm up
			if _, err := cs[1].RecvInto(ctx, rbuf, 0, 7); err != nil {
				done <- err
				return
			}
			if err := cs[1].Send(ctx, 0, 7, rbuf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	allocs := testing.AllocsPerRun(rounds, func() {
		if err := cs[0].Send(ctx, 1, 7, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := cs[0].RecvInto(ctx, buf, 1, 7); err != nil {
			t.Fatal(err)
		}
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Errorf("%.1f allocations per round trip with tracing off; want 0", allocs)
	}
}
