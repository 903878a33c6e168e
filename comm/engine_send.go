package comm

// The sending side of the engine: eager sends under the eager window,
// rendezvous (RTS at once, Data under the stream window once the receiver
// cleared it), credit, cancellation and multicast.

import (
	"context"
	"fmt"

	"github.com/decorun/decorun/internal/match"
	"github.com/decorun/decorun/internal/wire"
)

// pump streams the Data of the sends that dst cleared, as far as the
// stream window to dst allows (FlagStream on a Data frame tells the
// receiver to return its credit to that window as soon as it lands).
// mu held.
func (e *engine) pump(dst int) {
	p := &e.peers[dst]
	for len(p.streams) > 0 && e.err == nil {
		s := p.streams[0]
		n := min(e.chunk, len(s.data)-s.off)
		h := wire.Header{Kind: wire.Data, Flags: wire.FlagStream, ID: s.hdr.ID, N: uint64(s.off)}
		cost := frameCost(&h, n)
		if p.scredit < cost {
			return
		}
		p.scredit -= cost
		lent := false
		if p.split { // the payload lent to the TCP link (see publishLent)
			var ok bool
			if lent, ok = e.publishData(dst, nil, &h, s, s.off, n); !ok {
				return
			}
		} else if e.publish(dst, &h, s.data[s.off:s.off+n]) != nil {
			return
		}
		s.off += n
		if s.off == len(s.data) {
			p.streams = p.streams[1:]
			delete(p.rdvOut, s.hdr.ID)
			if lent {
				s.phase = phLent
				p.lent = append(p.lent, s)
			} else {
				e.finishSend(s, nil)
			}
		}
	}
}

// longCost is the credit a long eager message of n bytes with head h takes:
// a head frame with the first chunk, then Data frames.
// With split (see placeTCP) the head carries no payload.
func (e *engine) longCost(h *wire.Header, n int, split bool) int64 {
	frames := (n + e.chunk - 1) / e.chunk
	if split {
		frames++
	}
	return int64(n + h.Size(0) + (frames-1)*wire.HeaderSize)
}

// publishLong publishes the whole of long eager send s, whose credit the
// caller checked: the head (an Eager frame whose N, the message size, is
// larger than its payload) and Data frames. Publishing every frame at once
// means a long send is never half sent, so it needs no Revoke. It reports
// whether everything was published. mu held.
func (e *engine) publishLong(dst int, s *sreq) bool {
	p := &e.peers[dst]
	s.hdr.Flags |= wire.FlagLong
	if p.split { // all in Data frames, which the receiver may place
		return e.publishLent(dst, s)
	}
	n := min(e.chunk, len(s.data))
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
		p.unret -= p.owed
		p.owed = 0
		p.nudged = false
		if e.publish(from, &h, nil) == nil {
			e.checkStuck(from)
		}
	}
}

// stuckSlack is how near the end of its eager window a sender counts as
// out of credit: the most a message can take (e.long, plus headers and a
// type name).
const stuckSlack = 64 << 10

// checkStuck sends world rank from a Nudge when this rank may be waiting
// for a message that from holds back for lack of eager credit: it holds
// nearly all of from's eager window (unmatched eager messages, and credit
// it has not returned yet, since it returns it in batches) while a posted
// receive or a probe could take a message from from. A sender whose next
// message lacks credit is then always nudged once everything in flight
// has landed, so no send waits for credit that only its own receive
// would free (MPI's progress rule). mu held.
func (e *engine) checkStuck(from int) {
	p := &e.peers[from]
	if p.nudged || e.window-p.unret >= int64(e.long)+stuckSlack {
		return
	}
	if len(e.probes) == 0 && !e.q.Waiting(func(env match.Envelope) bool {
		return env.Src == from || env.Src == match.AnySource
	}) {
		return
	}
	p.nudged = true
	h := wire.Header{Kind: wire.Nudge}
	e.publish(from, &h, nil)
}

