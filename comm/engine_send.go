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
