package tcp

import "sync"

// PlaceMin: frames of more than PlaceMin bytes are offered to the Placer.
const PlaceMin = smallFrame

// PlaceHead: the Placer is offered at least PlaceHead bytes of a frame
// (all of it when it is shorter).
const PlaceHead = 256

// Placer decides where the bytes of large incoming frames go, so that a
// payload whose destination is known when its frame's head arrives (comm's
// Data frames for a receive already matched: rendezvous and long messages)
// is read from the socket straight into the receiver's buffer, with no copy
// in between.
//
// Place is offered the first bytes of each frame of more than PlaceMin
// bytes (all that was read of it so far, at least PlaceHead; n is the
// frame's size), on a plain connection that the link reads without
// waiting (not with TLS). It returns how many of them are the frame's head
// and, with ok, the slice of exactly n-head bytes that the rest of the
// frame goes into, in order; the link then calls Placed with the head once
// every byte is in (in the frame's place in the stream). With ok false the
// frame goes to onFrame as usual, and Place must have changed nothing.
//
// Between Place and Placed the placer may call pl.Cancel (and only then):
// the link stops writing into the slice at once (waiting for at most a
// read that does not wait) and drops the rest of the frame; Placed is
// still called. A placer that completes a receive early (an error, a
// caller that gave up) cancels its placement first, so the link never
// writes into a buffer its owner has got back.
type Placer interface {
	Place(first []byte, n int, pl *Placement) (head int, dst []byte, ok bool)
	Placed(head []byte)
}

// Placement is the rest of one frame being read into a Placer's slice.
type Placement struct {
	mu        sync.Mutex
	dst       []byte // where the next bytes go; nil when cancelled
	left      int    // bytes of the frame still to read
	cancelled bool
}

// Cancel makes the link drop the rest of the frame instead of writing it
// where Place said; it returns once the link no longer writes there.
func (p *Placement) Cancel() {
	p.mu.Lock()
	p.cancelled = true
	p.dst = nil
	p.mu.Unlock()
}

// Cancelled reports whether Cancel was called since the placement began.
func (p *Placement) Cancelled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cancelled
}

// SetPlacer makes the link offer large frames to p (see Placer), and
// reports whether it will: not when frames are sealed, as they are opened whole.
// Call it before frames arrive; frames that arrive before go to onFrame.
func (l *Link) SetPlacer(p Placer) bool {
	if l.Sealed() || p == nil {
		return false
	}
	l.placer.Store(&p)
	return true
}

// PlacedFrames counts the frames read straight into a Placer's slice
// (including those cancelled on the way).
func (l *Link) PlacedFrames() int64 { return l.placedFrames.Load() }

// place offers the large frame of n bytes that starts at buf[r+4:] to the
// placer, and starts reading the rest of it into the placer's slice when
// it takes it. tok held.
func (in *inbound) place(n int) bool {
	if !in.placeable() {
		return false
	}
	pp := in.l.placer.Load()
	first := in.buf[in.r+4 : in.r+4+min(in.w-in.r-4, n)]
	pl := &in.pl
	pl.mu.Lock()
	pl.dst, pl.left, pl.cancelled = nil, 0, false
	pl.mu.Unlock()
	head, dst, ok := (*pp).Place(first, n, pl)
	if !ok {
		return false
	}
	in.plHead = append(in.plHead[:0], first[:head]...)
	pl.mu.Lock()
	if !pl.cancelled {
		pl.dst = dst
	}
	k := len(first) - head
	if pl.dst != nil {
		copy(pl.dst, first[head:])
		pl.dst = pl.dst[k:]
	}
	pl.left = n - head - k
	pl.mu.Unlock()
	in.r += 4 + len(first)
	in.placing = true
	return true
}

// placeable reports whether large frames are offered to a Placer: one is
// set, and the connection is plain and read without waiting. tok held.
func (in *inbound) placeable() bool {
	return in.open == nil && in.fd >= 0 && in.l.placer.Load() != nil
}

// fillPlaced is fill while a frame is read into a placer's slice (or,
// cancelled, dropped). tok held; the read buffer is empty.
func (in *inbound) fillPlaced(read func([]byte) (int, error)) (int, error) {
	pl := &in.pl
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var n int
	var err error
	if pl.dst != nil {
		var k int
		k, n, err = in.readTail(read, pl.dst[:pl.left])
		pl.dst = pl.dst[k:]
		pl.left -= k
		return n, err
	}
	in.r, in.w = 0, 0
	n, err = read(in.buf[:min(pl.left, len(in.buf))])
	pl.left -= n
	return n, eofErr(n, err)
}

// placed reports whether a placed frame is still being read, and hands it
// to the placer once it is whole. tok held.
func (in *inbound) placed() (reading bool) {
	in.pl.mu.Lock()
	left := in.pl.left
	in.pl.mu.Unlock()
	if left > 0 {
		return true
	}
	in.placing = false
	in.l.placedFrames.Add(1)
	(*in.l.placer.Load()).Placed(in.plHead)
	return false
}
