package comm

import (
	"context"
	"errors"
	"fmt"

	"github.com/decorun/decorun/internal/trace"
)

// Send sends data to rank dst with tag. It returns when data may be reused:
// a small message has been handed to the transport (it is buffered at the
// receiver if no receive is posted yet, within the credit window); a large
// one has been streamed to a matching receive; over a plain TCP connection,
// a message of more than 16 KiB has been taken by the kernel.
func (c *Comm) Send(ctx context.Context, dst, tag int, data []byte) error {
	return c.send(ctx, "Send", dst, tag, "", data)
}

func (c *Comm) send(ctx context.Context, op string, dst, tag int, typ string, data []byte) error {
	if dst == ProcNull {
		return c.nullOp(op, tag, false)
	}
	if err := c.checkPeer(op, dst, false); err != nil {
		return err
	}
	if err := c.checkTag(op, tag, false); err != nil {
		return err
	}
	t0 := c.now()
	s, id, err := c.e.send(c.id, c.toWorld(dst), tag, typ, data)
	if err == nil {
		err = c.e.waitSend(ctx, s)
	}
	err = c.wrap(op, dst, err)
	if t0 != 0 {
		c.traceEv(trace.KindSend, op, t0, c.toWorld(dst), tag, len(data), id, err)
	}
	return err
}

func (c *Comm) wrap(op string, peer int, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if peer == AnySource {
		return fmt.Errorf("comm: rank %d: %s from any source: %w", c.rank, op, err)
	}
	return fmt.Errorf("comm: rank %d: %s with rank %d: %w", c.rank, op, peer, err)
}

// Recv receives a message from rank src (or AnySource) with tag (or AnyTag)
// and returns its payload, which the caller owns.
func (c *Comm) Recv(ctx context.Context, src, tag int) ([]byte, Status, error) {
	return c.recv(ctx, "Recv", src, tag)
}

func (c *Comm) recv(ctx context.Context, op string, src, tag int) ([]byte, Status, error) {
	if src == ProcNull {
		return nil, nullStatus, c.nullOp(op, tag, true)
	}
	t0 := c.now()
	r, err := c.irecv(op, src, tag, nil, false)
	if err != nil {
		return nil, Status{}, err
	}
	err = c.e.waitRecv(ctx, r)
	if t0 != 0 {
		c.traceRecv(op, t0, src, tag, r, err)
	}
	data, st := r.data, c.status(r.st)
	if err != nil {
		return nil, st, c.wrap(op, src, err)
	}
	c.e.release(r)
	return data, st, nil
}

// RecvInto receives into buf and returns the message's Status; the payload
// is buf[:st.Size]. A message larger than buf is an error wrapping
// ErrTruncate (the message is consumed).
func (c *Comm) RecvInto(ctx context.Context, buf []byte, src, tag int) (Status, error) {
	if src == ProcNull {
		return nullStatus, c.nullOp("RecvInto", tag, true)
	}
	t0 := c.now()
	r, err := c.irecv("RecvInto", src, tag, buf, true)
	if err != nil {
		return Status{}, err
	}
	err = c.e.waitRecv(ctx, r)
	if t0 != 0 {
		c.traceRecv("RecvInto", t0, src, tag, r, err)
	}
	st := c.status(r.st)
	if err != nil {
		return st, c.wrap("RecvInto", src, err)
	}
	c.e.release(r)
	return st, nil
}

func (c *Comm) irecv(op string, src, tag int, buf []byte, into bool) (*rreq, error) {
	if err := c.checkPeer(op, src, true); err != nil {
		return nil, err
	}
	if err := c.checkTag(op, tag, true); err != nil {
		return nil, err
	}
	r, err := c.e.post(c.id, c.toWorld(src), tag, buf, into)
	if err != nil {
		return nil, c.wrap(op, src, err)
	}
	return r, nil
}

