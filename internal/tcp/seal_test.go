package tcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxy relays TCP connections to target. From the dialer to the target it
// passes bytes through untouched until armed; the first bytes read after
// that start a sealed frame, and from then on it relays frame by frame
// (4-byte length n, n+tagLen bytes), through edit, which returns what to
// send in the frame's place (nothing, the frame changed, several frames;
// a nil slice among them cuts the connection there).
type proxy struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	edit   func(i int, f []byte) [][]byte
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newProxy(t *testing.T, target string, edit func(i int, f []byte) [][]byte) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, edit: edit}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *proxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(in, out); in.Close() })
		p.wg.Go(func() { p.relay(out, in); out.Close() })
	}
}

// relay copies from to to, through edit once armed.
func (p *proxy) relay(to io.Writer, from io.Reader) {
	buf := make([]byte, 64<<10)
	for !p.armed.Load() {
		n, err := from.Read(buf)
		if p.armed.Load() {
			// These bytes came after arming: they start the frames.
			from = io.MultiReader(bytes.NewReader(bytes.Clone(buf[:n])), from)
			break
		}
		if _, werr := to.Write(buf[:n]); err != nil || werr != nil {
			return
		}
	}
	for i := 0; ; i++ {
		var hdr [4]byte
		if _, err := io.ReadFull(from, hdr[:]); err != nil {
			return
		}
		f := make([]byte, 4+int(binary.LittleEndian.Uint32(hdr[:]))+tagLen)
		copy(f, hdr[:])
		if _, err := io.ReadFull(from, f[4:]); err != nil {
			return
		}
		for _, g := range p.edit(i, f) {
			if g == nil { // cut the connection here
				return
			}
			if _, err := to.Write(g); err != nil {
				return
			}
		}
	}
}

// TestForged: with TLS, a frame altered, replayed, reordered, dropped or
// cut short of its tag on the wire (by a relay between the ranks, after
// the handshake) is never delivered, nor is anything after it: the link
// reports at once (not after the grace period of a broken connection) an
// error that wraps ErrForged and names the sending rank. The frames
// before it arrive intact.
func TestForged(t *testing.T) {
	const bad = 2 // the frame the relay meddles with
	flip := func(at func(f []byte) int) func(i int, f []byte) [][]byte {
		return func(i int, f []byte) [][]byte {
			if i == bad {
				f[at(f)] ^= 0x40
			}
			return [][]byte{f}
		}
	}
	var held []byte
	cases := map[string]func(i int, f []byte) [][]byte{
		"payload":       flip(func(f []byte) int { return 4 + 9 }),
		"tag":           flip(func(f []byte) int { return len(f) - 1 }),
		"length":        flip(func(f []byte) int { return 0 }), // 64 bytes longer: runs into the next frame
		"length-higher": flip(func(f []byte) int { return 3 }), // above MaxFrame
		"replay": func(i int, f []byte) [][]byte {
			if i == bad-1 {
				return [][]byte{f, f}
			}
			return [][]byte{f}
		},
		"reorder": func(i int, f []byte) [][]byte {
			switch i {
			case bad:
				held = f
				return nil
			case bad + 1:
				return [][]byte{f, held}
			}
			return [][]byte{f}
		},
		"drop": func(i int, f []byte) [][]byte {
			if i == bad {
				return nil
			}
			return [][]byte{f}
		},
		"inject": func(i int, f []byte) [][]byte {
			if i == bad {
				junk := bytes.Clone(f)
				for k := 4; k < len(junk); k++ {
					junk[k] = byte(k)
				}
				return [][]byte{junk, f}
			}
			return [][]byte{f}
		},
	}
	for name, edit := range cases {
		for _, size := range []int{1000, 40 << 10} {
			t.Run(fmt.Sprintf("%s/%d", name, size), func(t *testing.T) {
				held = nil
				s1 := newSink()
				l0, l1 := sealedPair(t, time.Hour, s1)
				px := newProxy(t, l1.Self().Addr, edit)
				via := Peer{Addr: px.ln.Addr().String(), Fingerprint: l1.Self().Fingerprint}
				if reach, why := l0.Connect(t.Context(), map[int]Peer{1: via}); !reach[1] {
					t.Fatal(why[1])
				}
				px.armed.Store(true)
				const count = 6
				for i := range count {
					if err := l0.Send(1, frame(0, i, size)); err != nil {
						t.Fatal(err)
					}
				}
				s1.wait(t, "the forged frame's report", func(s *sink) bool { return len(s.errs) > 0 })
				time.Sleep(50 * time.Millisecond) // room for anything wrongly delivered after it
				s1.mu.Lock()
				errs, frames := s1.errs, s1.frames
				s1.mu.Unlock()
				if err := errs[0]; !errors.Is(err, ErrForged) || !strings.Contains(err.Error(), "from rank 0") {
					t.Errorf("reported %v; want an error wrapping ErrForged that names rank 0", err)
				}
				if len(errs) != 1 {
					t.Errorf("%d reports: %v; want 1", len(errs), errs)
				}
				// Frames 0 and 1 pass; whatever comes in frame 2's place
				// (or frame 1's replay) does not open.
				if len(frames) != bad {
					t.Errorf("%d frames delivered; want the %d before the forged one", len(frames), bad)
				}
				for i, f := range frames {
					if !bytes.Equal(f, frame(0, i, size)) {
						t.Errorf("frame %d delivered with %d bytes or other content", i, len(f))
					}
				}
			})
		}
	}
}

