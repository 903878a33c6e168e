package comm

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/decorun/decorun/internal/match"
	"github.com/decorun/decorun/internal/shm"
	"github.com/decorun/decorun/internal/tcp"
	"github.com/decorun/decorun/internal/transport"
	"github.com/decorun/decorun/internal/wire"
)

// engine is one process's protocol state: credits, sequence numbers,
// rendezvous transfers and the matching queue, for all communicators.
// Every field is guarded by mu; frames are published with mu held, which is
// what keeps per-destination order.
type engine struct {
	mu    sync.Mutex
	link  transport.Link      // nil in a singleton
	vec   transport.VecSender // link, when it takes frames in two parts
	me    int                 // world rank
	size  int
	q     match.Queue[*inMsg, *rreq]
	peers []peer
	// probes waiting for an unexpected message
	probes []chan struct{}
	err    error // set once: closed or failed

	window int64 // eager credit window per peer, bytes
	swin   int64 // stream credit window per peer, bytes
	eager  int   // largest payload sent eagerly in one frame
	long   int   // largest payload sent eagerly in several frames
	chunk  int   // largest Data payload
	nextID uint64

	scratch []byte        // frame being built; the link copies it
	drv     *shm.Link     // shared-memory link to drive while waiting (see drive), or nil; set before use
	spin    time.Duration // how long drive polls
	rx      wire.Header

	lost     []bool     // peers that died (decorun --keep-going)
	lostHow  []string   // how each died
	finished []bool     // peers that closed their communicator (sent Fin)
	lostChs  []chan int // Lost() watchers; capacity size, so sends never block

	// garbage counts the bytes of received Data frames dropped since the
	// last collection; see collect.
	garbage int64
	gcBusy  atomic.Bool

	freeM []*inMsg
	freeR []*rreq
	pool  bufPool // copies of lent payloads of unexpected messages

	// NATS fan-out (see multicast).
	mc    transport.Multicaster // link, if it can multicast; else nil
	mcSeq uint64                // multicast frames published
}

// Free lists, so that the blocking []byte path allocates nothing per
// message. mu held for all four.
const maxFree = 256

func (e *engine) newMsg() *inMsg {
	if n := len(e.freeM); n > 0 {
		m := e.freeM[n-1]
		e.freeM = e.freeM[:n-1]
		return m
	}
	return &inMsg{}
}

func (e *engine) freeMsg(m *inMsg) {
	e.unpool(m)
	if len(e.freeM) < maxFree {
		*m = inMsg{}
		e.freeM = append(e.freeM, m)
	}
}

func (e *engine) newRecv() *rreq {
	if n := len(e.freeR); n > 0 {
		r := e.freeR[n-1]
		e.freeR = e.freeR[:n-1]
		return r
	}
	return &rreq{done: make(chan struct{}, 1)}
}

// release returns a receive whose caller has taken its result and whose
// completion was consumed from done; an abandoned one may still be in use.
func (e *engine) release(r *rreq) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !r.abandoned && r.closed && len(e.freeR) < maxFree {
		done := r.done
		*r = rreq{done: done}
		e.freeR = append(e.freeR, r)
	}
}

// gcEvery is how many bytes of dropped rendezvous chunks trigger a look at
// the collector's pacing (see collect).
const gcEvery = 64 << 20

// gcHeadroom is how far above the live heap the collector may let garbage
// grow before collect forces a collection.
const gcHeadroom = 2 * gcEvery

// collect forces a garbage collection when rendezvous chunks worth gcEvery
// bytes have been copied into receive buffers and dropped, and the
// collector's own pacing would let much more pile up. nats.go hands every
// frame over in a fresh allocation; with a large receive buffer live, Go's
// pacer (GOGC=100) would let a whole message's worth of dropped chunks pile
// up before collecting, doubling the receiver's memory for a 1 GiB message.
// With a small live heap the pacer collects every few MiB on its own, and a
// forced collection only costs: runtime.GC waits for the sweep by spinning
// in Gosched, which took 30% of a receiving rank's CPU in a bw profile at
// 1 MiB. The receive buffers hold no pointers, so a collection is cheap.
// mu held.
func (e *engine) collect(n int) {
	e.garbage += int64(n)
	if e.garbage < gcEvery || !e.gcBusy.CompareAndSwap(false, true) {
		return
	}
	e.garbage = 0
	go func() { // ends when the collection does
		defer e.gcBusy.Store(false)
		s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindUint64 && s[1].Value.Kind() == metrics.KindUint64 &&
			s[0].Value.Uint64() < s[1].Value.Uint64()+gcHeadroom {
			return // the pacer will collect soon enough
		}
		runtime.GC()
	}()
}