// Sendrecv sends data to dst and receives a message from src at once, so
// that pairs of ranks can exchange without deadlock.
func (c *Comm) Sendrecv(ctx context.Context, data []byte, dst, stag, src, rtag int) (_ []byte, _ Status, err error) {
	if t0 := c.now(); t0 != 0 && dst != ProcNull {
		defer func() { c.traceEv(trace.KindCall, "Sendrecv", t0, c.toWorld(dst), stag, len(data), 0, err) }()
	}
	rq, err := c.Irecv(src, rtag)
	if err != nil {
		return nil, Status{}, err
	}
	if err := c.Send(ctx, dst, stag, data); err != nil {
		rq.Cancel()
		return nil, Status{}, err
	}
	st, err := rq.Wait(ctx)
	if err != nil {
		return nil, st, err
	}
	return rq.Data(), st, nil
}

// Probe waits until a message from src with tag can be received and returns
// its Status without receiving it.
func (c *Comm) Probe(ctx context.Context, src, tag int) (Status, error) {
	if src == ProcNull {
		return nullStatus, c.nullOp("Probe", tag, true)
	}
	if err := c.checkPeer("Probe", src, true); err != nil {
		return Status{}, err
	}
	if err := c.checkTag("Probe", tag, true); err != nil {
		return Status{}, err
	}
	t0 := c.now()
	st, _, err := c.e.probe(ctx, c.id, c.toWorld(src), tag, true)
	if t0 != 0 {
		c.traceEv(trace.KindCall, "Probe", t0, st.Source, st.Tag, st.Size, 0, err)
	}
	return c.status(st), c.wrap("Probe", src, err)
}

// Iprobe reports whether a message from src with tag can be received now.
func (c *Comm) Iprobe(src, tag int) (Status, bool, error) {
	if src == ProcNull {
		err := c.nullOp("Iprobe", tag, true)
		return nullStatus, err == nil, err
	}
	if err := c.checkPeer("Iprobe", src, true); err != nil {
		return Status{}, false, err
	}
	if err := c.checkTag("Iprobe", tag, true); err != nil {
		return Status{}, false, err
	}
	t0 := c.now()
	st, ok, err := c.e.probe(context.Background(), c.id, c.toWorld(src), tag, false)
	if t0 != 0 && ok { // an Iprobe that finds nothing is not recorded: programs poll with it
		c.traceEv(trace.KindCall, "Iprobe", t0, st.Source, st.Tag, st.Size, 0, err)
	}
	return c.status(st), ok, c.wrap("Iprobe", src, err)
}

// Request is a nonblocking send or receive. A Request is used by one
// goroutine at a time.
type Request struct {
	c    *Comm
	op   string
	peer int
	s    *sreq // send; nil when it completed at once
	r    *rreq // receive

	// A receive's outcome, once seen (its completion is consumed once).
	complete bool
	st       Status
	err      error
}

// Isend starts sending data to dst and returns at once. data must not be
// changed until the request completes (Wait, Test or WaitAll).
func (c *Comm) Isend(dst, tag int, data []byte) (*Request, error) {
	return c.isend("Isend", dst, tag, "", data)
}

func (c *Comm) isend(op string, dst, tag int, typ string, data []byte) (*Request, error) {
	if dst == ProcNull {
		if err := c.nullOp(op, tag, false); err != nil {
			return nil, err
		}
		return &Request{c: c, op: op, peer: dst}, nil // complete (no sreq)
	}
	if err := c.checkPeer(op, dst, false); err != nil {
		return nil, err
	}
	if err := c.checkTag(op, tag, false); err != nil {
		return nil, err
	}
	t0 := c.now()
	s, id, err := c.e.send(c.id, c.toWorld(dst), tag, typ, data)
	if t0 != 0 {
		c.traceEv(trace.KindSend, op, t0, c.toWorld(dst), tag, len(data), id, err)
	}
	if err != nil {
		return nil, c.wrap(op, dst, err)
	}
	return &Request{c: c, op: op, peer: dst, s: s}, nil
}

// Irecv posts a receive and returns at once; Data returns the payload once
// the request completed.
func (c *Comm) Irecv(src, tag int) (*Request, error) {
	if src == ProcNull {
		return c.nullRecv("Irecv", tag)
	}
	r, err := c.irecv("Irecv", src, tag, nil, false)
	if err != nil {
		return nil, err
	}
	return &Request{c: c, op: "Irecv", peer: src, r: r}, nil
}

