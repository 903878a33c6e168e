package tcp

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedPair starts links 0 and 1, connected both ways; rank 1 delivers
// nothing (its reader waits in onFrame, so its socket fills) until open is
// called. Frames reach rank 1's sink.
func gatedPair(t *testing.T) (a, b *Link, sb *sink, open func()) {
	t.Helper()
	gate := make(chan struct{})
	var once sync.Once
	open = func() { once.Do(func() { close(gate) }) }
	sa, sb := newSink(), newSink()
	a, err := Listen(Config{Rank: 0, Size: 2, Key: testKey, Grace: 20 * time.Millisecond}, sa.frame, sa.fatal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err = Listen(Config{Rank: 1, Size: 2, Key: testKey, Grace: 20 * time.Millisecond},
		func(f []byte) { <-gate; sb.frame(f) }, sb.fatal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { open(); b.Close() })
	if reach, why := a.Connect(t.Context(), map[int]Peer{1: b.Self()}); !reach[1] {
		t.Fatalf("rank 0 cannot reach rank 1: %v", why[1])
	}
	return a, b, sb, open
}

// lentPiece reports whether a lent piece is queued for rank dst of l.
func lentPiece(l *Link, dst int) bool {
	o := (*l.outs.Load())[dst]
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range o.q {
		if p.lent && p.off < len(p.b) {
			return true
		}
	}
	return false
}

// hugeBody is more than a socket's buffers on both ends hold on Linux
// (tcp_wmem and tcp_rmem top out at 4 and 6 MiB by default), so that a
// frame with this body cannot be written whole while its receiver does
// not read.
const hugeBody = 40 << 20

// TestSendLentCompletesOnceWritten: a body lent to a link whose receiver
// does not read stays queued, done uncalled; once the receiver reads,
// done is called once and the frame arrives byte for byte.
func TestSendLentCompletesOnceWritten(t *testing.T) {
	a, _, sb, open := gatedPair(t)
	f := frame(0, 7, hugeBody)
	var calls atomic.Int32
	var early atomic.Bool
	called := make(chan struct{})
	lent, err := a.SendLent(1, nil, f[:8], f[8:], func() {
		early.Store(lentPiece(a, 1))
		if calls.Add(1) == 1 {
			close(called)
		}
	})
	if err != nil || !lent {
		t.Fatalf("SendLent of %d bytes to a receiver that does not read = %v, %v; want it lent", len(f), lent, err)
	}
	waitFor(t, "the writer to stop at a full socket", func() bool {
		o := (*a.outs.Load())[1]
		o.mu.Lock()
		defer o.mu.Unlock()
		return !o.busy && len(o.q) > 0
	})
	if !lentPiece(a, 1) {
		t.Fatal("the lent body is not queued while the receiver does not read")
	}
	if calls.Load() != 0 {
		t.Fatal("done was called before the kernel took the body")
	}
	open()
	select {
	case <-called:
	case <-time.After(30 * time.Second):
		t.Fatal("done was not called once the receiver read")
	}
	sb.wait(t, "the frame", func(s *sink) bool { return len(s.frames) == 1 })
	if !bytes.Equal(sb.frames[0], f) {
		t.Errorf("frame of %d bytes arrived as %d bytes, not byte for byte", len(f), len(sb.frames[0]))
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("done called %d times; want once", n)
	}
	if early.Load() {
		t.Error("done was called while bytes of the body were still queued")
	}
}

// TestKeep: after Keep, the caller may overwrite a body it lent; the frame
// still arrives as it was sent, and done is not called.
func TestKeep(t *testing.T) {
	a, _, sb, open := gatedPair(t)
	f := frame(0, 3, hugeBody)
	want := bytes.Clone(f)
	var calls atomic.Int32
	lent, err := a.SendLent(1, []byte("first frame"), f[:8], f[8:], func() { calls.Add(1) })
	if err != nil || !lent {
		t.Fatalf("SendLent = %v, %v; want it lent", lent, err)
	}
	a.Keep(1)
	if lentPiece(a, 1) {
		t.Fatal("a lent body is still queued after Keep")
	}
	for i := range f {
		f[i] = 0xff
	}
	open()
	sb.wait(t, "both frames", func(s *sink) bool { return len(s.frames) == 2 })
	if string(sb.frames[0]) != "first frame" {
		t.Errorf("first frame %q; want %q", sb.frames[0], "first frame")
	}
	if !bytes.Equal(sb.frames[1], want) {
		t.Error("the frame kept by Keep did not arrive as sent")
	}
	if a.Flush(t.Context()) != nil || calls.Load() != 0 {
		t.Errorf("done called %d times after Keep; want none", calls.Load())
	}
}

// TestSendLentMixed: lent, paired and plain frames of mixed sizes, sent
// while the receiver does not read and then while it does, arrive whole
// and in order; each done is called once, after which its body is
// overwritten (as a caller would reuse it), which must not reach the wire.
func TestSendLentMixed(t *testing.T) {
	a, _, sb, open := gatedPair(t)
	sizes := []int{8, 1000, 20000, 70000, 1 << 20, 100, 3 << 20, 16 << 10, 5 << 20, 17 << 10}
	var want [][]byte
	var pending sync.WaitGroup
	var doneCalls atomic.Int32
	lentN := 0
	for i := range 60 {
		if i == 30 {
			open()
		}
		size := sizes[i%len(sizes)]
		f := frame(0, i, size)
		switch i % 4 {
		case 0:
			if err := a.Send(1, f); err != nil {
				t.Fatal(err)
			}
			want = append(want, bytes.Clone(f))
		case 1:
			f1 := []byte(fmt.Sprint("head ", i))
			if err := a.SendPair(1, f1, f[:8], f[8:]); err != nil {
				t.Fatal(err)
			}
			want = append(want, f1, bytes.Clone(f))
		default:
			var f1 []byte
			if i%4 == 3 {
				f1 = []byte(fmt.Sprint("head ", i))
				want = append(want, f1)
			}
			want = append(want, bytes.Clone(f))
			body := f[8:]
			pending.Add(1)
			var once atomic.Bool
			lent, err := a.SendLent(1, f1, f[:8], body, func() {
				if !once.CompareAndSwap(false, true) {
					t.Errorf("done of frame %d called twice", i)
					return
				}
				doneCalls.Add(1)
				for k := range body {
					body[k] = 0xee
				}
				pending.Done()
			})
			if err != nil {
				t.Fatal(err)
			}
			if lent {
				lentN++
			} else {
				pending.Done()
			}
		}
	}
	if lentN == 0 {
		t.Fatal("no frame was lent: the test did not exercise the lent path")
	}
	sb.wait(t, "every frame", func(s *sink) bool { return len(s.frames) >= len(want) })
	pending.Wait()
	for i := range want {
		if !bytes.Equal(sb.frames[i], want[i]) {
			t.Fatalf("frame %d of %d: %d bytes, not the %d sent, byte for byte", i, len(want), len(sb.frames[i]), len(want[i]))
		}
	}
	if int(doneCalls.Load()) != lentN {
		t.Errorf("%d dones called for %d lent frames", doneCalls.Load(), lentN)
	}
}

// TestSendLentPeerGone: a lent body that can no longer be written, its
// receiver gone, is let go (done called) and the break reported.
func TestSendLentPeerGone(t *testing.T) {
	sa := newSink()
	a, err := Listen(Config{Rank: 0, Size: 2, Key: testKey, Grace: 20 * time.Millisecond}, sa.frame, sa.fatal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	gate := make(chan struct{})
	b, err := Listen(Config{Rank: 1, Size: 2, Key: testKey}, func([]byte) { <-gate }, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	if reach, why := a.Connect(t.Context(), map[int]Peer{1: b.Self()}); !reach[1] {
		t.Fatalf("rank 0 cannot reach rank 1: %v", why[1])
	}
	called := make(chan struct{})
	if err := a.Send(1, []byte("stalls the reader")); err != nil {
		t.Fatal(err)
	}
	f := frame(0, 1, hugeBody)
	lent, err := a.SendLent(1, nil, f[:8], f[8:], func() { close(called) })
	if err != nil || !lent {
		t.Fatalf("SendLent = %v, %v; want it lent", lent, err)
	}
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	close(gate)
	<-closed
	select {
	case <-called:
	case <-time.After(30 * time.Second):
		t.Fatal("done was not called after the receiver closed")
	}
	sa.wait(t, "the break reported", func(s *sink) bool { return len(s.errs) > 0 })
	var pe *PeerError
	if !errors.As(sa.errs[0], &pe) || pe.Rank != 1 {
		t.Errorf("reported %v; want a PeerError naming rank 1", sa.errs[0])
	}
}
