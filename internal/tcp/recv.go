package tcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// readBuf is the read buffer of each incoming connection: frames of up to
// smallFrame bytes are parsed out of it, several per system call when they
// come in a stream; larger frames are read straight into their own slice.
const readBuf = 64 << 10

// inbound is one authenticated incoming connection. Its frames are read
// and delivered by whoever holds tok: its reader goroutine, or a caller of
// Poll (comm's receive that drives the link while it waits), so a frame
// that completes a wait reaches the waiting goroutine without a wake-up.
// Holding tok while delivering keeps the frames in order.
type inbound struct {
	l    *Link
	src  int
	conn net.Conn // the raw connection frames are read from
	fd   int      // conn's socket when it may be read without waiting, or -1

	more atomic.Bool // the last Poll stopped before the socket was empty

	tok  sync.Mutex // the reader's token; guards everything below
	dead bool       // no more reads: the connection ended, broke or closes
	buf  []byte     // read buffer; buf[r:w] is not parsed yet
	r, w int
	f    []byte  // a large frame being read straight into (sealed: with its tag), or nil
	got  int     // bytes of f read so far
	open *sealer // opens each frame (TLS), or nil

	// peeked bytes at the head of the socket are already in buf: a
	// caller's Poll peeks (see poll), and the next fill drops them from
	// the socket before it reads.
	peeked int

	// sinceLarge counts the frames of up to smallFrame bytes parsed
	// since the last larger one, up to afterLarge (and is afterLarge
	// before any). Below that, the next bytes are most likely another
	// large frame or the small one that heads it (comm's long messages:
	// a head, then Data frames), whose body should go from the socket
	// straight to where it belongs (a Placer's slice, or a slice of its
	// own), not through buf: a read into buf then takes at most
	// headRead bytes (see limit), and Poll reads rather than peeks.
	sinceLarge int

	placing bool      // a frame is being read into a Placer's slice (pl)
	pl      Placement // that frame's rest
	plHead  []byte    // that frame's head
}

// headRead is how much a read into the read buffer takes shortly after a
// large frame: enough for the small frame that heads a long message
// (comm's, some 100 bytes) and the first PlaceHead bytes of the Data frame
// after it.
const headRead = 1 << 10

// afterLarge: reads into the read buffer are limited while fewer than
// afterLarge small frames have been parsed since the last large one.
const afterLarge = 2

// limit is how much the next read into buf takes while reads are limited:
// headRead, or the rest of the small frame that buf holds the start of.
// tok held.
func (in *inbound) limit() int {
	if in.w-in.r < 4 {
		return headRead
	}
	n := int(binary.LittleEndian.Uint32(in.buf[in.r:]))
	if n > smallFrame {
		return headRead // the Placer waits for its head
	}
	if in.open != nil {
		n += tagLen
	}
	return max(headRead, 4+n-(in.w-in.r))
}

// errAgain: the socket holds nothing to read yet.
var errAgain = syscall.EAGAIN

// fill reads once into the frame being filled or the read buffer, with
// read (which may wait, or return errAgain), or with peek into the read
// buffer, leaving the bytes in the socket (in.peeked) until the next fill
// drops them. tok held.
func (in *inbound) fill(read func([]byte) (int, error), peek bool) (int, error) {
	if err := in.drop(); err != nil {
		return 0, err
	}
	if in.placing {
		return in.fillPlaced(read)
	}
	if in.f != nil {
		k, n, err := in.readTail(read, in.f[in.got:])
		in.got += k
		return n, err
	}
	if in.r == in.w {
		in.r, in.w = 0, 0
	} else if in.w == len(in.buf) || len(in.buf)-in.r < maxSmallWire {
		in.w = copy(in.buf, in.buf[in.r:in.w])
		in.r = 0
	}
	p := in.buf[in.w:]
	if in.sinceLarge < afterLarge {
		p = p[:min(len(p), in.limit())]
	}
	var n int
	var err error
	if peek {
		n, err = peekFD(in.fd, p)
		in.peeked = n
	} else {
		n, err = read(p)
	}
	in.w += n
	return n, eofErr(n, err)
}

