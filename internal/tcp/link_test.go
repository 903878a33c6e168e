package tcp

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// sink collects what a link delivers and what it reports.
type sink struct {
	mu     sync.Mutex
	frames [][]byte
	errs   []error
	got    chan struct{} // a frame or an error arrived
}

func newSink() *sink { return &sink{got: make(chan struct{}, 1)} }

func (s *sink) frame(f []byte) {
	s.mu.Lock()
	s.frames = append(s.frames, f)
	s.mu.Unlock()
	s.poke()
}

func (s *sink) fatal(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
	s.poke()
}

func (s *sink) poke() {
	select {
	case s.got <- struct{}{}:
	default:
	}
}

// wait returns once cond holds on the sink (checked under its lock), or
// fails the test after a generous time.
func (s *sink) wait(t *testing.T, what string, cond func(*sink) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		s.mu.Lock()
		ok := cond(s)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

// mesh starts n links that all reach each other and closes them at the end.
func mesh(t *testing.T, n int, tls bool) ([]*Link, []*sink) {
	t.Helper()
	ls := make([]*Link, n)
	ss := make([]*sink, n)
	for r := range n {
		ss[r] = newSink()
		l, err := Listen(Config{Rank: r, Size: n, Key: testKey, TLS: tls, Grace: 20 * time.Millisecond}, ss[r].frame, ss[r].fatal)
		if err != nil {
			t.Fatal(err)
		}
		ls[r] = l
		t.Cleanup(func() { l.Close() })
	}
	for r, l := range ls {
		peers := map[int]Peer{}
		for p, m := range ls {
			if p != r {
				peers[p] = m.Self()
			}
		}
		reach, why := l.Connect(t.Context(), peers)
		for p := range n {
			if p != r && !reach[p] {
				t.Fatalf("rank %d cannot reach rank %d: %v", r, p, why[p])
			}
		}
	}
	return ls, ss
}

// frame is sender src's i-th test frame: src, i and a body of size bytes.
func frame(src, i, size int) []byte {
	f := make([]byte, 8+size)
	binary.LittleEndian.PutUint32(f, uint32(src))
	binary.LittleEndian.PutUint32(f[4:], uint32(i))
	for k := range min(size, 251) {
		f[8+k] = byte(src + i + k)
	}
	for k := 251; k < size; k *= 2 {
		copy(f[8+k:], f[8:8+k])
	}
	return f
}

// TestOrder: every rank sends frames of mixed sizes (0 B to 1 MiB) to
// every other; each receiver gets each sender's frames whole and in order.
func TestOrder(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			const n, count = 3, 30
			sizes := []int{0, 1, 100, 4096, 70000, 5, 1 << 20}
			ls, ss := mesh(t, n, tls)
			var wg sync.WaitGroup
			for r, l := range ls {
				wg.Go(func() {
					for i := range count {
						for p := range n {
							if p != r {
								if err := l.Send(p, frame(r, i, sizes[(i+p)%len(sizes)])); err != nil {
									t.Errorf("rank %d: Send to %d: %v", r, p, err)
									return
								}
							}
						}
					}
					if err := l.Flush(t.Context()); err != nil {
						t.Errorf("rank %d: Flush: %v", r, err)
					}
				})
			}
			wg.Wait()
			for r, s := range ss {
				s.wait(t, "every frame", func(s *sink) bool { return len(s.frames) == (n-1)*count || len(s.errs) > 0 })
				if len(s.errs) > 0 {
					t.Fatalf("rank %d: %v", r, s.errs)
				}
				next := make([]int, n)
				for _, f := range s.frames {
					src, i := int(binary.LittleEndian.Uint32(f)), int(binary.LittleEndian.Uint32(f[4:]))
					if i != next[src] {
						t.Fatalf("rank %d: frame %d from rank %d arrived when frame %d was due", r, i, src, next[src])
					}
					if want := frame(src, i, sizes[(i+r)%len(sizes)]); !bytes.Equal(f, want) {
						t.Fatalf("rank %d: frame %d from rank %d has %d bytes, not the %d sent, or other content", r, i, src, len(f), len(want))
					}
					next[src]++
				}
			}
		})
	}
}

