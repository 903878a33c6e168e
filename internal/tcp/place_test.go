package tcp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// placer is a Placer for tests: a frame whose first byte is 'P' (then a
// 4-byte number and 3 bytes of padding: an 8-byte head) goes into a
// buffer of its own, made on Place; anything else is left to onFrame. It
// records what reaches it, in order, with the frames the sink gets.
type placer struct {
	s      *sink
	cancel func(pl *Placement) // called in Place, when set
	mu     sync.Mutex
	dst    map[uint32][]byte
	pls    map[uint32]*Placement
	offers int
	short  int   // offers of fewer than PlaceHead bytes
	firsts []int // the bytes of each offer, in order
}

func newPlacer(s *sink) *placer {
	return &placer{s: s, dst: map[uint32][]byte{}, pls: map[uint32]*Placement{}}
}

func (p *placer) Place(first []byte, n int, pl *Placement) (int, []byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.offers++
	p.firsts = append(p.firsts, len(first))
	if len(first) < min(n, PlaceHead) {
		p.short++
	}
	if first[0] != 'P' || len(first) < 8 {
		return 0, nil, false
	}
	id := binary.LittleEndian.Uint32(first[1:])
	p.dst[id] = make([]byte, n-8)
	p.pls[id] = pl
	if p.cancel != nil {
		p.cancel(pl)
	}
	return 8, p.dst[id], true
}

// Placed delivers the head to the sink, with the placed bytes after it.
func (p *placer) Placed(head []byte) {
	p.mu.Lock()
	id := binary.LittleEndian.Uint32(head[1:])
	f := append(slices.Clone(head), p.dst[id]...)
	p.mu.Unlock()
	p.s.frame(f)
}

// placeFrame is test frame i of size bytes: kind 'P' (placed) or 'N',
// its number, and bytes that depend on both.
func placeFrame(kind byte, i, size int) []byte {
	f := make([]byte, size)
	f[0] = kind
	binary.LittleEndian.PutUint32(f[1:], uint32(i))
	for k := 8; k < size; k++ {
		f[k] = byte(i*31 + k*7 + k>>9)
	}
	return f
}

