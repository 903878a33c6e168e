// Package match is the I/O-free message-matching core of comm.
//
// A Queue holds, for one receiving process, the receives that are posted and
// not yet matched and the messages that arrived and are not yet matched
// ("unexpected"), and pairs them by MPI's rules:
//
//   - an arriving message matches the earliest posted receive whose
//     communicator, source and tag accept it;
//   - a new receive matches the earliest unexpected message it accepts;
//   - AnySource and AnyTag accept every source or tag.
//
// Because messages from one sender are fed in the order sent, these two rules
// give MPI's non-overtaking guarantee: two messages from one sender that the
// same receive could match are matched in the order they were sent.
//
// A Queue is not safe for concurrent use; the caller serialises access. It
// does no I/O and starts no goroutines.
package match

// Wildcards accepted by receives and probes.
const (
	AnySource = -1
	AnyTag    = -1
)

// Envelope is what matching looks at.
type Envelope struct {
	Comm uint64
	Src  int
	Tag  int
}

// Accepts reports whether a receive or probe for pattern p accepts a message
// with envelope m.
func (p Envelope) Accepts(m Envelope) bool {
	return p.Comm == m.Comm &&
		(p.Src == AnySource || p.Src == m.Src) &&
		(p.Tag == AnyTag || p.Tag == m.Tag)
}

// Msg is an unexpected message.
type Msg[M any] struct {
	Env        Envelope
	Val        M
	prev, next *Msg[M]
}

// Recv is a posted receive.
type Recv[R any] struct {
	Env        Envelope // pattern, may hold wildcards
	Val        R
	posted     bool
	prev, next *Recv[R]
}

// Posted reports whether r is still waiting in a queue.
func (r *Recv[R]) Posted() bool { return r.posted }

// Queue matches messages with receives. The zero value is an empty queue.
type Queue[M, R any] struct {
	rhead, rtail *Recv[R]
	mhead, mtail *Msg[M]
	nrecv, nmsg  int
}

// Arrive offers message m. If a posted receive accepts it, that receive is
// removed from the queue and returned; otherwise m is kept as unexpected and
// Arrive returns nil.
func (q *Queue[M, R]) Arrive(m *Msg[M]) *Recv[R] {
	for r := q.rhead; r != nil; r = r.next {
		if r.Env.Accepts(m.Env) {
			q.unlinkRecv(r)
			return r
		}
	}
	m.prev, m.next = q.mtail, nil
	if q.mtail != nil {
		q.mtail.next = m
	} else {
		q.mhead = m
	}
	q.mtail = m
	q.nmsg++
	return nil
}

// Post offers receive r. If an unexpected message is accepted by it, that
// message is removed and returned; otherwise r is posted and Post returns nil.
func (q *Queue[M, R]) Post(r *Recv[R]) *Msg[M] {
	if m := q.find(r.Env); m != nil {
		q.unlinkMsg(m)
		return m
	}
	r.prev, r.next = q.rtail, nil
	if q.rtail != nil {
		q.rtail.next = r
	} else {
		q.rhead = r
	}
	q.rtail = r
	r.posted = true
	q.nrecv++
	return nil
}

// Repost offers r again after the message it matched was withdrawn by its
// sender: it takes the earliest unexpected message r accepts, or else goes
// back to the head of the posted receives, where it was the oldest.
func (q *Queue[M, R]) Repost(r *Recv[R]) *Msg[M] {
	if m := q.find(r.Env); m != nil {
		q.unlinkMsg(m)
		return m
	}
	r.prev, r.next = nil, q.rhead
	if q.rhead != nil {
		q.rhead.prev = r
	} else {
		q.rtail = r
	}
	q.rhead = r
	r.posted = true
	q.nrecv++
	return nil
}

// Probe returns the earliest unexpected message that pattern p accepts,
// leaving it queued, or nil.
func (q *Queue[M, R]) Probe(p Envelope) *Msg[M] { return q.find(p) }

// Cancel removes a posted receive. It reports false if r was not posted
// (already matched or cancelled).
func (q *Queue[M, R]) Cancel(r *Recv[R]) bool {
	if !r.posted {
		return false
	}
	q.unlinkRecv(r)
	return true
}

// Take removes an unexpected message that Probe returned. It reports false if
// m is not queued.
func (q *Queue[M, R]) Take(m *Msg[M]) bool {
	for x := q.mhead; x != nil; x = x.next {
		if x == m {
			q.unlinkMsg(m)
			return true
		}
	}
	return false
}

// Waiting reports whether a posted receive's envelope satisfies f.
func (q *Queue[M, R]) Waiting(f func(Envelope) bool) bool {
	for r := q.rhead; r != nil; r = r.next {
		if f(r.Env) {
			return true
		}
	}
	return false
}

// Len returns the number of posted receives and unexpected messages.
func (q *Queue[M, R]) Len() (posted, unexpected int) { return q.nrecv, q.nmsg }

// Drain removes and returns every posted receive, oldest first.
func (q *Queue[M, R]) Drain() []*Recv[R] {
	var out []*Recv[R]
	for q.rhead != nil {
		r := q.rhead
		q.unlinkRecv(r)
		out = append(out, r)
	}
	return out
}

// EachMsg calls f on every unexpected message, oldest first, and removes
// those for which f returns true. f must not change or reuse the message
// it is given (it is unlinked after f returns).
func (q *Queue[M, R]) EachMsg(f func(*Msg[M]) (remove bool)) {
	for m := q.mhead; m != nil; {
		next := m.next
		if f(m) {
			q.unlinkMsg(m)
		}
		m = next
	}
}

func (q *Queue[M, R]) find(p Envelope) *Msg[M] {
	for m := q.mhead; m != nil; m = m.next {
		if p.Accepts(m.Env) {
			return m
		}
	}
	return nil
}

func (q *Queue[M, R]) unlinkRecv(r *Recv[R]) {
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		q.rhead = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	} else {
		q.rtail = r.prev
	}
	r.prev, r.next, r.posted = nil, nil, false
	q.nrecv--
}

func (q *Queue[M, R]) unlinkMsg(m *Msg[M]) {
	if m.prev != nil {
		m.prev.next = m.next
	} else {
		q.mhead = m.next
	}
	if m.next != nil {
		m.next.prev = m.prev
	} else {
		q.mtail = m.prev
	}
	m.prev, m.next = nil, nil
	q.nmsg--
}
