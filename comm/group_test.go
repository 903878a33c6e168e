package comm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSplitAndIsolation(t *testing.T) {
	cs := world(t, 5)
	ctx := tctx(t)
	par(t, cs, func(c *Comm) error {
		me := c.Rank()
		color := me % 2
		if me == 4 {
			color = Undefined
		}
		sub, err := c.Split(ctx, color, -me) // reversed order within a color
		if err != nil {
			return err
		}
		if me == 4 {
			if sub != nil {
				return fmt.Errorf("Undefined color got a communicator")
			}
			// A world message sent while the others use their sub-communicators.
			return c.Send(ctx, 0, 3, []byte("world"))
		}
		// Evens {0,2} -> ranks by key -me: 2 is rank 0, 0 is rank 1; odds {1,3}: 3 is 0, 1 is 1.
		wantRank := map[int]int{0: 1, 2: 0, 1: 1, 3: 0}[me]
		if sub.Size() != 2 || sub.Rank() != wantRank {
			return fmt.Errorf("rank %d: sub rank %d of %d, want %d of 2", me, sub.Rank(), sub.Size(), wantRank)
		}
		dup, err := sub.Dup(ctx)
		if err != nil {
			return err
		}
		peer := 1 - sub.Rank()
		// Same tag on sub, dup and world: each receive gets its own.
		if err := sub.Send(ctx, peer, 3, []byte(fmt.Sprintf("sub from %d", me))); err != nil {
			return err
		}
		if err := dup.Send(ctx, peer, 3, []byte("dup")); err != nil {
			return err
		}
		b, st, err := dup.Recv(ctx, AnySource, AnyTag)
		if err != nil || string(b) != "dup" || st.Source != peer {
			return fmt.Errorf("dup got %q from %d: %v", b, st.Source, err)
		}
		b, st, err = sub.Recv(ctx, AnySource, AnyTag)
		if err != nil || !strings.HasPrefix(string(b), "sub from") || st.Source != peer {
			return fmt.Errorf("sub got %q from %d: %v", b, st.Source, err)
		}
		if me == 0 {
			b, st, err := c.Recv(ctx, AnySource, AnyTag)
			if err != nil || string(b) != "world" || st.Source != 4 {
				return fmt.Errorf("world got %q from %d: %v", b, st.Source, err)
			}
		}
		sh := sub.Shadow()
		if err := sh.Send(ctx, peer, 0, []byte("shadow")); err != nil {
			return err
		}
		if _, ok, _ := sub.Iprobe(AnySource, AnyTag); ok {
			// The shadow message may not have arrived yet; it must never be visible on sub.
			return fmt.Errorf("shadow traffic visible on its communicator")
		}
		if b, _, err := sh.Recv(ctx, peer, 0); err != nil || string(b) != "shadow" {
			return fmt.Errorf("shadow got %q: %v", b, err)
		}
		if err := dup.Close(); err != nil {
			return err
		}
		if err := dup.Send(ctx, peer, 0, nil); !errors.Is(err, ErrClosed) {
			return fmt.Errorf("send on closed dup: %v", err)
		}
		return nil
	})
}

func TestSplitBadColor(t *testing.T) {
	cs := world(t, 3)
	ctx := tctx(t)
	par(t, cs, func(c *Comm) error {
		color := 0
		if c.Rank() == 2 {
			color = -5
		}
		_, err := c.Split(ctx, color, 0)
		if err == nil || !strings.Contains(err.Error(), "rank 2 passed color -5") {
			return fmt.Errorf("got %v, want an error naming rank 2 and color -5 on every rank", err)
		}
		return nil
	})
}

func TestCloseSubWakesRecv(t *testing.T) {
	cs := world(t, 2)
	ctx := context.Background()
	ds := make([]*Comm, 2)
	par(t, cs, func(c *Comm) (err error) { ds[c.Rank()], err = c.Dup(tctx(t)); return err })
	d := ds[0]
	errc := make(chan error, 1)
	go func() { _, _, err := d.Recv(ctx, 1, 0); errc <- err }()
	for posted := 0; posted != 1; {
		cs[0].e.mu.Lock()
		posted, _ = cs[0].e.q.Len()
		cs[0].e.mu.Unlock()
	}
	d.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv on a closed Dup: %v", err)
	}
	// The world still works.
	if err := cs[1].Send(ctx, 0, 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if b, _, err := cs[0].Recv(ctx, 1, 0); err != nil || string(b) != "x" {
		t.Fatalf("%q %v", b, err)
	}
}