// TestLargeFrame: a 20 MiB frame arrives whole behind a small one and
// ahead of the next.
func TestLargeFrame(t *testing.T) {
	ls, ss := mesh(t, 2, false)
	big := frame(0, 1, 20<<20)
	for i, f := range [][]byte{frame(0, 0, 10), big, frame(0, 2, 10)} {
		if err := ls[0].Send(1, f); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := ls[0].Send(1, make([]byte, 64<<20+1)); err == nil || !strings.Contains(err.Error(), "above the limit") {
		t.Errorf("Send of a frame over MaxFrame: %v; want an error naming the limit", err)
	}
	ss[1].wait(t, "three frames", func(s *sink) bool { return len(s.frames) == 3 })
	for i, f := range ss[1].frames {
		if got := int(binary.LittleEndian.Uint32(f[4:])); got != i {
			t.Errorf("frame %d is frame %d", i, got)
		}
	}
	if !bytes.Equal(ss[1].frames[1], big) {
		t.Errorf("the large frame arrived with %d bytes or other content", len(ss[1].frames[1]))
	}
}

// TestWrongKey: a rank with another key cannot reach a peer (the error
// says why), and the peer delivers nothing from it; a client that skips
// the proof and just sends frames is dropped too.
func TestWrongKey(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			s0, s1 := newSink(), newSink()
			l0, err := Listen(Config{Rank: 0, Size: 2, Key: testKey, TLS: tls}, s0.frame, s0.fatal)
			if err != nil {
				t.Fatal(err)
			}
			defer l0.Close()
			l1, err := Listen(Config{Rank: 1, Size: 2, Key: []byte("another job's key"), TLS: tls}, s1.frame, s1.fatal)
			if err != nil {
				t.Fatal(err)
			}
			defer l1.Close()
			reach, why := l1.Connect(t.Context(), map[int]Peer{0: l0.Self()})
			if reach[0] || !errors.Is(why[0], ErrAuth) || !strings.Contains(why[0].Error(), "could not prove that it is rank 0 of this job") {
				t.Fatalf("Connect with a wrong key: reach %v, error %v; want ErrAuth naming rank 0", reach[0], why[0])
			}
			if err := l1.Send(0, []byte("x")); err == nil {
				t.Errorf("Send to an unreachable rank succeeded")
			}
			// The listener's side: the dialer left after the listener's proof.
			waitFor(t, "the rejection", func() bool { return l0.Rejected() == 1 })

			// A client that knows the protocol but not the key.
			l2, err := Listen(Config{Rank: 1, Size: 2, Key: []byte("another job's key"), TLS: tls}, s1.frame, s1.fatal)
			if err != nil {
				t.Fatal(err)
			}
			defer l2.Close()
			raw, err := l2.dialRaw(t, l0.Self())
			if err != nil {
				t.Fatal(err)
			}
			hello := make([]byte, helloLen)
			copy(hello, magic)
			binary.LittleEndian.PutUint32(hello[len(magic):], 1)
			raw.Write(hello)
			resp := make([]byte, nonceLen+macLen)
			readFull(raw, resp)
			raw.Write(make([]byte, macLen)) // a wrong proof
			raw.Write([]byte{4, 0, 0, 0, 'e', 'v', 'i', 'l'})
			var b [1]byte
			if n, _ := raw.Read(b[:]); n != 0 {
				t.Errorf("the listener accepted a wrong proof (answered %v)", b)
			}
			raw.Close()
			waitFor(t, "the second rejection", func() bool { return l0.Rejected() == 2 })
			s0.mu.Lock()
			defer s0.mu.Unlock()
			if len(s0.frames) != 0 || len(s0.errs) != 0 {
				t.Errorf("rank 0 delivered %d frames and reported %v from unauthenticated clients", len(s0.frames), s0.errs)
			}
		})
	}
}

// TestFingerprintMismatch: with TLS a dialer accepts only the certificate
// the peer published.
func TestFingerprintMismatch(t *testing.T) {
	s := newSink()
	var ls []*Link
	for r := range 3 {
		l, err := Listen(Config{Rank: r, Size: 3, Key: testKey, TLS: true}, s.frame, s.fatal)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ls = append(ls, l)
	}
	if len(ls[0].Self().Fingerprint) != 32 {
		t.Fatalf("fingerprint %x; want 32 bytes", ls[0].Self().Fingerprint)
	}
	// Rank 2 is told rank 0's address with rank 1's fingerprint.
	forged := Peer{Addr: ls[0].Self().Addr, Fingerprint: ls[1].Self().Fingerprint}
	reach, why := ls[2].Connect(t.Context(), map[int]Peer{0: forged, 1: {Addr: ls[1].Self().Addr}})
	if reach[0] || why[0] == nil || !strings.Contains(why[0].Error(), "is not the one rank 0 published") {
		t.Errorf("Connect to a forged certificate: reach %v, error %v; want a fingerprint mismatch naming rank 0", reach[0], why[0])
	}
	if reach[1] || why[1] == nil || !strings.Contains(why[1].Error(), "published no certificate fingerprint") {
		t.Errorf("Connect without a fingerprint: reach %v, error %v", reach[1], why[1])
	}
	if p, err := ParsePeer(ls[0].Self().String()); err != nil || p.String() != ls[0].Self().String() {
		t.Errorf("ParsePeer(%q) = %v, %v", ls[0].Self().String(), p, err)
	}
}

