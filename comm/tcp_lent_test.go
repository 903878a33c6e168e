package comm

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// lentWorld starts two ranks, each on a host of its own, over TCP, with
// eager windows large enough that messages of tens of MiB go as long eager
// messages, more than a socket's buffers hold.
func lentWorld(t *testing.T) []*Comm {
	t.Helper()
	defer func(w int64) { testWindow = w }(testWindow)
	testWindow = 128 << 20 // long eager messages up to 32 MiB
	cs, errs := hostWorld(t, 2, "tcp", nil)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return cs
}

// stall keeps rank c from taking frames off its sockets (its link's
// readers wait for its engine) until resume is first called.
func stall(c *Comm) (resume func()) {
	c.e.mu.Lock()
	return sync.OnceFunc(c.e.mu.Unlock)
}

// lentTo reports how many of c's sends to world rank dst wait for the TCP
// link to write the caller's buffer.
func lentTo(c *Comm, dst int) int {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return len(c.e.peers[dst].lent)
}

// TestTCPSendCompletesOnceWritten: a long eager message over TCP that the
// socket cannot take at once is written from the caller's buffer: its
// Isend completes only once the receiver has read enough of it for the
// kernel to take the rest, and the message arrives byte for byte.
func TestTCPSendCompletesOnceWritten(t *testing.T) {
	cs := lentWorld(t)
	ctx := tctx(t)
	msg := mixed(0, 1, 24<<20)
	resume := stall(cs[1])
	q, err := cs[0].Isend(1, 5, msg)
	if err != nil {
		resume()
		t.Fatal(err)
	}
	done, _, _ := q.Test()
	lent := lentTo(cs[0], 1)
	resume()
	if done || lent != 1 {
		t.Errorf("Isend of 24 MiB to a rank that does not read: complete %v, %d sends lent; want pending until written, 1 lent", done, lent)
	}
	if _, err := q.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	got, _, err := cs[1].Recv(ctx, 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("received %d bytes, not the %d sent byte for byte", len(got), len(msg))
	}
	if n := lentTo(cs[0], 1); n != 0 {
		t.Errorf("%d sends still lent after they completed", n)
	}
}

// TestTCPSendLentCancel: a blocking Send whose buffer the TCP link writes
// from returns when its ctx ends, with no error (the message was handed to
// the link whole and is not withdrawn); the caller may then overwrite its
// buffer, and the message still arrives as sent, followed by the next one.
func TestTCPSendLentCancel(t *testing.T) {
	cs := lentWorld(t)
	msg := mixed(0, 2, 24<<20)
	want := bytes.Clone(msg)
	resume := stall(cs[1])
	defer resume()
	sctx, cancel := context.WithCancel(tctx(t))
	sent := make(chan error, 1)
	go func() { sent <- cs[0].Send(sctx, 1, 6, msg) }()
	deadline := time.Now().Add(30 * time.Second)
	for lentTo(cs[0], 1) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the Send never waited for the link to write its buffer")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-sent:
		t.Fatalf("Send returned %v while the receiver did not read", err)
	default:
	}
	cancel()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatalf("cancelled Send of a message handed to the link = %v; want nil (sent)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Send did not return after its ctx ended")
	}
	for i := range msg {
		msg[i] = 0xff
	}
	resume()
	ctx := tctx(t)
	if err := cs[0].Send(ctx, 1, 6, []byte("next")); err != nil {
		t.Fatal(err)
	}
	got, _, err := cs[1].Recv(ctx, 0, 6)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("the message whose Send was cancelled did not arrive as sent")
	}
	if got, _, err := cs[1].Recv(ctx, 0, 6); err != nil || string(got) != "next" {
		t.Errorf("next message: %q, %v; want \"next\"", got, err)
	}
}

// TestTCPLentMixed: messages of mixed sizes (one frame, long eager, lent)
// and tags, sent while the receiver does not read, complete once written;
// their buffers are then overwritten, and every message still arrives as
// sent, in order for its tag, received tag by tag.
func TestTCPLentMixed(t *testing.T) {
	cs := lentWorld(t)
	ctx := tctx(t)
	sizes := []int{17 << 10, 100 << 10, 1 << 20, 3 << 20, 8, 5<<20 + 3, 0, 16 << 10}
	const count = 40
	size := func(i int) int { return sizes[i%len(sizes)] }
	resume := stall(cs[1])
	var qs []*Request
	var bufs [][]byte
	for i := range count {
		b := mixed(0, i, size(i))
		q, err := cs[0].Isend(1, i%3, b)
		if err != nil {
			resume()
			t.Fatal(err)
		}
		qs, bufs = append(qs, q), append(bufs, b)
	}
	lent := lentTo(cs[0], 1)
	resume()
	if lent == 0 {
		t.Error("no send was lent to the link: the test did not exercise that path")
	}
	for i, q := range qs {
		if _, err := q.Wait(ctx); err != nil {
			t.Fatalf("Isend %d: %v", i, err)
		}
		for k := range bufs[i] {
			bufs[i][k] = 0xee
		}
	}
	for tag := range 3 {
		for i := tag; i < count; i += 3 {
			got, st, err := cs[1].Recv(ctx, 0, tag)
			if err != nil {
				t.Fatalf("receive of message %d: %v", i, err)
			}
			if want := mixed(0, i, size(i)); st.Tag != tag || !bytes.Equal(got, want) {
				t.Fatalf("tag %d: got %d bytes; want message %d (%d bytes) as sent", tag, len(got), i, len(want))
			}
		}
	}
}

// TestTCPRendezvousLent: a rendezvous message over TCP streams its Data
// frames from the caller's buffer (lent to the link, not copied), completes
// once written, and arrives byte for byte into the posted receive; the
// sender then overwrites its buffer and sends again, and the second
// message arrives as sent too.
func TestTCPRendezvousLent(t *testing.T) {
	cs := lentWorld(t)
	ctx := tctx(t)
	tl := tcpLink(cs[0].link)
	const size = 48 << 20 // above the 32 MiB of long eager messages: rendezvous
	msg := mixed(0, 3, size)
	buf := make([]byte, size)
	for round := range 2 {
		q, err := cs[1].IrecvInto(buf, 0, 7)
		if err != nil {
			t.Fatal(err)
		}
		if err := cs[0].Send(ctx, 1, 7, msg); err != nil {
			t.Fatalf("round %d: Send: %v", round, err)
		}
		for i := range msg { // reused at once: nothing of it may still be read
			msg[i] = byte(0x5a + round)
		}
		if _, err := q.Wait(ctx); err != nil {
			t.Fatalf("round %d: receive: %v", round, err)
		}
		want := mixed(0, 3, size)
		if round == 1 {
			want = bytes.Repeat([]byte{0x5a}, size)
		}
		if !bytes.Equal(buf, want) {
			t.Fatalf("round %d: the message did not arrive as sent", round)
		}
	}
	if tl.LentFrames() == 0 {
		t.Error("no Data frame was lent to the link: the test did not exercise that path")
	}
}

// TestTCPSmallRecvIntoReusesFrames: small messages over TCP received into
// the caller's buffer give their frames back to the link, which reads
// later frames into them: 2,000 round trips of 1 KiB allocate far less
// than one frame per message (a fresh frame is fresh memory, a page fault
// every few messages).
func TestTCPSmallRecvIntoReusesFrames(t *testing.T) {
	const n, size = 2000, 1 << 10
	if got := tcpRoundTripAllocs(t, n, 100, size, true); got > n*size/2 {
		t.Errorf("%d round trips of %d bytes allocated %d bytes; want under %d (frames reused)", n, size, got, n*size/2)
	}
}
