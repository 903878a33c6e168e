package collectives

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/internal/agree"
)

// Tags: a call's messages carry its sequence number on the communicator
// (agree.NextTag, below fanoutBit); a Bcast's fan-out message carries it with
// fanoutBit set, so that it never matches the call's other messages, which
// it may overtake.
const (
	tagMask   = agree.TagMask
	fanoutBit = tagMask + 1
)

// call is one collective call on one rank.
type call struct {
	op   opcode
	s    *comm.Comm // c.Shadow()
	tag  int
	p, r int
	ac   agree.Call
	sum  summary // the agreement's summary (agree)
	// payload is what this rank posts with its header when the call goes
	// through a shared-memory region (region.go); nil: nothing. pl and
	// inline hold it in the call itself, so that a small call allocates
	// nothing more.
	payload [][]byte
	pl      [2][]byte
	inline  [2]uint64
	own     []byte // this rank's payload, read in place of its post (readOwn)
	// crowded: some rank of a fused call said its host has more ranks
	// than cores (fCrowded in the agreement).
	crowded bool
	// failed is set once op failed here or a peer reported that it failed
	// (see failure.go).
	failed *OpError
	// h: c spans hosts, and the call runs hierarchically (hier.go).
	h *hier
	// ahead: a nonblocking call's first run, in its caller, which posts the
	// call in the region if it can (agree) and ends there (errAhead).
	ahead bool
	// nb: a nonblocking call (nonblocking.go), which asks for one phase
	// (fOne, askOne: when it costs less than onePhaseMax of reading): its
	// rest runs in its caller's Wait, where it must not wait for ranks
	// that are still computing. onePhase: some rank asked.
	nb, askOne, onePhase bool
	// keep: something other than the blocking function that began the call
	// holds it (a nonblocking request, a hierarchical call's parts), so
	// release must leave it alone.
	keep bool
	// Tracing (trace.go): when the call began (0: not tracing), the
	// algorithm it took and the bytes this rank gave it.
	t0     int64
	alg    string
	nbytes int
}

// callPool recycles the calls of blocking collectives, so that a small call
// allocates nothing: garbage made at every call of an iterative solver's
// Allreduce would bring the collector round every few thousand calls, and a
// rank whose core the collector borrows holds up every other rank.
var callPool = sync.Pool{New: func() any { return new(call) }}

// release ends a call in its blocking function (recording it when tracing)
// and returns it to the pool, once that function no longer uses it.
// Nothing may keep a call past its blocking function unless it set keep.
func (cl *call) release() {
	cl.end()
	if cl.keep || cl.h != nil {
		return
	}
	cl.recycle()
}

// recycle gives the call back to the pool, once nothing uses it.
func (cl *call) recycle() {
	*cl = call{}
	callPool.Put(cl)
}

// begin numbers a collective call on c. It is the one place where a call
// takes its number, which fixes its place in the order of collective calls
// on c.
//
// A nonblocking call (Iallreduce, ...) takes its number when it starts and
// runs its blocking form later with a ctx that carries the number: begin
// then returns that call (see nonblocking.go).
func begin(ctx context.Context, c *comm.Comm, op opcode) *call {
	if cl := startedCall(ctx, c, op); cl != nil {
		return cl
	}
	cl := callPool.Get().(*call)
	*cl = call{op: op, s: c.Shadow(), p: c.Size(), r: c.Rank(), ac: agree.Begin(c), h: beginHier(c, op)}
	cl.tag = cl.ac.Tag
	if cl.h != nil {
		cl.ac.Skip() // the call runs on c's sub-communicators (hier.go)
	}
	cl.traceBegin()
	return cl
}

// wrap adds the collective's name to a communication error; errors the
// package made itself and ctx's errors pass unchanged.
func (cl *call) wrap(err error) error {
	if err == nil || err == errAhead || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrMismatch) || errors.Is(err, ErrInvalidArg) {
		return err
	}
	if oe := (*OpError)(nil); errors.As(err, &oe) {
		return err
	}
	return fmt.Errorf("collectives: %s: %w", cl.op, err)
}

func (cl *call) send(ctx context.Context, dst int, b []byte) error {
	return cl.s.Send(ctx, dst, cl.tag, b)
}

func (cl *call) recv(ctx context.Context, src int) ([]byte, error) {
	b, _, err := cl.s.Recv(ctx, src, cl.tag)
	return b, err
}

// recvInto receives exactly len(b) bytes from src into b.
func (cl *call) recvInto(ctx context.Context, src int, b []byte) error {
	st, err := cl.s.RecvInto(ctx, b, src, cl.tag)
	if err != nil {
		return err
	}
	if st.Size != len(b) {
		return fmt.Errorf("rank %d sent %d bytes, want %d", src, st.Size, len(b))
	}
	return nil
}

// exchangeInto sends out to dst while it receives exactly len(in) bytes from
// src into in.
func (cl *call) exchangeInto(ctx context.Context, dst int, out []byte, src int, in []byte) error {
	q, err := cl.s.Isend(dst, cl.tag, out)
	if err != nil {
		return err
	}
	if err := cl.recvInto(ctx, src, in); err != nil {
		q.Cancel()
		return err
	}
	_, err = q.Wait(ctx)
	return err
}

// exchange sends out to dst while it receives a message from src.
func (cl *call) exchange(ctx context.Context, dst int, out []byte, src int) ([]byte, error) {
	q, err := cl.s.Isend(dst, cl.tag, out)
	if err != nil {
		return nil, err
	}
	in, err := cl.recv(ctx, src)
	if err != nil {
		q.Cancel()
		return nil, err
	}
	_, err = q.Wait(ctx)
	return in, err
}

// abs turns a rank relative to root into a rank of the communicator.
func (cl *call) abs(rel, root int) int { return (rel + root) % cl.p }

func errSize(rank, got, want int) error {
	return fmt.Errorf("rank %d sent %d bytes, want %d", rank, got, want)
}
