package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Ring layout: a header of RingHeader bytes, then the data.
//
//	off  size  field
//	0    8     head: bytes ever written (producer), with expressBit
//	8    56    the express frame (see below)
//	64   8     tail: bytes ever read (consumer)
//	128  4     wait: 1 while the producer waits for room (set by the producer, cleared by the consumer)
//
// Express frames: a frame of at most expressMax bytes that the producer
// writes into an empty ring (the consumer has read everything) goes into
// the head's cache line instead of the ring's data, and head is published
// with expressBit set; the frame's bytes in the data stay unwritten, their
// room taken as for any frame. A consumer polls head, so it finds the frame
// in the line it polls: one cache line moves from core to core per message
// where a frame in the data would move two, one after the other (head,
// then the frame's line): a ping-pong of 56-byte messages between two
// processes on the 2-core VM took 310-320 ns one way in one line and
// 566-571 ns in two (a flag and its data on separate lines), 706-742
// through the ring's data (2026-12-07). While head has the bit, the bytes
// from tail to head are that one frame (the producer writes one only when
// tail equals head, and clears the bit with its next publication); before
// the producer publishes anything after it while the consumer has not
// read it, it copies the frame, with its length, into its place in the
// data (settle), so a consumer that loads head without the bit reads it
// from there.
const (
	RingHeader = 256
	offHead    = 0
	offExpress = 8
	offTail    = 64
	offWait    = 128
	expressMax = offTail - offExpress
	expressBit = 1 << 63
)

// Ring is one side's view of a single-producer single-consumer byte ring
// in memory shared with the other side (a mapped file, or any []byte in
// tests). A Ring value is used by one goroutine at a time on each side.
type Ring struct {
	head *atomic.Uint64
	tail *atomic.Uint64
	wait *atomic.Uint32
	data []byte
	mask uint64
	// rewindAt and rewindRoom are rewindMin and rewindFrames, or smaller
	// in tests of small rings; noExpress turns express frames off (tests
	// of the data's layout).
	rewindAt, rewindRoom int
	noExpress            bool
	express              []byte // the express frame's bytes in the head's line
	// xEnd and xLen (producer side): the end and length of the last
	// express frame written, while head still has expressBit.
	xEnd uint64
	xLen int
	// seen (producer's process, not shared) is a tail the producer's side
	// has read: the consumer has read at least that far. The producer
	// asks the shared tail only when seen does not tell it what it needs
	// (tailAtLeast), and the producer's process refreshes seen while it
	// waits for something else (Link's poll: SeeTail), so that the miss
	// of reading the line the consumer has just written is not on the
	// producer's next send: a 56-byte ping-pong through comm took
	// 0.62-0.67 µs one way without the producer's reads of tail and
	// 0.77-0.83 µs with them (2026-12-08).
	seen atomic.Uint64
}

// tailAtLeast returns a tail the consumer has reached, at least want if
// the consumer has read that far: seen when it is that far, else the
// shared tail, which it keeps in seen. Producer side.
func (r *Ring) tailAtLeast(want uint64) uint64 {
	if t := r.seen.Load(); t >= want {
		return t
	}
	t := r.tail.Load()
	if t > r.seen.Load() {
		r.seen.Store(t)
	}
	return t
}

// SeeTail refreshes seen when the producer has published bytes the
// consumer was not seen to read, and reports whether the consumer has
// read everything published. It may be called by any goroutine of the
// producer's process, beside the producer.
func (r *Ring) SeeTail() bool {
	h := r.head.Load() &^ expressBit // the producer's own line: no miss
	return r.tailAtLeast(h) >= h
}

