package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/decorun/decorun/comm"
)

// longEager is a message above one NATS frame but below W/4 at rdvRanks:
// sent eagerly as a head frame and Data chunks.
const longEager = 3 << 19 // 1.5 MiB

// TestTruncationIsAnErrorOnTheReceiver: a message larger than the
// receive buffer fails that receive with ErrTruncate, whose status and
// text give the message's real size (so the caller can size a buffer); the
// message is consumed, the sender completes normally, and later messages
// arrive intact. Eager, long eager and rendezvous messages alike, by
// RecvInto and IrecvInto.
func TestTruncationIsAnErrorOnTheReceiver(t *testing.T) {
	sizes := []int{100, longEager, large}
	run(t, rdvRanks, func(ctx context.Context, c *comm.Comm) error {
		switch c.Rank() {
		case 1:
			for i, n := range sizes {
				if err := c.Send(ctx, 0, 0, payload(1, i, n)); err != nil {
					return fmt.Errorf("Send of %d bytes to a receive too small: %w; want success", n, err)
				}
				if err := c.Send(ctx, 0, 0, payload(1, 100+i, n)); err != nil {
					return err
				}
			}
		case 0:
			buf := make([]byte, 10)
			for i, n := range sizes {
				var st comm.Status
				var err error
				if i%2 == 0 {
					st, err = c.RecvInto(ctx, buf, 1, 0)
				} else {
					var q *comm.Request
					if q, err = c.IrecvInto(buf, 1, 0); err != nil {
						return err
					}
					st, err = q.Wait(ctx)
				}
				if !errors.Is(err, comm.ErrTruncate) {
					return fmt.Errorf("receive of %d bytes into 10: error %v; want ErrTruncate", n, err)
				}
				if st.Size != n || st.Source != 1 {
					return fmt.Errorf("truncated receive: status %+v; want size %d from rank 1", st, n)
				}
				if want := fmt.Sprintf("message of %d bytes from rank 1 (tag 0) is too large for the receive buffer of 10 bytes", n); !contains(err, want) {
					return fmt.Errorf("error %q does not say %q", err, want)
				}
				// The next message is whole.
				next := make([]byte, n)
				if st, err := c.RecvInto(ctx, next, 1, 0); err != nil || st.Size != n {
					return fmt.Errorf("receive after the truncation: %+v, %v", st, err)
				}
				if err := checkPayload("after the truncation", next, 1, 100+i, n); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// TestCancelledReceiveGetsNothing: a receive cancelled before a message
// matched it (Request.Cancel, or its ctx ending) completes with
// context.Canceled or the deadline; the next message goes to the next
// receive.
func TestCancelledReceiveGetsNothing(t *testing.T) {
	run(t, 2, func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() == 1 {
			if _, _, err := c.Recv(ctx, 0, 1); err != nil { // rank 0 cancelled its receives
				return err
			}
			return c.Send(ctx, 0, 0, payload(1, 0, 20))
		}
		q, err := c.Irecv(1, 0)
		if err != nil {
			return err
		}
		q.Cancel()
		if _, err := q.Wait(ctx); !errors.Is(err, context.Canceled) {
			return fmt.Errorf("Wait on a cancelled Irecv: %v; want context.Canceled", err)
		}
		if done, _, err := q.Test(); !done || !errors.Is(err, context.Canceled) {
			return fmt.Errorf("Test on a cancelled Irecv: %v, %v; want done, context.Canceled", done, err)
		}
		short, cancel := context.WithCancel(ctx)
		cancel()
		if _, _, err := c.Recv(short, 1, 0); !errors.Is(err, context.Canceled) {
			return fmt.Errorf("Recv with a cancelled ctx: %v; want context.Canceled", err)
		}
		if err := c.Send(ctx, 1, 1, nil); err != nil {
			return err
		}
		got, _, err := c.Recv(ctx, 1, 0)
		if err != nil {
			return err
		}
		if q.Data() != nil {
			return fmt.Errorf("the cancelled Irecv got data")
		}
		return checkPayload("Recv after cancelled receives", got, 1, 0, 20)
	})
}

// TestCancelledRendezvousSendIsNeverReceived: a large Isend cancelled
// before a receive took it is revoked: Wait reports context.Canceled and
// the receiver gets the sender's next message instead, whether or not its
// receive had already matched the revoked one.
func TestCancelledRendezvousSendIsNeverReceived(t *testing.T) {
	run(t, rdvRanks, func(ctx context.Context, c *comm.Comm) error {
		switch c.Rank() {
		case 1:
			q, err := c.Isend(0, 0, payload(1, 0, large))
			if err != nil {
				return err
			}
			q.Cancel()
			if _, err := q.Wait(ctx); !errors.Is(err, context.Canceled) {
				return fmt.Errorf("Wait on a cancelled rendezvous Isend: %v; want context.Canceled", err)
			}
			return c.Send(ctx, 0, 0, payload(1, 1, 64))
		case 0:
			got, st, err := c.Recv(ctx, 1, 0)
			if err != nil {
				return err
			}
			if err := checkPayload("Recv", got, 1, 1, 64); err != nil {
				return fmt.Errorf("%w (status %+v)", err, st)
			}
			if _, ok, err := c.Iprobe(comm.AnySource, comm.AnyTag); ok || err != nil {
				return fmt.Errorf("Iprobe after the Recv: %v, %v; want nothing left", ok, err)
			}
		}
		return nil
	})
}

// TestCancelAfterCompletionHasNoEffect: cancelling a request that has
// completed leaves its result: the data and status stay, no error.
func TestCancelAfterCompletionHasNoEffect(t *testing.T) {
	run(t, 2, func(ctx context.Context, c *comm.Comm) error {
		peer := 1 - c.Rank()
		rq, err := c.Irecv(peer, 0)
		if err != nil {
			return err
		}
		sq, err := c.Isend(peer, 0, payload(c.Rank(), 0, 300))
		if err != nil {
			return err
		}
		if err := comm.WaitAll(ctx, sq, rq); err != nil {
			return err
		}
		rq.Cancel()
		sq.Cancel()
		st, err := rq.Wait(ctx)
		if err != nil || st.Size != 300 || st.Source != peer {
			return fmt.Errorf("Wait after Cancel of a completed Irecv: %+v, %v", st, err)
		}
		if _, err := sq.Wait(ctx); err != nil {
			return fmt.Errorf("Wait after Cancel of a completed Isend: %v", err)
		}
		return checkPayload("data after Cancel", rq.Data(), peer, 0, 300)
	})
}

// TestSelfMessages: a rank sends to itself by every call (Send, Isend,
// Sendrecv, eager and large), in a singleton world too; self messages are
// matched in order, seen by wildcards and probes, and never block the
// sender.
func TestSelfMessages(t *testing.T) {
	for _, n := range []int{1, rdvRanks} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			run(t, n, func(ctx context.Context, c *comm.Comm) error {
				me := c.Rank()
				if err := c.Send(ctx, me, 1, payload(me, 0, 10)); err != nil {
					return err
				}
				q, err := c.Isend(me, 1, payload(me, 1, large))
				if err != nil {
					return err
				}
				if err := c.Send(ctx, me, 2, payload(me, 2, 0)); err != nil {
					return err
				}
				st, err := c.Probe(ctx, comm.AnySource, comm.AnyTag)
				if err != nil || st.Source != me || st.Tag != 1 || st.Size != 10 {
					return fmt.Errorf("Probe of self messages: %+v, %v", st, err)
				}
				for i, want := range []struct{ tag, n int }{{1, 10}, {1, large}, {2, 0}} {
					got, st, err := c.Recv(ctx, comm.AnySource, comm.AnyTag)
					if err != nil {
						return err
					}
					if st.Source != me || st.Tag != want.tag {
						return fmt.Errorf("self message %d: status %+v", i, st)
					}
					if err := checkPayload("self message", got, me, i, want.n); err != nil {
						return err
					}
				}
				if _, err := q.Wait(ctx); err != nil {
					return err
				}
				got, _, err := c.Sendrecv(ctx, payload(me, 3, 5), me, 3, me, 3)
				if err != nil {
					return err
				}
				return checkPayload("Sendrecv with self", got, me, 3, 5)
			})
		})
	}
}

// TestZeroSizeMessages: empty messages (nil or zero-length) are messages:
// they are matched in order among others, probed with size 0, received
// into no buffer at all, and a non-empty message into no buffer is
// truncated.
func TestZeroSizeMessages(t *testing.T) {
	run(t, 2, func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() == 1 {
			var reqs []*comm.Request
			for i, data := range [][]byte{nil, {}, payload(1, 2, 3), nil, {9}} {
				if i == 3 {
					q, err := c.Isend(0, 0, data)
					if err != nil {
						return err
					}
					reqs = append(reqs, q)
					continue
				}
				if err := c.Send(ctx, 0, 0, data); err != nil {
					return err
				}
			}
			return comm.WaitAll(ctx, reqs...)
		}
		for i, n := range []int{0, 0, 3, 0} {
			st, err := c.Probe(ctx, 1, 0)
			if err != nil || st.Size != n {
				return fmt.Errorf("Probe of message %d: %+v, %v; want size %d", i, st, err, n)
			}
			var got []byte
			if n == 0 {
				st, err = c.RecvInto(ctx, nil, 1, 0)
			} else {
				got, st, err = c.Recv(ctx, 1, 0)
			}
			if err != nil || st.Size != n || len(got) != n {
				return fmt.Errorf("message %d: %d bytes, %+v, %v; want %d bytes", i, len(got), st, err, n)
			}
			if n > 0 {
				if err := checkPayload("between empty messages", got, 1, 2, 3); err != nil {
					return err
				}
			}
		}
		if _, err := c.RecvInto(ctx, nil, 1, 0); !errors.Is(err, comm.ErrTruncate) {
			return fmt.Errorf("1 byte into no buffer: %v; want ErrTruncate", err)
		}
		return nil
	})
}

