package comm

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decorun/decorun/internal/agree"
)

// TestPeerLostBreaksCollectiveContexts: once a rank is lost (as decorun
// --keep-going announces it), calls on the collective context (Shadow) of
// every communicator that has it among its ranks fail with ErrRankLost
// naming it, even those with a live peer: a receive already posted, a
// rendezvous send waiting for its receiver, and every later send and
// receive. So a collective that the dead rank was part of ends on every
// survivor, not only on those that exchange data with it. The user's
// contexts, and the collective contexts of communicators without the
// lost rank, work as before.
func TestPeerLostBreaksCollectiveContexts(t *testing.T) {
	const n, dead = 4, 2
	cs := world(t, n)
	ctx := tctx(t)
	halves := make([]*Comm, n) // {0, 1} and {2, 3}
	dups := make([]*Comm, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for r, c := range cs {
		wg.Go(func() {
			if halves[r], errs[r] = c.Split(ctx, r/2, 0); errs[r] == nil {
				dups[r], errs[r] = c.Dup(ctx)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	isLost := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrRankLost) || !strings.Contains(err.Error(), "rank 2 is gone (killed by signal SIGKILL)") {
			t.Errorf("%s: %v; want an error naming rank 2 that wraps ErrRankLost", what, err)
		}
	}
	// Pending when rank 2 dies: receives from live ranks on the world's
	// and the Dup's collective contexts, and a rendezvous send to a live
	// rank that never receives it.
	type pending struct {
		what string
		errc chan error
	}
	call := func(what string, f func() error) pending {
		p := pending{what, make(chan error, 1)}
		go func() { p.errc <- f() }()
		return p
	}
	calls := []pending{
		call("rank 0's Recv from rank 1 on the world's Shadow", func() error {
			_, _, err := cs[0].Shadow().Recv(ctx, 1, 5)
			return err
		}),
		call("rank 3's Recv from any rank on the Dup's Shadow", func() error {
			_, _, err := dups[3].Shadow().Recv(ctx, AnySource, 5)
			return err
		}),
		call("rank 1's rendezvous Send to rank 3 on the world's Shadow", func() error {
			return cs[1].Shadow().Send(ctx, 3, 6, make([]byte, 16<<20))
		}),
	}
	time.Sleep(50 * time.Millisecond) // let them block (a failure below, not a hang, if not)
	for r, c := range cs {
		if r != dead {
			c.e.peerLost(dead, "killed by signal SIGKILL")
		}
	}
	for _, p := range calls {
		select {
		case err := <-p.errc:
			isLost(p.what, err)
		case <-time.After(time.Minute): // a hang guard
			t.Fatalf("%s still waits a minute after rank 2 was lost", p.what)
		}
	}
	// Later calls on those contexts fail at once, with a live peer too.
	_, _, err := cs[3].Shadow().Recv(ctx, 0, 7)
	isLost("a later Recv on the world's Shadow", err)
	isLost("a later Send on the world's Shadow", cs[0].Shadow().Send(ctx, 1, 7, []byte("x")))
	isLost("a later Send on the Dup's Shadow", dups[1].Shadow().Send(ctx, 0, 7, nil))
	// The user's contexts, and the half without rank 2, work.
	if err := cs[1].Send(ctx, 0, 8, []byte("world")); err != nil {
		t.Fatal(err)
	}
	if b, _, err := cs[0].Recv(ctx, 1, 8); err != nil || string(b) != "world" {
		t.Fatalf("Recv on the world after the loss: %q, %v", b, err)
	}
	if err := dups[0].Send(ctx, 3, 8, []byte("dup")); err != nil {
		t.Fatal(err)
	}
	if b, _, err := dups[3].Recv(ctx, 0, 8); err != nil || string(b) != "dup" {
		t.Fatalf("Recv on the Dup after the loss: %q, %v", b, err)
	}
	if err := halves[1].Shadow().Send(ctx, 0, 9, []byte("half")); err != nil {
		t.Fatalf("Send on the Shadow of the half without rank 2: %v", err)
	}
	if b, _, err := halves[0].Shadow().Recv(ctx, 1, 9); err != nil || string(b) != "half" {
		t.Fatalf("Recv on the Shadow of the half without rank 2: %q, %v", b, err)
	}
}

// TestSplitRankLostInExchange: a rank lost (--keep-going) after Split's
// agreement step, before it sent its color, fails the Split on every
// survivor with its ErrRankLost error: rank 0, which waits for any rank's
// color, and the others, which wait for rank 0's table.
func TestSplitRankLostInExchange(t *testing.T) {
	const n, dead = 4, 2
	cs := world(t, n)
	ctx := tctx(t)
	errc := make(chan error, n)
	for r, c := range cs {
		if r == dead {
			// It makes the agreement step of the Split (the others pass
			// it) and dies before the exchange.
			go func() {
				_, err := c.agree(ctx, agree.Split, 0, false)
				if err == nil {
					c.nderived.Add(1)
				}
				errc <- err
			}()
			continue
		}
		go func() {
			_, err := c.Split(ctx, r%2, 0)
			errc <- err
		}()
	}
	if err := <-errc; err != nil { // the dead rank's agreement, or a survivor's failure
		t.Fatalf("before the loss: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // the survivors wait in the exchange
	for r, c := range cs {
		if r != dead {
			c.e.peerLost(dead, "killed by signal SIGKILL")
		}
	}
	for range n - 1 {
		select {
		case err := <-errc:
			if !errors.Is(err, ErrRankLost) || !strings.Contains(err.Error(), "rank 2 is gone") {
				t.Errorf("Split: %v; want an error naming rank 2 that wraps ErrRankLost", err)
			}
		case <-time.After(time.Minute): // a hang guard
			t.Fatal("a survivor's Split still waits a minute after rank 2 was lost")
		}
	}
}