// inMsg is a message that arrived (or the RTS of one).
type inMsg struct {
	from int // sender's world rank
	tag  int
	typ  string
	size int
	data []byte // eager payload
	// data (pooled) and parts[i] (partPooled[i]) are buffers of the
	// engine's pool, which unpool returns to it.
	pooled     bool
	partPooled []bool
	rdv        bool
	id         uint64
	cost       int64 // credit returned when consumed
	m          match.Msg[*inMsg]
	// A long eager message (larger than one frame, see engine.send) arrives
	// as a head frame (data) and Data frames (parts); got counts the bytes
	// so far. Until a receive matches it, it is in its sender's longIn.
	long  bool
	parts [][]byte
	got   int
}

// rreq is a receive.
type rreq struct {
	m      match.Recv[*rreq]
	buf    []byte // caller's buffer (RecvInto) or nil
	into   bool
	st     Status
	data   []byte
	size   int // bytes expected: len(data), or the message size when abandoned
	recvd  int
	err    error
	done   chan struct{} // capacity 1: receives one value when the receive completes
	closed bool          // completed; the value is in (or was taken from) done
	// rendezvous in progress
	rdvFrom   int
	rdvID     uint64
	abandoned bool // its caller gave up; arriving data is discarded
}

type sendPhase uint8

const (
	phWaitCTS sendPhase = iota // RTS sent
	phStream                   // streaming Data under the stream window
	phDone
)

// sreq is a send that could not complete at once: one sent by rendezvous
// (an eager send completes when it is published).
type sreq struct {
	dst    int
	hdr    wire.Header
	data   []byte
	off    int
	phase  sendPhase
	err    error
	done   chan struct{}
	closed bool
}

type peer struct {
	credit  int64 // eager window left
	owed    int64 // eager credit consumed, not yet returned
	scredit int64 // stream window left
	sowed   int64 // stream credit consumed, not yet returned
	txSeq   uint64
	rxSeq   uint64
	// streams: sends whose receiver cleared them (CTS), waiting for stream
	// credit, in CTS order. Nothing else ever waits to be sent.
	streams []*sreq
	rdvOut  map[uint64]*sreq
	rdvIn   map[uint64]*rreq  // receives that Data frames stream into
	longIn  map[uint64]*inMsg // long eager messages still arriving, unmatched

	rxMc uint64 // multicast frames received from this peer
	// A Fin that arrived before the peer's last multicast frames (they
	// travel apart): processed once rxMc reaches finMc.
	finWait bool
	finMc   uint64
}

const (
	windowBudget = 32 << 20
	minWindow    = 64 << 10
	maxWindow    = 16 << 20
	frameSlack   = 64 << 10 // headroom under max_payload for header and NATS protocol
)

// testWindow, when not zero, is the eager window of every engine made
// after it is set: tests fill windows with a few MiB instead of hundreds.
var testWindow int64

func newEngine(me, size int, link transport.Link) *engine {
	e := &engine{me: me, size: size, link: link, peers: make([]peer, size),
		lost: make([]bool, size), lostHow: make([]string, size),
		finished: make([]bool, size)}
	w := int64(maxWindow)
	if size > 1 {
		w = windowBudget / int64(size-1)
		w = min(max(w, minWindow), maxWindow)
	}
	if testWindow != 0 {
		w = testWindow
	}
	e.window = w
	e.swin = w / 2
	if !multicastOff() {
		e.mc, _ = link.(transport.Multicaster)
	}
	e.vec, _ = link.(transport.VecSender)
	maxPayload := 1 << 20
	if link != nil {
		maxPayload = link.MaxFrame()
	}
	e.chunk = max(min(int(w/4), maxPayload-frameSlack), 1024)
	e.eager = e.chunk
	e.long = max(int(w/4), e.eager)
	for i := range e.peers {
		e.peers[i] = peer{credit: w, scredit: e.swin, rdvOut: map[uint64]*sreq{}, rdvIn: map[uint64]*rreq{}, longIn: map[uint64]*inMsg{}}
	}
	return e
}

func frameCost(h *wire.Header, n int) int64 { return int64(h.Size(n)) }

// fail puts the engine into its terminal state with err and completes every
// pending request with it. Called with mu held.
func (e *engine) fail(err error) {
	if e.err != nil {
		return
	}
	e.err = err
	for _, r := range e.q.Drain() {
		e.finishRecv(r.Val, err)
	}
	for i := range e.peers {
		p := &e.peers[i]
		for _, s := range p.streams {
			e.finishSend(s, err)
		}
		p.streams = nil
		for id, s := range p.rdvOut {
			e.finishSend(s, err)
			delete(p.rdvOut, id)
		}
		for id, r := range p.rdvIn {
			e.finishRecv(r, err)
			delete(p.rdvIn, id)
		}
	}
	e.wakeProbes()
}

func (e *engine) fatal(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var pe *tcp.PeerError
	if errors.As(err, &pe) && e.departed(pe.Rank) {
		return // a peer that closed or died: nothing was lost
	}
	e.fail(err)
}

