package tcp

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

type outbound struct {
	dst  int
	addr string
	conn net.Conn
	fd   int           // conn's socket when it may be written without waiting, or -1
	wake chan struct{} // capacity 1: the queue went from empty to not

	mu     sync.Mutex  // guards everything below, and writes on fd
	idle   sync.Cond   // on mu: busy went false (Keep waits for it)
	seal   *sealer     // seals each frame as it is written or queued (TLS), or nil
	q      []piece     // bytes for the writer, in stream order
	open   bool        // the last piece of q is a batch that small frames may join
	wrote  time.Time   // when Send last wrote a frame itself
	busy   bool        // the writer is writing pieces of q (outside mu)
	queued atomic.Bool // q is not empty (set under mu; read without it by Poll)
	down   bool        // the connection broke: frames are dropped
	closed bool
}

// piece is a run of bytes queued for the writer: a batch of small frames
// (4-byte length, bytes), a large frame, or the body of a frame that
// SendLent lent the link (the caller's own memory, never pooled).
type piece struct {
	b    []byte
	off  int    // bytes of b already written
	lent bool   // b is the caller's (SendLent), until Keep copies it
	done func() // for a lent piece: called once all of b is written, or nil
}

// streamGap: a small frame sent within streamGap of the last one Send
// wrote itself is queued for the writer instead, which packs the frames
// of a stream into one writev each time it wakes, where writing each
// would cost a system call per frame (streams of 1 KiB and 8 KiB messages
// went 25-30% slower). A frame that answers another, as in a ping-pong,
// comes later than that, and so does the first of a burst.
const streamGap = 5 * time.Microsecond

// Queue buffers. Frames of up to smallFrame bytes are copied into batches
// of batchSize bytes (so many small frames cost one write); a larger frame
// is copied into a buffer of its own. Both come from pools: streaming
// makes no garbage.
const (
	smallFrame = 16 << 10
	batchSize  = 64 << 10
)

var (
	batchPool = sync.Pool{New: func() any { b := make([]byte, 0, batchSize); return &b }}
	largePool sync.Pool // *[]byte of any capacity
)

func getLarge(n int) []byte {
	if p, ok := largePool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, n)
}

func putBuf(b []byte) {
	switch {
	case cap(b) == batchSize:
		b = b[:0]
		batchPool.Put(&b)
	case cap(b) > smallFrame:
		b = b[:0]
		largePool.Put(&b)
	}
}

// Send queues frame for rank dst, which Connect reported reachable. It
// never blocks. Frames for a peer whose connection broke are dropped (the
// break is reported to onFatal).
func (l *Link) Send(dst int, frame []byte) error { return l.send(dst, frame, nil) }

// SendV is Send of the frame head followed by body, copied into the queue
// without being joined first (transport.VecSender); it always takes the
// frame.
func (l *Link) SendV(dst int, head, body []byte) (bool, error) {
	return true, l.send(dst, head, body)
}

// SendPair is Send of frame f1 followed by Send of the frame of head and
// body, written to the socket in one writev when the connection is idle
// (one TCP segment where two Sends may take two): comm sends a long
// message's empty head and its first Data frame this way.
func (l *Link) SendPair(dst int, f1, head, body []byte) error {
	_, err := l.sendPair(dst, f1, head, body, false, nil)
	return err
}

// SendLent is SendPair (f1 may be nil: then only the frame of head and
// body) that may keep body instead of copying it: what the socket does not
// take at once of body waits in the queue as the caller's memory, so a
// large frame behind a full socket costs no copy. It reports whether it
// kept body (lent); then the caller must leave body alone until done is
// called (once, without any lock of the link's held: by the writer
// goroutine, or by a caller of Poll, which must not hold a lock that done
// takes) or until Keep returns. done is called once the kernel has taken
// the last byte of body, or the connection broke and the frame was
// dropped; it is not called after Close. done may be nil (the caller
// learns the end from a later lent frame to the same rank: frames are
// written in order). f1 and head are copied as Send copies them. On a sealed
// link (TLS and --tcp-encrypt), which seals each frame into a buffer of its own, and where the
// socket cannot be written without waiting, SendLent is SendPair and
// never lends.
func (l *Link) SendLent(dst int, f1, head, body []byte, done func()) (lent bool, err error) {
	return l.sendPair(dst, f1, head, body, true, done)
}