// readTail reads into p, the rest of a large frame, and, when the socket
// can be read without waiting, up to headRead bytes after it into the
// read buffer (empty while a large frame is read): the head of the next
// frame comes in the same system call, as with Open MPI's readv into a
// fragment and its endpoint cache. It returns how many bytes went into p
// and how many in all. tok held.
func (in *inbound) readTail(read func([]byte) (int, error), p []byte) (k, n int, err error) {
	if in.fd < 0 || in.r != in.w {
		n, err = read(p)
		return n, n, eofErr(n, err)
	}
	in.r, in.w = 0, 0
	n, err = readvFD(in.fd, p, in.buf[:headRead])
	n = max(n, 0)
	k = min(n, len(p))
	in.w = n - k
	return k, n, eofErr(n, err)
}

// drop takes the bytes a peek left in the socket out of it (they are in
// buf already). tok held.
func (in *inbound) drop() error {
	for in.peeked > 0 {
		n, err := dropFD(in.fd, in.buf[:in.peeked])
		if err == nil && n == 0 {
			err = io.ErrUnexpectedEOF // cannot be: the bytes were there
		}
		if err != nil {
			return err
		}
		in.peeked -= n
	}
	return nil
}

// eofErr turns a read of nothing without an error (a raw socket's end of
// stream) into io.EOF.
func eofErr(n int, err error) error {
	if n == 0 && err == nil {
		return io.EOF
	}
	return err
}

// deliver hands every whole frame read so far to onFrame, in order, and
// starts reading a large frame into its own slice once its length is
// known; with TLS it opens each frame first. tok held. Its error is a
// corrupt or forged stream.
func (in *inbound) deliver() error {
	tag := 0
	if in.open != nil {
		tag = tagLen
	}
	for {
		if in.placing {
			if in.placed() {
				return nil
			}
			continue
		}
		if in.f != nil {
			if in.got < len(in.f) {
				return nil
			}
			f := in.f
			in.f, in.got = nil, 0
			if in.open != nil {
				hdr := in.open.hdr[:]
				binary.LittleEndian.PutUint32(hdr, uint32(len(f)-tagLen))
				var err error
				if f, err = in.open.open(f[:0], hdr, f); err != nil {
					return in.forged(err)
				}
			}
			in.l.onFrame(f)
			continue
		}
		if in.w-in.r < 4 {
			return nil
		}
		n := int(binary.LittleEndian.Uint32(in.buf[in.r:]))
		if n > in.l.cfg.MaxFrame {
			if in.open != nil {
				return in.forged(fmt.Errorf("length field of %d bytes, above the limit of %d", n, in.l.cfg.MaxFrame))
			}
			return fmt.Errorf("tcp: rank %d: corrupt stream from rank %d: frame of %d bytes above the limit of %d",
				in.l.cfg.Rank, in.src, n, in.l.cfg.MaxFrame)
		}
		have := in.w - in.r - 4
		if n > smallFrame {
			in.sinceLarge = 0
		} else if in.sinceLarge < afterLarge && have >= n+tag {
			in.sinceLarge++
		}
		if n > smallFrame {
			if in.placeable() && have < min(n, PlaceHead) {
				return nil // the Placer sees at least its head
			}
			if in.place(n) {
				continue
			}
			in.f = getFrame(n + tag)
			in.got = copy(in.f, in.buf[in.r+4:in.w])
			in.r += 4 + in.got
			continue
		}
		if have < n+tag {
			return nil
		}
		f := getFrame(n)
		if in.open != nil {
			var err error
			if f, err = in.open.open(f[:0], in.buf[in.r:in.r+4], in.buf[in.r+4:in.r+4+n+tag]); err != nil {
				return in.forged(err)
			}
		} else {
			copy(f, in.buf[in.r+4:])
		}
		in.r += 4 + n + tag
		in.l.onFrame(f)
	}
}