// TestPeerDies: a connection that ends mid-stream is reported, after the
// grace period, as a *PeerError naming the peer, on both ends; frames sent
// before it are delivered.
func TestPeerDies(t *testing.T) {
	ls, ss := mesh(t, 2, false)
	for i := range 10 {
		ls[1].Send(0, frame(1, i, 1000))
	}
	ls[1].Flush(t.Context())
	ss[0].wait(t, "10 frames", func(s *sink) bool { return len(s.frames) == 10 })
	ls[1].Close() // rank 1 "dies": its connections end
	ss[0].wait(t, "rank 0's report", func(s *sink) bool { return len(s.errs) > 0 })
	var pe *PeerError
	if err := ss[0].errs[0]; !errors.As(err, &pe) || pe.Rank != 1 || !strings.Contains(err.Error(), "connection with rank 1 broke") {
		t.Errorf("rank 0 reported %v; want a PeerError naming rank 1", err)
	}
	// Rank 0's frames to rank 1 now fail to be written.
	for i := 0; ; i++ {
		ls[0].Send(1, frame(0, i, 1<<16))
		ls[0].Flush(t.Context())
		ss[0].mu.Lock()
		n := len(ss[0].errs)
		ss[0].mu.Unlock()
		if n > 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := ss[0].errs[1]; !errors.As(err, &pe) || pe.Rank != 1 || !strings.Contains(err.Error(), "writing to") {
		t.Errorf("rank 0's second report is %v; want a write error naming rank 1", err)
	}
	if err := ls[0].Flush(t.Context()); err != nil {
		t.Errorf("Flush with a broken peer: %v", err)
	}
}

// TestPeerDiesMidFrame: a peer that vanishes in the middle of a frame is
// reported, and the partial frame is not delivered.
func TestPeerDiesMidFrame(t *testing.T) {
	s0, s1 := newSink(), newSink()
	l0, err := Listen(Config{Rank: 0, Size: 2, Key: testKey, Grace: time.Millisecond}, s0.frame, s0.fatal)
	if err != nil {
		t.Fatal(err)
	}
	defer l0.Close()
	l1, err := Listen(Config{Rank: 1, Size: 2, Key: testKey}, s1.frame, s1.fatal)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	c, _, err := l1.dial(t.Context(), 0, l0.Self())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{5, 0, 0, 0, 'w', 'h', 'o', 'l', 'e', 100, 0, 0, 0, 'p', 'a', 'r'})
	c.Close()
	s0.wait(t, "the report", func(s *sink) bool { return len(s.errs) > 0 })
	var pe *PeerError
	if err := s0.errs[0]; !errors.As(err, &pe) || pe.Rank != 1 || !strings.Contains(err.Error(), "in the middle of a frame") {
		t.Errorf("reported %v; want a PeerError naming rank 1 and the partial frame", err)
	}
	if len(s0.frames) != 1 || string(s0.frames[0]) != "whole" {
		t.Errorf("delivered %q; want only the whole frame", s0.frames)
	}
}

// TestCloseEndsEverything: Close returns with a writer blocked on a
// receiver that does not read, and with handshakes in progress; later
// calls fail with ErrClosed; Close is idempotent. (goleak checks that no
// goroutine is left.)
func TestCloseEndsEverything(t *testing.T) {
	release := make(chan struct{})
	s1 := newSink()
	l0, err := Listen(Config{Rank: 0, Size: 2, Key: testKey}, func([]byte) {}, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	l1, err := Listen(Config{Rank: 1, Size: 2, Key: testKey}, func(f []byte) { <-release; s1.frame(f) }, s1.fatal)
	if err != nil {
		t.Fatal(err)
	}
	if reach, why := l0.Connect(t.Context(), map[int]Peer{1: l1.Self()}); !reach[1] {
		t.Fatal(why[1])
	}
	for range 64 {
		l0.Send(1, make([]byte, 1<<20)) // far more than the sockets hold
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := l0.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush to a receiver that does not read: %v; want DeadlineExceeded", err)
	}
	idle, err := l0.dialRaw(t, l1.Self()) // never says hello
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	l0.Close()
	close(release)
	l1.Close()
	l1.Close()
	if err := l0.Send(1, []byte("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v; want ErrClosed", err)
	}
	s1.mu.Lock()
	defer s1.mu.Unlock()
	if len(s1.errs) != 0 {
		t.Errorf("a closed link reported %v", s1.errs)
	}
}

// TestConfig: bad configurations are errors naming what is wrong.
func TestConfig(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Rank: 2, Size: 2, Key: testKey}, "rank 2 out of range"},
		{Config{Rank: 0, Size: 2}, "no key"},
		{Config{Rank: 0, Size: 2, Key: testKey, Host: "192.0.2.1"}, "192.0.2.1"},
	} {
		if l, err := Listen(tt.cfg, nil, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Listen(%+v) = %v; want an error containing %q", tt.cfg, err, tt.want)
			if l != nil {
				l.Close()
			}
		}
	}
	for _, s := range []string{"nohost", "1.2.3.4:5 zz", "1.2.3.4:5 abcd"} {
		if _, err := ParsePeer(s); err == nil {
			t.Errorf("ParsePeer(%q) accepted it", s)
		}
	}
}

