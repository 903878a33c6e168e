package comm_test

// Tests of MPI's progress rule (see also progress_random_test.go): a send and the receive that matches it
// complete, whatever other messages the sender has outstanding to the same
// receiver that no receive has matched yet.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// progressTransports are the data paths the progress tests run on: auto
// (shared memory between these in-process ranks), NATS and direct TCP.
var progressTransports = []string{"auto", "nats", "tcp"}

// floodCount is how many 64 KiB messages each sender leaves unmatched at
// rank 0: more than the credit window of an n-rank job.
func floodCount(n int) int {
	w := 32 << 20 / (n - 1)
	w = min(max(w, 64<<10), 16<<20)
	return w/(64<<10) + 44
}

// TestProgressPastUnmatchedEager is the textbook case: every rank but 0
// posts more Isends of 64 KiB to rank 0 than its credit window holds, then
// sends one message on another tag and one on a Dup, and joins a Barrier
// and an Allreduce. Rank 0 takes those first and the flood last, which MPI
// requires to complete (the flood's sends go by rendezvous once the window
// is full, and nothing else waits behind them).
func TestProgressPastUnmatchedEager(t *testing.T) {
	for _, tr := range progressTransports {
		for _, n := range []int{2, 8} {
			t.Run(fmt.Sprintf("%s/n=%d", tr, n), func(t *testing.T) {
				cs := commtest.WorldOn(t, n, tr)
				k := floodCount(n)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // hang guard
				defer cancel()
				commtest.Run(t, cs, func(c *comm.Comm) error {
					dup, err := c.Dup(ctx)
					if err != nil {
						return err
					}
					return floodThenOthers(ctx, c, dup, k)
				})
			})
		}
	}
}

func floodThenOthers(ctx context.Context, c, dup *comm.Comm, k int) error {
	const size = 64 << 10
	me, n := c.Rank(), c.Size()
	if me != 0 {
		reqs := make([]*comm.Request, k)
		for i := range k {
			b := make([]byte, size)
			binary.LittleEndian.PutUint64(b, uint64(me<<32|i))
			b[size-1] = byte(i)
			q, err := c.Isend(0, 1, b)
			if err != nil {
				return fmt.Errorf("Isend %d: %w", i, err)
			}
			reqs[i] = q
		}
		if err := c.Send(ctx, 0, 2, []byte{byte(me)}); err != nil {
			return fmt.Errorf("Send on tag 2 behind the flood: %w", err)
		}
		if err := dup.Send(ctx, 0, 1, []byte{byte(me), 'd'}); err != nil {
			return fmt.Errorf("Send on the Dup behind the flood: %w", err)
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return fmt.Errorf("Barrier behind the flood: %w", err)
		}
		sum, err := collectives.Allreduce(ctx, c, me, collectives.Sum[int])
		if err != nil {
			return fmt.Errorf("Allreduce behind the flood: %w", err)
		}
		if want := n * (n - 1) / 2; sum != want {
			return fmt.Errorf("Allreduce = %d, want %d", sum, want)
		}
		if err := comm.WaitAll(ctx, reqs...); err != nil {
			return fmt.Errorf("the flood's Isends: %w", err)
		}
		return nil
	}
	for src := 1; src < n; src++ {
		b, _, err := c.Recv(ctx, src, 2)
		if err != nil || len(b) != 1 || int(b[0]) != src {
			return fmt.Errorf("Recv tag 2 from %d before the flood: %q, %v", src, b, err)
		}
		b, _, err = dup.Recv(ctx, src, 1)
		if err != nil || len(b) != 2 || int(b[0]) != src || b[1] != 'd' {
			return fmt.Errorf("Recv on the Dup from %d before the flood: %q, %v", src, b, err)
		}
	}
	if err := collectives.Barrier(ctx, c); err != nil {
		return fmt.Errorf("Barrier before the flood: %w", err)
	}
	sum, err := collectives.Allreduce(ctx, c, 0, collectives.Sum[int])
	if err != nil {
		return fmt.Errorf("Allreduce before the flood: %w", err)
	}
	if want := n * (n - 1) / 2; sum != want {
		return fmt.Errorf("Allreduce = %d, want %d", sum, want)
	}
	for src := 1; src < n; src++ {
		for i := range k {
			b, st, err := c.Recv(ctx, src, 1)
			if err != nil {
				return fmt.Errorf("flood message %d from %d: %w", i, src, err)
			}
			if len(b) != size || binary.LittleEndian.Uint64(b) != uint64(src<<32|i) || b[size-1] != byte(i) || st.Size != size {
				return fmt.Errorf("flood message %d from %d: got %d bytes starting %x (out of order or corrupt)", i, src, len(b), b[:min(8, len(b))])
			}
		}
	}
	return nil
}

// TestCancelSendWaitingForCredit: a Send queued behind Isends that wait
// for eager credit (the receiver holds a window of unmatched messages and
// waits for nothing, so it does not nudge) is withdrawn when its ctx ends,
// as if never called: the receiver later gets the flood and the next
// message, never the withdrawn one.
func TestCancelSendWaitingForCredit(t *testing.T) {
	for _, tr := range progressTransports {
		t.Run(tr, func(t *testing.T) {
			cs := commtest.WorldOn(t, 2, tr)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // hang guard
			defer cancel()
			k := floodCount(2)
			tried := make(chan struct{}) // rank 1 tried its Send; rank 0 posted nothing meanwhile
			commtest.Run(t, cs, func(c *comm.Comm) error {
				if c.Rank() == 1 {
					reqs := make([]*comm.Request, k)
					for i := range k {
						b := make([]byte, 64<<10)
						b[0] = byte(i)
						q, err := c.Isend(0, 1, b)
						if err != nil {
							return err
						}
						reqs[i] = q
					}
					short, stop := context.WithTimeout(ctx, 100*time.Millisecond)
					defer stop()
					err := c.Send(short, 0, 1, []byte("withdrawn"))
					close(tried)
					if !errors.Is(err, context.DeadlineExceeded) {
						return fmt.Errorf("Send behind a full window with no receive posted: %v, want %v", err, context.DeadlineExceeded)
					}
					if err := comm.WaitAll(ctx, reqs...); err != nil {
						return err
					}
					return c.Send(ctx, 0, 1, []byte("last"))
				}
				select {
				case <-tried:
				case <-ctx.Done():
					return ctx.Err()
				}
				for i := range k + 1 {
					b, _, err := c.Recv(ctx, 1, 1)
					if err != nil {
						return err
					}
					if i == k {
						if string(b) != "last" {
							return fmt.Errorf("after the flood got %q, want %q (the withdrawn Send must not arrive)", b, "last")
						}
					} else if len(b) != 64<<10 || b[0] != byte(i) {
						return fmt.Errorf("flood message %d: %d bytes, first %d", i, len(b), b[0])
					}
				}
				return nil
			})
		})
	}
}
