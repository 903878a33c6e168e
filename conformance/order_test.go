package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/decorun/decorun/comm"
)

// TestPrepostedWildcardReceivesKeepEachSendersOrder: receives posted
// before any message arrives (AnySource first, then ones naming the
// sender) are matched in posting order: a message goes to the first posted
// receive it fits, so each sender's messages land in receives of
// increasing posting order, and a wildcard receive posted before a
// specific one takes the message first.
func TestPrepostedWildcardReceivesKeepEachSendersOrder(t *testing.T) {
	const k = 12
	run(t, 4, func(ctx context.Context, c *comm.Comm) error {
		p := c.Size()
		if c.Rank() != 0 {
			if _, _, err := c.Recv(ctx, 0, 1); err != nil { // rank 0 has posted its receives
				return err
			}
			reqs := make([]*comm.Request, k)
			for i := range k {
				var err error
				if reqs[i], err = c.Isend(0, 0, payload(c.Rank(), i, size(i)%5000)); err != nil {
					return err
				}
			}
			return comm.WaitAll(ctx, reqs...)
		}
		// First one receive from any source, then one naming rank 1: the
		// wildcard one gets whichever message comes first; then the rest.
		first, err := c.Irecv(comm.AnySource, 0)
		if err != nil {
			return err
		}
		named, err := c.Irecv(1, 0)
		if err != nil {
			return err
		}
		reqs := []*comm.Request{first, named}
		for range k*(p-1) - 2 {
			q, err := c.Irecv(comm.AnySource, comm.AnyTag)
			if err != nil {
				return err
			}
			reqs = append(reqs, q)
		}
		for r := 1; r < p; r++ {
			if err := c.Send(ctx, r, 1, nil); err != nil {
				return err
			}
		}
		if err := comm.WaitAll(ctx, reqs...); err != nil {
			return err
		}
		next := make([]int, p)
		for j, q := range reqs {
			_, st, _ := q.Test()
			i := next[st.Source]
			next[st.Source]++
			if err := checkPayload(fmt.Sprintf("receive %d posted (from rank %d)", j, st.Source), q.Data(), st.Source, i, size(i)%5000); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestCancelledSendIsEitherCancelledOrDelivered: a send cancelled at once
// (eager, or rendezvous to a receive already posted) either completes, and
// the receiver gets it, or is cancelled, and the receiver never sees it,
// never both nor neither (MPI_Cancel's rule).
func TestCancelledSendIsEitherCancelledOrDelivered(t *testing.T) {
	run(t, rdvRanks, func(ctx context.Context, c *comm.Comm) error {
		const rounds = 6
		switch c.Rank() {
		case 1:
			for i := range rounds {
				n := 100
				if i%2 == 1 {
					n = large
					if _, _, err := c.Recv(ctx, 0, 1); err != nil { // its receive is posted
						return err
					}
				}
				q, err := c.Isend(0, 0, payload(1, i, n))
				if err != nil {
					return err
				}
				q.Cancel()
				_, werr := q.Wait(ctx)
				cancelled := errors.Is(werr, context.Canceled)
				if werr != nil && !cancelled {
					return fmt.Errorf("round %d: Wait on a cancelled Isend: %v", i, werr)
				}
				if err := comm.SendValue(ctx, c, 0, 0, cancelled); err != nil {
					return err
				}
			}
		case 0:
			for i := range rounds {
				n := 100
				var q *comm.Request
				if i%2 == 1 {
					n = large
					var err error
					if q, err = c.Irecv(1, 0); err != nil {
						return err
					}
					if err := c.Send(ctx, 1, 1, nil); err != nil {
						return err
					}
				}
				var data []byte
				var st comm.Status
				var err error
				if q != nil {
					st, err = q.Wait(ctx)
					data = q.Data()
				} else {
					data, st, err = c.Recv(ctx, 1, 0)
				}
				if err != nil {
					return err
				}
				if st.Type() == "" { // the message itself: the send was not cancelled
					if err := checkPayload(fmt.Sprintf("round %d", i), data, 1, i, n); err != nil {
						return err
					}
					cancelled, _, err := comm.RecvValue[bool](ctx, c, 1, 0)
					if err != nil {
						return err
					}
					if cancelled {
						return fmt.Errorf("round %d: the message arrived but its send says it was cancelled", i)
					}
					continue
				}
				cancelled, err := comm.Decode[bool](data, st)
				if err != nil {
					return err
				}
				if !cancelled {
					return fmt.Errorf("round %d: the send completed but its message never arrived", i)
				}
			}
		}
		return nil
	})
}

// TestConcurrentPointToPointFromManyGoroutines: several goroutines of each
// rank send and receive on one communicator at once, each with its own
// tag (MPI_THREAD_MULTIPLE), and every message arrives in order to its
// goroutine.
func TestConcurrentPointToPointFromManyGoroutines(t *testing.T) {
	const goroutines, iters = 4, 10
	run(t, 3, func(ctx context.Context, c *comm.Comm) error {
		r, p := c.Rank(), c.Size()
		errs := make([]error, goroutines)
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				right, left := (r+1)%p, (r+p-1)%p
				for i := range iters {
					n := []int{0, 10, 5000, 70000}[(g+i)%4]
					q, err := c.Isend(right, g, payload(r, 100*g+i, n))
					if err != nil {
						errs[g] = err
						return
					}
					got, _, err := c.Recv(ctx, left, g)
					if err == nil {
						err = checkPayload(fmt.Sprintf("goroutine %d, message %d", g, i), got, left, 100*g+i, n)
					}
					if err == nil {
						_, err = q.Wait(ctx)
					}
					if err != nil {
						errs[g] = err
						return
					}
				}
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	})
}

// TestCancellingOnePostedReceiveKeepsTheOthersInOrder: cancelling a
// receive in the middle of several posted ones (one naming the source,
// one wildcard) takes it out of matching; the others get the messages in
// posting order.
func TestCancellingOnePostedReceiveKeepsTheOthersInOrder(t *testing.T) {
	run(t, 2, func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() == 1 {
			if _, _, err := c.Recv(ctx, 0, 1); err != nil { // rank 0 has posted and cancelled
				return err
			}
			for i := range 3 {
				if err := c.Send(ctx, 0, 0, payload(1, i, 8)); err != nil {
					return err
				}
			}
			return nil
		}
		reqs := make([]*comm.Request, 5)
		for i := range reqs {
			src, tag := 1, 0
			if i == 3 {
				src, tag = comm.AnySource, comm.AnyTag
			}
			var err error
			if reqs[i], err = c.Irecv(src, tag); err != nil {
				return err
			}
		}
		reqs[1].Cancel()
		reqs[3].Cancel()
		if err := c.Send(ctx, 1, 1, nil); err != nil {
			return err
		}
		for i, want := range []int{0, -1, 1, -1, 2} {
			_, err := reqs[i].Wait(ctx)
			if want < 0 {
				if !errors.Is(err, context.Canceled) {
					return fmt.Errorf("cancelled receive %d: %v; want context.Canceled", i, err)
				}
				continue
			}
			if err != nil {
				return err
			}
			if err := checkPayload(fmt.Sprintf("receive %d", i), reqs[i].Data(), 1, want, 8); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestInterleavedLargeMessagesFromSeveralSenders: long eager and
// rendezvous messages from several senders at once, whose chunks
// interleave on the way, each reach a receive posted in advance with
// AnySource whole, in each sender's order.
func TestInterleavedLargeMessagesFromSeveralSenders(t *testing.T) {
	sizes := []int{longEager, 10, large, longEager}
	run(t, rdvRanks, func(ctx context.Context, c *comm.Comm) error {
		p := c.Size()
		if c.Rank() != 0 {
			if _, _, err := c.Recv(ctx, 0, 1); err != nil {
				return err
			}
			reqs := make([]*comm.Request, len(sizes))
			for i, n := range sizes {
				var err error
				if reqs[i], err = c.Isend(0, 0, payload(c.Rank(), i, n)); err != nil {
					return err
				}
			}
			return comm.WaitAll(ctx, reqs...)
		}
		reqs := make([]*comm.Request, len(sizes)*(p-1))
		for j := range reqs {
			var err error
			if reqs[j], err = c.IrecvInto(make([]byte, large), comm.AnySource, 0); err != nil {
				return err
			}
		}
		for r := 1; r < p; r++ {
			if err := c.Send(ctx, r, 1, nil); err != nil {
				return err
			}
		}
		next := make([]int, p)
		for j, q := range reqs {
			st, err := q.Wait(ctx)
			if err != nil {
				return err
			}
			i := next[st.Source]
			next[st.Source]++
			if err := checkPayload(fmt.Sprintf("receive %d (from rank %d)", j, st.Source), q.Data(), st.Source, i, sizes[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestManyRendezvousMessagesInARow: more large messages from one sender to
// one receiver than fit in the credit window at once, all sent before the
// receiver posts anything, arrive whole and in order.
func TestManyRendezvousMessagesInARow(t *testing.T) {
	const k = 6 // 15 MiB, W is 8 MiB
	run(t, rdvRanks, func(ctx context.Context, c *comm.Comm) error {
		switch c.Rank() {
		case 1:
			reqs := make([]*comm.Request, k)
			for i := range k {
				var err error
				if reqs[i], err = c.Isend(0, 0, payload(1, i, large)); err != nil {
					return err
				}
			}
			if err := c.Send(ctx, 0, 1, nil); err != nil { // all are started
				return err
			}
			return comm.WaitAll(ctx, reqs...)
		case 0:
			if _, _, err := c.Recv(ctx, 1, 1); err != nil {
				return err
			}
			for i := range k {
				got, _, err := c.Recv(ctx, 1, 0)
				if err != nil {
					return err
				}
				if err := checkPayload(fmt.Sprintf("large message %d", i), got, 1, i, large); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// TestAllPairsExchangeMixedSizes: every rank sends to every other rank
// (small messages to all, and long eager and rendezvous ones to its right
// neighbour) and receives from all with AnySource; every message arrives
// whole, in each sender's order.
func TestAllPairsExchangeMixedSizes(t *testing.T) {
	run(t, rdvRanks, func(ctx context.Context, c *comm.Comm) error {
		r, p := c.Rank(), c.Size()
		sizes := func(src, dst int) []int {
			if dst == (src+1)%p {
				return []int{0, 3000, longEager, large, 1}
			}
			return []int{0, 3000, 1}
		}
		var reqs []*comm.Request
		want := 0
		for d := range p {
			if d == r {
				continue
			}
			want += len(sizes(d, r))
			for i, n := range sizes(r, d) {
				q, err := c.Isend(d, 0, payload(r, i, n))
				if err != nil {
					return err
				}
				reqs = append(reqs, q)
			}
		}
		next := make([]int, p)
		for range want {
			got, st, err := c.Recv(ctx, comm.AnySource, 0)
			if err != nil {
				return err
			}
			i := next[st.Source]
			next[st.Source]++
			if err := checkPayload(fmt.Sprintf("message %d from rank %d", i, st.Source), got, st.Source, i, sizes(st.Source, r)[i]); err != nil {
				return err
			}
		}
		return comm.WaitAll(ctx, reqs...)
	})
}