// NewRing returns a view of the ring stored in mem: RingHeader bytes of
// header and a power-of-two number of data bytes. mem must be 8-byte
// aligned; a fresh ring is all zeros.
func NewRing(mem []byte) (*Ring, error) {
	n := len(mem) - RingHeader
	if n <= 0 || n&(n-1) != 0 {
		return nil, fmt.Errorf("shm: ring of %d bytes: the data part (%d bytes) must be a power of two", len(mem), n)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return nil, errors.New("shm: ring memory is not 8-byte aligned")
	}
	return &Ring{
		head:       (*atomic.Uint64)(unsafe.Pointer(&mem[offHead])),
		tail:       (*atomic.Uint64)(unsafe.Pointer(&mem[offTail])),
		wait:       (*atomic.Uint32)(unsafe.Pointer(&mem[offWait])),
		express:    mem[offExpress:offTail:offTail],
		data:       mem[RingHeader:],
		mask:       uint64(n - 1),
		rewindAt:   rewindMin,
		rewindRoom: rewindFrames,
	}, nil
}

// Cap is the ring's data capacity in bytes.
func (r *Ring) Cap() int { return len(r.data) }

// Free is how many bytes the producer may write now.
func (r *Ring) Free() int { return len(r.data) - int(r.head.Load()&^expressBit-r.tail.Load()) }

// Avail is how many bytes the consumer may read now.
func (r *Ring) Avail() int { return int(r.head.Load()&^expressBit - r.tail.Load()) }

// settle prepares the producer's next publication after head h: when the
// last frame went express and the consumer has not read it, it copies
// the frame and its length into their place in the data, so that a head
// without expressBit can be stored. It returns h without the bit.
// Producer side.
func (r *Ring) settle() uint64 {
	hv := r.head.Load()
	h := hv &^ expressBit
	if hv&expressBit == 0 || r.xEnd != h {
		return h
	}
	r.xEnd = 0
	at := h - uint64(lenSize+r.xLen)
	if r.tailAtLeast(h) > at {
		return h // read already: the data need not hold it
	}
	var l [lenSize]byte
	binary.LittleEndian.PutUint32(l[:], uint32(r.xLen))
	r.put(at, l[:])
	r.put(at+lenSize, r.express[:r.xLen])
	return h
}

// writeExpress writes the frame of head and body (n bytes in all) as an
// express frame when it fits the head's line and the ring is empty, and
// reports whether it did. Producer side, with nothing queued.
func (r *Ring) writeExpress(head, body []byte) bool {
	n := len(head) + len(body)
	h := r.settle()
	if n > expressMax || r.noExpress || lenSize+n > len(r.data) || r.tailAtLeast(h) != h {
		return false
	}
	copy(r.express[copy(r.express, head):], body)
	r.xEnd, r.xLen = h+uint64(lenSize+n), n
	r.head.Store(r.xEnd | expressBit) // publishes the frame: the same line
	return true
}

// Write copies as much of p as fits and publishes it; it returns the number
// of bytes written. Producer side only.
func (r *Ring) Write(p []byte) int {
	h := r.settle() // only this side stores head
	free := len(r.data) - int(h-r.tailAtLeast(r.room(h, len(p))))
	n := min(free, len(p))
	if n == 0 {
		return 0
	}
	r.put(h, p[:n])
	r.head.Store(h + uint64(n)) // publishes the bytes: the consumer loads head first
	return n
}

// room is the tail at which n more bytes fit after head h.
func (r *Ring) room(h uint64, n int) uint64 {
	if c := uint64(len(r.data)); h+uint64(n) > c {
		return h + uint64(n) - c
	}
	return 0
}

// WriteV writes every part, whole and in order, and publishes them at
// once; it reports false, writing nothing, when they do not fit. Producer
// side only.
func (r *Ring) WriteV(parts ...[]byte) bool {
	h := r.settle()
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if len(r.data)-int(h-r.tailAtLeast(r.room(h, n))) < n {
		return false
	}
	at := h
	for _, p := range parts {
		r.put(at, p)
		at += uint64(len(p))
	}
	r.head.Store(at)
	return true
}

// skipMark is the length word of a skip: the bytes from it to the end of
// the ring's data are not a frame, and the next frame starts at index 0.
// No frame is that long (frames are below 2 GiB).
const skipMark = 0xFFFFFFFF

