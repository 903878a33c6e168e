package tcp

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestPollWritesQueued: frames that a full socket held back (copied into
// the queue, or lent with SendLent) are written by a caller that polls
// the link, with the writer goroutine unable to run meanwhile but for
// preemption (one P): every frame arrives once, whole and in order, mixed
// sizes, and each lent frame's done is called exactly once; with TLS
// (sealed frames, never lent) too.
func TestPollWritesQueued(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			size := func(i int) int {
				switch {
				case i%7 == 3:
					return 1 << 20
				case i%7 == 5:
					return 200 << 10
				}
				return []int{0, 8, 1000, 16 << 10, 16<<10 + 1, 64 << 10}[i%6]
			}
			c := &checker{size: size, next: map[int]int{}}
			l0, l1 := polledPair(t, tls, c.frame, func(err error) { t.Errorf("rank 1: %v", err) })
			c.l = l1
			defer l1.Claim()(false)
			defer l0.Claim()(false)
			const count = 150
			var dones []atomic.Int32
			dones = make([]atomic.Int32, count)
			lent := 0
			for i := range count {
				f := frame(0, i, size(i))
				if size(i) > smallFrame && i%2 == 1 {
					// The caller's buffer: the head (src, i) goes as head.
					ok, err := l0.SendLent(1, nil, f[:8], f[8:], func() { dones[i].Add(1) })
					if err != nil {
						t.Fatal(err)
					}
					if ok {
						lent++
					} else {
						dones[i].Add(1) // not kept: complete already
					}
				} else if err := l0.Send(1, f); err != nil {
					t.Fatal(err)
				} else {
					dones[i].Add(1)
				}
			}
			deadline := time.Now().Add(time.Minute)
			for c.n.Load() < count && !t.Failed() {
				l1.Poll()
				l0.Poll()
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d frames arrived", c.n.Load(), count)
				}
			}
			if c.err != nil {
				t.Fatal(c.err)
			}
			waitFor(t, "every lent frame's done", func() bool {
				for i := range dones {
					if dones[i].Load() == 0 {
						return false
					}
				}
				return true
			})
			for i := range dones {
				if n := dones[i].Load(); n != 1 {
					t.Errorf("frame %d: done called %d times; want once", i, n)
				}
			}
			if tls && lent > 0 {
				t.Errorf("%d frames lent to a sealed link; want none", lent)
			}
			if !tls && lent == 0 {
				t.Error("no frame was lent: the socket never filled")
			}
			if n := l0.PolledBytes(); n == 0 {
				t.Error("Poll wrote no queued bytes; want the frames a full socket held back")
			}
		})
	}
}

// TestPollManyConnections: a receiver with more incoming connections than
// Poll asks the kernel about at once (pollBatch) gets, while it polls,
// every sender's frames once, whole and in order.
func TestPollManyConnections(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const senders = pollBatch + 5
	const count = 40
	size := func(i int) int { return []int{0, 8, 1000, 16<<10 + 1, 8 << 10, 100 << 10}[i%6] }
	c := &checker{size: size, next: map[int]int{}}
	var polling atomic.Bool
	var polled atomic.Int64
	recv, err := Listen(Config{Rank: 0, Size: senders + 1, Key: testKey}, func(f []byte) {
		if polling.Load() {
			polled.Add(1)
		}
		c.frame(f)
	}, func(err error) { t.Errorf("rank 0: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	c.l = recv
	ls := make([]*Link, senders)
	for i := range ls {
		l, err := Listen(Config{Rank: i + 1, Size: senders + 1, Key: testKey}, func([]byte) {}, func(error) {})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if reach, why := l.Connect(t.Context(), map[int]Peer{0: recv.Self()}); !reach[0] {
			t.Fatal(why[0])
		}
		ls[i] = l
	}
	waitFor(t, "every incoming connection", func() bool { return len(*recv.polled.Load()) == senders })
	defer recv.Claim()(false)
	polling.Store(true)
	for i := range count {
		for s, l := range ls {
			if err := l.Send(0, frame(s+1, i, size(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(time.Minute)
	for c.n.Load() < senders*count && !t.Failed() {
		if !recv.Poll() {
			runtime.Gosched() // the senders' writer goroutines write what the sockets did not take
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d frames arrived", c.n.Load(), senders*count)
		}
	}
	polling.Store(false)
	if c.err != nil {
		t.Fatal(c.err)
	}
	for s := range ls {
		if got := c.next[s+1]; got != count {
			t.Errorf("rank %d: %d frames arrived; want %d", s+1, got, count)
		}
	}
	if n := polled.Load(); n < senders*count/2 {
		t.Errorf("%d of %d frames were delivered by Poll; want most", n, senders*count)
	}
}
