package comm

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
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
	tdrv    *tcp.Link     // TCP link to poll while waiting (see drive), or nil; set before use
	tpair   *tcp.Link     // the TCP link of the peers with split set (see placeTCP)
	pairBuf []byte        // a split message's head frame being built
	shl     *shm.Link     // the shared-memory link, or nil; set before use
	crowded bool          // more ranks than cores on this host
	host    map[int]bool  // world ranks that share this host and have a shared-memory segment (host.go)
	hosts   []int         // each world rank's host: the lowest world rank there (nil: unknown; hostgroup.go)
	spin    time.Duration // how long drive polls
	rx      wire.Header

	lost     []bool      // peers that died (decorun --keep-going)
	lostHow  []string    // how each died
	finished []bool      // peers that closed their communicator (sent Fin)
	lostChs  []lostWatch // Lost() watchers; capacity size, so sends never block
	// owned: what closing this process's world closes first (the
	// intercommunicators of Spawn and Parent, spawn.go)
	owned []func() error
	nats  *transport.NATS // the control plane (nil in a singleton); set before use
	// spawns this world asked for whose ranks the launcher reported lost
	// (jobenv.OpSpawnLost), and the Spawn calls waiting for each
	spawnGone map[int]error
	spawnWait map[int][]context.CancelCauseFunc
	// collective contexts (Shadows) of live communicators -> their world
	// ranks (nil: every rank), and those broken by a lost rank, with the
	// error of their calls (see breakColls)
	colls  map[uint64][]int
	broken map[uint64]error

	// garbage counts the bytes of received Data frames dropped since the
	// last collection; see collect.
	garbage int64
	gcBusy  atomic.Bool

	freeM []*inMsg
	freeR []*rreq
	pool  bufPool // copies of lent payloads of unexpected messages

	// traced: every message gets an id (wire header), which receives
	// record (comm/trace.go); set before use.
	traced bool

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
	if !r.abandoned && r.fin.Load() && len(e.freeR) < maxFree {
		done := r.done
		if r.wantCh && len(done) > 0 {
			<-done // a waiter that asked for it took the result another way
		}
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
	pooled bool
	// lent: data is a view into the link's memory (a shared-memory ring),
	// valid only while the frame is handled: it is copied, never kept or
	// given back to a link for reuse.
	lent       bool
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
	m     match.Recv[*rreq]
	buf   []byte // caller's buffer (RecvInto) or nil
	into  bool
	st    Status
	data  []byte
	size  int // bytes expected: len(data), or the message size when abandoned
	recvd int
	err   error
	// fin is set (mu held), after every other field, when the receive
	// completes: a caller that polls it (Wait, Test, a driving wait)
	// reads the result with no channel operation. done (capacity 1)
	// receives one value on completion only if a caller asked to block on
	// it (wantCh, set under mu before it blocks), since a channel send and
	// receive cost more than the rest of a small message's delivery.
	fin    atomic.Bool
	done   chan struct{}
	wantCh bool // a caller blocks on done: finishRecv sends to it
	// rendezvous in progress
	rdvFrom   int
	rdvID     uint64
	abandoned bool   // its caller gave up; arriving data is discarded
	msgID     uint64 // id of the message it matched (traced engines)
	// placing: a Data frame is being read from a TCP socket straight into
	// data (see engine.Place); cancelled before the receive completes early.
	placing *tcp.Placement
}

type sendPhase uint8

const (
	phQueued  sendPhase = iota // waiting for eager credit (in eagerq); nothing sent yet
	phWaitCTS                  // RTS sent
	phStream                   // streaming Data under the stream window
	phLent                     // all published, its data lent to the TCP link until written (see publishLent)
	phDone
)

// sreq is a send that could not complete at once: one waiting for eager
// credit, or one sent by rendezvous (an eager send completes when it is
// published).
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
	// eagerq: sends waiting for eager credit, and any sent after them, in
	// the order sent. Until the receiver nudges (see engine.nudge).
	eagerq []*sreq
	// lent: long eager sends whose data the TCP link writes from the
	// caller's buffer (phLent), in the order sent.
	lent []*sreq
	// rtsMode: the receiver nudged since its last credit return: a send
	// the eager window has no room for goes by rendezvous at once.
	rtsMode bool
	// streams: sends whose receiver cleared them (CTS), waiting for stream
	// credit, in CTS order.
	streams []*sreq
	// Receiver's side: eager credit that frames from this peer took and
	// that was not returned yet (as the peer sees its window, once all is
	// delivered: W - unret), and whether a Nudge went since the last
	// return.
	unret  int64
	nudged bool
	rdvOut map[uint64]*sreq
	rdvIn  map[uint64]*rreq  // receives that Data frames stream into
	longIn map[uint64]*inMsg // long eager messages still arriving, unmatched
	// split: eager messages of more than tcp.PlaceMin bytes to this peer
	// go as long messages whose head has no payload (see engine.placeTCP);
	// placed: the receive a Data frame from it is being placed into.
	split    bool
	placed   *rreq
	placedN  int
	placedPl *tcp.Placement

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
		finished: make([]bool, size), colls: map[uint64][]int{mix(0, saltShadow): nil}}
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
		e.failPeer(i, err)
	}
	e.wakeProbes()
}

// failPeer completes with err every send to world rank r and every
// receive that streams from it. mu held.
func (e *engine) failPeer(r int, err error) {
	p := &e.peers[r]
	// Lent sends went whole to the TCP link: as sent, like any message
	// the link took (they complete once the link lets go of their buffers).
	e.keepLent(r)
	for _, s := range p.streams {
		e.finishSend(s, err)
	}
	p.streams = nil
	for _, s := range p.eagerq {
		e.finishSend(s, err)
	}
	p.eagerq = nil
	for id, s := range p.rdvOut {
		e.finishSend(s, err)
		delete(p.rdvOut, id)
	}
	for id, r := range p.rdvIn {
		e.finishRecv(r, err)
		delete(p.rdvIn, id)
	}
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

// wantDone asks for r's completion to be sent to r.done, and reports
// false when r has completed already (nothing will be sent).
func (e *engine) wantDone(r *rreq) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.fin.Load() {
		return false
	}
	r.wantCh = true
	return true
}

func (e *engine) finishRecv(r *rreq, err error) {
	if r.fin.Load() {
		return
	}
	if r.err == nil {
		r.err = err
	}
	if r.placing != nil { // the link must not write into data any more
		r.placing.Cancel()
		r.placing = nil
	}
	r.fin.Store(true)
	if r.wantCh {
		r.done <- struct{}{} // capacity 1, sent once: never blocks
	}
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
