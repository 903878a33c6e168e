package tcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSendWritesInline: a frame sent while nothing is queued goes to the
// kernel within Send (the writer goroutine, which cannot run here, is not
// needed), and arrives; with TLS too (sealed on the caller's goroutine).
func TestSendWritesInline(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			ls, ss := mesh(t, 2, tls)
			o := (*ls[0].outs.Load())[1]
			for i, size := range []int{0, 8, 1000, 8 << 10} {
				if err := ls[0].Send(1, frame(0, i, size)); err != nil {
					t.Fatal(err)
				}
				o.mu.Lock()
				queued, busy := len(o.q), o.busy
				o.mu.Unlock()
				if queued != 0 || busy {
					t.Fatalf("frame of %d bytes: %d buffers queued for the writer (busy %v) after Send; want it written by Send", size, queued, busy)
				}
				ss[1].wait(t, "the frame", func(s *sink) bool { return len(s.frames) == i+1 })
				if want := frame(0, i, size); !bytes.Equal(ss[1].frames[i], want) {
					t.Fatalf("frame %d arrived with %d bytes or other content; want %d", i, len(ss[1].frames[i]), len(want))
				}
			}
		})
	}
}

// TestPollDelivers: a caller that polls the link gets each frame
// delivered on its own goroutine (the reader goroutines cannot run here),
// whole and in order, small and large; with TLS too.
func TestPollDelivers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			var polling atomic.Bool
			var polled atomic.Int64
			s1 := newSink()
			l0, l1 := polledPair(t, tls, func(f []byte) {
				if polling.Load() {
					polled.Add(1)
				}
				s1.frame(f)
			}, s1.fatal)
			sizes := []int{0, 8, 1 << 10, 8 << 10, 16 << 10, 16<<10 + 1, 64 << 10, 1 << 20}
			const count = 40
			for i := range count {
				if err := l0.Send(1, frame(0, i, sizes[i%len(sizes)])); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(30 * time.Second)
				polling.Store(true)
				for s1.count() < i+1 {
					if !l1.Poll() && time.Now().After(deadline) {
						t.Fatalf("frame %d did not arrive", i)
					}
					if i%len(sizes) == len(sizes)-1 {
						runtime.Gosched() // let the writer goroutine send the rest of a large frame
					}
				}
				polling.Store(false)
			}
			for i, f := range s1.frames {
				if want := frame(0, i, sizes[i%len(sizes)]); !bytes.Equal(f, want) {
					t.Fatalf("frame %d: %d bytes or other content; want %d", i, len(f), len(want))
				}
			}
			if n := polled.Load(); n < count/2 {
				t.Errorf("%d of %d frames were delivered by Poll; want most", n, count)
			}
		})
	}
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

// checker checks, as frames arrive, that each sender's frames come in
// order with the content sent (frame(src, i, size(i))), and gives large
// ones back to the link.
type checker struct {
	l    *Link
	size func(i int) int
	mu   sync.Mutex
	next map[int]int
	err  error
	n    atomic.Int64
}

func (c *checker) frame(f []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	src, i := int(binary.LittleEndian.Uint32(f)), int(binary.LittleEndian.Uint32(f[4:]))
	switch {
	case c.err != nil:
	case i != c.next[src]:
		c.err = fmt.Errorf("frame %d from rank %d arrived when frame %d was due", i, src, c.next[src])
	case !bytes.Equal(f, frame(src, i, c.size(i))):
		c.err = fmt.Errorf("frame %d from rank %d: %d bytes or other content", i, src, len(f))
	}
	c.next[src]++
	c.n.Add(1)
	c.l.Recycle(f)
}

// TestPollBothWays: two links stream 10,000 frames of mixed sizes (0 B to
// 1 MiB) to each other at once while, on each, one goroutine polls and
// another sends, beside the reader goroutines: every frame arrives once,
// whole and in order; with TLS too.
func TestPollBothWays(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) { pollBothWays(t, tls) })
	}
}

func pollBothWays(t *testing.T, tls bool) {
	const count = 10000
	size := func(i int) int {
		switch {
		case i%500 == 499:
			return 1 << 20
		case i%50 == 49:
			return 100 << 10
		}
		return []int{0, 3, 8, 100, 1000, 4096, 16<<10 - 8, 16<<10 - 7, 20 << 10}[i%9]
	}
	cs := []*checker{{size: size, next: map[int]int{}}, {size: size, next: map[int]int{}}}
	ls := make([]*Link, 2)
	for r := range ls {
		l, err := Listen(Config{Rank: r, Size: 2, Key: testKey, TLS: tls}, cs[r].frame, func(err error) { t.Errorf("rank %d: %v", r, err) })
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ls[r], cs[r].l = l, l
	}
	for r, l := range ls {
		if reach, why := l.Connect(t.Context(), map[int]Peer{1 - r: ls[1-r].Self()}); !reach[1-r] {
			t.Fatal(why[1-r])
		}
	}
	var wg sync.WaitGroup
	for r, l := range ls {
		wg.Go(func() { // the sender, at most 64 frames ahead of the receiver
			for i := range count {
				for sent := int64(i); sent-cs[1-r].n.Load() > 64 && !t.Failed(); {
					time.Sleep(10 * time.Microsecond)
				}
				if err := l.Send(1-r, frame(r, i, size(i))); err != nil {
					t.Errorf("rank %d: Send %d: %v", r, i, err)
					return
				}
			}
		})
		wg.Go(func() { // the poller
			deadline := time.Now().Add(2 * time.Minute)
			for cs[r].n.Load() < count && !t.Failed() {
				if !l.Poll() {
					if time.Now().After(deadline) {
						t.Errorf("rank %d: %d of %d frames arrived", r, cs[r].n.Load(), count)
						return
					}
					runtime.Gosched()
				}
			}
		})
	}
	wg.Wait()
	for r, c := range cs {
		if c.err != nil {
			t.Errorf("rank %d: %v", r, c.err)
		}
		if got := c.next[1-r]; got != count && !t.Failed() {
			t.Errorf("rank %d: %d frames arrived; want %d", r, got, count)
		}
	}
}