// TestPeerLost: a rank declared lost (as decorun --keep-going announces it)
// fails sends to it and receives from it, keeps what it sent before, and
// leaves the rest of the job working.
func TestPeerLost(t *testing.T) {
	cs := world(t, 3)
	ctx := tctx(t)
	if err := cs[2].Send(ctx, 0, 0, []byte("last words")); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, _, err := cs[0].Recv(ctx, 2, 1); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	cs[0].e.peerLost(2, "killed by SIGKILL")
	if err := <-errc; !errors.Is(err, ErrRankLost) || !strings.Contains(err.Error(), "rank 2 is gone (killed by SIGKILL)") {
		t.Fatalf("pending Recv from the lost rank: %v", err)
	}
	if got := <-cs[0].Lost(); got != 2 {
		t.Fatalf("Lost() gave %d", got)
	}
	if b, _, err := cs[0].Recv(ctx, 2, 0); err != nil || string(b) != "last words" {
		t.Fatalf("message sent before death: %q %v", b, err)
	}
	if _, _, err := cs[0].Recv(ctx, 2, 0); !errors.Is(err, ErrRankLost) {
		t.Fatalf("Recv from lost rank: %v", err)
	}
	if err := cs[0].Send(ctx, 2, 0, nil); !errors.Is(err, ErrRankLost) {
		t.Fatalf("Send to lost rank: %v", err)
	}
	if err := cs[1].Send(ctx, 0, 0, []byte("alive")); err != nil {
		t.Fatal(err)
	}
	if b, _, err := cs[0].Recv(ctx, AnySource, AnyTag); err != nil || string(b) != "alive" {
		t.Fatalf("AnySource after a loss: %q %v", b, err)
	}
}

// TestPeerClosed: once a rank has closed, receives naming it fail after its
// earlier messages are delivered, and sends to it fail instead of waiting.
func TestPeerClosed(t *testing.T) {
	cs := world(t, 3)
	ctx := tctx(t)
	errc := make(chan error, 1)
	go func() { _, _, err := cs[0].Recv(ctx, 2, 5); errc <- err }()
	if err := cs[2].Send(ctx, 0, 1, []byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := cs[2].Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrPeerClosed) || !strings.Contains(err.Error(), "rank 2 closed its communicator") {
		t.Fatalf("Recv blocked on a rank that closed: %v", err)
	}
	if b, _, err := cs[0].Recv(ctx, 2, 1); err != nil || string(b) != "bye" {
		t.Fatalf("message sent before Close: %q %v", b, err)
	}
	if err := cs[0].Send(ctx, 2, 0, make([]byte, 20<<20)); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("large Send to a closed rank: %v", err)
	}
	if err := cs[1].Send(ctx, 0, 0, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if b, _, err := cs[0].Recv(ctx, AnySource, AnyTag); err != nil || string(b) != "still here" {
		t.Fatalf("%q %v", b, err)
	}
}

// TestSplitDupMismatch: ranks that call Split while others call Dup on the
// same communicator fail on every rank with a MismatchError naming both
// calls, instead of waiting for each other; the communicator then works.
func TestSplitDupMismatch(t *testing.T) {
	cs := world(t, 4)
	ctx := tctx(t)
	par(t, cs, func(c *Comm) error {
		var err error
		if c.Rank()%2 == 1 {
			_, err = c.Dup(ctx)
		} else {
			_, err = c.Split(ctx, 0, 0)
		}
		var me *MismatchError
		if !errors.As(err, &me) || !errors.Is(err, ErrMismatch) {
			return fmt.Errorf("error %v; want a MismatchError", err)
		}
		if want := "rank 0 called Split but rank 1 called Dup"; !strings.Contains(err.Error(), want) {
			return fmt.Errorf("error %q does not say %q", err, want)
		}
		// Both kinds of call work afterwards, and agree on their contexts.
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		s, err := d.Split(ctx, c.Rank()%2, 0)
		if err != nil {
			return err
		}
		peer := 1 - s.Rank()
		got, _, err := s.Sendrecv(ctx, []byte{byte(c.Rank())}, peer, 0, peer, 0)
		if err != nil {
			return err
		}
		if want := c.Rank() ^ 2; len(got) != 1 || int(got[0]) != want {
			return fmt.Errorf("after the mismatch: got %v from the Split's peer; want [%d]", got, want)
		}
		return nil
	})
}
