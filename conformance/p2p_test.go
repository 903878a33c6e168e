package conformance

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/decorun/decorun/comm"
)

// The tests that need rendezvous messages run at n = 5: each sender's
// credit window W is then 8 MiB, and a message above W/4 = 2 MiB goes by
// rendezvous. The tests keep the eager bytes that one sender has
// outstanding to one receiver below W.
const (
	rdvRanks = 5
	large    = 5 << 19 // 2.5 MiB: rendezvous at rdvRanks
)

// size is the size of message i in the ordering tests: eager sizes from 0
// B up, and every 11th message (from the 5th) a rendezvous one.
func size(i int) int {
	if i%11 == 5 {
		return large
	}
	return []int{0, 1, 100, 4096, 70000, 3}[i%6]
}

// TestNonOvertakingSameTag: messages from one sender to one receiver with
// one tag are received in the order sent, whatever their sizes (eager and
// rendezvous mixed) and whether sent by Send or Isend, while other senders
// interleave.
func TestNonOvertakingSameTag(t *testing.T) {
	const k = 24
	run(t, rdvRanks, func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() != 0 {
			var reqs []*comm.Request
			for i := range k {
				if i%3 == 0 {
					if err := c.Send(ctx, 0, 7, payload(c.Rank(), i, size(i))); err != nil {
						return err
					}
					continue
				}
				q, err := c.Isend(0, 7, payload(c.Rank(), i, size(i)))
				if err != nil {
					return err
				}
				reqs = append(reqs, q)
			}
			return comm.WaitAll(ctx, reqs...)
		}
		for i := range k {
			for src := 1; src < c.Size(); src++ {
				got, st, err := c.Recv(ctx, src, 7)
				if err != nil {
					return err
				}
				if st.Source != src || st.Tag != 7 || st.Size != size(i) {
					return fmt.Errorf("message %d from rank %d: status %+v", i, src, st)
				}
				if err := checkPayload(fmt.Sprintf("Recv(%d, 7) #%d", src, i), got, src, i, size(i)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// TestNonOvertakingAnyTag: a receive with AnyTag from one sender gets that
// sender's messages in the order sent, whatever their tags.
func TestNonOvertakingAnyTag(t *testing.T) {
	const k = 24
	run(t, rdvRanks, func(ctx context.Context, c *comm.Comm) error {
		switch c.Rank() {
		case 1:
			reqs := make([]*comm.Request, k)
			for i := range k {
				var err error
				if reqs[i], err = c.Isend(0, i%5, payload(1, i, size(i))); err != nil {
					return err
				}
			}
			return comm.WaitAll(ctx, reqs...)
		case 0:
			for i := range k {
				got, st, err := c.Recv(ctx, 1, comm.AnyTag)
				if err != nil {
					return err
				}
				if st.Tag != i%5 {
					return fmt.Errorf("message %d has tag %d; want %d (sent in that order)", i, st.Tag, i%5)
				}
				if err := checkPayload(fmt.Sprintf("Recv(1, AnyTag) #%d", i), got, 1, i, size(i)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// TestNonOvertakingAnySource: a receive with AnySource may take any
// sender's message, but each sender's messages arrive in the order sent.
func TestNonOvertakingAnySource(t *testing.T) {
	const k = 20
	run(t, rdvRanks, func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() != 0 {
			reqs := make([]*comm.Request, k)
			for i := range k {
				var err error
				if reqs[i], err = c.Isend(0, 3, payload(c.Rank(), i, size(i))); err != nil {
					return err
				}
			}
			return comm.WaitAll(ctx, reqs...)
		}
		next := make([]int, c.Size())
		for range k * (c.Size() - 1) {
			got, st, err := c.Recv(ctx, comm.AnySource, comm.AnyTag)
			if err != nil {
				return err
			}
			i := next[st.Source]
			next[st.Source]++
			if st.Tag != 3 || st.Size != size(i) {
				return fmt.Errorf("message %d from rank %d: status %+v", i, st.Source, st)
			}
			if err := checkPayload(fmt.Sprintf("Recv(AnySource) from %d #%d", st.Source, i), got, st.Source, i, size(i)); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestTagsMayBeReceivedOutOfSendOrder: a receive names the tag it wants,
// so messages with different tags may be received in another order than
// sent (eager and rendezvous alike).
func TestTagsMayBeReceivedOutOfSendOrder(t *testing.T) {
	run(t, rdvRanks, func(ctx context.Context, c *comm.Comm) error {
		switch c.Rank() {
		case 1:
			big, err := c.Isend(0, 1, payload(1, 0, large))
			if err != nil {
				return err
			}
			if err := c.Send(ctx, 0, 2, payload(1, 1, 10)); err != nil {
				return err
			}
			if err := c.Send(ctx, 0, 3, payload(1, 2, 10)); err != nil {
				return err
			}
			_, err = big.Wait(ctx)
			return err
		case 0:
			for _, m := range []struct{ tag, i, n int }{{3, 2, 10}, {2, 1, 10}, {1, 0, large}} {
				got, _, err := c.Recv(ctx, 1, m.tag)
				if err != nil {
					return err
				}
				if err := checkPayload(fmt.Sprintf("Recv(1, %d)", m.tag), got, 1, m.i, m.n); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// TestPostedReceivesMatchInPostingOrder: when a message matches several
// posted receives, the one posted first gets it; a receive that names a
// tag is skipped by messages with other tags.
func TestPostedReceivesMatchInPostingOrder(t *testing.T) {
	run(t, 2, func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() == 1 {
			for i, tag := range []int{5, 5, 6, 5} {
				if err := c.Send(ctx, 0, tag, payload(1, i, 8)); err != nil {
					return err
				}
			}
			return nil
		}
		post := []struct{ src, tag int }{{1, 6}, {1, comm.AnyTag}, {comm.AnySource, 5}, {comm.AnySource, comm.AnyTag}}
		want := []int{2, 0, 1, 3} // the message each receive gets
		reqs := make([]*comm.Request, len(post))
		for i, p := range post {
			var err error
			if reqs[i], err = c.Irecv(p.src, p.tag); err != nil {
				return err
			}
		}
		// The sender does not wait for the receives: whether its messages
		// find them posted or are queued first, each goes to the same one.
		for i, q := range reqs {
			if _, err := q.Wait(ctx); err != nil {
				return err
			}
			if err := checkPayload(fmt.Sprintf("receive %d posted", i), q.Data(), 1, want[i], 8); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestWildcardStatus: a wildcard receive reports the source, tag and size
// of the message it got, and the payload is the sender's.
func TestWildcardStatus(t *testing.T) {
	run(t, 4, func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() != 0 {
			return c.Send(ctx, 0, 100+c.Rank(), payload(c.Rank(), 0, 10*c.Rank()))
		}
		seen := map[int]bool{}
		for range 3 {
			got, st, err := c.Recv(ctx, comm.AnySource, comm.AnyTag)
			if err != nil {
				return err
			}
			if seen[st.Source] || st.Tag != 100+st.Source || st.Size != 10*st.Source || len(got) != st.Size {
				return fmt.Errorf("status %+v, %d bytes (seen %v)", st, len(got), seen)
			}
			seen[st.Source] = true
			if err := checkPayload("wildcard Recv", got, st.Source, 0, st.Size); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestTagAndRankRange: tags 0 and MaxTag are valid; a negative tag, a tag
// above MaxTag, AnyTag or AnySource in a send, and a rank out of range are
// errors that name the bad value.
func TestTagAndRankRange(t *testing.T) {
	run(t, 2, func(ctx context.Context, c *comm.Comm) error {
		peer := 1 - c.Rank()
		for _, tag := range []int{0, comm.MaxTag} {
			if _, _, err := c.Sendrecv(ctx, []byte{byte(tag)}, peer, tag, peer, tag); err != nil {
				return fmt.Errorf("tag %d: %w", tag, err)
			}
		}
		bad := []struct {
			call func() error
			want string
		}{
			{func() error { return c.Send(ctx, peer, -5, nil) }, "tag -5"},
			{func() error { return c.Send(ctx, peer, comm.MaxTag+1, nil) }, fmt.Sprintf("tag %d", comm.MaxTag+1)},
			{func() error { return c.Send(ctx, peer, comm.AnyTag, nil) }, fmt.Sprintf("tag %d", comm.AnyTag)},
			{func() error { return c.Send(ctx, comm.AnySource, 0, nil) }, fmt.Sprintf("rank %d", comm.AnySource)},
			{func() error { return c.Send(ctx, 2, 0, nil) }, "rank 2 out of range"},
			{func() error { _, _, err := c.Recv(ctx, 7, 0); return err }, "rank 7 out of range"},
			{func() error { _, err := c.Irecv(0, -3); return err }, "tag -3"},
			{func() error { _, err := c.Probe(ctx, -4, 0); return err }, "rank -4"},
		}
		for i, b := range bad {
			err := b.call()
			if err == nil || !strings.Contains(err.Error(), b.want) {
				return fmt.Errorf("bad call %d: error %v; want one naming %q", i, err, b.want)
			}
		}
		return nil
	})
}

// TestSendrecvRing: every rank sends to its right neighbour and receives
// from its left one at once, at every size, including one rank (a self
// exchange).
func TestSendrecvRing(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			run(t, n, func(ctx context.Context, c *comm.Comm) error {
				r, p := c.Rank(), c.Size()
				right, left := (r+1)%p, (r+p-1)%p
				for i := range 3 {
					got, st, err := c.Sendrecv(ctx, payload(r, i, 100*i), right, i, left, i)
					if err != nil {
						return err
					}
					if st.Source != left || st.Tag != i {
						return fmt.Errorf("status %+v; want source %d tag %d", st, left, i)
					}
					if err := checkPayload("Sendrecv", got, left, i, 100*i); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

// TestTestReportsCompletion: polling a request with Test completes it
// without Wait (MPI's progress rule for MPI_Test loops), and WaitAll
// completes a mix of sends and receives.
func TestTestReportsCompletion(t *testing.T) {
	run(t, 2, func(ctx context.Context, c *comm.Comm) error {
		peer := 1 - c.Rank()
		rq, err := c.Irecv(peer, 0)
		if err != nil {
			return err
		}
		sq, err := c.Isend(peer, 0, payload(c.Rank(), 0, 1000))
		if err != nil {
			return err
		}
		for done := false; !done; {
			if ctx.Err() != nil {
				return fmt.Errorf("Test never reported the receive complete: %w", ctx.Err())
			}
			var st comm.Status
			done, st, err = rq.Test()
			if err != nil {
				return err
			}
			if done && (st.Source != peer || st.Size != 1000) {
				return fmt.Errorf("Test: status %+v", st)
			}
		}
		if err := checkPayload("Test-completed Irecv", rq.Data(), peer, 0, 1000); err != nil {
			return err
		}
		return comm.WaitAll(ctx, sq, rq) // a completed request waits no more
	})
}