// rewindMin is how far into the ring the producer must be before it skips
// back to index 0: below it, a skip would gain little. rewindFrames is how
// many frames of the size about to be written must fit before the
// producer's position: the skipped bytes stay taken until the consumer
// reads the mark, so a skip must leave room for a stream to go on while
// the consumer wakes up.
const (
	rewindMin    = 4096
	rewindFrames = 16
)

// rewind skips back to the start of the ring's data when the ring is empty
// and the producer is at least rewindMin bytes and rewindFrames times n
// (the next frame with its length) into it: it writes skipMark at head and
// publishes head at the next multiple of the ring's size. So a ring that
// the consumer keeps empty (ping-pong, or a stream that the consumer keeps
// up with) reuses its first pages, which are mapped and in the cache,
// instead of walking through all of them: on this VM the first access to a
// page of the mapping costs 8-23 µs, and a 64 KiB ping-pong through a 16
// MiB ring paid it for 256 round trips. Frames of more than 1/16 of the
// ring never skip. The skipped bytes are free again as soon as the
// consumer reads the mark. Producer side only.
func (r *Ring) rewind(n int) {
	h := r.settle()
	i := int(h & r.mask)
	if i < r.rewindAt || i < r.rewindRoom*n || len(r.data)-i < lenSize || r.tailAtLeast(h) != h {
		return
	}
	binary.LittleEndian.PutUint32(r.data[i:], skipMark)
	r.head.Store(h + uint64(len(r.data)-i))
}

// skip reports whether the length word l at tail t is a skip mark, and if
// so frees the bytes up to the end of the ring's data. A mark whose skip the
// producer has not published with it is ErrCorrupt. Consumer side.
func (r *Ring) skip(t uint64, l uint32) (bool, error) {
	if l != skipMark {
		return false, nil
	}
	end := t + uint64(len(r.data)-int(t&r.mask))
	if h := r.head.Load() &^ expressBit; h < end {
		return false, fmt.Errorf("%w: a skip to %d past the producer's position %d", ErrCorrupt, end, h)
	}
	r.tail.Store(end)
	return true, nil
}

func (r *Ring) put(at uint64, p []byte) {
	i := int(at & r.mask)
	c := Publish(r.data[i:], p)
	Publish(r.data, p[c:])
}

// Read copies up to len(p) available bytes into p, frees their room and
// returns their number. Consumer side only.
func (r *Ring) Read(p []byte) int {
	t := r.tail.Load() // only this side stores tail
	hv := r.head.Load()
	if hv&expressBit != 0 {
		// An express frame, which Reader takes whole; a reader in the
		// middle of a frame never meets one (the producer writes one only
		// when the consumer has read everything, so after a whole frame).
		return 0
	}
	n := min(int(hv-t), len(p))
	if n == 0 {
		return 0
	}
	i := int(t & r.mask)
	c := copy(p[:n], r.data[i:])
	copy(p[c:n], r.data)
	r.tail.Store(t + uint64(n)) // the producer may now overwrite them
	return n
}

// clone returns a copy of the next n available bytes (n <= Avail) and
// frees their room. Consumer side only. Unlike make and copy, it does not
// zero the new slice first (append of non-pointer data skips that), which
// matters at several GB/s.
func (r *Ring) clone(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	t := r.tail.Load()
	i := int(t & r.mask)
	var f []byte
	if i+n <= len(r.data) {
		f = append([]byte(nil), r.data[i:i+n]...)
	} else {
		a, b := r.data[i:], r.data[:n-(len(r.data)-i)]
		f = append([]byte(nil), a...)
		if cap(f)-len(f) >= len(b) {
			f = append(f, b...)
		} else {
			g := make([]byte, n)
			copy(g[copy(g, a):], b)
			f = g
		}
	}
	r.tail.Store(t + uint64(n))
	return f
}

// SetWaiting records that the producer waits for room. Producer side.
func (r *Ring) SetWaiting() { r.wait.Store(1) }

