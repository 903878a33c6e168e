package tcp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// tee relays TCP connections to target and keeps a copy of every byte
// the dialers sent.
type tee struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	seen   bytes.Buffer
	conns  []net.Conn
}

func newTee(t *testing.T, target string) *tee {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tee{ln: ln, target: target}
	p.wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			p.wg.Go(func() { io.Copy(in, out); in.Close() })
			p.wg.Go(func() { io.Copy(out, io.TeeReader(in, p)); out.Close() })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *tee) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen.Write(b)
}

func (p *tee) saw(b []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Contains(p.seen.Bytes(), b)
}

// TestPlainOverTLS: with Config.Plain a TLS job's connections are still
// made through TLS with the pinned certificate (a forged fingerprint is
// refused), but frames cross the wire as they are, small and large, in
// order and intact, and large ones may be placed; without Plain the same
// frames never appear on the wire.
func TestPlainOverTLS(t *testing.T) {
	for _, plain := range []bool{true, false} {
		t.Run(map[bool]string{true: "plain", false: "sealed"}[plain], func(t *testing.T) {
			s1 := newSink()
			l1, err := Listen(Config{Rank: 1, Size: 2, Key: testKey, TLS: true, Plain: plain}, s1.frame, s1.fatal)
			if err != nil {
				t.Fatal(err)
			}
			defer l1.Close()
			l0, err := Listen(Config{Rank: 0, Size: 2, Key: testKey, TLS: true, Plain: plain}, func([]byte) {}, func(error) {})
			if err != nil {
				t.Fatal(err)
			}
			defer l0.Close()
			self := l1.Self()
			if self.Plain != plain || len(self.Fingerprint) != 32 || l1.Sealed() == plain {
				t.Fatalf("Self() = %+v, Sealed() = %v with Plain %v", self, l1.Sealed(), plain)
			}
			if got, err := ParsePeer(self.String()); err != nil || got.Plain != plain || !bytes.Equal(got.Fingerprint, self.Fingerprint) || got.Addr != self.Addr {
				t.Fatalf("ParsePeer(%q) = %+v, %v", self.String(), got, err)
			}
			if got := l1.SetPlacer(nopPlacer{}); got != plain {
				t.Errorf("SetPlacer = %v; want %v (frames are placed only when not sealed)", got, plain)
			}
			// The pinned certificate still counts.
			forged := Peer{Addr: self.Addr, Fingerprint: l0.Self().Fingerprint, Plain: plain}
			if reach, why := l0.Connect(t.Context(), map[int]Peer{1: forged}); reach[1] || why[1] == nil || !strings.Contains(why[1].Error(), "is not the one rank 1 published") {
				t.Fatalf("Connect to a forged certificate: reach %v, error %v", reach[1], why[1])
			}
			l0b, err := Listen(Config{Rank: 0, Size: 2, Key: testKey, TLS: true, Plain: plain}, func([]byte) {}, func(error) {})
			if err != nil {
				t.Fatal(err)
			}
			defer l0b.Close()
			p := newTee(t, self.Addr)
			via := self
			via.Addr = p.ln.Addr().String()
			if reach, why := l0b.Connect(t.Context(), map[int]Peer{1: via}); !reach[1] {
				t.Fatalf("Connect: %v", why[1])
			}
			var sent [][]byte
			for i, size := range []int{10, 1000, 100 << 10, 3 << 20, 20} {
				f := frame(0, i, size)
				for j := 8; j < len(f); j++ {
					f[j] = byte(j*7 + i + j>>9)
				}
				if err := l0b.Send(1, f); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, f)
			}
			s1.wait(t, "the frames", func(s *sink) bool { return len(s.frames) == len(sent) || len(s.errs) > 0 })
			s1.mu.Lock()
			for i := range sent {
				if i >= len(s1.frames) || !bytes.Equal(s1.frames[i], sent[i]) {
					t.Errorf("frame %d arrived altered or out of order", i)
				}
			}
			if len(s1.errs) > 0 {
				t.Errorf("errors: %v", s1.errs)
			}
			s1.mu.Unlock()
			for i, f := range sent {
				if got := p.saw(f[8:]); got != plain {
					t.Errorf("frame %d (%d bytes) in clear text on the wire: %v; want %v", i, len(f), got, plain)
				}
			}
		})
	}
}

// nopPlacer places nothing: every frame goes to onFrame.
type nopPlacer struct{}

func (nopPlacer) Place([]byte, int, *Placement) (int, []byte, bool) { return 0, nil, false }
func (nopPlacer) Placed([]byte)                                     {}

// TestEncryptMismatch: a rank that seals its frames and one that does not
// never connect: the dialer refuses the peer's record (ErrMismatch naming
// both ranks and what each does), and an acceptor refuses a dialer whose
// hello says the other (here a dialer told that the acceptor agrees).
func TestEncryptMismatch(t *testing.T) {
	for _, tls := range []bool{true, false} {
		s := newSink()
		l1, err := Listen(Config{Rank: 1, Size: 2, Key: testKey, TLS: tls}, s.frame, s.fatal)
		if err != nil {
			t.Fatal(err)
		}
		defer l1.Close()
		l0, err := Listen(Config{Rank: 0, Size: 2, Key: testKey, TLS: tls, Plain: true}, s.frame, s.fatal)
		if err != nil {
			t.Fatal(err)
		}
		defer l0.Close()
		reach, why := l0.Connect(t.Context(), map[int]Peer{1: l1.Self()})
		want := "rank 1 encrypts its frames and rank 0 sends its frames unencrypted"
		if reach[1] || !errors.Is(why[1], ErrMismatch) || !strings.Contains(why[1].Error(), want) {
			t.Errorf("tls=%v: Connect to a rank that seals: reach %v, error %v; want ErrMismatch: %s", tls, reach[1], why[1], want)
		}
		lie := l1.Self()
		lie.Plain = true
		reach, why = l0.Connect(t.Context(), map[int]Peer{1: lie})
		if reach[1] || why[1] == nil {
			t.Errorf("tls=%v: the acceptor took a dialer that does not seal: reach %v, error %v", tls, reach[1], why[1])
		}
		waitFor(t, "the rejection", func() bool { return l1.Rejected() == 1 })
		s.mu.Lock()
		if len(s.frames) != 0 || len(s.errs) != 0 {
			t.Errorf("tls=%v: delivered %d frames, reported %v", tls, len(s.frames), s.errs)
		}
		s.mu.Unlock()
	}
}
