package comm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/tcp"
	"github.com/decorun/decorun/internal/transport"
	"github.com/decorun/decorun/internal/wire"
)

// noTCP starts the address record of a rank that takes part in the
// exchange but has no TCP listener ("- why"): its peers reach it through
// NATS (or, with --transport=tcp, fail naming it and why).
const noTCP = "- "

// tcpGrace is how long a broken TCP connection waits before it fails the
// rank, unless the peer turns out to have closed or died (tests shorten it).
var tcpGrace = tcp.DefaultGrace

// tcpSpin is how long a blocked call polls the TCP link after the last
// frame it moved, when the host has a core per rank (see engine.drive).
const tcpSpin = 50 * time.Microsecond

// tcpLink returns the TCP link under l (through its Muxes), or nil.
func tcpLink(l transport.Link) *tcp.Link {
	switch l := l.(type) {
	case *tcp.Link:
		return l
	case *transport.Mux:
		slow, fast := l.Links()
		if t := tcpLink(fast); t != nil {
			return t
		}
		return tcpLink(slow)
	}
	return nil
}

// tcpPath is a rank's direct TCP set-up: its listener (nil when it could not
// listen), the address records it exchanges through NATS, and the Mux that
// puts TCP under NATS for the peers it reaches.
type tcpPath struct {
	l   *tcp.Link
	dir *transport.Directory
	rec string
	why error // why l is nil
	mux *transport.Mux
}

// listenTCP opens this rank's TCP listener and subscribes to the address
// records when TCP may carry frames: with --transport=tcp, or when peers
// may be on other hosts (the host's ranks are unknown or not all of the
// job). It returns nil otherwise. A listener that cannot be opened is no
// error here: the rank publishes that it has none (and why), so that its
// peers do not wait for it, and with --transport=tcp start fails.
func listenTCP(job jobenv.Job, tr string, t *transport.NATS, onFrame func([]byte), onFatal func(error)) (*tcpPath, error) {
	if tr != jobenv.TransportTCP && job.HostRanks != nil && len(job.HostRanks) >= job.Size {
		return nil, nil // every rank is on this host
	}
	dir, err := t.Directory()
	if err != nil {
		return nil, err
	}
	tp := &tcpPath{dir: dir}
	host := job.TCPAddr
	if host == "" {
		host = t.LocalIP()
	}
	key := job.TCPKey()
	if key == nil {
		tp.why = fmt.Errorf("the job has no secret key (%s) to authenticate TCP peers with", jobenv.EnvJobKey)
	} else {
		tp.l, tp.why = tcp.Listen(tcp.Config{Rank: job.Rank, Size: job.Size, Key: key, Host: host, TLS: job.TLS(), Plain: job.TCPPlain,
			MaxFrame: t.MaxFrame(), Grace: tcpGrace}, onFrame, onFatal)
	}
	if tp.l != nil {
		tp.rec = tp.l.Self().String()
	} else {
		tp.rec = noTCP + strings.ReplaceAll(tp.why.Error(), "\n", " ")
	}
	return tp, nil
}

// start waits for the address records of the peers this rank sends to
// over TCP (with auto: those it cannot reach through shared memory and
// that may be on another host), dials them and fixes each peer's path.
// shmReach says which peers shared memory reaches.
func (tp *tcpPath) start(ctx context.Context, job jobenv.Job, tr string, shmReach []bool) error {
	defer tp.dir.Done() // see settle
	if tp.l == nil && tr == jobenv.TransportTCP {
		return fmt.Errorf("--transport=tcp: %w", tp.why)
	}
	var want []int
	for p := range job.Size {
		switch {
		case p == job.Rank || shmReach[p]:
		case tr == jobenv.TransportTCP || job.HostRanks == nil || !slices.Contains(job.HostRanks, p):
			want = append(want, p)
		}
	}
	reach := make([]bool, job.Size)
	if tp.l != nil && len(want) > 0 {
		recs, err := tp.dir.Wait(ctx, want)
		if err != nil {
			return err
		}
		peers := map[int]tcp.Peer{}
		var errs, fatal []error
		for _, p := range want {
			if why, ok := strings.CutPrefix(recs[p], noTCP); ok {
				errs = append(errs, fmt.Errorf("--transport=tcp: rank %d cannot be reached over TCP: it has no listener: %s", p, why))
				continue
			}
			rec, err := tcp.ParsePeer(recs[p])
			if err != nil {
				errs = append(errs, fmt.Errorf("--transport=tcp: rank %d cannot be reached over TCP: %w", p, err))
				continue
			}
			if rec.Plain != job.TCPPlain {
				fatal = append(fatal, encryptMismatch(job, p, rec.Plain))
				continue
			}
			peers[p] = rec
		}
		if err := errors.Join(fatal...); err != nil {
			return err // never a silent fall-back to NATS
		}
		var why map[int]error
		reach, why = tp.l.Connect(ctx, peers)
		for _, p := range slices.Sorted(maps.Keys(why)) {
			if errors.Is(why[p], tcp.ErrMismatch) {
				return why[p] // a peer that disagrees fails the job, whatever the transport
			}
			errs = append(errs, fmt.Errorf("--transport=tcp: rank %d cannot be reached over TCP: %w", p, why[p]))
		}
		if tr == jobenv.TransportTCP {
			if err := errors.Join(errs...); err != nil {
				return err
			}
		}
	}
	if tp.mux == nil {
		return nil // no listener: NATS carries what shared memory does not
	}
	return tp.mux.Start(reach)
}