// TakeWaiting reports whether the producer waited for room, and clears the
// flag. Consumer side, after Read.
func (r *Ring) TakeWaiting() bool { return r.wait.Load() != 0 && r.wait.CompareAndSwap(1, 0) }

// lenSize is the size of the length that precedes every frame in a ring.
const lenSize = 4

// ErrCorrupt is wrapped by the error a Reader returns for a frame length
// that no Writer could have written.
var ErrCorrupt = errors.New("shm: corrupt ring")

// Writer frames messages into a Ring: a 4-byte little-endian length, then
// the bytes. Frames that do not fit wait in a queue and are written, in
// order and in as many pieces as needed, by later calls to Drain. The
// queue is one buffer, reused once drained (compacted when half of it has
// been written), so a stream of queued frames makes no garbage. A Writer
// is not safe for concurrent use.
type Writer struct {
	R   *Ring
	q   []byte // queued bytes (lengths and frames); q[off:] not yet written
	off int
}

// Write writes frame whole if nothing is queued and it fits, and otherwise
// queues a copy and writes what fits. It reports whether frame (and
// everything before it) is now in the ring.
func (w *Writer) Write(frame []byte) bool { return w.Write2(frame, nil) }

// Write2 is Write of the frame head followed by body, without joining
// them first.
func (w *Writer) Write2(head, body []byte) bool {
	var l [lenSize]byte
	binary.LittleEndian.PutUint32(l[:], uint32(len(head)+len(body)))
	if w.Queued() == 0 {
		if w.R.writeExpress(head, body) {
			return true
		}
		w.R.rewind(lenSize + len(head) + len(body))
		if w.R.WriteV(l[:], head, body) {
			return true
		}
	}
	if w.off > 0 && w.off >= len(w.q)/2 {
		w.q = w.q[:copy(w.q, w.q[w.off:])]
		w.off = 0
	}
	w.q = append(append(append(w.q, l[:]...), head...), body...)
	w.Drain()
	return w.Queued() == 0
}

// Drain writes as much of the queue as fits. It reports whether it wrote
// anything.
func (w *Writer) Drain() bool {
	if w.Queued() == 0 {
		return false
	}
	n := w.R.Write(w.q[w.off:])
	w.off += n
	if w.off == len(w.q) {
		w.q, w.off = w.q[:0], 0
	}
	return n > 0
}

// Queued is the number of bytes waiting for room.
func (w *Writer) Queued() int { return len(w.q) - w.off }

// Drop forgets everything queued (its receiver is gone) and frees the
// queue.
func (w *Writer) Drop() { w.q, w.off = nil, 0 }

// Reader takes frames out of a Ring. A Reader is not safe for concurrent
// use.
type Reader struct {
	R   *Ring
	Max int // largest frame accepted; a longer length is ErrCorrupt
	// Scratch, when set, is where NextView assembles a whole frame that
	// wraps around the ring's end, to lend it like a view (rather than
	// in a fresh slice, whose page faults and zeroing cost several times
	// the copy); it grows to the largest such frame and is reused, so
	// Readers used by one goroutine may share one.
	Scratch *[]byte

	cur  []byte // frame being assembled
	got  int
	have bool // cur holds a frame's length
	held int  // bytes of the frame NextView lent, freed by Release
}

// Next returns the next whole frame, in a fresh slice, or nil when none is
// complete yet; what is available of a frame is taken out of the ring even
// when the frame is not complete, so a frame larger than the ring streams
// through it. It returns an error wrapping ErrCorrupt for a length above
// Max.
func (rd *Reader) Next() ([]byte, error) {
	if !rd.have {
		t, avail, n, ok, x, err := rd.peek()
		if !ok {
			return nil, err
		}
		if x {
			f := append([]byte{}, rd.R.express[:n]...) // not nil: an empty frame is a frame
			rd.R.tail.Store(t + uint64(lenSize+n))
			return f, nil
		}
		rd.R.tail.Store(t + lenSize)
		if avail-lenSize >= n { // the common case: the whole frame is there
			return rd.R.clone(n), nil
		}
		rd.cur, rd.got, rd.have = make([]byte, n), 0, true
	}
	rd.got += rd.R.Read(rd.cur[rd.got:])
	if rd.got < len(rd.cur) {
		return nil, nil
	}
	f := rd.cur
	rd.cur, rd.got, rd.have = nil, 0, false
	return f, nil
}