// IrecvInto posts a receive into buf and returns at once, like Irecv; once
// the request completed the payload is buf[:st.Size], as for RecvInto (a
// message larger than buf completes it with an error wrapping
// ErrTruncate). buf must not be used until then. A message that finds the
// receive posted is copied once, straight into buf.
func (c *Comm) IrecvInto(buf []byte, src, tag int) (*Request, error) {
	if src == ProcNull {
		return c.nullRecv("IrecvInto", tag)
	}
	r, err := c.irecv("IrecvInto", src, tag, buf, true)
	if err != nil {
		return nil, err
	}
	return &Request{c: c, op: "IrecvInto", peer: src, r: r}, nil
}

// Wait blocks until the request completes and returns its Status (for a
// receive) and error. If ctx ends first, the request is cancelled.
func (q *Request) Wait(ctx context.Context) (Status, error) {
	if q.complete {
		return q.st, q.err
	}
	t0 := q.c.now()
	if q.r != nil {
		if !q.complete {
			err := q.c.e.waitRecv(ctx, q.r)
			q.complete, q.st, q.err = true, q.c.status(q.r.st), q.c.wrap(q.op, q.peer, err)
			q.traceDone("Wait", t0)
		}
		return q.st, q.err
	}
	err := q.c.wrap(q.op, q.peer, q.c.e.waitSend(ctx, q.s))
	if t0 != 0 && q.s != nil {
		q.c.traceEv(trace.KindCall, "Wait", t0, q.c.toWorld(q.peer), int(q.s.hdr.Tag), len(q.s.data), 0, err)
	}
	return Status{}, err
}

// Test reports whether the request has completed, and if so its Status and
// error, without blocking.
func (q *Request) Test() (done bool, st Status, err error) {
	if q.complete {
		return true, q.st, q.err
	}
	if q.r != nil {
		if !q.complete {
			if !q.r.fin.Load() {
				return false, Status{}, nil
			}
			q.complete, q.st, q.err = true, q.c.status(q.r.st), q.c.wrap(q.op, q.peer, q.r.err)
			q.traceDone("Test", q.c.now())
		}
		return true, q.st, q.err
	}
	if q.s == nil {
		return true, Status{}, nil
	}
	select {
	case <-q.s.done:
		st, err = q.Wait(context.Background())
		return true, st, err
	default:
		return false, Status{}, nil
	}
}

// nullOp checks what a call with ProcNull as its peer still checks: the
// communicator is open and the tag valid (AnyTag too for receives).
func (c *Comm) nullOp(op string, tag int, wildcard bool) error {
	if err := c.alive(op); err != nil {
		return err
	}
	return c.checkTag(op, tag, wildcard)
}

// nullRecv is a receive from ProcNull: complete, with nullStatus.
func (c *Comm) nullRecv(op string, tag int) (*Request, error) {
	if err := c.nullOp(op, tag, true); err != nil {
		return nil, err
	}
	return &Request{c: c, op: op, peer: ProcNull, complete: true, st: nullStatus}, nil
}

// Cancel withdraws the request if it has not completed; its Wait then
// returns context.Canceled. A send whose message was handed whole to a TCP
// link that still writes it from data cannot be withdrawn: the link copies
// what it has not written, and the request completes as sent (Wait
// returns nil).
func (q *Request) Cancel() {
	if q.r == nil && q.s == nil {
		return // ProcNull's, complete
	}
	e := q.c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if q.r != nil && !q.r.fin.Load() {
		e.abandonRecv(q.r)
	}
	if q.s != nil && !q.s.closed {
		e.cancelSend(q.s)
	}
}

// Data returns a completed receive's payload (nil before completion or for
// a send).
func (q *Request) Data() []byte {
	if q.r == nil {
		return nil
	}
	if done, _, err := q.Test(); !done || err != nil {
		return nil
	}
	return q.r.data
}

// WaitAll waits for every request and returns nil, or a *WaitError that
// says how many failed and wraps each error (errors.Is and errors.As look
// through them; a single failure's is that error itself). nil entries are
// skipped. If ctx ends, the requests not yet complete are cancelled (and
// fail with ctx's error).
func WaitAll(ctx context.Context, reqs ...*Request) error {
	var we WaitError
	for i, q := range reqs {
		if q == nil {
			continue
		}
		we.Total++
		if _, err := q.Wait(ctx); err != nil {
			we.add(i, err)
		}
	}
	if len(we.Errs) == 1 {
		return we.Errs[0]
	}
	return we.err()
}