func contains(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

// TestReceiveCancelledMidStreamDiscardsThatMessage: a receive cancelled
// after it matched a rendezvous message (its data may be streaming)
// completes with context.Canceled; that message is gone, the sender's
// send completes, and the next message goes to the next receive.
func TestReceiveCancelledMidStreamDiscardsThatMessage(t *testing.T) {
	run(t, rdvRanks, func(ctx context.Context, c *comm.Comm) error {
		switch c.Rank() {
		case 1:
			if err := c.Send(ctx, 0, 0, payload(1, 0, large)); err != nil {
				return fmt.Errorf("Send of the message whose receive was cancelled: %w", err)
			}
			return c.Send(ctx, 0, 0, payload(1, 1, 40))
		case 0:
			if _, err := c.Probe(ctx, 1, 0); err != nil { // its request-to-send is here
				return err
			}
			q, err := c.Irecv(1, 0)
			if err != nil {
				return err
			}
			q.Cancel()
			if _, err := q.Wait(ctx); !errors.Is(err, context.Canceled) {
				return fmt.Errorf("Wait on an Irecv cancelled after it matched: %v; want context.Canceled", err)
			}
			got, _, err := c.Recv(ctx, 1, 0)
			if err != nil {
				return err
			}
			return checkPayload("Recv after the cancelled one", got, 1, 1, 40)
		}
		return nil
	})
}

// TestRecvIntoLeavesRestOfBufferUntouched: a message shorter than the
// receive buffer fills only its first Size bytes, for eager, long eager and
// rendezvous messages, posted before or after the message arrived.
func TestRecvIntoLeavesRestOfBufferUntouched(t *testing.T) {
	sizes := []int{0, 100, longEager, large}
	run(t, rdvRanks, func(ctx context.Context, c *comm.Comm) error {
		switch c.Rank() {
		case 1:
			for i, n := range sizes {
				if err := c.Send(ctx, 0, i, payload(1, i, n)); err != nil {
					return err
				}
			}
		case 0:
			buf := make([]byte, large+1000)
			for i, n := range sizes {
				for k := range buf {
					buf[k] = 0xAA
				}
				var st comm.Status
				var err error
				if i%2 == 0 { // posted first (the message may or may not be here)
					var q *comm.Request
					if q, err = c.IrecvInto(buf, comm.AnySource, i); err == nil {
						st, err = q.Wait(ctx)
					}
				} else {
					if _, err := c.Probe(ctx, 1, i); err != nil { // the message is here first
						return err
					}
					st, err = c.RecvInto(ctx, buf, 1, i)
				}
				if err != nil || st.Size != n {
					return fmt.Errorf("%d bytes into %d: %+v, %v", n, len(buf), st, err)
				}
				if err := checkPayload("RecvInto", buf[:n], 1, i, n); err != nil {
					return err
				}
				for k := n; k < len(buf); k++ {
					if buf[k] != 0xAA {
						return fmt.Errorf("%d bytes into %d: byte %d beyond the message changed to %#x", n, len(buf), k, buf[k])
					}
				}
			}
		}
		return nil
	})
}

// TestReceiveFromClosedPeerFails: once a peer closed its communicator, its
// earlier messages are still received, and then a receive naming it fails
// with ErrPeerClosed instead of waiting; so does a send to it.
func TestReceiveFromClosedPeerFails(t *testing.T) {
	run(t, 3, func(ctx context.Context, c *comm.Comm) error {
		switch c.Rank() {
		case 2:
			if err := c.Send(ctx, 0, 0, payload(2, 0, 10)); err != nil {
				return err
			}
			return c.Close()
		case 0:
			got, _, err := c.Recv(ctx, 2, 0)
			if err != nil {
				return err
			}
			if err := checkPayload("message sent before Close", got, 2, 0, 10); err != nil {
				return err
			}
			if _, _, err := c.Recv(ctx, 2, 0); !errors.Is(err, comm.ErrPeerClosed) || !strings.Contains(err.Error(), "rank 2") {
				return fmt.Errorf("Recv from a closed rank: %v; want ErrPeerClosed naming rank 2", err)
			}
			if err := c.Send(ctx, 2, 0, []byte("x")); !errors.Is(err, comm.ErrPeerClosed) {
				return fmt.Errorf("Send to a closed rank: %v; want ErrPeerClosed", err)
			}
		}
		return nil
	})
}
