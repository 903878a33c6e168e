package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one rank's TCP link.
type Config struct {
	// Rank and Size place this rank in the job.
	Rank, Size int
	// Key authenticates the ranks of the job to each other: every rank of
	// the job has the same, nobody else has it (comm derives it from the
	// job's secret key, DECORUN_JOB_KEY). Required.
	Key []byte
	// Host is the address to listen on and publish; "127.0.0.1" when
	// empty. The port is chosen by the kernel.
	Host string
	// TLS authenticates each connection's handshake with TLS (the
	// acceptor's certificate pinned by the fingerprint it publishes) and
	// seals every frame (see the package doc).
	TLS bool
	// Plain leaves frames unsealed after the handshake, TLS or not: the
	// job's opt-out of encryption on a trusted network (decorun
	// --tcp-encrypt=false). With TLS the handshake is the same (pinned
	// certificate, proofs bound to the TLS session). It is published in
	// Self, and every peer must have the same: a dialer refuses a peer
	// whose record differs (ErrMismatch) and an acceptor a dialer whose
	// hello does.
	Plain bool
	// MaxFrame is the largest frame accepted; zero means 64 MiB.
	MaxFrame int
	// Grace is how long a broken connection waits before it is reported
	// to onFatal; zero means DefaultGrace.
	Grace time.Duration
	// Timeout bounds each dial and handshake, on both sides (Connect's
	// context may end a dial sooner); zero means 10 s.
	Timeout time.Duration
}

// DefaultGrace is Config.Grace's default: longer than decorun takes to end
// a job whose rank died, or to announce the loss with --keep-going (at once
// for a rank that exits, 3 s for a host that stops answering).
const DefaultGrace = 5 * time.Second

// Peer is what a rank publishes so that others can dial it.
type Peer struct {
	Addr        string // host:port
	Fingerprint []byte // SHA-256 of its TLS certificate; nil without TLS
	Plain       bool   // its frames travel unsealed (Config.Plain)
}

// PeerError reports that the connection with rank Rank broke: frames may
// have been lost unless that rank had closed its link or died.
type PeerError struct {
	Rank int
	Err  error
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("tcp: connection with rank %d broke: %v", e.Rank, e.Err)
}

func (e *PeerError) Unwrap() error { return e.Err }

// Errors.
var (
	// ErrClosed is returned by Send on a closed Link.
	ErrClosed = errors.New("tcp: link closed")
	// ErrAuth is wrapped by Connect's errors when a peer failed the
	// handshake's proof or rejected this rank's.
	ErrAuth = errors.New("tcp: authentication failed")
	// ErrMismatch is wrapped by Connect's errors when a peer's record
	// says that it seals its frames and this rank does not, or the other
	// way round (Config.Plain): a job whose ranks disagree must fail, not
	// fall back to another path.
	ErrMismatch = errors.New("tcp: the ranks disagree about encryption")
)

// Link moves frames to and from the ranks this rank reaches over TCP. It
// is safe for concurrent use.
type Link struct {
	cfg     Config
	ln      net.Listener
	tlsConf *tls.Config // acceptor side; nil without TLS
	self    Peer
	onFrame func([]byte)
	onFatal func(error)
	placer  atomic.Pointer[Placer] // see SetPlacer; nil: every frame goes to onFrame

	placedFrames atomic.Int64
	lentFrames   atomic.Int64
	polledBytes  atomic.Int64

	outs   atomic.Pointer[[]*outbound] // by rank; set once by Connect
	polled atomic.Pointer[[]*inbound]  // incoming connections Poll may read; copied on change, under mu

	mu       sync.Mutex // guards closed, ins, from, timers
	closed   bool
	ins      map[net.Conn]*inbound // accepted connections, raw; nil until authenticated
	from     []bool                // ranks with an authenticated incoming connection
	timers   []*time.Timer         // pending PeerError reports
	rejected atomic.Int64

	claimMu   sync.Mutex    // guards changes of claimed, and unclaimed
	claimed   atomic.Int32  // callers that poll the link in a loop (Claim)
	unclaimed chan struct{} // closed rearmDelay after claimed dropped to zero; nil when no reader waits for that
	rearm     *time.Timer   // runs wakeReaders

	done      chan struct{} // closed by Close
	wg        sync.WaitGroup
	reporting sync.WaitGroup // onFatal calls in flight from timers
	calling   sync.WaitGroup // lent frames' done calls in flight from Poll
}

// Received frames of more than smallFrame bytes come from framePool when
// the receiver gave one back (Recycle): a stream of large frames then
// allocates (and zeroes) nothing. The receiver may give back a tail of the
// frame (its payload, after its own header), so frames are made with room
// to spare: each reuse of a tail loses a header's length, and a frame
// serves many times before it falls short. One that has fallen short is
// dropped: put back, it would be the first the pool offers next time too
// (a sync.Pool hands out what it got last), and every frame after it
// would be a fresh allocation.
var framePool sync.Pool // *[]byte