// encryptMismatch is the error for peer p, whose address record says
// whether it encrypts its frames (plain: it does not), when this rank
// says the other.
func encryptMismatch(job jobenv.Job, p int, plain bool) error {
	set := func(plain bool) string {
		if plain {
			return "false"
		}
		return "true"
	}
	return fmt.Errorf("%w: rank %d has %s=%s and this rank has %s=%s (decorun --tcp-encrypt): every rank of the job must have the same setting",
		tcp.ErrMismatch, p, jobenv.EnvTCPEncrypt, set(plain), jobenv.EnvTCPEncrypt, set(job.TCPPlain))
}

// settle returns once every peer that may dial this rank has finished
// dialing (its start announced Done) or departed, or ctx ends. comm's Close calls it
// before it closes the link: a rank whose program is quick must not close
// its listener while a slower peer has yet to connect to it (the peer
// would find the port closed and fail, or fall back for nothing).
func (tp *tcpPath) settle(ctx context.Context, job jobenv.Job, tr string, departed func(int) bool) error {
	defer tp.dir.Close()
	var may []int
	for p := range job.Size {
		if p != job.Rank && (tr == jobenv.TransportTCP || job.HostRanks == nil || !slices.Contains(job.HostRanks, p)) {
			may = append(may, p)
		}
	}
	return tp.dir.WaitDone(ctx, may, departed)
}

// isDeparted is departed for callers without mu.
func (e *engine) isDeparted(r int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.departed(r)
}

// departed reports whether world rank r closed its communicator or died
// (decorun --keep-going): a broken TCP connection with it lost nothing.
// mu held.
func (e *engine) departed(r int) bool {
	return r >= 0 && r < e.size && (e.lost[r] || e.finished[r])
}

// Path names the data path that carries this rank's frames to rank r of
// c: "self", "shm" (shared memory, same host), "tcp" (a direct
// connection) or "nats" (through the job's NATS server). It tells which
// path decorun --transport=auto picked for each peer; a path that could not
// be set up leaves the peer on NATS. Frames from r to this rank may take
// another path (each rank picks its own).
func (c *Comm) Path(r int) string {
	if r < 0 || r >= c.size {
		return ""
	}
	w := c.toWorld(r)
	if w == c.job.Rank {
		return "self"
	}
	return linkPath(c.link, w)
}

func linkPath(l transport.Link, w int) string {
	switch l := l.(type) {
	case *transport.Mux:
		slow, fast := l.Links()
		if l.Fast(w) {
			return linkPath(fast, w)
		}
		return linkPath(slow, w)
	case *tcp.Link:
		return "tcp"
	case nil, *transport.NATS:
		return "nats"
	}
	return "shm"
}