func (l *Link) sendPair(dst int, f1, head, body []byte, lend bool, done func()) (bool, error) {
	if l.Sealed() {
		if f1 != nil {
			if err := l.send(dst, f1, nil); err != nil {
				return false, err
			}
		}
		return false, l.send(dst, head, body)
	}
	o, err := l.out(dst, len(f1))
	if err != nil {
		return false, err
	}
	size := len(head) + len(body)
	if size > l.cfg.MaxFrame {
		return false, fmt.Errorf("tcp: frame of %d bytes above the limit of %d", size, l.cfg.MaxFrame)
	}
	if ok, err := o.lock(); !ok {
		return false, err
	}
	first := len(o.q) == 0
	inline := first && !o.busy && o.fd >= 0
	var h1, h2 [4]byte
	binary.LittleEndian.PutUint32(h1[:], uint32(len(f1)))
	binary.LittleEndian.PutUint32(h2[:], uint32(size))
	pieces := [5][]byte{h1[:], f1, h2[:], head, body}
	ps := pieces[:]
	if f1 == nil {
		ps = ps[2:]
	}
	lent := false
	if lend && o.fd >= 0 {
		lent = l.sendLent(o, inline, ps, done)
	} else {
		l.sendPieces(o, inline, ps)
	}
	o.unlock(first)
	return lent, nil
}

// lock takes o.mu for a send. It reports false, with what the send
// returns, when o takes no frames: ErrClosed once closed, nil (the frame
// dropped) once the connection is down.
func (o *outbound) lock() (bool, error) {
	o.mu.Lock()
	switch {
	case o.closed:
		o.mu.Unlock()
		return false, ErrClosed
	case o.down:
		o.mu.Unlock()
		return false, nil
	}
	return true, nil
}

// unlock ends a send that found the queue empty (first) or not: it lets
// go of o.mu and wakes the writer if the send left frames queued.
func (o *outbound) unlock(first bool) {
	wake := first && len(o.q) > 0
	o.queued.Store(len(o.q) > 0)
	o.mu.Unlock()
	if wake {
		select {
		case o.wake <- struct{}{}:
		default:
		}
	}
}

// out returns the outbound connection to dst for a frame of size bytes.
func (l *Link) out(dst, size int) (*outbound, error) {
	outs := *l.outs.Load()
	if dst < 0 || dst >= len(outs) || outs[dst] == nil {
		return nil, fmt.Errorf("tcp: rank %d is not reachable over TCP", dst)
	}
	if size > l.cfg.MaxFrame {
		return nil, fmt.Errorf("tcp: frame of %d bytes above the limit of %d", size, l.cfg.MaxFrame)
	}
	return outs[dst], nil
}

func (l *Link) send(dst int, head, body []byte) error {
	size := len(head) + len(body)
	o, err := l.out(dst, size)
	if err != nil {
		return err
	}
	if ok, err := o.lock(); !ok {
		return err
	}
	first := len(o.q) == 0
	inline := first && !o.busy && o.fd >= 0 && (size > smallFrame || time.Since(o.wrote) > streamGap)
	if o.seal != nil {
		l.sendSealed(o, inline, head, body)
	} else {
		l.sendPlain(o, inline, size, head, body)
	}
	o.unlock(first)
	return nil
}

// sendPlain writes the frame of head and body to the socket (inline) as far
// as it takes it without waiting, and queues the rest. o.mu held.
func (l *Link) sendPlain(o *outbound, inline bool, size int, head, body []byte) {
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(size))
	pieces := [3][]byte{hdr[:], head, body}
	l.sendPieces(o, inline, pieces[:])
}