func getFrame(n int) []byte {
	if n > smallFrame {
		if p, ok := framePool.Get().(*[]byte); ok && cap(*p) >= n {
			return (*p)[:n]
		}
		return make([]byte, n, n+max(4<<10, n/8))
	}
	return smallFrames.get(n)
}

// Recycle gives back a frame, or a tail of one, that onFrame's callee has
// finished with (nothing refers to it any more), for a later frame to be
// read into, and reports whether it kept it. Any slice may be given,
// whichever link delivered it.
func (l *Link) Recycle(f []byte) bool {
	if cap(f) <= maxSmallCap {
		return smallFrames.put(f)
	}
	framePool.Put(&f)
	return true
}

// Small frames (up to smallFrame bytes, and a sealed one's tag) that the
// receiver gives back (comm does once it has copied a message out: RecvInto)
// are read into again, so that a stream of them touches the same few
// buffers: each fresh allocation lands in memory the process has not used
// yet, whose first touch is a page fault, and the kernel zeroes the page
// (on the test VM, 1 KiB messages took 14.5 µs per round trip that way,
// 8.7 µs in reused memory). Buffers come in power-of-two classes from
// 64 bytes, made with spare bytes beyond their class's size so that a tail
// given back after comm's header still serves its class many times (a
// 1 KiB frame's, 21 times after a 48-byte header); one that has fallen
// short serves the class below. Each class keeps at most classBytes bytes
// of them. Frames of more than smallFrame bytes given back with no more
// capacity than a small frame's buffer serve small frames too.
var smallFrames framePools

const (
	minClass   = 6  // 64 bytes
	classes    = 10 // up to 32 KiB, above smallFrame plus a tag
	headerRoom = 256
	classBytes = 256 << 10
)

type framePools struct {
	mu   sync.Mutex
	free [classes][][]byte
}

// classOf is the class of buffers that hold n bytes.
func classOf(n int) int {
	c := 0
	for 1<<(c+minClass) < n {
		c++
	}
	return c
}

// spare is how many bytes more than its class's size a buffer is made
// with.
func spare(size int) int { return max(headerRoom, min(size, 1<<10)) }

// maxSmallCap is the largest capacity of a small frame's buffer.
const maxSmallCap = 1<<(classes-1+minClass) + 1<<10

func (p *framePools) get(n int) []byte {
	c := classOf(n)
	p.mu.Lock()
	for k := c; k < min(c+3, classes); k++ { // a tail may have landed a class or two higher
		if m := len(p.free[k]); m > 0 {
			b := p.free[k][m-1]
			p.free[k][m-1] = nil
			p.free[k] = p.free[k][:m-1]
			p.mu.Unlock()
			return b[:n]
		}
	}
	p.mu.Unlock()
	size := 1 << (c + minClass)
	return make([]byte, n, size+spare(size))
}

// put keeps b in the largest class it serves, unless that class is full.
func (p *framePools) put(b []byte) bool {
	n := cap(b)
	if n < 1<<minClass {
		return false
	}
	c := min(classOf(n+1)-1, classes-1) // the largest class whose size n covers
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free[c])<<(c+minClass) >= classBytes {
		return false
	}
	p.free[c] = append(p.free[c], b[:0])
	return true
}

// Listen opens this rank's listener and starts accepting peers. Every
// frame that arrives, whole and in order per sender, goes to onFrame (which
// owns the slice; calls for different senders may run concurrently).
// onFatal gets each broken connection (a *PeerError, after Config.Grace)
// and each corrupt stream.
func Listen(cfg Config, onFrame func([]byte), onFatal func(error)) (*Link, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = 64 << 20
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	switch {
	case cfg.Size < 1 || cfg.Rank < 0 || cfg.Rank >= cfg.Size:
		return nil, fmt.Errorf("tcp: rank %d out of range for a job of %d ranks", cfg.Rank, cfg.Size)
	case len(cfg.Key) == 0:
		return nil, errors.New("tcp: no key to authenticate peers with (the job has no secret key)")
	case cfg.MaxFrame < 0 || cfg.MaxFrame > 1<<31-1:
		return nil, fmt.Errorf("tcp: max frame %d out of range", cfg.MaxFrame)
	}
	l := &Link{cfg: cfg, onFrame: onFrame, onFatal: onFatal, ins: map[net.Conn]*inbound{},
		from: make([]bool, cfg.Size), done: make(chan struct{})}
	if cfg.TLS {
		cert, fp, err := selfSigned()
		if err != nil {
			return nil, fmt.Errorf("tcp: rank %d: %w", cfg.Rank, err)
		}
		// No session tickets: the server would send them after the
		// handshake, and nothing may follow the handshake on the TLS
		// session (see sealerOf).
		l.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13,
			SessionTicketsDisabled: true}
		l.self.Fingerprint = fp
	}
	l.self.Plain = cfg.Plain
	ln, err := net.Listen("tcp", net.JoinHostPort(strings.Trim(cfg.Host, "[]"), "0"))
	if err != nil {
		return nil, fmt.Errorf("tcp: rank %d: %w", cfg.Rank, err)
	}
	l.ln = ln
	l.self.Addr = ln.Addr().String()
	empty := make([]*outbound, cfg.Size)
	l.outs.Store(&empty)
	l.polled.Store(&[]*inbound{})
	l.rearm = time.AfterFunc(time.Hour, l.wakeReaders)
	l.rearm.Stop()
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Self is this rank's record, for the peers that will dial it.
func (l *Link) Self() Peer { return l.self }