// checkStuckAll is checkStuck for every peer a receive from src (maybe
// AnySource) could take a message from. mu held.
func (e *engine) checkStuckAll(src int) {
	if src >= 0 {
		if src != e.me {
			e.checkStuck(src)
		}
		return
	}
	for r := range e.peers {
		if r != e.me {
			e.checkStuck(r)
		}
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

// multicast publishes data as one Eager frame for every other rank, which
// NATS fans out, when the link can multicast, data fits one frame, every
// peer is up and this rank has credit for the frame to every peer (each
// pair's window is charged, as for a Send to each). ok is false when it
// did not; the caller then sends to each. The frame's seq is this rank's
// multicast count, which every receiver checks.
func (e *engine) multicast(comm uint64, tag int, data []byte) (ok bool, id uint64, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return false, 0, e.err
	}
	if e.mc == nil || len(data) > e.eager {
		return false, 0, nil
	}
	h := wire.Header{Kind: wire.Eager, Flags: wire.FlagMulticast, Comm: comm, Tag: int32(tag), N: uint64(len(data))}
	cost := frameCost(&h, len(data))
	for r := range e.peers {
		if r != e.me && (e.lost[r] || e.finished[r] || e.peers[r].credit < cost) {
			return false, 0, nil
		}
	}
	for r := range e.peers {
		if r != e.me {
			e.peers[r].credit -= cost
		}
	}
	e.mcSeq++
	h.Seq, h.Src = e.mcSeq, int32(e.me)
	if e.traced {
		e.nextID++
		h.ID = e.nextID
	}
	e.scratch = append(wire.Append(e.scratch[:0], &h), data...)
	if err := e.mc.Multicast(e.scratch); err != nil {
		e.fail(fmt.Errorf("comm: rank %d: %w", e.me, err))
		return false, 0, e.err
	}
	return true, h.ID, nil
}

// send starts a send of data to world rank dst. It returns a nil sreq when
// the send completed at once; otherwise data stays in use until it completes.
// id is the message's id: every message has one while tracing (traced),
// otherwise only those too large for one frame.
func (e *engine) send(comm uint64, dst, tag int, typ string, data []byte) (s *sreq, id uint64, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return nil, 0, e.err
	}
	if err := e.brokenErr(comm); err != nil {
		return nil, 0, err
	}
	if e.traced || len(data) > e.eagerTo(dst) {
		e.nextID++
		id = e.nextID
	}
	if dst == e.me {
		// Self-send: always buffered (a copy), so it never blocks.
		m := e.newMsg()
		m.from, m.tag, m.typ, m.size, m.data = e.me, tag, typ, len(data), append([]byte(nil), data...)
		m.id = id
		m.m = match.Msg[*inMsg]{Env: match.Envelope{Comm: comm, Src: e.me, Tag: tag}, Val: m}
		if r := e.q.Arrive(&m.m); r != nil {
			e.deliver(r.Val, m)
		} else {
			e.wakeProbes()
		}
		return nil, id, nil
	}
	if err := e.deadErr(dst); err != nil {
		return nil, 0, err
	}
	p := &e.peers[dst]
	h := wire.Header{Kind: wire.Eager, Comm: comm, Tag: int32(tag), N: uint64(len(data)), Type: typ, ID: id}
	if len(p.eagerq) == 0 && len(data) <= e.eagerTo(dst) {
		// tryEager's first case, before an sreq exists: a small send that
		// the window has room for allocates nothing.
		if cost := frameCost(&h, len(data)); p.credit >= cost {
			p.credit -= cost
			return nil, id, e.publish(dst, &h, data)
		}
	}
	s = &sreq{dst: dst, hdr: h, data: data}
	if len(p.eagerq) == 0 {
		if ok, err := e.tryEager(s); ok || err != nil {
			if err == nil && s.phase == phLent {
				return s, id, nil // complete once the link has written it
			}
			return nil, id, err
		}
		if len(data) > e.long || p.rtsMode {
			s.done = make(chan struct{})
			return s, id, e.sendRTS(s)
		}
	}
	// It waits for eager credit, or behind sends that do: in order.
	s.phase, s.done = phQueued, make(chan struct{})
	p.eagerq = append(p.eagerq, s)
	return s, id, nil
}