// run is the connection's reader goroutine: it reads and delivers while
// nobody drives the link, and waits for the socket to become readable
// without holding tok, so that a driver may read meanwhile.
func (in *inbound) run() {
	if in.fd < 0 {
		in.runBlocking()
		return
	}
	rc, err := in.conn.(syscall.Conn).SyscallConn()
	if err != nil {
		in.tok.Lock()
		in.end(err)
		return
	}
	read := func(p []byte) (int, error) { return readFD(in.fd, p) }
	for {
		held := false
		var err error
		yield := false
		werr := rc.Read(func(uintptr) bool {
			if in.l.claimed.Load() > 0 {
				yield = true // a caller polls: leave the socket to it
				return true
			}
			in.tok.Lock()
			if in.dead {
				held, err = true, net.ErrClosed
				return true
			}
			_, err = in.fill(read, false)
			if errors.Is(err, errAgain) {
				// Wait for more, letting drivers read meanwhile. (The
				// wait ends at once when data came after this read.)
				in.tok.Unlock()
				return false
			}
			held = true
			return true
		})
		if yield && werr == nil {
			in.l.awaitUnclaimed()
			continue
		}
		if !held {
			in.tok.Lock()
			err = werr // the connection closed while waiting
		}
		if err == nil {
			if err = in.deliver(); err != nil {
				in.corrupt(err)
				return
			}
			in.tok.Unlock()
			continue
		}
		in.end(err)
		return
	}
}

// runBlocking is run for a connection that cannot be read without waiting
// (no raw socket access on this platform): only the reader goroutine reads
// it, and tok guards nothing another goroutine touches.
func (in *inbound) runBlocking() {
	in.tok.Lock()
	for {
		if _, err := in.fill(in.conn.Read, false); err != nil {
			in.end(err)
			return
		}
		if err := in.deliver(); err != nil {
			in.corrupt(err)
			return
		}
	}
}

// end reports the connection's end (tok held; released).
func (in *inbound) end(err error) {
	dead := in.dead
	in.dead = true
	mid := in.f != nil || in.w > in.r || in.placing
	in.tok.Unlock()
	if dead || in.l.isClosed() {
		return
	}
	switch {
	case errors.Is(err, io.EOF) && mid:
		err = errors.New("connection closed by the peer in the middle of a frame")
	case errors.Is(err, io.EOF):
		err = errors.New("connection closed by the peer")
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = errors.New("connection closed by the peer in the middle of a frame")
	}
	in.l.report(in.src, fmt.Errorf("reading from %s: %w", in.conn.RemoteAddr(), err))
}

// corrupt reports a corrupt stream at once (tok held; released).
func (in *inbound) corrupt(err error) {
	dead := in.dead
	in.dead = true
	in.tok.Unlock()
	if !dead && !in.l.isClosed() {
		in.l.onFatal(err)
	}
}

// Poll reads and delivers, on the calling goroutine, the frames that have
// arrived on incoming connections that no other goroutine is reading at
// the moment, without waiting, and reports whether it delivered or read
// anything. It also writes what is queued for outgoing connections whose
// sockets have room (see pollOut), and reports that too. A caller about
// to wait for a frame calls it in a loop (comm's blocked receives do, for
// a while, when the host has a core per rank): the frame then reaches it
// without a goroutine being woken, and its own frames that a full socket
// held back go out without waking the writer goroutine.
func (l *Link) Poll() bool {
	prog := false
	for _, in := range *l.polled.Load() {
		if in.tok.TryLock() {
			prog = in.poll() || prog
		}
	}
	return l.pollOut() || prog
}

// Claim tells the reader goroutines of the connections Poll reads to
// leave them to Poll until release is called; a caller that polls the
// link in a loop claims it first. Otherwise a reader goroutine that the
// network poller wakes when data arrives would take frames from under the
// caller (and, on a busy core, could hold them while descheduled), and
// each such wake-up costs a goroutine switch per frame (5 µs one way on
// the test VM). When the last claim is released, the reader goroutines go
// back to their sockets: at once if the caller releases with soon false
// (it gave up waiting and goes to sleep) or its last Poll may have left
// bytes in a socket; otherwise rearmDelay later, unless a new claim comes
// first, as it does in a run of blocking calls. release must be called
// once; claims may overlap.
func (l *Link) Claim() (release func(soon bool)) {
	l.claimMu.Lock()
	l.claimed.Add(1)
	l.claimMu.Unlock()
	return func(soon bool) {
		l.claimMu.Lock()
		if l.claimed.Add(-1) == 0 && l.unclaimed != nil {
			if soon && !l.unread() {
				l.rearm.Reset(rearmDelay)
			} else {
				close(l.unclaimed)
				l.unclaimed = nil
			}
		}
		l.claimMu.Unlock()
	}
}

