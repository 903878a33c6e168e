package comm

// The receiving side of the engine: frames from the links, matching,
// delivery into receives, probes, and how a blocked caller waits.

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/decorun/decorun/internal/match"
	"github.com/decorun/decorun/internal/transport"
	"github.com/decorun/decorun/internal/wire"
)

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

// recycle gives b, a frame or payload the link delivered whose bytes were
// copied out and which nothing refers to any more, back to the link for a
// later frame to be read into (see transport.Recycler), and reports
// whether the link took it; otherwise it is garbage.
func (e *engine) recycle(b []byte) bool {
	rc, ok := e.link.(transport.Recycler)
	return ok && rc.Recycle(b)
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
	e.handleLocked(frame, lent, -1)
}

// handleLocked is handle with mu held. With placed >= 0, frame is the
// head of a Data frame whose placed bytes of payload the TCP link already
// read into the receive's buffer (see engine.Placed).
func (e *engine) handleLocked(frame []byte, lent bool, placed int) {
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
		n := len(payload)
		if placed >= 0 {
			n = placed
		}
		if r == nil {
			if m := p.longIn[h.ID]; m != nil && placed < 0 && int(h.N) == m.got && m.got+len(payload) <= m.size {
				// More of a long eager message no receive has matched.
				b, pooled := e.keepPooled(payload, lent)
				m.parts = append(m.parts, b)
				m.partPooled = append(m.partPooled, pooled)
				m.got += len(payload)
				m.cost += frameCost(h, len(payload))
				p.unret += frameCost(h, len(payload))
				if m.got == m.size {
					delete(p.longIn, h.ID)
				}
				e.checkStuck(from)
				return
			}
			e.fail(fmt.Errorf("comm: rank %d: data for unknown message %d from rank %d", e.me, h.ID, from))
			return
		}
		off := int(h.N)
		if off+n > r.size || off != r.recvd {
			e.fail(fmt.Errorf("comm: rank %d: data at offset %d of message %d from rank %d does not fit", e.me, off, h.ID, from))
			return
		}
		if placed < 0 {
			if !r.abandoned {
				copy(r.data[off:], payload)
			}
			// Copied: a link that reuses frames may read the next one
			// into it; otherwise it is garbage, which collect keeps in
			// check. A lent frame is neither (it is the link's, in its
			// ring).
			if !lent && !e.recycle(frame) {
				e.collect(n)
			}
		}
		r.recvd += n
		if h.Flags&wire.FlagStream != 0 {
			e.consumeStream(from, frameCost(h, n))
		} else { // the rest of a long eager message
			p.unret += frameCost(h, n)
			e.consume(from, frameCost(h, n))
		}
		if r.recvd == r.size {
			delete(p.rdvIn, h.ID)
			e.finishRecv(r, nil)
		}
	case wire.Credit:
		if h.Flags&wire.FlagStream != 0 {
			p.scredit += int64(h.N)
			e.pump(from)
		} else {
			p.credit += int64(h.N)
			p.rtsMode = false
			e.pumpEager(from)
		}
	case wire.Nudge:
		e.nudge(from)
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
			if err := e.brokenErr(r.m.Env.Comm); err != nil {
				e.finishRecv(r, err)
				return
			}
			if m := e.q.Repost(&r.m); m != nil {
				e.deliver(r, m.Val)
			} else {
				e.checkStuckAll(r.m.Env.Src)
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
	e.peers[from].unret += m.cost
	if r := e.q.Arrive(&m.m); r != nil {
		if lent && !m.rdv && !m.long && !r.Val.into {
			m.data = keep(m.data, true) // becomes the receive's result
		} else {
			m.lent = lent // copied out by deliver, and not recycled
		}
		e.deliver(r.Val, m)
	} else {
		m.data, m.pooled = e.keepPooled(m.data, lent)
		if m.long {
			e.peers[from].longIn[m.id] = m
		}
		e.wakeProbes()
		e.checkStuck(from)
	}
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
	r.msgID = m.id
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
			if !m.pooled && !m.lent {
				e.recycle(m.data)
			}
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
		if !m.pooled && !m.lent && !e.recycle(m.data) {
			garbage += len(m.data)
		}
		for i, b := range m.parts {
			off += copy(r.data[off:], b)
			if !m.partPooled[i] && !e.recycle(b) {
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
	} else if err := e.brokenErr(comm); err != nil {
		e.q.Cancel(&r.m)
		return nil, err
	} else {
		e.checkStuckAll(src)
	}
	return r, nil
}

// waitRecv waits for r, withdrawing it if ctx ends first.
func (e *engine) waitRecv(ctx context.Context, r *rreq) error {
	e.drive(ctx, r.fin.Load)
	if r.fin.Load() { // the common case: no channel operation
		return r.err
	}
	e.mu.Lock()
	if r.fin.Load() {
		e.mu.Unlock()
		return r.err
	}
	r.wantCh = true
	e.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
	}
	e.mu.Lock()
	if r.fin.Load() {
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
// beside it, sleeps. With e.tdrv (TCP peers, a core per rank) it reads
// the TCP connections itself in the same way (tcp.Link.Drive, or
// tcp.Link.Poll within the shared-memory drive), for up to e.spin after
// the last frame moved. Without either (more ranks than
// cores) it polls done, yielding to the process's other goroutines, the
// pump among them: a receive that completes meanwhile finds its caller
// runnable, where waking a parked caller costs the pump a futex wake-up
// on the way.
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
		if t := e.tdrv; t != nil {
			release := t.Claim()
			release(e.drv.Drive(func() bool { t.Poll(); return stop() }, e.spin))
		} else {
			e.drv.Drive(stop, e.spin)
		}
		return
	}
	if e.tdrv != nil {
		e.tdrv.Drive(stop, e.spin)
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
			e.checkStuckAll(src) // a program may poll Iprobe for it
			e.mu.Unlock()
			return Status{}, false, nil
		}
		ch := make(chan struct{})
		e.probes = append(e.probes, ch)
		e.checkStuckAll(src)
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Status{}, false, ctx.Err()
		}
	}
}