// tryEager publishes s eagerly if it is eager-sized and the eager window
// to its receiver has room for all of it. Up to e.eager bytes it is one
// frame; up to e.long a "long eager" message: a head frame and Data frames
// published together, kept by the receiver until a receive matches it (no
// RTS/CTS round trip). mu held.
func (e *engine) tryEager(s *sreq) (ok bool, err error) {
	p := &e.peers[s.dst]
	switch n := len(s.data); {
	case n <= e.eagerTo(s.dst):
		cost := frameCost(&s.hdr, n)
		if p.credit < cost {
			return false, nil
		}
		p.credit -= cost
		return true, e.publish(s.dst, &s.hdr, s.data)
	case n <= e.long:
		if p.credit < e.longCost(&s.hdr, n, p.split) {
			return false, nil
		}
		if !e.publishLong(s.dst, s) {
			return true, e.err
		}
		return true, nil
	}
	return false, nil
}

// sendRTS sends s by rendezvous: its RTS goes now, outside the windows,
// and its data once the receiver cleared it. mu held.
func (e *engine) sendRTS(s *sreq) error {
	if s.hdr.ID == 0 {
		e.nextID++
		s.hdr.ID = e.nextID
	}
	s.hdr.Kind, s.hdr.Flags = wire.RTS, 0
	s.phase = phWaitCTS
	if err := e.publish(s.dst, &s.hdr, nil); err != nil {
		return err
	}
	e.peers[s.dst].rdvOut[s.hdr.ID] = s
	return nil
}

// pumpEager sends what waits in dst's eagerq as far as the eager window
// allows (large sends at its head go by rendezvous, which takes no eager
// credit). mu held.
func (e *engine) pumpEager(dst int) {
	p := &e.peers[dst]
	for len(p.eagerq) > 0 && e.err == nil {
		s := p.eagerq[0]
		ok, err := e.tryEager(s)
		if !ok && len(s.data) <= e.long && !p.rtsMode {
			return // it waits for credit
		}
		p.eagerq = p.eagerq[1:]
		if ok {
			if err != nil || s.phase != phLent {
				e.finishSend(s, err)
			}
		} else if e.sendRTS(s) != nil {
			return
		}
	}
}

// nudge is the receiver's Nudge: it waits for a message while it holds
// nearly all of this rank's eager window to it, so a message that waits
// here for eager credit may be the one it waits for. Everything in the
// eagerq goes by rendezvous now, in order, and so will every send the
// window has no room for, until the receiver returns credit. mu held.
func (e *engine) nudge(dst int) {
	p := &e.peers[dst]
	p.rtsMode = true
	e.pumpEager(dst)
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
	// The common case first, without a two-way select.
	select {
	case <-s.done:
		return s.err
	default:
	}
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
	if s.phase == phLent {
		e.keepLent(s.dst) // the message was sent: only the buffer is freed
		return s.err
	}
	e.cancelSend(s)
	return ctx.Err()
}

func (e *engine) cancelSend(s *sreq) { e.cancelSendErr(s, context.Canceled) }

// cancelSendErr withdraws s, which completes with err. mu held.
func (e *engine) cancelSendErr(s *sreq, err error) {
	p := &e.peers[s.dst]
	if s.phase == phLent { // all of it went to the link: it cannot be withdrawn
		e.keepLent(s.dst)
		return
	}
	if s.phase == phQueued { // nothing of it was sent
		for i, x := range p.eagerq {
			if x == s {
				p.eagerq = append(p.eagerq[:i], p.eagerq[i+1:]...)
				break
			}
		}
		e.finishSend(s, err)
		e.pumpEager(s.dst)
		return
	}
	for i, x := range p.streams {
		if x == s {
			p.streams = append(p.streams[:i], p.streams[i+1:]...)
			e.keepLent(s.dst) // its Data frames so far may be lent
			break
		}
	}
	// Its RTS left when it was sent: the receiver drops it, or the
	// receive that matched it waits again.
	delete(p.rdvOut, s.hdr.ID)
	h := wire.Header{Kind: wire.Revoke, ID: s.hdr.ID}
	e.publish(s.dst, &h, nil)
	e.finishSend(s, err)
	e.pump(s.dst)
}