// TestCutSealed: with TLS, a connection cut in the middle of a sealed
// frame (by a relay between the ranks) delivers the frames before it and
// nothing of that one, and is reported as a broken connection that names
// the sending rank and says it broke mid-frame.
func TestCutSealed(t *testing.T) {
	for _, size := range []int{1000, 40 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s1 := newSink()
			l0, l1 := sealedPair(t, time.Millisecond, s1)
			px := newProxy(t, l1.Self().Addr, func(i int, f []byte) [][]byte {
				if i == 2 {
					return [][]byte{f[:len(f)/2], nil}
				}
				return [][]byte{f}
			})
			via := Peer{Addr: px.ln.Addr().String(), Fingerprint: l1.Self().Fingerprint}
			if reach, why := l0.Connect(t.Context(), map[int]Peer{1: via}); !reach[1] {
				t.Fatal(why[1])
			}
			px.armed.Store(true)
			for i := range 4 {
				if err := l0.Send(1, frame(0, i, size)); err != nil {
					t.Fatal(err)
				}
			}
			s1.wait(t, "the report", func(s *sink) bool { return len(s.errs) > 0 })
			s1.mu.Lock()
			errs, frames := s1.errs, s1.frames
			s1.mu.Unlock()
			var pe *PeerError
			if err := errs[0]; !errors.As(err, &pe) || pe.Rank != 0 || !strings.Contains(err.Error(), "in the middle of a frame") {
				t.Errorf("reported %v; want a PeerError naming rank 0 and the partial frame", err)
			}
			if len(frames) != 2 {
				t.Errorf("%d frames delivered; want the 2 before the cut", len(frames))
			}
			for i, f := range frames {
				if !bytes.Equal(f, frame(0, i, size)) {
					t.Errorf("frame %d delivered with %d bytes or other content", i, len(f))
				}
			}
		})
	}
}

// TestRekey: both ends move along the key chain at the same frames, so
// a stream that spans many keys (sealed inline and queued, small and
// large frames) arrives whole and in order, and two keys of the chain
// differ.
func TestRekey(t *testing.T) {
	defer func(b uint64) { rekeyBytes = b }(rekeyBytes)
	rekeyBytes = 5000
	ls, ss := mesh(t, 2, true)
	sizes := []int{0, 100, 4000, 20 << 10, 9, 70 << 10}
	const count = 300
	for i := range count {
		if err := ls[0].Send(1, frame(0, i, sizes[i%len(sizes)])); err != nil {
			t.Fatal(err)
		}
	}
	ss[1].wait(t, "every frame", func(s *sink) bool { return len(s.frames) == count || len(s.errs) > 0 })
	if len(ss[1].errs) > 0 {
		t.Fatal(ss[1].errs)
	}
	for i, f := range ss[1].frames {
		if !bytes.Equal(f, frame(0, i, sizes[i%len(sizes)])) {
			t.Fatalf("frame %d arrived with %d bytes or other content", i, len(f))
		}
	}
	s := &sealer{}
	k0 := s.prf("decorun-tcp key")
	s.next(int(rekeyBytes))
	if k1 := s.prf("decorun-tcp key"); bytes.Equal(k0, k1) {
		t.Error("the next key of the chain is the same")
	}
}

// sealedPair listens as ranks 0 and 1 of a TLS job; rank 1 delivers to s1
// and waits grace before a broken connection is fatal. Both close when the
// test ends.
func sealedPair(t *testing.T, grace time.Duration, s1 *sink) (l0, l1 *Link) {
	t.Helper()
	l1, err := Listen(Config{Rank: 1, Size: 2, Key: testKey, TLS: true, Grace: grace}, s1.frame, s1.fatal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l1.Close() })
	l0, err = Listen(Config{Rank: 0, Size: 2, Key: testKey, TLS: true}, func([]byte) {}, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l0.Close() })
	return l0, l1
}
