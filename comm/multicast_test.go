package comm

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/decorun/decorun/internal/transport"
	"github.com/decorun/decorun/internal/wire"
)

// natsWorld is world over NATS alone, where Multicast fans out.
func natsWorld(t *testing.T, n int) []*Comm {
	old := testTransport
	testTransport = "nats"
	defer func() { testTransport = old }()
	return world(t, n)
}

func TestMulticast(t *testing.T) {
	const n = 4
	cs := natsWorld(t, n)
	ctx := tctx(t)
	eager := cs[0].e.eager
	par(t, cs, func(c *Comm) error {
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		half, err := c.Split(ctx, c.Rank()%2, 0)
		if err != nil {
			return err
		}
		if c.MulticastMax() != eager || d.MulticastMax() != eager || half.MulticastMax() != 0 {
			return fmt.Errorf("MulticastMax: world %d, Dup %d, Split half %d; want %d, %d, 0",
				c.MulticastMax(), d.MulticastMax(), half.MulticastMax(), eager, eager)
		}
		// Every rank multicasts in turn, on the world and on half (which
		// sends to each), at sizes up to one frame and beyond.
		tag := 0
		for root := range n {
			for _, size := range []int{0, 1, 1000, eager, eager + 1, 3 * eager} {
				tag++
				msg := bytes.Repeat([]byte{byte(root + size)}, size)
				for _, x := range []*Comm{c, half} {
					r := root % x.Size()
					if x.Rank() == r {
						before := c.e.mcSeq
						if err := x.Multicast(ctx, tag, msg); err != nil {
							return err
						}
						fanned := c.e.mcSeq != before
						if want := x == c && size <= eager; fanned != want {
							return fmt.Errorf("Multicast of %d bytes on %d ranks: fanned out %v, want %v", size, x.Size(), fanned, want)
						}
						continue
					}
					got, st, err := x.Recv(ctx, r, tag)
					if err != nil {
						return err
					}
					if !bytes.Equal(got, msg) || st.Source != r {
						return fmt.Errorf("Recv from %d of a %d-byte multicast: %d bytes from %d", r, size, len(got), st.Source)
					}
				}
			}
		}
		return nil
	})
}

// TestMulticastCreditShort fills rank 0's window to rank 1 with unreceived
// messages: a multicast then goes to each rank in turn, and arrives once
// rank 1 makes room.
func TestMulticastCreditShort(t *testing.T) {
	cs := natsWorld(t, 3)
	ctx := tctx(t)
	credit := func() int64 {
		e := cs[0].e
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.peers[1].credit
	}
	var reqs []*Request
	for credit() > wire.HeaderSize+10 {
		size := min(16<<10, int(credit())-wire.HeaderSize-10)
		q, err := cs[0].Isend(1, 1, make([]byte, size))
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, q)
	}
	done := make(chan error, 1)
	go func() { done <- cs[0].Multicast(ctx, 2, []byte("mc")) }()
	if got, _, err := cs[2].Recv(ctx, 0, 2); err != nil || string(got) != "mc" {
		t.Fatalf("rank 2: Recv = %q, %v", got, err)
	}
	for range reqs {
		if _, _, err := cs[1].Recv(ctx, 0, 1); err != nil {
			t.Fatal(err)
		}
	}
	if got, _, err := cs[1].Recv(ctx, 0, 2); err != nil || string(got) != "mc" {
		t.Fatalf("rank 1: Recv = %q, %v", got, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := WaitAll(ctx, reqs...); err != nil {
		t.Fatal(err)
	}
	if cs[0].e.mcSeq != 0 { // written by this goroutine only
		t.Errorf("multicast fanned out without credit to rank 1")
	}
}

// TestMulticastThenClose: a rank that multicasts and closes at once; its
// Fin, which travels apart from the multicast, must not overtake it.
func TestMulticastThenClose(t *testing.T) {
	for i := range 5 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			cs := natsWorld(t, 3)
			ctx := tctx(t)
			par(t, cs, func(c *Comm) error {
				if c.Rank() == 0 {
					for tag := range 20 {
						if err := c.Multicast(ctx, tag, []byte{byte(tag)}); err != nil {
							return err
						}
					}
					return c.Close()
				}
				for tag := range 20 {
					if got, _, err := c.Recv(ctx, 0, tag); err != nil || len(got) != 1 || got[0] != byte(tag) {
						return fmt.Errorf("Recv %d: %v, %v", tag, got, err)
					}
				}
				if _, _, err := c.Recv(ctx, 0, 99); !errors.Is(err, ErrPeerClosed) {
					return fmt.Errorf("Recv after the root closed: %v; want ErrPeerClosed", err)
				}
				return nil
			})
		})
	}
}

// TestMulticastGap publishes a multicast frame whose sequence number skips
// one through the real server: every other rank fails, naming the sender.
func TestMulticastGap(t *testing.T) {
	cs := natsWorld(t, 3)
	ctx := tctx(t)
	if err := cs[1].Multicast(ctx, 1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	h := wire.Header{Kind: wire.Eager, Flags: wire.FlagMulticast, Src: 1, Tag: 2, Seq: 3, N: 3}
	if err := cs[1].nats.Multicast(append(wire.Append(nil, &h), "two"...)); err != nil {
		t.Fatal(err)
	}
	for _, r := range []int{0, 2} {
		want := fmt.Sprintf("rank %d: multicast loss from rank 1 detected: expected multicast frame 2, got 3", r)
		lost := func(err error) bool {
			return errors.Is(err, ErrLost) && errors.Is(err, transport.ErrLost) && strings.Contains(err.Error(), want)
		}
		// The first multicast arrived intact, but the loss may fail the
		// communicator before it is received.
		if got, _, err := cs[r].Recv(ctx, 1, 1); !(err == nil && string(got) == "one" || lost(err)) {
			t.Fatalf("rank %d: first multicast: %q, %v", r, got, err)
		}
		if _, _, err := cs[r].Recv(ctx, 1, 2); !lost(err) {
			t.Errorf("rank %d: Recv after the gap: %v; want ErrLost saying %q", r, err, want)
		}
	}
}