// NextView is Next, except that a frame that lies whole and contiguous in
// the ring is returned as a view into the ring (view true) rather than a
// copy: its room stays taken, and the frame stays valid, until Release,
// which must be called before the next call to NextView or Next. A whole
// frame that wraps around the ring's end is copied into Scratch, when set,
// and lent the same way (its room is free at once; Scratch is valid until
// the next call). Other frames (those still arriving) come as Next returns
// them (view false).
func (rd *Reader) NextView() (f []byte, view bool, err error) {
	if !rd.have {
		r := rd.R
		t, avail, n, ok, x, err := rd.peek()
		if !ok {
			return nil, false, err
		}
		if x {
			rd.held = lenSize + n
			return r.express[:n:n], true, nil
		}
		if j := int((t + lenSize) & r.mask); avail-lenSize >= int(n) && j+int(n) <= len(r.data) {
			rd.held = lenSize + int(n)
			return r.data[j : j+int(n) : j+int(n)], true, nil
		}
		if rd.Scratch != nil && avail-lenSize >= int(n) {
			if cap(*rd.Scratch) < int(n) {
				*rd.Scratch = make([]byte, n)
			}
			f = (*rd.Scratch)[:n:n]
			j := int((t + lenSize) & r.mask)
			copy(f[copy(f, r.data[j:]):], r.data)
			r.tail.Store(t + lenSize + uint64(n))
			return f, true, nil
		}
	}
	f, err = rd.Next()
	return f, false, err
}

// peek reads the length of the next frame at the consumer's position t,
// passing any skip marks, and checks it against Max. ok is false when no
// whole length is there yet (err nil) or the ring is corrupt (err wraps
// ErrCorrupt). avail counts the bytes from t, the length included. x
// says that the frame is the express frame, in the head's line: n bytes
// (at most expressMax, or ErrCorrupt), with no length before them. head
// is loaded once per frame, so that what it says of the frame (express
// or in the data) holds for the bytes read after it. Consumer side,
// between frames; it frees only skipped bytes.
func (rd *Reader) peek() (t uint64, avail, n int, ok, x bool, err error) {
	r := rd.R
	for {
		t = r.tail.Load()
		hv := r.head.Load()
		avail = int(hv&^expressBit - t)
		if hv&expressBit != 0 && avail != 0 {
			if n = avail - lenSize; n < 0 || n > expressMax || n > rd.Max {
				return t, avail, 0, false, false, fmt.Errorf("%w: an express frame of %d bytes (at most %d, and %d here)", ErrCorrupt, n, expressMax, rd.Max)
			}
			return t, avail, n, true, true, nil
		}
		if avail < lenSize {
			return t, avail, 0, false, false, nil
		}
		var l [lenSize]byte
		i := int(t & r.mask)
		copy(l[copy(l[:], r.data[i:]):], r.data)
		m := binary.LittleEndian.Uint32(l[:])
		skipped, err := r.skip(t, m)
		if err != nil {
			return t, avail, 0, false, false, err
		}
		if skipped {
			continue
		}
		if int64(m) > int64(rd.Max) {
			return t, avail, 0, false, false, fmt.Errorf("%w: frame length %d above the limit of %d bytes", ErrCorrupt, m, rd.Max)
		}
		return t, avail, int(m), true, false, nil
	}
}

// Release frees the room of the frame NextView last returned as a view.
func (rd *Reader) Release() {
	if rd.held > 0 {
		rd.R.tail.Store(rd.R.tail.Load() + uint64(rd.held)) // the producer may now overwrite it
		rd.held = 0
	}
}

// Partial reports whether a frame has been started but not finished.
func (rd *Reader) Partial() bool { return rd.have }