// sendPieces writes the bytes of pieces (whole frames, each with its
// length) to the socket (inline) as far as it takes them without waiting,
// and queues the rest. o.mu held.
func (l *Link) sendPieces(o *outbound, inline bool, pieces [][]byte) {
	total := l.sendInline(o, inline, pieces)
	if total == 0 {
		return
	}
	b := o.queueBuf(total)
	for _, p := range pieces {
		*b = append(*b, p...)
	}
}

// sendInline writes pieces to the socket when inline, as far as it takes
// them without waiting, cuts what it wrote off pieces and returns how many
// bytes remain. o.mu held.
func (l *Link) sendInline(o *outbound, inline bool, pieces [][]byte) int {
	total := 0
	for _, p := range pieces {
		total += len(p)
	}
	if !inline {
		return total
	}
	// Nothing queued and the writer idle: the frames go to the kernel
	// now, from the caller's buffers, as far as the socket takes them
	// without waiting; the writer gets the rest. (An error leaves them to
	// the writer, which meets it and reports.)
	n, _ := writeFD(o.fd, pieces...)
	o.wrote = time.Now()
	total -= n
	for i := range pieces {
		k := min(n, len(pieces[i]))
		pieces[i], n = pieces[i][k:], n-k
	}
	return total
}

// sendLent is sendPieces whose last piece (a frame's body) is queued as
// it is, lent, with done, and reports whether it was. o.mu held.
func (l *Link) sendLent(o *outbound, inline bool, pieces [][]byte, done func()) bool {
	if l.sendInline(o, inline, pieces) == 0 {
		return false
	}
	last := len(pieces) - 1
	n := 0
	for _, p := range pieces[:last] {
		n += len(p)
	}
	if n > 0 {
		b := o.queueBuf(n)
		for _, p := range pieces[:last] {
			*b = append(*b, p...)
		}
	}
	o.q = append(o.q, piece{b: pieces[last], lent: true, done: done})
	o.open = false
	l.lentFrames.Add(1)
	return true
}

// LentFrames counts the frames whose body SendLent queued as the caller's
// memory, not copied (for tests and diagnostics).
func (l *Link) LentFrames() int64 { return l.lentFrames.Load() }

// sendSealed seals the frame of head and body into a queue buffer and
// writes it to the socket (inline) as far as it takes it without waiting,
// or leaves it queued. o.mu held.
func (l *Link) sendSealed(o *outbound, inline bool, head, body []byte) {
	need := 4 + len(head) + len(body) + tagLen
	if !inline {
		b := o.queueBuf(need)
		*b = o.seal.seal(*b, head, body)
		return
	}
	var b []byte
	if need <= maxSmallWire {
		b = (*batchPool.Get().(*[]byte))[:0]
	} else {
		b = getLarge(need)
	}
	b = o.seal.seal(b, head, body)
	n, _ := writeFD(o.fd, b)
	o.wrote = time.Now()
	if n == len(b) {
		putBuf(b)
		return
	}
	// The rest goes to the writer as it is (an error leaves it all to
	// the writer, which meets it and reports).
	o.q = append(o.q, piece{b: b, off: n})
	o.open = false
}

// maxSmallWire is the most bytes a small frame takes on the wire: length,
// frame, and the tag of a sealed one.
const maxSmallWire = 4 + smallFrame + tagLen

// queueBuf returns the queue buffer that need more bytes go into: the open
// batch when they are few and fit, a new batch, or a buffer of their own.
// o.mu held.
func (o *outbound) queueBuf(need int) *[]byte {
	if need <= maxSmallWire {
		if n := len(o.q); !o.open || cap(o.q[n-1].b)-len(o.q[n-1].b) < need {
			o.q = append(o.q, piece{b: (*batchPool.Get().(*[]byte))[:0]})
			o.open = true
		}
		return &o.q[len(o.q)-1].b
	}
	o.q = append(o.q, piece{b: getLarge(need)})
	o.open = false
	return &o.q[len(o.q)-1].b
}
