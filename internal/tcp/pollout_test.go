//go:build linux

package tcp

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// smallBuffer gives socket fd a buffer (opt: SO_SNDBUF or SO_RCVBUF) of
// 64 KiB, so that a few frames fill it.
func smallBuffer(t *testing.T, fd int, opt int) {
	t.Helper()
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, opt, 64<<10); err != nil {
		t.Fatal(err)
	}
}

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
			// Small socket buffers: the sockets fill, whatever the
			// kernel's autotuning.
			smallBuffer(t, (*l0.outs.Load())[1].fd, syscall.SO_SNDBUF)
			smallBuffer(t, (*l1.polled.Load())[0].fd, syscall.SO_RCVBUF)
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

// TestPollWritesToManyPeers: a caller that polls a link with more
// outgoing connections holding queued frames than one system call asks
// about (pollBatch) writes to them, and every receiver gets its frames
// once, whole and in order (the receivers poll too).
func TestPollWritesToManyPeers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // the goroutines of the links run only when preempted
	const peers = pollBatch + 2
	const count = 12
	size := func(i int) int { return []int{8, 1 << 20, 1000, 300 << 10}[i%4] }
	send, err := Listen(Config{Rank: 0, Size: peers + 1, Key: testKey}, func([]byte) {}, func(err error) { t.Errorf("rank 0: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	cs := make([]*checker, peers)
	recs := map[int]Peer{}
	for i := range cs {
		c := &checker{size: size, next: map[int]int{}}
		l, err := Listen(Config{Rank: i + 1, Size: peers + 1, Key: testKey}, c.frame, func(err error) { t.Errorf("rank %d: %v", i+1, err) })
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		c.l, cs[i], recs[i+1] = l, c, l.Self()
		defer l.Claim()(false)
	}
	reach, why := send.Connect(t.Context(), recs)
	for p := range recs {
		if !reach[p] {
			t.Fatal(why[p])
		}
	}
	for _, o := range *send.outs.Load() {
		if o != nil {
			smallBuffer(t, o.fd, syscall.SO_SNDBUF)
		}
	}
	for _, c := range cs {
		waitFor(t, "the incoming connection", func() bool { return len(*c.l.polled.Load()) == 1 })
		smallBuffer(t, (*c.l.polled.Load())[0].fd, syscall.SO_RCVBUF)
	}
	for i := range count {
		for p := range peers {
			if err := send.Send(p+1, frame(0, i, size(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	all := func() bool {
		for _, c := range cs {
			if c.n.Load() < count {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(time.Minute)
	for !all() && !t.Failed() {
		send.Poll()
		for _, c := range cs {
			c.l.Poll()
		}
		if time.Now().After(deadline) {
			t.Fatal("not every frame arrived")
		}
	}
	for p, c := range cs {
		if c.err != nil {
			t.Errorf("rank %d: %v", p+1, c.err)
		}
		if got := c.next[0]; got != count {
			t.Errorf("rank %d: %d frames arrived; want %d", p+1, got, count)
		}
	}
	if send.PolledBytes() == 0 {
		t.Error("Poll wrote no queued bytes; want the frames full sockets held back")
	}
}