func (e *engine) wakeProbes() {
	for _, ch := range e.probes {
		close(ch)
	}
	e.probes = e.probes[:0]
}

func (e *engine) finishRecv(r *rreq, err error) {
	if r.closed {
		return
	}
	if r.err == nil {
		r.err = err
	}
	r.closed = true
	r.done <- struct{}{} // capacity 1, sent once: never blocks
}

func (e *engine) finishSend(s *sreq, err error) {
	if s.closed {
		return
	}
	s.err = err
	s.phase = phDone
	s.closed = true
	close(s.done)
}

// publish sends one frame (header h, payload p) to world rank dst. mu held.
func (e *engine) publish(dst int, h *wire.Header, p []byte) error {
	pr := &e.peers[dst]
	pr.txSeq++
	h.Seq = pr.txSeq
	h.Src = int32(e.me)
	e.scratch = wire.Append(e.scratch[:0], h)
	if e.vec != nil { // shared memory: header and payload go straight into the ring
		if took, err := e.vec.SendV(dst, e.scratch, p); took {
			if err != nil {
				e.fail(fmt.Errorf("comm: rank %d: %w", e.me, err))
				return e.err
			}
			return nil
		}
	}
	e.scratch = append(e.scratch, p...)
	if err := e.link.Send(dst, e.scratch); err != nil {
		e.fail(fmt.Errorf("comm: rank %d: %w", e.me, err))
		return e.err
	}
	return nil
}

// pump streams the Data of the sends that dst cleared, as far as the
// stream window to dst allows, and beyond it what the eager window has
// free (FlagStream on a Data frame says which window it took, so that the
// receiver returns the credit to it; both come back as the data lands).
// mu held.
func (e *engine) pump(dst int) {
	p := &e.peers[dst]
	for len(p.streams) > 0 && e.err == nil {
		s := p.streams[0]
		n := min(e.chunk, len(s.data)-s.off)
		h := wire.Header{Kind: wire.Data, Flags: wire.FlagStream, ID: s.hdr.ID, N: uint64(s.off)}
		cost := frameCost(&h, n)
		switch {
		case p.scredit >= cost:
			p.scredit -= cost
		case p.credit >= cost:
			p.credit -= cost
			h.Flags = 0
		default:
			return
		}
		if e.publish(dst, &h, s.data[s.off:s.off+n]) != nil {
			return
		}
		s.off += n
		if s.off == len(s.data) {
			p.streams = p.streams[1:]
			delete(p.rdvOut, s.hdr.ID)
			e.finishSend(s, nil)
		}
	}
}

// longCost is the credit a long eager message of n bytes with head h takes:
// a head frame with the first chunk, then Data frames.
func (e *engine) longCost(h *wire.Header, n int) int64 {
	frames := (n + e.chunk - 1) / e.chunk
	return int64(n + h.Size(0) + (frames-1)*wire.HeaderSize)
}

// publishLong publishes the whole of long eager send s, whose credit the
// caller checked: the head (an Eager frame whose N, the message size, is
// larger than its payload) and Data frames. Publishing every frame at once
// means a long send is never half sent, so it needs no Revoke. It reports
// whether everything was published. mu held.
func (e *engine) publishLong(dst int, s *sreq) bool {
	p := &e.peers[dst]
	n := min(e.chunk, len(s.data))
	s.hdr.Flags |= wire.FlagLong
	p.credit -= frameCost(&s.hdr, n)
	if e.publish(dst, &s.hdr, s.data[:n]) != nil {
		return false
	}
	for off := n; off < len(s.data); off += n {
		n = min(e.chunk, len(s.data)-off)
		h := wire.Header{Kind: wire.Data, ID: s.hdr.ID, N: uint64(off)}
		p.credit -= frameCost(&h, n)
		if e.publish(dst, &h, s.data[off:off+n]) != nil {
			return false
		}
	}
	return true
}

// consume returns eager credit for a frame of cost c from world rank from.
// mu held.
func (e *engine) consume(from int, c int64) {
	if from == e.me || c == 0 {
		return
	}
	p := &e.peers[from]
	p.owed += c
	if p.owed >= e.window/4 {
		h := wire.Header{Kind: wire.Credit, N: uint64(p.owed)}
		p.owed = 0
		e.publish(from, &h, nil)
	}
}

// consumeStream returns stream credit for a rendezvous Data frame of cost c
// from world rank from. mu held.
func (e *engine) consumeStream(from int, c int64) {
	p := &e.peers[from]
	p.sowed += c
	if p.sowed >= e.swin/4 {
		h := wire.Header{Kind: wire.Credit, Flags: wire.FlagStream, N: uint64(p.sowed)}
		p.sowed = 0
		e.publish(from, &h, nil)
	}
}

