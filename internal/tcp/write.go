package tcp

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"
)

// maxIov is the most pieces the writer hands the kernel in one writev.
const maxIov = 64

// write is o's writer goroutine: it hands the queue to the kernel until the
// link closes or the connection breaks.
func (l *Link) write(o *outbound) {
	defer l.wg.Done()
	var rc syscall.RawConn
	if sc, ok := o.conn.(syscall.Conn); ok && o.fd >= 0 {
		rc, _ = sc.SyscallConn()
	}
	w := &writer{o: o, rc: rc}
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
		o.mu.Unlock()
		var err error
		if rc != nil {
			err = w.drain()
		} else {
			err = w.drainBlocking()
		}
		if err == nil {
			continue
		}
		o.mu.Lock()
		if o.closed {
			o.mu.Unlock()
			return
		}
		o.down = true
		dones := o.drop(nil)
		o.mu.Unlock()
		for _, d := range dones {
			d()
		}
		l.report(o.dst, fmt.Errorf("writing to %s: %w", o.addr, err))
		return
	}
}

// writer is the state of o's writer goroutine.
type writer struct {
	o     *outbound
	rc    syscall.RawConn // o's socket, written without waiting; nil: through o.conn
	bufs  [][]byte
	dones []func()
}

// take points w.bufs at the unwritten bytes of the first pieces of the
// queue (at most most of them; all with most 0) and marks o busy. o.mu
// held.
func (w *writer) take(most int) {
	w.bufs = w.bufs[:0]
	for i := range w.o.q {
		if most > 0 && i == most {
			break
		}
		p := &w.o.q[i]
		w.bufs = append(w.bufs, p.b[p.off:])
	}
	w.o.busy = true
}

// wrote records that the kernel took n bytes of what take pointed at,
// wakes Keep, and calls the done of every lent piece now written.
func (w *writer) wrote(n int) {
	o := w.o
	o.mu.Lock()
	o.busy = false
	w.dones = o.advance(n, w.dones[:0])
	o.idle.Broadcast()
	o.mu.Unlock()
	for i, d := range w.dones {
		d()
		w.dones[i] = nil
	}
}

// drain writes the queue to the socket with writevs that do not wait,
// waiting for room between them, until the queue is empty, the link
// closes, or the connection breaks (its error).
func (w *writer) drain() error {
	o := w.o
	var werr error
	err := w.rc.Write(func(fd uintptr) bool {
		for {
			o.mu.Lock()
			if o.closed || o.down || len(o.q) == 0 {
				o.mu.Unlock()
				return true
			}
			w.take(maxIov)
			o.mu.Unlock()
			n, err := writeFD(int(fd), w.bufs...)
			w.wrote(n)
			switch {
			case err == syscall.EAGAIN:
				return false // wait for room
			case err != nil:
				werr = err
				return true
			}
		}
	})
	if werr != nil {
		return werr
	}
	return err
}

// drainBlocking writes the queue through o.conn, for a socket that cannot
// be written without waiting (no raw socket access on this platform;
// nothing is lent then).
func (w *writer) drainBlocking() error {
	o := w.o
	o.mu.Lock()
	w.take(0)
	o.mu.Unlock()
	bufs := net.Buffers(w.bufs)
	n, err := bufs.WriteTo(o.conn)
	w.wrote(int(n))
	return err
}

// advance drops the first n bytes of the queue: the pieces written whole go
// back to their pools (lent ones: their done is appended to dones). o.mu
// held.
func (o *outbound) advance(n int, dones []func()) []func() {
	i := 0
	for ; i < len(o.q); i++ {
		p := &o.q[i]
		rest := len(p.b) - p.off
		if n < rest {
			p.off += n
			break
		}
		n -= rest
		dones = o.free(p, dones)
	}
	k := copy(o.q, o.q[i:])
	clear(o.q[k:])
	o.q = o.q[:k]
	if k == 0 {
		o.open = false
		o.queued.Store(false)
	}
	return dones
}