// unread reports whether a connection may hold frames that the last Poll
// left in its socket.
func (l *Link) unread() bool {
	for _, in := range *l.polled.Load() {
		if in.more.Load() {
			return true
		}
	}
	return false
}

// rearmDelay is how long after the last claim the reader goroutines wait
// before they watch their sockets again: a frame that arrives then, with
// no caller polling, waits up to that long.
const rearmDelay = 50 * time.Microsecond

// wakeReaders sends the reader goroutines back to their sockets unless a
// caller claims the link again.
func (l *Link) wakeReaders() {
	l.claimMu.Lock()
	if l.claimed.Load() == 0 && l.unclaimed != nil {
		close(l.unclaimed)
		l.unclaimed = nil
	}
	l.claimMu.Unlock()
}

// awaitUnclaimed returns once no caller claims the link and rearmDelay has
// passed since the last did, or the link closes.
func (l *Link) awaitUnclaimed() {
	l.claimMu.Lock()
	if l.claimed.Load() == 0 {
		l.claimMu.Unlock()
		return
	}
	if l.unclaimed == nil {
		l.unclaimed = make(chan struct{})
	}
	ch := l.unclaimed
	l.claimMu.Unlock()
	select {
	case <-ch:
	case <-l.done:
	}
}

// Drive claims the link and calls Poll until done reports true, or for d
// after the last round that moved a frame, and reports whether done did.
// It lets the process's other goroutines run every gosched rounds and
// never yields the core to other processes: a sched_yield hands it to
// whatever else runs on the host, for a time slice (with other jobs on
// the 2-core test VM, an 8-byte message took 65-105 µs one way with a
// yield after 10 µs of spinning, 19-29 µs without). comm's blocked calls
// drive the link this way when the host has a core per rank.
func (l *Link) Drive(done func() bool, d time.Duration) (ok bool) {
	release := l.Claim()
	defer func() { release(ok) }()
	var start time.Time
	for i := 0; ; i++ {
		if l.Poll() {
			start = time.Time{} // d counts from the last frame moved
		}
		if done() {
			return true
		}
		if i%8 != 0 {
			continue
		}
		now := time.Now()
		if start.IsZero() {
			start = now
		}
		if now.Sub(start) >= d {
			return false
		}
		if i%gosched == 0 {
			runtime.Gosched()
		}
	}
}

// gosched: Drive lets the process's other goroutines run every gosched
// rounds (a few microseconds), not every round: a Gosched puts the caller
// on the global run queue, which wakes an idle thread to look for work
// each time (a futex call, and the caller may move to that thread).
const gosched = 64

// poll is Poll for one connection (tok held; released): it reads until
// the socket has nothing more, or 16 times, and records in more whether
// it stopped with the socket not known to be empty. What goes into the
// read buffer it peeks at rather than reads, and it stops after a peek
// that found bytes, unless they end in a large frame (read into a slice
// of its own or placed: it drops them at once and reads on): they stay
// in the socket until the next fill drops them. The kernel sends the ACK
// it owes for them when they leave the socket, and on a one-way
// connection that ACK rides on no data: sent
// from the read that brings the frame, it (and, on loopback, the
// sender's processing of it) delays the caller by a few microseconds;
// sent from the next fill, it goes while the caller is on its way (see
// "Where the time goes" in the package doc).
func (in *inbound) poll() bool {
	prog, dry := false, false
	read := func(p []byte) (int, error) { return readFD(in.fd, p) }
	for i := 0; i < 16 && !in.dead; i++ { // then give the other connections a turn
		n, err := in.fill(read, !in.placing && in.f == nil && in.sinceLarge >= afterLarge)
		if n > 0 {
			prog = true
		}
		if err != nil {
			// Nothing more, or the end of the stream: the reader
			// goroutine, woken by the same event, reports an end.
			dry = true
			break
		}
		full := in.w == len(in.buf)
		if err := in.deliver(); err != nil {
			in.corrupt(err)
			in.conn.Close() // wakes the reader goroutine, which leaves
			return true
		}
		if in.peeked > 0 && !in.placing && in.f == nil {
			dry = !full // the socket held no more than the peek took
			break
		}
	}
	in.more.Store(!dry && !in.dead)
	in.tok.Unlock()
	return prog
}