// onFrame is the link's delivery callback for frames it hands over.
func (e *engine) onFrame(frame []byte) { e.handle(frame, false) }

// onView is the link's delivery callback for frames it lends: frame is
// valid only during the call, so what outlives it is copied.
func (e *engine) onView(frame []byte) { e.handle(frame, true) }

// keep returns b, or a copy of b when it is lent.
func keep(b []byte, lent bool) []byte {
	if lent {
		return append([]byte(nil), b...)
	}
	return b
}

// keepPooled is keep for a payload that stays with the engine until a
// receive takes it: a copy goes into a buffer of the pool (pooled true).
// mu held.
func (e *engine) keepPooled(b []byte, lent bool) (k []byte, pooled bool) {
	if lent {
		return e.pool.copyOf(b)
	}
	return b, false
}

// unpool returns m's pooled buffers to the pool, once their bytes were
// copied out or m is dropped; m must not be used for its data afterwards.
// mu held.
func (e *engine) unpool(m *inMsg) {
	if m.pooled {
		e.pool.put(m.data)
		m.data, m.pooled = nil, false
	}
	for i, p := range m.partPooled {
		if p {
			e.pool.put(m.parts[i])
			m.parts[i], m.partPooled[i] = nil, false
		}
	}
}

// handle processes one frame; lent says whether it must be copied to be
// kept.
func (e *engine) handle(frame []byte, lent bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return
	}
	h := &e.rx
	payload, err := wire.Decode(frame, h)
	if err != nil {
		e.fail(fmt.Errorf("comm: rank %d received a corrupt frame: %w", e.me, err))
		return
	}
	from := int(h.Src)
	if from < 0 || from >= e.size || from == e.me {
		e.fail(fmt.Errorf("comm: rank %d received a frame from invalid rank %d", e.me, from))
		return
	}
	p := &e.peers[from]
	if h.Seq != p.rxSeq+1 {
		e.fail(fmt.Errorf("comm: rank %d: message loss from rank %d detected: expected frame %d, got %d: %w",
			e.me, from, p.rxSeq+1, h.Seq, transport.ErrLost))
		return
	}
	p.rxSeq = h.Seq
	if e.lost[from] && (h.Kind != wire.Eager || h.Flags&wire.FlagLong != 0) {
		return // a dead rank's last frames: only whole messages are kept
	}
	switch h.Kind {
	case wire.Eager, wire.RTS:
		e.arrive(from, h, payload, lent)
	case wire.CTS:
		s := p.rdvOut[h.ID]
		if s == nil || s.phase != phWaitCTS {
			return // revoked by its sender meanwhile
		}
		if h.Flags&wire.FlagTruncate != 0 {
			delete(p.rdvOut, h.ID)
			e.finishSend(s, nil) // the receiver reports the error
			return
		}
		s.phase = phStream
		p.streams = append(p.streams, s) // the receive is posted: streaming depends on nothing else
		e.pump(from)
	case wire.Data:
		r := p.rdvIn[h.ID]
		if r == nil {
			if m := p.longIn[h.ID]; m != nil && int(h.N) == m.got && m.got+len(payload) <= m.size {
				// More of a long eager message no receive has matched.
				b, pooled := e.keepPooled(payload, lent)
				m.parts = append(m.parts, b)
				m.partPooled = append(m.partPooled, pooled)
				m.got += len(payload)
				m.cost += frameCost(h, len(payload))
				if m.got == m.size {
					delete(p.longIn, h.ID)
				}
				return
			}
			e.fail(fmt.Errorf("comm: rank %d: data for unknown message %d from rank %d", e.me, h.ID, from))
			return
		}
		off := int(h.N)
		if off+len(payload) > r.size || off != r.recvd {
			e.fail(fmt.Errorf("comm: rank %d: data at offset %d of message %d from rank %d does not fit", e.me, off, h.ID, from))
			return
		}
		if !r.abandoned {
			copy(r.data[off:], payload)
		}
		r.recvd += len(payload)
		// Copied: a link that reuses frames may read the next one into
		// it; otherwise it is garbage, which collect keeps in check.
		// A lent frame is neither (it is the link's, in its ring).
		if !lent {
			if rc, ok := e.link.(transport.Recycler); !ok || !rc.Recycle(frame) {
				e.collect(len(payload))
			}
		}
		if h.Flags&wire.FlagStream != 0 {
			e.consumeStream(from, frameCost(h, len(payload)))
		} else { // the rest of a long eager message, or a stream in eager credit
			e.consume(from, frameCost(h, len(payload)))
		}
		if r.recvd == r.size {
			delete(p.rdvIn, h.ID)
			e.finishRecv(r, nil)
		}
	case wire.Credit:
		if h.Flags&wire.FlagStream != 0 {
			p.scredit += int64(h.N)
		} else {
			p.credit += int64(h.N)
		}
		e.pump(from)
	case wire.Fin:
		if p.rxMc < h.N { // its multicasts are still on their way
			p.finWait, p.finMc = true, h.N
			return
		}
		e.finished[from] = true
		e.gone(from, e.closedErr(from))
	case wire.Revoke:
		if r := p.rdvIn[h.ID]; r != nil {
			// The message is withdrawn as if never sent: the receive that
			// matched it waits again (unless its caller gave up).
			delete(p.rdvIn, h.ID)
			if r.abandoned {
				return
			}
			r.data, r.recvd, r.st = nil, 0, Status{}
			if m := e.q.Repost(&r.m); m != nil {
				e.deliver(r, m.Val)
			}
			return
		}
		var dropped []*inMsg
		e.q.EachMsg(func(mm *match.Msg[*inMsg]) bool {
			if mm.Val.rdv && mm.Val.from == from && mm.Val.id == h.ID {
				dropped = append(dropped, mm.Val)
				return true
			}
			return false
		})
		for _, m := range dropped { // freed only once unlinked
			e.consume(from, m.cost)
			e.freeMsg(m)
		}
	}
}

