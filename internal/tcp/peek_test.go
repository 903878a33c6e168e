//go:build linux

package tcp

import (
	"bytes"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// unread returns how many bytes the socket fd holds that no read has
// taken yet (SIOCINQ, as TIOCINQ).
func unread(t *testing.T, fd int) int {
	t.Helper()
	var n int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); errno != 0 {
		t.Fatalf("SIOCINQ: %v", errno)
	}
	return int(n)
}

// TestPollLeavesFrameInSocket: a frame that a polling caller gets is
// delivered whole while its bytes stay in the socket (so the kernel's ACK
// for them is not sent from within that read), and the next Poll takes
// them out before it reads on: the socket then holds only the next frame.
// Frames of every size, and the reader goroutine taking over once the
// caller stops, keep every byte, once, in order; with TLS too.
func TestPollLeavesFrameInSocket(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // the reader goroutines cannot run while the test polls
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			s1 := newSink()
			l0, l1 := polledPair(t, tls, s1.frame, s1.fatal)
			fd := (*l1.polled.Load())[0].fd
			tag := 0
			if tls {
				tag = tagLen
			}
			release := l1.Claim()
			poll := func(want int) {
				t.Helper()
				deadline := time.Now().Add(30 * time.Second)
				for s1.count() < want {
					if !l1.Poll() && time.Now().After(deadline) {
						t.Fatalf("frame %d did not arrive", want-1)
					}
				}
			}
			// Small frames, one at a time: each stays in the socket until
			// the next Poll.
			sizes := []int{0, 8, 200, 1 << 10, 8 << 10}
			for i, n := range sizes {
				if err := l0.Send(1, frame(0, i, n)); err != nil {
					t.Fatal(err)
				}
				poll(i + 1)
				if got, want := unread(t, fd), 4+8+n+tag; got != want {
					t.Fatalf("frame %d of %d bytes delivered: the socket holds %d bytes; want the frame's %d", i, n, got, want)
				}
			}
			l1.Poll()
			if got := unread(t, fd); got != 0 {
				t.Fatalf("after the next Poll the socket holds %d bytes; want 0", got)
			}
			// Mixed sizes, several frames per Poll, large ones (read into
			// frames of their own) among them.
			mixed := []int{8, 100, 16<<10 + 1, 3, 64 << 10, 1 << 20, 0, 5000}
			next := len(sizes)
			for range 3 {
				for _, n := range mixed {
					if err := l0.Send(1, frame(0, next, n)); err != nil {
						t.Fatal(err)
					}
					next++
				}
				runtime.Gosched() // the writer goroutine sends what the socket did not take at once
				poll(next)
			}
			// The caller stops polling: the reader goroutine reads the rest,
			// dropping what the last peek left first.
			release(false)
			for _, n := range sizes {
				if err := l0.Send(1, frame(0, next, n)); err != nil {
					t.Fatal(err)
				}
				next++
			}
			s1.wait(t, "the frames read by the reader goroutine", func(s *sink) bool { return len(s.frames) == next || len(s.errs) > 0 })
			if len(s1.errs) > 0 {
				t.Fatal(s1.errs[0])
			}
			want := append(append([]int{}, sizes...), mixed...)
			want = append(append(want, mixed...), mixed...)
			want = append(want, sizes...)
			for i, f := range s1.frames {
				if w := frame(0, i, want[i]); !bytes.Equal(f, w) {
					t.Fatalf("frame %d: %d bytes or other content; want %d", i, len(f), len(w))
				}
			}
			waitFor(t, "the socket to be read empty", func() bool { return unread(t, fd) == 0 })
		})
	}
}