// dialRaw connects to rec without the handshake (through TLS when l uses
// it).
func (l *Link) dialRaw(t *testing.T, rec Peer) (net.Conn, error) {
	t.Helper()
	c, err := net.Dial("tcp", rec.Addr)
	if err != nil || !l.cfg.TLS {
		return c, err
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err := tc.HandshakeContext(t.Context()); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

func readFull(c net.Conn, b []byte) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.ReadFull(c, b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRecycle: a large frame given back may be read into again, and later
// frames still arrive intact; small frames are not kept.
func TestRecycle(t *testing.T) {
	ls, ss := mesh(t, 2, false)
	if ls[1].Recycle(make([]byte, 10)) {
		t.Errorf("Recycle kept a frame of 10 bytes")
	}
	for i := range 20 {
		ls[0].Send(1, frame(0, i, 100<<10))
		ss[1].wait(t, "the frame", func(s *sink) bool { return len(s.frames) == 1 })
		f := ss[1].frames[0]
		if want := frame(0, i, 100<<10); !bytes.Equal(f, want) {
			t.Fatalf("frame %d: %d bytes or other content", i, len(f))
		}
		ss[1].mu.Lock()
		ss[1].frames = nil
		ss[1].mu.Unlock()
		if !ls[1].Recycle(f) {
			t.Fatalf("Recycle did not keep a frame of %d bytes", len(f))
		}
	}
}

// TestRecycleSmall: a small frame given back (whole, or its tail after a
// header) is read into again by a later frame that fits, which arrives
// intact; a 1 KiB frame's tail serves 20 frames of its size.
func TestRecycleSmall(t *testing.T) {
	ls, ss := mesh(t, 2, false)
	var prev []byte
	for i := range 20 {
		ls[0].Send(1, frame(0, i, 1000))
		ss[1].wait(t, "the frame", func(s *sink) bool { return len(s.frames) == 1 })
		f := ss[1].frames[0]
		ss[1].mu.Lock()
		ss[1].frames = nil
		ss[1].mu.Unlock()
		if want := frame(0, i, 1000); !bytes.Equal(f, want) {
			t.Fatalf("frame %d: %d bytes or other content", i, len(f))
		}
		if prev != nil && &f[0] != &prev[0] {
			t.Errorf("frame %d was not read into the frame given back before it", i)
		}
		tail := f[48:] // as comm gives back a payload after its header
		if !ls[1].Recycle(tail) {
			t.Fatalf("Recycle did not keep a small frame's tail of %d bytes (capacity %d)", len(tail), cap(tail))
		}
		prev = tail[:1]
	}
}

// TestSendV: a frame given in two parts arrives joined, in order with
// whole frames, small and large.
func TestSendV(t *testing.T) {
	ls, ss := mesh(t, 2, false)
	want := [][]byte{frame(0, 0, 10), frame(0, 1, 100<<10), frame(0, 2, 5), frame(0, 3, 0)}
	for i, f := range want {
		if i%2 == 0 {
			ls[0].Send(1, f)
			continue
		}
		if took, err := ls[0].SendV(1, f[:6], f[6:]); !took || err != nil {
			t.Fatalf("SendV = %v, %v", took, err)
		}
	}
	ss[1].wait(t, "four frames", func(s *sink) bool { return len(s.frames) == len(want) })
	for i, f := range ss[1].frames {
		if !bytes.Equal(f, want[i]) {
			t.Errorf("frame %d: %d bytes or other content; want %d", i, len(f), len(want[i]))
		}
	}
}