// arrive queues (or hands to a waiting receive) an Eager or RTS frame from
// world rank from. mu held.
func (e *engine) arrive(from int, h *wire.Header, payload []byte, lent bool) {
	m := e.newMsg()
	m.from, m.tag, m.typ, m.rdv, m.id = from, int(h.Tag), h.Type, h.Kind == wire.RTS, h.ID
	if m.rdv {
		m.size = int(h.N) // an RTS takes no credit (see engine.send)
	} else if h.Flags&wire.FlagLong != 0 { // head of a long eager message
		m.long, m.size, m.data, m.got = true, int(h.N), payload, len(payload)
		m.cost = frameCost(h, len(payload))
	} else {
		m.size = len(payload)
		m.data = payload
		m.cost = frameCost(h, len(payload))
	}
	m.m = match.Msg[*inMsg]{Env: match.Envelope{Comm: h.Comm, Src: from, Tag: int(h.Tag)}, Val: m}
	if r := e.q.Arrive(&m.m); r != nil {
		if lent && !m.rdv && !m.long && !r.Val.into {
			m.data = keep(m.data, true) // becomes the receive's result
		}
		e.deliver(r.Val, m)
	} else {
		m.data, m.pooled = e.keepPooled(m.data, lent)
		if m.long {
			e.peers[from].longIn[m.id] = m
		}
		e.wakeProbes()
	}
}

// multicast publishes data as one Eager frame for every other rank, which
// NATS fans out, when the link can multicast, data fits one frame, every
// peer is up and this rank has credit for the frame to every peer (each
// pair's window is charged, as for a Send to each). ok is false when it
// did not; the caller then sends to each. The frame's seq is this rank's
// multicast count, which every receiver checks.
func (e *engine) multicast(comm uint64, tag int, data []byte) (ok bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return false, e.err
	}
	if e.mc == nil || len(data) > e.eager {
		return false, nil
	}
	h := wire.Header{Kind: wire.Eager, Flags: wire.FlagMulticast, Comm: comm, Tag: int32(tag), N: uint64(len(data))}
	cost := frameCost(&h, len(data))
	for r := range e.peers {
		if r != e.me && (e.lost[r] || e.finished[r] || e.peers[r].credit < cost) {
			return false, nil
		}
	}
	for r := range e.peers {
		if r != e.me {
			e.peers[r].credit -= cost
		}
	}
	e.mcSeq++
	h.Seq, h.Src = e.mcSeq, int32(e.me)
	e.scratch = append(wire.Append(e.scratch[:0], &h), data...)
	if err := e.mc.Multicast(e.scratch); err != nil {
		e.fail(fmt.Errorf("comm: rank %d: %w", e.me, err))
		return false, e.err
	}
	return true, nil
}

// onMulticast is the delivery callback of the multicast subscription.
func (e *engine) onMulticast(frame []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return
	}
	var h wire.Header
	payload, err := wire.Decode(frame, &h)
	if err != nil {
		e.fail(fmt.Errorf("comm: rank %d received a corrupt multicast frame: %w", e.me, err))
		return
	}
	from := int(h.Src)
	if from == e.me {
		return // NATS hands the publisher its own multicasts too
	}
	if from < 0 || from >= e.size || h.Kind != wire.Eager || h.Flags != wire.FlagMulticast {
		e.fail(fmt.Errorf("comm: rank %d received a bad multicast frame (%v, flags %d) from rank %d", e.me, h.Kind, h.Flags, from))
		return
	}
	p := &e.peers[from]
	if h.Seq != p.rxMc+1 {
		e.fail(fmt.Errorf("comm: rank %d: multicast loss from rank %d detected: expected multicast frame %d, got %d: %w",
			e.me, from, p.rxMc+1, h.Seq, transport.ErrLost))
		return
	}
	p.rxMc = h.Seq
	if !e.finished[from] {
		e.arrive(from, &h, payload, false)
	}
	if p.finWait && p.rxMc >= p.finMc {
		p.finWait = false
		e.finished[from] = true
		e.gone(from, e.closedErr(from))
	}
}