// free lets go of piece p: back to its pool, or, lent, its done appended to
// dones. o.mu held.
func (o *outbound) free(p *piece, dones []func()) []func() {
	if p.lent {
		if p.done != nil {
			dones = append(dones, p.done)
		}
	} else {
		putBuf(p.b)
	}
	*p = piece{}
	return dones
}

// drop empties the queue of a connection that broke, appending the done of
// every lent piece to dones. o.mu held.
func (o *outbound) drop(dones []func()) []func() {
	for i := range o.q {
		dones = o.free(&o.q[i], dones)
	}
	o.q = nil
	o.open = false
	o.queued.Store(false)
	return dones
}

// pollBatch is how many sockets pollOut asks about in one system call.
const pollBatch = 16

// pollOut writes, on the calling goroutine, what is queued for the
// outgoing connections whose sockets have room, as far as they take it
// without waiting, and reports whether it wrote anything. Poll calls it:
// a caller that drives the link then refills a full socket as soon as the
// kernel makes room, where the writer goroutine would have to be woken
// (and, with one P per rank, wait for the caller to yield its P).
func (l *Link) pollOut() bool {
	outs := l.outs.Load()
	if outs == nil {
		return false
	}
	var fds [pollBatch]pollFD
	var held [pollBatch]*outbound
	prog := false
	for rest := *outs; len(rest) > 0; {
		k := 0
		for ; len(rest) > 0 && k < pollBatch; rest = rest[1:] {
			if o := rest[0]; o != nil && o.fd >= 0 && o.queued.Load() {
				held[k], fds[k] = o, pollFD{fd: int32(o.fd), events: pollOut}
				k++
			}
		}
		if k == 0 {
			continue
		}
		// The numbers are only asked about here (a closed one may be
		// reported on, never written to): writes happen under o.mu,
		// with o not closed.
		ready(fds[:k])
		for i, o := range held[:k] {
			if fds[i].revents != 0 && l.flush(o) {
				prog = true
			}
		}
	}
	return prog
}

// flush is pollOut for o: unless the writer goroutine is writing (or the
// caller would have to wait for o.mu), one writev of the head of o's
// queue that does not wait. The writer goroutine, woken by the same room,
// finds the queue shorter or empty. An error is left to it: its next
// write meets it and reports.
func (l *Link) flush(o *outbound) bool {
	if !o.mu.TryLock() {
		return false
	}
	if o.busy || o.closed || o.down || len(o.q) == 0 {
		o.mu.Unlock()
		return false
	}
	var iov [maxIov][]byte
	bufs := iov[:0]
	for i := range min(len(o.q), maxIov) {
		p := &o.q[i]
		bufs = append(bufs, p.b[p.off:])
	}
	n, _ := writeFD(o.fd, bufs...)
	var dones []func()
	if n > 0 {
		dones = o.advance(n, nil)
		l.polledBytes.Add(int64(n))
	}
	o.mu.Unlock()
	if len(dones) > 0 {
		// done is never called after Close has returned.
		l.mu.Lock()
		closed := l.closed
		if !closed {
			l.calling.Add(1)
		}
		l.mu.Unlock()
		if !closed {
			for _, d := range dones {
				d()
			}
			l.calling.Done()
		}
	}
	return n > 0
}

// PolledBytes counts the bytes of queued frames that Poll wrote (for
// tests and diagnostics).
func (l *Link) PolledBytes() int64 { return l.polledBytes.Load() }

// Keep copies what is not written yet of every frame body lent for rank
// dst (SendLent) into buffers of the link's own: once it returns, the
// callers' buffers are theirs again, and the frames still go out whole and
// in order. A done whose piece was written before Keep took the lock may
// still be called once after it returns. Keep waits at most for a write
// that does not wait.
func (l *Link) Keep(dst int) {
	outs := *l.outs.Load()
	if dst < 0 || dst >= len(outs) || outs[dst] == nil {
		return
	}
	o := outs[dst]
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.busy {
		o.idle.Wait()
	}
	for i := range o.q {
		p := &o.q[i]
		if p.lent {
			b := append(getLarge(len(p.b)-p.off), p.b[p.off:]...)
			*p = piece{b: b}
		}
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
