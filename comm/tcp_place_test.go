package comm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// TestTCPPlaced: over TCP, messages of mixed sizes (0 B to 6 MiB: eager,
// long eager and rendezvous) and tags, received into posted buffers and
// not, posted before the messages come and after: every message arrives
// in its receive, byte for byte, in order per tag, and the large ones
// whose receive was posted first are read from the socket straight into
// the receive's buffer (the link placed their Data frames).
func TestTCPPlaced(t *testing.T) {
	cs, errs := hostWorld(t, 2, "tcp", nil)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	tl := tcpLink(cs[1].link)
	if tl == nil {
		t.Fatal("rank 1 has no TCP link")
	}
	ctx := tctx(t)
	sizes := []int{0, 100, 16 << 10, 16<<10 + 1, 64 << 10, 1 << 20, 4 << 20, 6<<20 + 3}
	const rounds = 2
	n := rounds * len(sizes)
	size := func(i int) int { return sizes[i%len(sizes)] }
	tag := func(i int) int { return i % 3 }
	// tagged is message i: its number (when it has room), then bytes that
	// depend on i and the position.
	tagged := func(i int) []byte {
		b := mixed(0, i, size(i))
		if len(b) >= 4 {
			binary.LittleEndian.PutUint32(b, uint32(i))
		}
		return b
	}
	for _, posted := range []bool{true, false} {
		before := tl.PlacedFrames()
		type recv struct {
			q   *Request
			buf []byte
			i   int
		}
		var rs []recv
		post := func() {
			for i := range n {
				var q *Request
				var err error
				var buf []byte
				if i%2 == 0 {
					buf = make([]byte, size(i)+10)
					q, err = cs[1].IrecvInto(buf, 0, tag(i))
				} else {
					q, err = cs[1].Irecv(0, tag(i))
				}
				if err != nil {
					t.Fatal(err)
				}
				rs = append(rs, recv{q, buf, i})
			}
		}
		if posted {
			post()
			// Posted receives are known to rank 1 before rank 0 sends.
			if err := cs[1].Send(ctx, 0, 9, nil); err != nil {
				t.Fatal(err)
			}
			if _, _, err := cs[0].Recv(ctx, 1, 9); err != nil {
				t.Fatal(err)
			}
		}
		var sends []*Request
		for i := range n {
			q, err := cs[0].Isend(1, tag(i), tagged(i))
			if err != nil {
				t.Fatal(err)
			}
			sends = append(sends, q)
		}
		if !posted {
			post()
		}
		for _, r := range rs {
			st, err := r.q.Wait(ctx)
			if err != nil {
				t.Fatalf("posted=%v: receive %d: %v", posted, r.i, err)
			}
			got := r.buf
			if got == nil {
				got = r.q.Data()
			} else {
				got = got[:st.Size]
			}
			if want := tagged(r.i); !bytes.Equal(got, want) {
				k := -1
				if len(got) >= 4 {
					k = int(binary.LittleEndian.Uint32(got))
				}
				t.Fatalf("posted=%v: receive %d (tag %d): %d bytes (message %d?); want message %d of %d bytes",
					posted, r.i, tag(r.i), len(got), k, r.i, len(want))
			}
		}
		for _, q := range sends {
			if _, err := q.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		large := 0
		for i := range n {
			if size(i) > 64<<10 {
				large++
			}
		}
		if got := tl.PlacedFrames() - before; posted && got < int64(large) {
			t.Errorf("%d frames placed into posted receives; want at least %d (one per message of over 64 KiB)", got, large)
		}
	}
}

// TestTCPPlacedCancel: a receive whose context ends while its message is
// being read straight into its buffer returns, and from then on nothing
// writes into the buffer (the link drops the rest of the frame it was
// placing); the ranks then still exchange messages.
func TestTCPPlacedCancel(t *testing.T) {
	cs, errs := hostWorld(t, 2, "tcp", nil)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	tl := tcpLink(cs[1].link)
	const size = 48 << 20 // rendezvous, in chunks of up to 960 KiB
	msg := bytes.Repeat([]byte{0xa5}, size)
	buf := make([]byte, size)
	q, err := cs[1].IrecvInto(buf, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(tctx(t))
	defer scancel()
	sent := make(chan error, 1)
	go func() { sent <- cs[0].Send(sctx, 1, 3, msg) }()
	ctx, cancel := context.WithCancel(tctx(t))
	deadline := time.Now().Add(30 * time.Second)
	for tl.PlacedFrames() == 0 { // the first chunk landed: cancel in the middle
		if time.Now().After(deadline) {
			t.Fatal("no frame placed in 30 s")
		}
		time.Sleep(50 * time.Microsecond)
	}
	cancel()
	if _, err := q.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Skipf("the receive ended with %v before it could be cancelled", err)
	}
	seen := bytes.Clone(buf)
	scancel() // the sender gives up too (or has finished)
	<-sent
	time.Sleep(200 * time.Millisecond)
	if !bytes.Equal(buf, seen) {
		n := 0
		for i := range buf {
			if buf[i] != seen[i] {
				n++
			}
		}
		t.Errorf("%d bytes of the buffer changed after the receive returned", n)
	}
	// Still in step: a message each way.
	for r := range 2 {
		if err := cs[r].Send(tctx(t), 1-r, 4, []byte{byte(r)}); err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		if b, _, err := cs[1-r].Recv(tctx(t), r, 4); err != nil || !bytes.Equal(b, []byte{byte(r)}) {
			t.Fatalf("rank %d: got %v, %v; want [%d]", 1-r, b, err, r)
		}
	}
}