// deliver completes receive r with message m (or starts its rendezvous).
// m has been removed from (or never entered) the queue. mu held.
func (e *engine) deliver(r *rreq, m *inMsg) {
	defer e.freeMsg(m)
	r.st = Status{Source: m.from, Tag: m.tag, Size: m.size, typ: m.typ}
	e.consume(m.from, m.cost)
	tooBig := r.into && m.size > len(r.buf)
	if m.long {
		e.deliverLong(r, m, tooBig)
		return
	}
	if !m.rdv {
		switch {
		case tooBig:
			r.err = truncErr(m, len(r.buf))
		case r.into:
			r.data = r.buf[:copy(r.buf, m.data)]
		default:
			// The payload becomes the caller's: a pooled buffer
			// leaves the pool for good.
			r.data, m.pooled = m.data, false
		}
		e.finishRecv(r, nil)
		return
	}
	// Rendezvous: answer clear-to-send.
	cts := wire.Header{Kind: wire.CTS, ID: m.id}
	if tooBig {
		cts.Flags = wire.FlagTruncate
		r.err = truncErr(m, len(r.buf))
		if e.publish(m.from, &cts, nil) == nil {
			e.finishRecv(r, nil)
		}
		return
	}
	if r.into {
		r.data = r.buf[:m.size]
	} else {
		r.data = make([]byte, m.size)
	}
	r.size = m.size
	r.rdvFrom, r.rdvID = m.from, m.id
	e.peers[m.from].rdvIn[m.id] = r
	e.publish(m.from, &cts, nil)
}

// deliverLong completes receive r with long eager message m, or makes r
// the receive its remaining Data frames stream into. mu held.
func (e *engine) deliverLong(r *rreq, m *inMsg, tooBig bool) {
	p := &e.peers[m.from]
	delete(p.longIn, m.id)
	r.size, r.recvd = m.size, m.got
	if tooBig {
		// The sender does not wait for a CTS: drain what is still to come.
		r.err = truncErr(m, len(r.buf))
		r.abandoned = true
	} else {
		if r.into {
			r.data = r.buf[:m.size]
		} else {
			r.data = make([]byte, m.size)
		}
		off := copy(r.data, m.data)
		garbage := 0
		if !m.pooled {
			garbage += len(m.data)
		}
		for i, b := range m.parts {
			off += copy(r.data[off:], b)
			if !m.partPooled[i] {
				garbage += len(b)
			}
		}
		e.collect(garbage) // the pooled buffers go back to the pool (freeMsg)
	}
	if m.got < m.size {
		r.rdvFrom, r.rdvID = m.from, m.id
		p.rdvIn[m.id] = r
	}
	if m.got == m.size || tooBig {
		e.finishRecv(r, nil)
	}
}

func truncErr(m *inMsg, n int) error {
	return fmt.Errorf("comm: message of %d bytes from rank %d (tag %d) is too large for the receive buffer of %d bytes: %w",
		m.size, m.from, m.tag, n, ErrTruncate)
}

// send starts a send of data to world rank dst. It returns a nil sreq when
// the send completed at once; otherwise data stays in use until it completes.
func (e *engine) send(comm uint64, dst, tag int, typ string, data []byte) (*sreq, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return nil, e.err
	}
	if dst == e.me {
		// Self-send: always buffered (a copy), so it never blocks.
		m := e.newMsg()
		m.from, m.tag, m.typ, m.size, m.data = e.me, tag, typ, len(data), append([]byte(nil), data...)
		m.m = match.Msg[*inMsg]{Env: match.Envelope{Comm: comm, Src: e.me, Tag: tag}, Val: m}
		if r := e.q.Arrive(&m.m); r != nil {
			e.deliver(r.Val, m)
		} else {
			e.wakeProbes()
		}
		return nil, nil
	}
	if err := e.deadErr(dst); err != nil {
		return nil, err
	}
	p := &e.peers[dst]
	h := wire.Header{Kind: wire.Eager, Comm: comm, Tag: int32(tag), N: uint64(len(data)), Type: typ}
	switch {
	case len(data) <= e.eager:
		if cost := frameCost(&h, len(data)); p.credit >= cost {
			p.credit -= cost
			if err := e.publish(dst, &h, data); err != nil {
				return nil, err
			}
			return nil, nil
		}
	case len(data) <= e.long:
		// Long eager: like an eager message, it takes credit for all of
		// it and may then arrive before a receive matches it (the
		// receiver keeps its frames); no RTS/CTS round trip.
		e.nextID++
		h.ID = e.nextID
		if p.credit >= e.longCost(&h, len(data)) {
			if !e.publishLong(dst, &sreq{hdr: h, data: data}) {
				return nil, e.err
			}
			return nil, nil
		}
	}
	// Rendezvous: a large message, or one the eager window has no room
	// for (the receiver holds a window's worth of messages no receive
	// matched yet). The RTS goes at once, outside the window, so that
	// nothing sent later waits behind a message that waits for its
	// receive; the receiver keeps it as a small unexpected envelope.
	if h.ID == 0 {
		e.nextID++
		h.ID = e.nextID
	}
	h.Kind, h.Flags = wire.RTS, 0
	s := &sreq{dst: dst, hdr: h, data: data, phase: phWaitCTS, done: make(chan struct{})}
	if err := e.publish(dst, &s.hdr, nil); err != nil {
		return nil, err
	}
	p.rdvOut[h.ID] = s
	return s, nil
}

