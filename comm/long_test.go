package comm

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"testing"
	"time"

	"github.com/decorun/decorun/internal/tcp"
)

// frameLog is a transport.Link that keeps what is sent, for tests that hand
// frames to another engine one at a time.
type frameLog struct{ frames [][]byte }

func (l *frameLog) Send(_ int, frame []byte) error {
	l.frames = append(l.frames, bytes.Clone(frame))
	return nil
}
func (l *frameLog) MaxFrame() int                   { return 1 << 20 }
func (l *frameLog) Flush(ctx context.Context) error { return nil }
func (l *frameLog) Close() error                    { return nil }

// longPair returns a sending and a receiving engine (ranks 0 and 1) and the
// frames of one long eager message of n bytes from 0 to 1 on tag 5.
func longPair(t *testing.T, n int) (rx *engine, tx *frameLog, msg []byte, frames [][]byte) {
	t.Helper()
	tx = &frameLog{}
	send := newEngine(0, 2, tx)
	rx = newEngine(1, 2, &frameLog{})
	if n <= send.eager || n > send.long {
		t.Fatalf("%d bytes is not a long eager message (eager %d, long %d)", n, send.eager, send.long)
	}
	msg = make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(msg)
	s, _, err := send.send(1, 1, 5, "", msg)
	if s != nil || err != nil {
		t.Fatalf("long eager send with credit: %v, %v; want it published at once", s, err)
	}
	if len(tx.frames) < 2 {
		t.Fatalf("%d frames; want a head and Data frames", len(tx.frames))
	}
	frames = tx.frames
	tx.frames = nil
	// A small message behind it, to check the receiver is still in step.
	if _, _, err := send.send(1, 1, 5, "", []byte("next")); err != nil {
		t.Fatal(err)
	}
	return rx, tx, msg, frames
}

func isDone(r *rreq) bool { return r.fin.Load() }

// TestLongEager checks the receiving side of a long eager message (larger
// than a frame, sent without RTS/CTS) in each order of arrival and receive:
// matched before its head, after part of it arrived, after all of it; a
// receive buffer that is too small; a receive abandoned mid-message. The
// message after it is always received intact.
func TestLongEager(t *testing.T) {
	const n = 3<<20 + 5
	for _, tc := range []struct {
		name   string
		before int // frames delivered before the receive is posted
		small  bool
		cancel bool
	}{
		{name: "posted first", before: 0},
		{name: "partly arrived", before: 2},
		{name: "all arrived", before: -1},
		{name: "too small, partly arrived", before: 1, small: true},
		{name: "too small, posted first", before: 0, small: true},
		{name: "abandoned", before: 1, cancel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rx, tx, msg, frames := longPair(t, n)
			before := tc.before
			if before < 0 {
				before = len(frames)
			}
			for _, f := range frames[:before] {
				rx.onFrame(f)
			}
			buf := make([]byte, n)
			if tc.small {
				buf = buf[:1<<20]
			}
			r, err := rx.post(1, 0, 5, buf, true)
			if err != nil {
				t.Fatal(err)
			}
			if tc.cancel {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				if err := rx.waitRecv(ctx, r); !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled receive: %v", err)
				}
			}
			for _, f := range frames[before:] {
				rx.onFrame(f)
			}
			switch {
			case tc.cancel:
			case tc.small:
				if err := rx.waitRecv(context.Background(), r); !errors.Is(err, ErrTruncate) {
					t.Fatalf("receive into %d bytes: %v; want ErrTruncate", len(buf), err)
				}
			default:
				if !isDone(r) || r.err != nil || !bytes.Equal(r.data, msg) {
					t.Fatalf("receive: done %v, err %v, %d bytes equal %v", isDone(r), r.err, len(r.data), bytes.Equal(r.data, msg))
				}
			}
			if rx.err != nil {
				t.Fatalf("receiver failed: %v", rx.err)
			}
			if len(rx.peers[0].rdvIn) != 0 || len(rx.peers[0].longIn) != 0 {
				t.Fatalf("left over: %d receives, %d partial messages", len(rx.peers[0].rdvIn), len(rx.peers[0].longIn))
			}
			for _, f := range tx.frames {
				rx.onFrame(f)
			}
			next, err := rx.post(1, 0, 5, make([]byte, 16), true)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := rx.waitRecv(ctx, next); err != nil || string(next.data) != "next" {
				t.Fatalf("message after it: %q, %v", next.data, err)
			}
		})
	}
}

// TestPlaceLong: the Data frames of a long eager message whose receive
// is matched are offered to the engine as the TCP link offers them
// (Place with the frame's first bytes, the payload written where it
// says, then Placed): the receive completes with the message, and the
// one after it arrives intact. A receive abandoned while a frame is
// being placed cancels the placement before it returns, and the frame's
// Placed after that is harmless.
func TestPlaceLong(t *testing.T) {
	const n = 3<<20 + 5
	for _, cancel := range []bool{false, true} {
		rx, tx, msg, frames := longPair(t, n)
		buf := make([]byte, n)
		r, err := rx.post(1, 0, 5, buf, true)
		if err != nil {
			t.Fatal(err)
		}
		rx.onFrame(frames[0]) // the head: matched
		for i, f := range frames[1:] {
			var pl tcp.Placement
			head, dst, ok := rx.Place(f[:tcp.PlaceHead], len(f), &pl)
			if cancel && i > 1 { // abandoned: the rest is drained as usual
				if ok {
					t.Fatalf("Data frame %d placed into an abandoned receive", i)
				}
				rx.onFrame(f)
				continue
			}
			if !ok || len(dst) != len(f)-head {
				t.Fatalf("Data frame %d of %d bytes: Place = %d, %d bytes, %v; want it placed", i, len(f), head, len(dst), ok)
			}
			if cancel && i == 1 {
				ctx, stop := context.WithCancel(context.Background())
				stop()
				if err := rx.waitRecv(ctx, r); !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled receive: %v", err)
				}
				if !pl.Cancelled() {
					t.Fatal("the receive returned with its placement still writing into its buffer")
				}
			}
			if !pl.Cancelled() {
				copy(dst, f[head:])
			}
			rx.Placed(f[:head])
		}
		if rx.err != nil {
			t.Fatalf("receiver failed: %v", rx.err)
		}
		if !cancel && (!isDone(r) || r.err != nil || !bytes.Equal(r.data, msg)) {
			t.Fatalf("receive: done %v, err %v, %d bytes equal %v", isDone(r), r.err, len(r.data), bytes.Equal(r.data, msg))
		}
		if len(rx.peers[0].rdvIn) != 0 {
			t.Fatalf("cancel %v: %d receives left streaming", cancel, len(rx.peers[0].rdvIn))
		}
		for _, f := range tx.frames {
			rx.onFrame(f)
		}
		next, err := rx.post(1, 0, 5, make([]byte, 16), true)
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		if err := rx.waitRecv(ctx, next); err != nil || string(next.data) != "next" {
			t.Fatalf("message after it: %q, %v", next.data, err)
		}
		stop()
	}
}