// placeTCP makes the TCP link under link read the payloads of Data frames
// for receives already matched straight into their buffers (tcp.Placer),
// and, for the peers it reaches, sends eager messages of more than
// tcp.PlaceMin bytes as long messages whose head carries no payload: the
// head is matched on arrival, and when a receive was posted the payload
// that follows in a Data frame lands in its buffer with no copy on the
// way. Called once the paths are set, before the program sends.
func (e *engine) placeTCP(link transport.Link) {
	tl := tcpLink(link)
	if tl == nil || !tl.SetPlacer(e) {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tpair = tl
	for w := range e.peers {
		e.peers[w].split = w != e.me && linkPath(link, w) == "tcp"
	}
}

// publishLent publishes long eager send s to dst (a peer with split set)
// as an empty head and Data frames, all to the TCP link: the head with the
// first Data frame in one writev (one segment, where two would cost the
// kernel's per-segment work twice), and each Data frame's payload lent
// (tcp.Link.SendLent): what the socket does not take at once is written
// later straight from s.data, not copied into the link's queue. If the
// link kept any of it, s stays pending (phLent, in the peer's lent) until
// the link has written its last frame (lentDone); otherwise it is
// complete. It reports whether everything was published. mu held.
func (e *engine) publishLent(dst int, s *sreq) bool {
	p := &e.peers[dst]
	p.credit -= frameCost(&s.hdr, 0)
	p.txSeq++
	s.hdr.Seq, s.hdr.Src = p.txSeq, int32(e.me)
	e.pairBuf = wire.Append(e.pairBuf[:0], &s.hdr)
	f1 := e.pairBuf
	lent := false
	for off := 0; off < len(s.data); {
		n := min(e.chunk, len(s.data)-off)
		h := wire.Header{Kind: wire.Data, ID: s.hdr.ID, N: uint64(off)}
		p.credit -= frameCost(&h, n)
		var ok bool
		if lent, ok = e.publishData(dst, f1, &h, s, off, n); !ok {
			return false
		}
		f1 = nil
		off += n
	}
	if lent {
		if s.done == nil {
			s.done = make(chan struct{})
		}
		s.phase = phLent
		p.lent = append(p.lent, s)
	}
	return true
}

// publishData publishes, after frame f1 if not nil, Data frame h with
// bytes [off, off+n) of send s to dst (a peer with split set), its payload
// lent to the TCP link; the last frame of s carries lentDone. It reports
// whether the link kept the payload, and false in ok when it failed. mu
// held.
func (e *engine) publishData(dst int, f1 []byte, h *wire.Header, s *sreq, off, n int) (lent, ok bool) {
	p := &e.peers[dst]
	p.txSeq++
	h.Seq, h.Src = p.txSeq, int32(e.me)
	e.scratch = wire.Append(e.scratch[:0], h)
	var done func()
	if off+n == len(s.data) { // frames are written in order: the last one's end is the message's
		done = func() { e.lentDone(dst, s) }
	}
	lent, err := e.tpair.SendLent(dst, f1, e.scratch, s.data[off:off+n], done)
	if err != nil {
		e.fail(fmt.Errorf("comm: rank %d: %w", e.me, err))
		return false, false
	}
	return lent, true
}

// lentDone completes lent send s to dst, and any lent before it: the TCP
// link has written all of it. Called by the link's writer.
func (e *engine) lentDone(dst int, s *sreq) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := &e.peers[dst]
	i := slices.Index(p.lent, s)
	if i < 0 {
		return // completed already (keepLent)
	}
	for _, x := range p.lent[:i+1] {
		e.finishSend(x, nil)
	}
	p.lent = slices.Delete(p.lent, 0, i+1)
}

// keepLent makes the TCP link copy what it has not written yet of the
// payloads lent to it for dst (a lent send's, or a rendezvous stream's so
// far), and completes the lent sends: they went whole to the link, which
// now lets go of their buffers early. A lent send cannot be withdrawn.
// mu held.
func (e *engine) keepLent(dst int) {
	p := &e.peers[dst]
	if !p.split || e.tpair == nil {
		return
	}
	e.tpair.Keep(dst)
	for _, s := range p.lent {
		e.finishSend(s, nil)
	}
	p.lent = nil
}

// eagerTo is the largest message to world rank dst that goes in one
// frame (see placeTCP). mu held.
func (e *engine) eagerTo(dst int) int {
	if dst != e.me && e.peers[dst].split {
		return min(e.eager, tcp.PlaceMin)
	}
	return e.eager
}

// Place implements tcp.Placer: a Data frame for a receive that Data
// frames stream into goes straight into the receive's buffer at its
// offset, when it is the next frame from its sender.
func (e *engine) Place(first []byte, n int, pl *tcp.Placement) (head int, dst []byte, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return 0, nil, false
	}
	h := &e.rx
	payload, err := wire.Decode(first, h)
	if err != nil || h.Kind != wire.Data {
		return 0, nil, false // a corrupt head is handle's to report
	}
	from := int(h.Src)
	if from < 0 || from >= e.size || from == e.me || e.lost[from] {
		return 0, nil, false
	}
	p := &e.peers[from]
	head = len(first) - len(payload)
	plen := n - head
	r := p.rdvIn[h.ID]
	if h.Seq != p.rxSeq+1 || r == nil || r.abandoned || r.fin.Load() || p.placed != nil ||
		plen <= 0 || int(h.N) != r.recvd || r.recvd+plen > r.size || len(r.data) < r.size {
		return 0, nil, false
	}
	p.placed, p.placedN, p.placedPl, r.placing = r, plen, pl, pl
	return head, r.data[r.recvd : r.recvd+plen], true
}

// Placed implements tcp.Placer: the Data frame with this head is in its
// receive's buffer (or was dropped, its receive having completed early).
func (e *engine) Placed(head []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := &e.rx
	if _, err := wire.Decode(head, h); err != nil || h.Src < 0 || int(h.Src) >= e.size {
		e.fail(fmt.Errorf("comm: rank %d received a corrupt frame head over TCP", e.me))
		return
	}
	p := &e.peers[h.Src]
	r, n := p.placed, p.placedN
	if r == nil {
		e.fail(fmt.Errorf("comm: rank %d: a placed frame from rank %d that was not placed", e.me, h.Src))
		return
	}
	if r.placing == p.placedPl {
		r.placing = nil
	}
	p.placed, p.placedPl = nil, nil
	e.handleLocked(head, false, n)
}