// waitSend waits for s, withdrawing or revoking it if ctx ends first.
func (e *engine) waitSend(ctx context.Context, s *sreq) error {
	if s == nil {
		return nil
	}
	e.drive(ctx, func() bool {
		select {
		case <-s.done: // closed
			return true
		default:
			return false
		}
	})
	select {
	case <-s.done:
		return s.err
	case <-ctx.Done():
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.closed {
		return s.err
	}
	e.cancelSend(s)
	return ctx.Err()
}

func (e *engine) cancelSend(s *sreq) {
	p := &e.peers[s.dst]
	for i, x := range p.streams {
		if x == s {
			p.streams = append(p.streams[:i], p.streams[i+1:]...)
			break
		}
	}
	// Its RTS left when it was sent: the receiver drops it, or the
	// receive that matched it waits again.
	delete(p.rdvOut, s.hdr.ID)
	h := wire.Header{Kind: wire.Revoke, ID: s.hdr.ID}
	e.publish(s.dst, &h, nil)
	e.finishSend(s, context.Canceled)
	e.pump(s.dst)
}

// post posts a receive. mu not held.
func (e *engine) post(comm uint64, src, tag int, buf []byte, into bool) (*rreq, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return nil, e.err
	}
	r := e.newRecv()
	r.buf, r.into = buf, into
	r.m = match.Recv[*rreq]{Env: match.Envelope{Comm: comm, Src: src, Tag: tag}, Val: r}
	if m := e.q.Post(&r.m); m != nil {
		e.deliver(r, m.Val)
	} else if err := e.deadErr(src); err != nil {
		e.q.Cancel(&r.m)
		return nil, err
	}
	return r, nil
}

// waitRecv waits for r, withdrawing it if ctx ends first.
func (e *engine) waitRecv(ctx context.Context, r *rreq) error {
	e.drive(ctx, func() bool { return len(r.done) > 0 }) // done is sent to once: a receive would take it
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
	}
	e.mu.Lock()
	if r.closed {
		e.mu.Unlock()
		<-r.done
		return r.err // completed meanwhile: the message is the caller's
	}
	e.abandonRecv(r)
	e.mu.Unlock()
	return ctx.Err()
}

// drive lets a caller about to block until done reports true wait
// awake for up to e.spin first, and returns when done reports true, ctx
// ends or the time has passed. With e.drv (as many cores as ranks on this
// host) it drives the shared-memory rings itself (see shm.Link.Drive): a
// frame that completes the wait costs no wake-up, since the goroutine
// waiting for it delivers it, and the pump, which would otherwise spin
// beside it, sleeps. Without (more ranks than cores) it polls done,
// yielding to the process's other goroutines, the pump among them: a
// receive that completes meanwhile finds its caller runnable, where
// waking a parked caller costs the pump a futex wake-up on the way.
func (e *engine) drive(ctx context.Context, done func() bool) {
	if e.spin <= 0 {
		return
	}
	stop := func() bool {
		if done() {
			return true
		}
		select {
		case <-ctx.Done():
			return true
		default:
			return false
		}
	}
	if e.drv != nil {
		e.drv.Drive(stop, e.spin)
		return
	}
	var start time.Time
	for i := 0; !stop(); i++ {
		if i%8 == 0 {
			if i == 0 {
				start = time.Now()
			} else if time.Since(start) > e.spin {
				return
			}
		}
		runtime.Gosched()
	}
}

func (e *engine) abandonRecv(r *rreq) {
	if !e.q.Cancel(&r.m) {
		// Matched a large message that is still streaming: discard the rest.
		r.abandoned = true
	}
	// An abandoned rendezvous stays in rdvIn until its data has drained.
	e.finishRecv(r, context.Canceled)
}

