package tcp

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"
)

type outbound struct {
	dst  int
	addr string
	conn net.Conn
	fd   int           // conn's socket when it may be written without waiting, or -1
	wake chan struct{} // capacity 1: the queue went from empty to not

	mu     sync.Mutex  // guards seal, q, spare, busy, down, closed, and writes on fd
	seal   *sealer     // seals each frame as it is written or queued (TLS), or nil
	q      net.Buffers // bytes for the writer: batches of small frames (4-byte length, bytes), large frames alone
	spare  net.Buffers // the writer's last q, for reuse
	open   bool        // the last element of q is a batch that small frames may join
	wrote  time.Time   // when Send last wrote a frame itself
	busy   bool        // the writer holds a batch
	down   bool        // the connection broke: frames are dropped
	closed bool
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
	if l.Sealed() {
		if err := l.send(dst, f1, nil); err != nil {
			return err
		}
		return l.send(dst, head, body)
	}
	o, err := l.out(dst, len(f1))
	if err != nil {
		return err
	}
	size := len(head) + len(body)
	if size > l.cfg.MaxFrame {
		return fmt.Errorf("tcp: frame of %d bytes above the limit of %d", size, l.cfg.MaxFrame)
	}
	if ok, err := o.lock(); !ok {
		return err
	}
	first := len(o.q) == 0
	inline := first && !o.busy && o.fd >= 0
	var h1, h2 [4]byte
	binary.LittleEndian.PutUint32(h1[:], uint32(len(f1)))
	binary.LittleEndian.PutUint32(h2[:], uint32(size))
	pieces := [5][]byte{h1[:], f1, h2[:], head, body}
	l.sendPieces(o, inline, pieces[:])
	o.unlock(first)
	return nil
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
	total := 0
	for _, p := range pieces {
		total += len(p)
	}
	if inline {
		// Nothing queued and the writer idle: the frames go to the
		// kernel now, from the caller's buffers, as far as the socket
		// takes them without waiting; the writer gets the rest. (An
		// error leaves them to the writer, which meets it and reports.)
		n, _ := writeFD(o.fd, pieces...)
		o.wrote = time.Now()
		if n == total {
			return
		}
		total -= n
		for i := range pieces {
			k := min(n, len(pieces[i]))
			pieces[i], n = pieces[i][k:], n-k
		}
	}
	b := o.queueBuf(total)
	for _, p := range pieces {
		*b = append(*b, p...)
	}
}

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
	o.q = append(o.q, b[n:])
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
		if n := len(o.q); !o.open || cap(o.q[n-1])-len(o.q[n-1]) < need {
			o.q = append(o.q, (*batchPool.Get().(*[]byte))[:0])
			o.open = true
		}
		return &o.q[len(o.q)-1]
	}
	o.q = append(o.q, getLarge(need))
	o.open = false
	return &o.q[len(o.q)-1]
}

// write is o's writer goroutine: it hands the queue to the kernel batch by
// batch until the link closes or the connection breaks.
func (l *Link) write(o *outbound) {
	defer l.wg.Done()
	for {
		o.mu.Lock()
		for len(o.q) == 0 && !o.closed && !o.down {
			o.mu.Unlock()
			select {
			case <-o.wake:
			case <-l.done:
			}
			o.mu.Lock()
		}
		if o.closed || o.down {
			o.mu.Unlock()
			return
		}
		bufs := o.q
		o.q, o.spare = o.spare[:0], nil
		o.open = false
		o.busy = true
		o.mu.Unlock()

		all := slices.Clone(bufs) // WriteTo consumes its receiver
		_, err := bufs.WriteTo(o.conn)
		for i, b := range all {
			putBuf(b)
			all[i] = nil
		}

		o.mu.Lock()
		o.busy = false
		o.spare = all[:0]
		if err != nil && !o.closed {
			o.down = true
			o.q, o.spare = nil, nil
			o.mu.Unlock()
			l.report(o.dst, fmt.Errorf("writing to %s: %w", o.addr, err))
			return
		}
		o.mu.Unlock()
	}
}

// Flush returns once every frame sent so far has been handed to the kernel
// (or its connection broke), or ctx ends.
func (l *Link) Flush(ctx context.Context) error {
	d := 20 * time.Microsecond
	for {
		n := 0
		for _, o := range *l.outs.Load() {
			if o == nil {
				continue
			}
			o.mu.Lock()
			if (len(o.q) > 0 || o.busy) && !o.down && !o.closed {
				n++
			}
			o.mu.Unlock()
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tcp: rank %d: %d peers have not taken its last frames: %w", l.cfg.Rank, n, ctx.Err())
		case <-time.After(d):
		}
		d = min(2*d, 5*time.Millisecond)
	}
}