// TestPlace: frames of mixed sizes (small ones, large ones the placer
// takes and large ones it leaves) from one sender arrive whole, in order,
// each placed one in the buffer the placer chose, checked byte for byte;
// only frames of more than PlaceMin bytes are offered.
func TestPlace(t *testing.T) {
	ls, ss := mesh(t, 2, false)
	p := newPlacer(ss[1])
	if !ls[1].SetPlacer(p) {
		t.Fatal("SetPlacer on a plain link: false; want true")
	}
	sizes := []int{8, 100, PlaceMin, PlaceMin + 1, 64 << 10, 200 << 10, 1 << 20, 3<<20 + 5, 9}
	var want [][]byte
	large := 0
	for i := range 300 {
		size := sizes[i%len(sizes)]
		kind := byte('P')
		if i%3 == 0 {
			kind = 'N'
		}
		if size > PlaceMin {
			large++
		}
		f := placeFrame(kind, i, size)
		want = append(want, f)
		if err := ls[0].Send(1, f); err != nil {
			t.Fatal(err)
		}
	}
	ss[1].wait(t, "every frame", func(s *sink) bool { return len(s.frames) == len(want) || len(s.errs) > 0 })
	if len(ss[1].errs) > 0 {
		t.Fatal(ss[1].errs)
	}
	for i, f := range ss[1].frames {
		if !bytes.Equal(f, want[i]) {
			t.Fatalf("frame %d: %d bytes starting %q; want %d bytes starting %q", i, len(f), f[:min(8, len(f))], len(want[i]), want[i][:8])
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.offers != large {
		t.Errorf("%d frames offered to the placer; want the %d of more than %d bytes", p.offers, large, PlaceMin)
	}
	if p.short > 0 {
		t.Errorf("%d offers of fewer than PlaceHead bytes", p.short)
	}
	if len(p.dst) < large/2 {
		t.Errorf("%d frames placed; want the %d large 'P' frames", len(p.dst), large*2/3)
	}
}

// TestPlaceCancel: a placement cancelled in the middle of its frame (the
// sender stalls there) stops writing into the placer's buffer at once:
// the rest of the frame, sent after Cancel returned, lands nowhere, the
// head is still handed over, and the next frame arrives whole. Cancelled
// before Place returns, the buffer is never written.
func TestPlaceCancel(t *testing.T) {
	for _, early := range []bool{false, true} {
		t.Run(fmt.Sprintf("early=%v", early), func(t *testing.T) {
			ls, ss := make([]*Link, 2), []*sink{newSink(), newSink()}
			for r := range ls {
				l, err := Listen(Config{Rank: r, Size: 2, Key: testKey}, ss[r].frame, ss[r].fatal)
				if err != nil {
					t.Fatal(err)
				}
				ls[r] = l
				t.Cleanup(func() { l.Close() })
			}
			p := newPlacer(ss[0])
			if early {
				p.cancel = func(pl *Placement) { pl.Cancel() }
			}
			ls[0].SetPlacer(p)
			// A connection written by hand, to stop in the middle of a frame.
			c, _, err := ls[1].dial(t.Context(), 0, ls[0].Self())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const size = 256 << 10
			f := placeFrame('P', 7, size)
			wire := binary.LittleEndian.AppendUint32(nil, size)
			wire = append(wire, f...)
			half := 4 + size/2
			if _, err := c.Write(wire[:half]); err != nil {
				t.Fatal(err)
			}
			var dst []byte
			var pl *Placement
			waitFor(t, "the first half in the placer's buffer", func() bool {
				p.mu.Lock()
				dst, pl = p.dst[7], p.pls[7]
				p.mu.Unlock()
				if dst == nil || early {
					return dst != nil
				}
				pl.mu.Lock()
				defer pl.mu.Unlock()
				return bytes.Equal(dst[:size/2-8], f[8:size/2])
			})
			pl.Cancel()
			seen := slices.Clone(dst)
			// The rest, different from what the placement would have taken.
			for k := half; k < len(wire); k++ {
				wire[k] ^= 0x5a
			}
			next := placeFrame('N', 8, 50)
			wire = binary.LittleEndian.AppendUint32(wire, uint32(len(next)))
			wire = append(wire, next...)
			if _, err := c.Write(wire[half:]); err != nil {
				t.Fatal(err)
			}
			ss[0].wait(t, "the head and the next frame", func(s *sink) bool { return len(s.frames) == 2 || len(s.errs) > 0 })
			if len(ss[0].errs) > 0 {
				t.Fatal(ss[0].errs)
			}
			if !bytes.Equal(dst, seen) {
				t.Error("the placer's buffer changed after Cancel returned")
			}
			if early && !bytes.Equal(dst, make([]byte, len(dst))) {
				t.Error("a placement cancelled in Place wrote into the buffer")
			}
			if !early && !bytes.Equal(dst[:size/2-8], f[8:size/2]) {
				t.Error("the bytes before Cancel are not the frame's")
			}
			if h := ss[0].frames[0]; !bytes.Equal(h[:8], f[:8]) {
				t.Errorf("first delivery starts %q; want the cancelled frame's head %q", h[:8], f[:8])
			}
			if got := ss[0].frames[1]; !bytes.Equal(got, next) {
				t.Errorf("next frame %q; want %q", got, next)
			}
		})
	}
}

// TestSendPair: pairs of frames (a small one, then one of mixed size, up
// to 1 MiB, given as head and body) sent with SendPair between single
// Sends, many at once so that the socket fills and the rest is queued,
// arrive as separate frames, whole and in order, plain and with TLS.
func TestSendPair(t *testing.T) {
	for _, tls := range []bool{false, true} {
		ls, ss := mesh(t, 2, tls)
		var want [][]byte
		sizes := []int{0, 100, PlaceMin, 64 << 10, 1 << 20}
		for i := range 200 {
			a := placeFrame('N', 3*i, 60)
			b := placeFrame('P', 3*i+1, 8+sizes[i%len(sizes)])
			c := placeFrame('N', 3*i+2, 8+sizes[(i+2)%len(sizes)])
			if err := ls[0].SendPair(1, a, b[:8], b[8:]); err != nil {
				t.Fatal(err)
			}
			if err := ls[0].Send(1, c); err != nil {
				t.Fatal(err)
			}
			want = append(want, a, b, c)
		}
		ss[1].wait(t, "every frame", func(s *sink) bool { return len(s.frames) == len(want) || len(s.errs) > 0 })
		if len(ss[1].errs) > 0 {
			t.Fatal(ss[1].errs)
		}
		for i, f := range ss[1].frames {
			if !bytes.Equal(f, want[i]) {
				t.Fatalf("tls %v: frame %d: %d bytes starting %q; want %d bytes starting %q", tls, i, len(f), f[:min(8, len(f))], len(want[i]), want[i][:8])
			}
		}
	}
}

// TestRecycleTails: a receiver that gives back each frame's tail (its
// payload after a 48-byte header, as comm does) and gets the next frame
// of the same size keeps reusing frames: a frame that has become too short
// for the next one is dropped, not kept in the pool, where it would be
// offered first every time and make every later frame a fresh allocation.
// (It was kept: past about 170 reuses, every 64 KiB frame allocated 61 KiB
// on average.)
func TestRecycleTails(t *testing.T) {
	ls, _ := mesh(t, 1, false)
	const n, frames = 64<<10 + 48, 2000
	for range 1000 { // past the reuses a frame is good for
		f := getFrame(n)
		ls[0].Recycle(f[48:])
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range frames {
		f := getFrame(n)
		ls[0].Recycle(f[48:])
	}
	runtime.ReadMemStats(&after)
	// A frame (72 KiB) serves about 170 times; the race detector drops a
	// quarter of what a sync.Pool is given.
	per := (after.TotalAlloc - before.TotalAlloc) / frames
	if per > 24<<10 {
		t.Errorf("%d bytes allocated per %d-byte frame; want under %d (frames reused)", per, n, 24<<10)
	}
}