// probe finds an unexpected message, waiting when block is set.
func (e *engine) probe(ctx context.Context, comm uint64, src, tag int, block bool) (Status, bool, error) {
	env := match.Envelope{Comm: comm, Src: src, Tag: tag}
	for {
		e.mu.Lock()
		if e.err != nil {
			err := e.err
			e.mu.Unlock()
			return Status{}, false, err
		}
		if m := e.q.Probe(env); m != nil {
			v := m.Val
			e.mu.Unlock()
			return Status{Source: v.from, Tag: v.tag, Size: v.size, typ: v.typ}, true, nil
		}
		if err := e.deadErr(src); err != nil {
			e.mu.Unlock()
			return Status{}, false, err
		}
		if !block {
			e.mu.Unlock()
			return Status{}, false, nil
		}
		ch := make(chan struct{})
		e.probes = append(e.probes, ch)
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Status{}, false, ctx.Err()
		}
	}
}

func (e *engine) watchLost() <-chan int {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := make(chan int, e.size)
	for r, l := range e.lost {
		if l {
			ch <- r
		}
	}
	e.lostChs = append(e.lostChs, ch)
	return ch
}

func (e *engine) lostErr(r int) error {
	if e.lostHow[r] != "" {
		return fmt.Errorf("rank %d is gone (%s): %w", r, e.lostHow[r], ErrRankLost)
	}
	return fmt.Errorf("rank %d is gone: %w", r, ErrRankLost)
}

// peerLost records that world rank r died while the job goes on: every
// pending send to it and receive from it (by name, not AnySource) fails, and
// so will later ones, once what r sent before it died has been received.
func (e *engine) peerLost(r int, how string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r < 0 || r >= e.size || r == e.me || e.lost[r] {
		return
	}
	e.lost[r], e.lostHow[r] = true, how
	e.gone(r, e.lostErr(r))
	for _, ch := range e.lostChs {
		ch <- r // capacity size and each rank is lost once: never blocks
	}
}

// gone fails what can no longer complete once rank r has died or closed.
// mu held.
func (e *engine) gone(r int, err error) {
	p := &e.peers[r]
	for _, s := range p.streams {
		e.finishSend(s, err)
	}
	p.streams = nil
	for id, s := range p.rdvOut {
		e.finishSend(s, err)
		delete(p.rdvOut, id)
	}
	for id, rq := range p.rdvIn {
		e.finishRecv(rq, err)
		delete(p.rdvIn, id)
	}
	// Unexpected RTS and incomplete long messages from r can never be
	// completed: drop them.
	clear(p.longIn)
	var dropped []*inMsg
	e.q.EachMsg(func(m *match.Msg[*inMsg]) bool {
		if m.Val.from == r && (m.Val.rdv || m.Val.long && m.Val.got < m.Val.size) {
			dropped = append(dropped, m.Val)
			return true
		}
		return false
	})
	for _, m := range dropped { // freed only once unlinked
		e.freeMsg(m)
	}
	var keep []*match.Recv[*rreq]
	for _, rq := range e.q.Drain() {
		if rq.Env.Src == r {
			e.finishRecv(rq.Val, err)
		} else {
			keep = append(keep, rq)
		}
	}
	for _, rq := range keep {
		e.q.Post(rq)
	}
	e.wakeProbes()
}

func (e *engine) closedErr(r int) error {
	return fmt.Errorf("rank %d closed its communicator: %w", r, ErrPeerClosed)
}

// deadErr is the error for a call naming world rank r, or nil if r is up.
func (e *engine) deadErr(r int) error {
	switch {
	case r < 0 || r == e.me:
		return nil
	case e.lost[r]:
		return e.lostErr(r)
	case e.finished[r]:
		return e.closedErr(r)
	}
	return nil
}

// cancelComm fails the receives posted on the given contexts with ErrClosed.
func (e *engine) cancelComm(ids ...uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var keep []*match.Recv[*rreq]
	for _, r := range e.q.Drain() {
		if slices.Contains(ids, r.Env.Comm) {
			e.finishRecv(r.Val, ErrClosed)
		} else {
			keep = append(keep, r)
		}
	}
	for _, r := range keep {
		e.q.Post(r) // no unexpected message matched them before; none will now
	}
	e.wakeProbes()
}

// close ends the engine with ErrClosed.
// close ends the engine with ErrClosed, telling every peer first (a Fin
// frame, after everything else this rank sent), so that their calls naming
// this rank fail instead of waiting for it forever.
func (e *engine) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil && e.link != nil {
		for r := range e.size {
			if r != e.me && !e.lost[r] && !e.finished[r] {
				h := wire.Header{Kind: wire.Fin, N: e.mcSeq}
				if e.publish(r, &h, nil) != nil {
					break
				}
			}
		}
	}
	e.fail(ErrClosed)
}
