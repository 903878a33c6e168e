package conformance

import (
	"context"
	"errors"
	"fmt"

	"testing"

	"github.com/decorun/decorun/comm"
)

// TestProbeThenRecvGetsProbedMessage: a receive that names the source and
// tag a wildcard Probe reported gets the probed message, of the size
// Probe reported (MPI's probe-then-receive idiom).
func TestProbeThenRecvGetsProbedMessage(t *testing.T) {
	run(t, 3, func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() != 0 {
			for i := range 3 {
				if err := c.Send(ctx, 0, 10*c.Rank()+i, payload(c.Rank(), i, 50*c.Rank()+i)); err != nil {
					return err
				}
			}
			return nil
		}
		next := []int{0, 0, 0}
		for range 6 {
			st, err := c.Probe(ctx, comm.AnySource, comm.AnyTag)
			if err != nil {
				return err
			}
			i := next[st.Source]
			next[st.Source]++
			if st.Tag != 10*st.Source+i || st.Size != 50*st.Source+i {
				return fmt.Errorf("Probe: status %+v; want message %d of rank %d", st, i, st.Source)
			}
			buf := make([]byte, st.Size)
			rst, err := c.RecvInto(ctx, buf, st.Source, st.Tag)
			if err != nil {
				return err
			}
			if rst != st {
				return fmt.Errorf("Recv after Probe: status %+v; Probe said %+v", rst, st)
			}
			if err := checkPayload("Recv after Probe", buf, st.Source, i, st.Size); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestProbeDoesNotConsume: Probe and Iprobe leave the message to be
// received; probing again reports the same message.
func TestProbeDoesNotConsume(t *testing.T) {
	run(t, 2, func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() == 1 {
			return c.Send(ctx, 0, 4, payload(1, 0, 33))
		}
		a, err := c.Probe(ctx, 1, 4)
		if err != nil {
			return err
		}
		b, err := c.Probe(ctx, comm.AnySource, comm.AnyTag)
		if err != nil {
			return err
		}
		d, ok, err := c.Iprobe(1, comm.AnyTag)
		if err != nil || !ok {
			return fmt.Errorf("Iprobe after Probe: %v, %v; want the message", ok, err)
		}
		if a != b || a != d || a.Size != 33 {
			return fmt.Errorf("probes disagree: %+v, %+v, %+v", a, b, d)
		}
		got, _, err := c.Recv(ctx, 1, 4)
		if err != nil {
			return err
		}
		if err := checkPayload("Recv after probes", got, 1, 0, 33); err != nil {
			return err
		}
		if _, ok, err := c.Iprobe(comm.AnySource, comm.AnyTag); ok || err != nil {
			return fmt.Errorf("Iprobe after the Recv: %v, %v; want nothing", ok, err)
		}
		return nil
	})
}

// TestIprobeEventuallySeesMessage: Iprobe reports nothing before a
// message is sent, never blocks, and a loop of Iprobes sees a sent message
// (the progress rule: polling alone makes progress).
func TestIprobeEventuallySeesMessage(t *testing.T) {
	run(t, 2, func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() == 1 {
			if _, _, err := c.Recv(ctx, 0, 1); err != nil { // rank 0 has probed the empty queue
				return err
			}
			return c.Send(ctx, 0, 2, payload(1, 0, 7))
		}
		if _, ok, err := c.Iprobe(comm.AnySource, comm.AnyTag); ok || err != nil {
			return fmt.Errorf("Iprobe before any send: %v, %v; want nothing", ok, err)
		}
		if err := c.Send(ctx, 1, 1, nil); err != nil {
			return err
		}
		for {
			st, ok, err := c.Iprobe(1, 2)
			if err != nil {
				return err
			}
			if ok {
				if st.Source != 1 || st.Tag != 2 || st.Size != 7 {
					return fmt.Errorf("Iprobe: status %+v", st)
				}
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("Iprobe never saw the message: %w", ctx.Err())
			}
		}
		got, _, err := c.Recv(ctx, 1, 2)
		if err != nil {
			return err
		}
		return checkPayload("Recv after Iprobe", got, 1, 0, 7)
	})
}

// TestProbeFollowsNonOvertaking: a wildcard probe reports the first
// message a wildcard receive would get, in send order, for eager and
// rendezvous messages; probe sizes are the full sizes.
func TestProbeFollowsNonOvertaking(t *testing.T) {
	run(t, rdvRanks, func(ctx context.Context, c *comm.Comm) error {
		switch c.Rank() {
		case 1:
			q, err := c.Isend(0, 9, payload(1, 0, large))
			if err != nil {
				return err
			}
			if err := c.Send(ctx, 0, 8, payload(1, 1, 5)); err != nil {
				return err
			}
			_, err = q.Wait(ctx)
			return err
		case 0:
			for i, want := range []struct{ tag, n int }{{9, large}, {8, 5}} {
				st, err := c.Probe(ctx, 1, comm.AnyTag)
				if err != nil {
					return err
				}
				if st.Tag != want.tag || st.Size != want.n {
					return fmt.Errorf("Probe #%d: status %+v; want tag %d, %d bytes", i, st, want.tag, want.n)
				}
				got, _, err := c.Recv(ctx, 1, st.Tag)
				if err != nil {
					return err
				}
				if err := checkPayload("Recv after Probe", got, 1, i, want.n); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// TestProbeOnOneCommunicatorOnly: a wildcard probe does not see messages
// sent on another communicator (a Dup) of the same ranks.
func TestProbeOnOneCommunicatorOnly(t *testing.T) {
	run(t, 2, func(ctx context.Context, c *comm.Comm) error {
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		defer d.Close()
		if c.Rank() == 1 {
			if err := d.Send(ctx, 0, 0, []byte("dup")); err != nil {
				return err
			}
			return c.Send(ctx, 0, 0, []byte("world"))
		}
		st, err := c.Probe(ctx, comm.AnySource, comm.AnyTag)
		if err != nil {
			return err
		}
		if st.Size != len("world") {
			return fmt.Errorf("Probe on the world saw a message of %d bytes; want the world's 5", st.Size)
		}
		if _, err := d.Probe(ctx, 1, 0); err != nil {
			return err
		}
		for _, x := range []struct {
			c    *comm.Comm
			want string
		}{{c, "world"}, {d, "dup"}} {
			got, _, err := x.c.Recv(ctx, comm.AnySource, comm.AnyTag)
			if err != nil {
				return err
			}
			if string(got) != x.want {
				return fmt.Errorf("got %q; want %q", got, x.want)
			}
		}
		return nil
	})
}

// TestProbeEndsWithItsContext: a Probe for a message that never comes
// returns its ctx's error, and the communicator works afterwards.
func TestProbeEndsWithItsContext(t *testing.T) {
	run(t, 2, func(ctx context.Context, c *comm.Comm) error {
		short, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := c.Probe(short, comm.AnySource, 98); !errors.Is(err, context.Canceled) { // nothing is sent with tag 98
			return fmt.Errorf("Probe with a cancelled ctx: %v; want context.Canceled", err)
		}
		peer := 1 - c.Rank()
		got, _, err := c.Sendrecv(ctx, payload(c.Rank(), 0, 9), peer, 99, peer, 99)
		if err != nil {
			return err
		}
		return checkPayload("Sendrecv after the Probe", got, peer, 0, 9)
	})
}