// Sealed reports whether frames are sealed: TLS, and not Plain.
func (l *Link) Sealed() bool { return l.cfg.TLS && !l.cfg.Plain }

// Rejected counts incoming connections dropped during the handshake.
func (l *Link) Rejected() int64 { return l.rejected.Load() }

// MaxFrame is the largest frame Send accepts.
func (l *Link) MaxFrame() int { return l.cfg.MaxFrame }

// dialers bounds how many peers Connect dials at once.
const dialers = 16

// Connect dials and authenticates every peer in peers (by rank), in
// parallel. It returns, for every rank, whether frames to it go over TCP,
// and for every peer it could not reach, why. It may be called once, before
// the first Send.
func (l *Link) Connect(ctx context.Context, peers map[int]Peer) (reach []bool, why map[int]error) {
	reach = make([]bool, l.cfg.Size)
	why = map[int]error{}
	outs := make([]*outbound, l.cfg.Size)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, dialers)
	for p, rec := range peers {
		if p < 0 || p >= l.cfg.Size || p == l.cfg.Rank {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, sl, err := l.dial(ctx, p, rec)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				why[p] = err
				return
			}
			o := &outbound{dst: p, addr: rec.Addr, conn: c, fd: rawFD(c), seal: sl, wake: make(chan struct{}, 1)}
			o.idle.L = &o.mu
			outs[p] = o
			reach[p] = true
		})
	}
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range outs {
		if o == nil {
			continue
		}
		if l.closed {
			o.conn.Close()
			o.closed = true
			continue
		}
		l.wg.Add(1)
		go l.write(o)
	}
	l.outs.Store(&outs)
	return reach, why
}

// Close closes the listener and every connection, and returns once every
// goroutine of the link has exited. It is idempotent.
func (l *Link) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.rearm.Stop()
	for _, t := range l.timers {
		t.Stop()
	}
	l.timers = nil
	ins := make(map[net.Conn]*inbound, len(l.ins))
	maps.Copy(ins, l.ins)
	l.mu.Unlock()
	close(l.done)
	l.ln.Close()
	for c, in := range ins {
		if in != nil && in.fd >= 0 {
			// No driver may read the socket once it is closed (its
			// number may be reused at once).
			in.tok.Lock()
			in.dead = true
			in.tok.Unlock()
		}
		c.Close()
	}
	for _, o := range *l.outs.Load() {
		if o != nil {
			o.mu.Lock()
			o.closed = true
			o.mu.Unlock()
			o.conn.Close()
		}
	}
	l.wg.Wait()
	l.reporting.Wait()
	l.calling.Wait()
	return nil
}

// report tells onFatal, after the grace period, that the connection with
// rank r broke, unless the link is closed by then.
func (l *Link) report(r int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.timers = append(l.timers, time.AfterFunc(l.cfg.Grace, func() {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return
		}
		l.reporting.Add(1)
		l.mu.Unlock()
		defer l.reporting.Done()
		l.onFatal(&PeerError{Rank: r, Err: err})
	}))
}

// accept runs until the listener closes, serving each connection in a
// goroutine of its own.
func (l *Link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or the like (as net/http does: wait
			// and try again; the dialer's handshake timeout bounds its wait).
			select {
			case <-l.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.ins[c] = nil
		l.wg.Add(1)
		l.mu.Unlock()
		go l.serve(c)
	}
}

// serve authenticates one incoming connection and reads its frames.
func (l *Link) serve(raw net.Conn) {
	defer l.wg.Done()
	src, sl, err := l.handshakeAccept(raw)
	if err != nil {
		l.rejected.Add(1)
		l.mu.Lock()
		delete(l.ins, raw)
		l.mu.Unlock()
		raw.Close()
		return
	}
	in := &inbound{l: l, src: src, conn: raw, fd: rawFD(raw), open: sl, buf: make([]byte, readBuf), sinceLarge: afterLarge}
	l.mu.Lock()
	if l.closed { // Close has passed this connection by (or will find it nil)
		l.mu.Unlock()
		raw.Close()
		return
	}
	l.ins[raw] = in
	if in.fd >= 0 {
		ps := append(slices.Clone(*l.polled.Load()), in)
		l.polled.Store(&ps)
	}
	l.mu.Unlock()
	in.run()
	l.mu.Lock()
	delete(l.ins, raw)
	if in.fd >= 0 {
		ps := slices.DeleteFunc(slices.Clone(*l.polled.Load()), func(p *inbound) bool { return p == in })
		l.polled.Store(&ps)
	}
	l.mu.Unlock()
	raw.Close()
}

func (l *Link) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}
