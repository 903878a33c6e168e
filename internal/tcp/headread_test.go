package tcp

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestLargeFramesSkipReadBuffer: in a stream of long messages as comm
// sends them (a small head frame, then large frames), each large frame
// that follows another closely (fewer than afterLarge small frames
// between) reaches the Placer with at most headRead bytes read ahead
// into the read buffer: its body goes from the socket straight into
// the placer's slice (or, not placed, into a slice of its own), not
// through the read buffer and a copy (the read that ends a large frame
// takes at most headRead bytes after it, as a read into the read buffer
// after a large frame does). Read by the reader goroutine and by
// a polling caller, with small frames of every size and large ones the
// placer leaves among them: every frame arrives once, whole, in order.
func TestLargeFramesSkipReadBuffer(t *testing.T) {
	for _, poll := range []bool{false, true} {
		t.Run(fmt.Sprintf("poll=%v", poll), func(t *testing.T) {
			if poll {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // the reader goroutines cannot run while the test polls
			}
			s1 := newSink()
			l0, l1 := polledPair(t, false, s1.frame, s1.fatal)
			p := newPlacer(s1)
			if !l1.SetPlacer(p) {
				t.Fatal("SetPlacer on a plain link: false; want true")
			}
			var release func(bool)
			if poll {
				release = l1.Claim()
			}
			type msg struct {
				kind byte
				size int
			}
			// Long messages (a head, then one or three large frames),
			// with a run of small frames now and then, and large frames
			// the placer leaves.
			var pattern []msg
			for i, size := range []int{64 << 10, 1 << 20, 100 << 10, 16<<10 + 1, 4 << 20, 64 << 10} {
				pattern = append(pattern, msg{'N', 100}, msg{'P', size})
				if i%2 == 1 {
					pattern = append(pattern, msg{'P', size}, msg{'N', 8 << 10}, msg{'N', 9}, msg{'N', 0 + 8}, msg{'N', 3000})
				}
				if i == 3 {
					pattern = append(pattern, msg{'N', 200 << 10})
				}
			}
			var want [][]byte
			large := 0
			for range 4 {
				for _, m := range pattern {
					if m.size > PlaceMin {
						large++
					}
					f := placeFrame(m.kind, len(want), m.size)
					want = append(want, f)
					if err := l0.Send(1, f); err != nil {
						t.Fatal(err)
					}
				}
			}
			deadline := time.Now().Add(60 * time.Second)
			for poll && s1.count() < len(want) && time.Now().Before(deadline) {
				if !l1.Poll() {
					runtime.Gosched() // the writer goroutine sends what the socket did not take
				}
			}
			if poll {
				release(false)
			}
			s1.wait(t, "every frame", func(s *sink) bool { return len(s.frames) == len(want) || len(s.errs) > 0 })
			if len(s1.errs) > 0 {
				t.Fatal(s1.errs[0])
			}
			for i, f := range s1.frames {
				if !bytes.Equal(f, want[i]) {
					t.Fatalf("frame %d: %d bytes starting %q; want %d bytes starting %q", i, len(f), f[:min(8, len(f))], len(want[i]), want[i][:8])
				}
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if len(p.firsts) != large {
				t.Fatalf("%d frames offered to the placer; want the %d large ones", len(p.firsts), large)
			}
			// Offers are made for every large frame, in order; check those
			// with fewer than afterLarge small frames since the last one.
			offer, small, checked := 0, afterLarge, 0
			for _, f := range want {
				if len(f) <= PlaceMin {
					small++
					continue
				}
				if n := p.firsts[offer]; small < afterLarge && n > headRead {
					t.Errorf("large frame %d came with %d bytes read ahead into the read buffer; want at most %d", offer, n, headRead)
				}
				if small < afterLarge {
					checked++
				}
				offer, small = offer+1, 0
			}
			if checked < 24 {
				t.Fatalf("%d large frames checked; want at least 24", checked)
			}
			if p.short > 0 {
				t.Errorf("%d offers of fewer than PlaceHead bytes", p.short)
			}
		})
	}
}
