package comm

// Peers that close or die, and the engine's own end.

import (
	"fmt"
	"slices"

	"github.com/decorun/decorun/internal/match"
	"github.com/decorun/decorun/internal/wire"
)

func (e *engine) watchLost() <-chan int { return e.watchLostAs(nil) }

// lostWatch is a Lost() channel and the rank each world rank is given
// as (as, when not nil; false: not sent).
type lostWatch struct {
	ch chan int
	as func(int) (int, bool)
}

func (w lostWatch) send(r int) {
	if w.as != nil {
		var ok bool
		if r, ok = w.as(r); !ok {
			return
		}
	}
	w.ch <- r
}

// watchLostAs is watchLost with the ranks translated by as.
func (e *engine) watchLostAs(as func(int) (int, bool)) <-chan int {
	e.mu.Lock()
	defer e.mu.Unlock()
	w := lostWatch{ch: make(chan int, e.size), as: as}
	for r, l := range e.lost {
		if l {
			w.send(r)
		}
	}
	e.lostChs = append(e.lostChs, w)
	return w.ch
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
	traceLost(r, how)
	e.gone(r, e.lostErr(r))
	e.breakColls(r)
	for _, w := range e.lostChs {
		w.send(r) // capacity size and each rank is lost once: never blocks
	}
}

// gone fails what can no longer complete once rank r has died or closed.
// mu held.
func (e *engine) gone(r int, err error) {
	p := &e.peers[r]
	e.failPeer(r, err)
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
	for _, id := range ids {
		delete(e.colls, id)
		delete(e.broken, id)
	}
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

// Collective contexts. A collective call on a communicator waits for data
// that may pass through any of its ranks, so when one of them dies (with
// --keep-going) the survivors that exchange data with it are not the only
// ones that can never complete the call: the others wait for them. So the
// loss of a rank breaks the collective context (the Shadow) of every
// communicator that has it: its pending and later calls fail on every
// survivor with the rank's ErrRankLost error.

// addColl records the collective context id of a communicator whose world
// ranks are members (nil: every rank).
func (e *engine) addColl(id uint64, members []int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.colls == nil {
		e.colls = map[uint64][]int{}
	}
	e.colls[id] = members
	if e.err == nil {
		for r, l := range e.lost {
			if l && (members == nil || slices.Contains(members, r)) {
				e.breakColls(r)
				break
			}
		}
	}
}

// dropColl forgets a collective context that is no longer used.
func (e *engine) dropColl(id uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.colls, id)
	delete(e.broken, id)
}

// brokenErr is the error of a call on context comm, if a rank of its
// communicator was lost; else nil. mu held.
func (e *engine) brokenErr(comm uint64) error {
	if len(e.broken) == 0 {
		return nil
	}
	return e.broken[comm]
}

// breakColls breaks the collective contexts whose communicators have world
// rank r: it fails the receives posted on them and their sends that no
// receiver took yet (waiting for eager credit, or an RTS without a CTS),
// and records the error for their later calls. mu held.
func (e *engine) breakColls(r int) {
	var ids []uint64
	for id, members := range e.colls {
		if _, done := e.broken[id]; !done && (members == nil || slices.Contains(members, r)) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return
	}
	if e.broken == nil {
		e.broken = map[uint64]error{}
	}
	err := e.lostErr(r)
	for _, id := range ids {
		e.broken[id] = err
	}
	var keep []*match.Recv[*rreq]
	for _, rq := range e.q.Drain() {
		if slices.Contains(ids, rq.Env.Comm) {
			e.finishRecv(rq.Val, err)
		} else {
			keep = append(keep, rq)
		}
	}
	for _, rq := range keep {
		e.q.Post(rq) // no unexpected message matched them before; none will now
	}
	for d := range e.peers {
		p := &e.peers[d]
		for _, s := range slices.Clone(p.eagerq) {
			if slices.Contains(ids, s.hdr.Comm) {
				e.cancelSendErr(s, err)
			}
		}
		for _, s := range p.rdvOut {
			if s.phase == phWaitCTS && slices.Contains(ids, s.hdr.Comm) {
				e.cancelSendErr(s, err)
			}
		}
	}
	e.wakeProbes()
}