// TestPeerDiesMidFrameWhilePolling: a peer that vanishes in the middle of
// a frame, small or large, while the receiver polls the link is reported
// as a PeerError that says so, and the partial frame is not delivered.
func TestPeerDiesMidFrameWhilePolling(t *testing.T) {
	for _, size := range []int{100, 200 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s0 := newSink()
			l0, err := Listen(Config{Rank: 0, Size: 2, Key: testKey, Grace: time.Millisecond}, s0.frame, s0.fatal)
			if err != nil {
				t.Fatal(err)
			}
			defer l0.Close()
			l1, err := Listen(Config{Rank: 1, Size: 2, Key: testKey}, func([]byte) {}, func(error) {})
			if err != nil {
				t.Fatal(err)
			}
			defer l1.Close()
			c, _, err := l1.dial(t.Context(), 0, l0.Self())
			if err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						l0.Poll()
					}
				}
			})
			defer func() { close(stop); wg.Wait() }()
			msg := binary.LittleEndian.AppendUint32(nil, 5)
			msg = append(msg, "whole"...)
			msg = binary.LittleEndian.AppendUint32(msg, uint32(size))
			msg = append(msg, make([]byte, size/2)...)
			c.Write(msg)
			s0.wait(t, "the whole frame", func(s *sink) bool { return len(s.frames) == 1 })
			c.Close()
			s0.wait(t, "the report", func(s *sink) bool { return len(s.errs) > 0 })
			var pe *PeerError
			if err := s0.errs[0]; !errors.As(err, &pe) || pe.Rank != 1 || !strings.Contains(err.Error(), "in the middle of a frame") {
				t.Errorf("reported %v; want a PeerError naming rank 1 and the partial frame", err)
			}
			if len(s0.frames) != 1 || string(s0.frames[0]) != "whole" {
				t.Errorf("delivered %d frames; want only the whole one", len(s0.frames))
			}
		})
	}
}

// TestClaim: while a caller claims the link, frames wait for its Poll (the
// reader goroutine leaves the socket alone); once the claim is released,
// the reader goroutine delivers again, at once when the caller gives up
// waiting (soon false) and shortly after otherwise.
func TestClaim(t *testing.T) {
	ls, ss := mesh(t, 2, false)
	waitFor(t, "the incoming connection", func() bool { return len(*ls[1].polled.Load()) == 1 })
	for _, soon := range []bool{false, true} {
		base := ss[1].count()
		release := ls[1].Claim()
		if err := ls[0].Send(1, frame(0, base, 100)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // time for a reader goroutine that ignored the claim to deliver
		if n := ss[1].count(); n != base {
			t.Fatalf("soon=%v: %d frames delivered under a claim without Poll; want none", soon, n-base)
		}
		waitFor(t, "Poll to deliver the frame", func() bool { ls[1].Poll(); return ss[1].count() == base+1 })
		release(soon)
		if err := ls[0].Send(1, frame(0, base+1, 100)); err != nil {
			t.Fatal(err)
		}
		ss[1].wait(t, "the reader goroutine to deliver after the claim", func(s *sink) bool { return len(s.frames) == base+2 })
	}
	for i, f := range ss[1].frames {
		if !bytes.Equal(f, frame(0, i, 100)) {
			t.Errorf("frame %d: %d bytes or other content", i, len(f))
		}
	}
}

// polledPair is rank 0's link connected to rank 1's, whose frames go to
// onFrame, once rank 1 polls the connection (both closed at the test's
// end).
func polledPair(t *testing.T, tls bool, onFrame func([]byte), onFatal func(error)) (l0, l1 *Link) {
	t.Helper()
	l1, err := Listen(Config{Rank: 1, Size: 2, Key: testKey, TLS: tls}, onFrame, onFatal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l1.Close() })
	l0, err = Listen(Config{Rank: 0, Size: 2, Key: testKey, TLS: tls}, func([]byte) {}, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l0.Close() })
	if reach, why := l0.Connect(t.Context(), map[int]Peer{1: l1.Self()}); !reach[1] {
		t.Fatal(why[1])
	}
	waitFor(t, "the incoming connection", func() bool { return len(*l1.polled.Load()) == 1 })
	return l0, l1
}
