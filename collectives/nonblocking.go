package collectives

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/internal/agree"
	"github.com/decorun/decorun/internal/shm"
)

// Request is a nonblocking collective call in progress (MPI_Request): the
// call took its place among the collective calls of its communicator when
// it started, and completes in the background. T is the result the
// blocking form returns (struct{} for calls that return only an error).
//
// Wait and Test may be called any number of times, from any goroutines;
// once the call is complete they return the same result every time.
type Request[T any] struct {
	complete atomic.Bool // v and err are set
	v        T
	err      error
	mu       sync.Mutex
	ch       chan struct{} // made by the first waiter that blocks; closed at completion
	closed   bool          // ch's fate decided (mu)
	// run finishes the call (the blocking form, which takes the started
	// call's number); claim is taken by whoever runs it: the caller's
	// start, Wait or Test, a later blocking call that needs the region
	// (agree's finisher), or the communicator's progress goroutine.
	run      func(ctx context.Context) (T, error)
	runE     func(ctx context.Context) error // instead of run, for calls that return only an error (T is struct{})
	ctx      context.Context                 // the call's (&sctx), carrying its number (st)
	sctx     startedCtx
	callDone <-chan struct{} // the I-function's ctx.Done()
	st       started
	// cl is the call until it is complete, when finish gives it back to
	// the pool of calls (a small call then allocates only its request).
	// Until then only whoever holds the claim may touch it: Test, Wait and
	// the progress goroutine read post, one and hier instead.
	cl    *call
	post  agree.Call // cl.ac as it posted ahead (Ready, AwaitPosts)
	one   bool       // cl.askOne
	hier  bool       // cl.h != nil
	ahead bool       // posted in the region when it started
	small bool       // posted ahead, one phase: once every rank has posted, finishing never waits
	claim atomic.Bool
	bg    atomic.Bool // due: the progress goroutine is to complete it (progress.go)
}

// finish runs the call (the claim is taken) and completes the request.
func (q *Request[T]) finish(ctx context.Context) {
	if q.runE != nil {
		q.err = q.runE(ctx)
	} else {
		q.v, q.err = q.run(ctx)
	}
	if cl := q.cl; cl != nil && cl.h == nil {
		// The blocking form is done with the call: back to the pool.
		q.cl, q.st.cl = nil, nil
		cl.recycle()
	}
	q.complete.Store(true)
	q.mu.Lock()
	q.closed = true
	if q.ch != nil {
		close(q.ch)
	}
	q.mu.Unlock()
}

// doneCh returns a channel closed once the call is complete.
func (q *Request[T]) doneCh() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ch == nil {
		q.ch = make(chan struct{})
		if q.closed {
			close(q.ch)
		}
	}
	return q.ch
}

// ready reports whether a call posted ahead finishes without waiting
// again: every rank has posted, every part is in the region (fused), and
// the call has one phase: it asked for it (fOne), or its parts are too
// small for a second one (see foldBlocks).
func (q *Request[T]) ready() bool {
	if !q.ahead || q.hier {
		return false
	}
	ok, lo, hi := q.post.Ready()
	return ok && lo >= 0 && (q.one || hi < regionSplit)
}

// onePhaseMax: a nonblocking call asks for one phase (fOne) when the
// ranks' parts together are at most this many bytes, which each rank then
// reads whole: below it, reading every part costs a rank less than
// waiting, in a second phase, for ranks that compute; above it (many
// ranks, large parts) the second phase's division of the work wins.
const onePhaseMax = 4 << 20

// Wait blocks until the call is complete and returns its result, or until
// ctx ends and returns ctx.Err(). ctx only bounds this wait: the call goes
// on, and a later Wait or Test returns its result. (The call itself is
// governed by the ctx given to the I-function that started it.)
func (q *Request[T]) Wait(ctx context.Context) (T, error) {
	if q.complete.Load() {
		return q.v, q.err
	}
	// Finish the call here, on the caller's core, rather than wait for a
	// hand-over, when nobody has begun it: a call posted ahead once every
	// rank has posted (its ctx governs the rest), a call not posted once
	// every call started before it on c is complete, if ctx is the call's
	// own (or ends only with it), since running it gives up bounding the
	// wait by ctx alone.
	own := ctx.Done() == q.callDone
	if q.ahead && !q.claim.Load() {
		if !own {
			_ = q.post.AwaitPosts(ctx, q.claim.Load) // an error other than ctx's is the call's
		}
		if ctx.Err() == nil && q.claim.CompareAndSwap(false, true) {
			q.finish(q.ctx)
			return q.v, q.err
		}
	} else if own && !q.ahead && !q.claim.Load() && atHead(q.st.c, q) && q.claim.CompareAndSwap(false, true) {
		q.finish(q.ctx)
		return q.v, q.err
	}
	select {
	case <-q.doneCh():
		return q.v, q.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Test reports whether the call is complete, with its result if it is
// (MPI_Test). It never blocks.
func (q *Request[T]) Test() (T, bool, error) {
	if q.complete.Load() {
		return q.v, true, q.err
	}
	if q.ahead && !q.claim.Load() && q.ready() && q.claim.CompareAndSwap(false, true) {
		// Every rank's part is in the region and the call reads it
		// without waiting again: finish it here.
		q.finish(q.ctx)
		return q.v, true, q.err
	}
	var zero T
	return zero, false, nil
}

// progress completes the call in the communicator's progress goroutine:
// for a call posted ahead it waits until every rank has posted or someone
// else has claimed the call, sleeping until another rank's post wakes it
// (shm.Background: the goroutine takes no core from the ranks computing
// meanwhile, and once woken runs before them), and then finishes it
// unless someone else does; a call that did not post ahead it runs whole.
// Once the call runs, its waits are the blocking form's: for ranks that
// have posted, and so are at work on it. It returns once the call is
// complete.
func (q *Request[T]) progress() {
	if q.complete.Load() {
		return
	}
	if q.ahead && !q.claim.Load() {
		// Its error (ctx ended, a member left) is the call's, which finish
		// returns.
		_ = q.post.AwaitPosts(shm.Background(q.ctx), q.claim.Load)
	}
	if q.claim.CompareAndSwap(false, true) {
		q.finish(q.ctx)
		return
	}
	<-q.doneCh()
}

func (q *Request[T]) done() bool { return q.complete.Load() }
func (q *Request[T]) due() bool  { return q.bg.Load() }
func (q *Request[T]) setDue()    { q.bg.Store(true) }

// FinishAhead finishes the call unless someone else has claimed it: a
// later call on the communicator that needs the region runs it
// (agree.Finisher).
func (q *Request[T]) FinishAhead() {
	if q.claim.CompareAndSwap(false, true) {
		q.finish(q.ctx)
	}
}

// started is a call numbered by an I-function, carried in the ctx of the
// blocking function that runs it, whose begin returns it instead of taking
// a new number.
type started struct {
	c     *comm.Comm
	cl    *call
	taken atomic.Bool // by the first begin on c; a nested call takes its own number
}

type startedKey struct{}

// startedCtx is the ctx of a started call's blocking form: the
// I-function's ctx, whose Value of startedKey{} is st. (A request holds
// it, so that starting a call allocates no ctx.)
type startedCtx struct {
	context.Context
	st *started
}

func (x *startedCtx) Value(key any) any {
	if key == (startedKey{}) {
		return x.st
	}
	return x.Context.Value(key)
}

// startedCall returns the call that an I-function numbered for this call
// of op on c, or nil if there is none.
func startedCall(ctx context.Context, c *comm.Comm, op opcode) *call {
	st, ok := ctx.Value(startedKey{}).(*started)
	if !ok || st.c != c || !st.taken.CompareAndSwap(false, true) {
		return nil
	}
	if st.cl.op != op {
		// A bug in this package: the I-function numbered a different op
		// from the one its blocking function runs.
		panic(fmt.Sprintf("collectives: internal error: %s started as %s", op, st.cl.op))
	}
	return st.cl
}

// start numbers a call of op on c now and posts it in the communicator's
// shared-memory region when it can without waiting (running run, the
// blocking form, up to its agreement step: call.ahead). A call whose
// every part is then in the region and that has one phase finishes at
// once; others go to the communicator's progress goroutine (progress.go),
// which finishes them in the order they started unless their caller's
// Wait or Test, or a later call on c, does first.
func start[T any](ctx context.Context, c *comm.Comm, op opcode, run func(ctx context.Context) (T, error)) *Request[T] {
	q := &Request[T]{run: run}
	q.start(ctx, c, op)
	return q
}

// startErr is start for the calls that return only an error.
func startErr(ctx context.Context, c *comm.Comm, op opcode, run func(ctx context.Context) error) *Request[struct{}] {
	q := &Request[struct{}]{runE: run}
	q.start(ctx, c, op)
	return q
}

func (q *Request[T]) start(ctx context.Context, c *comm.Comm, op opcode) {
	cl := begin(context.Background(), c, op)
	cl.keep = true // the request holds it
	cl.nb = true   // its rest must not wait for ranks still computing (fOne)
	q.cl = cl
	q.st = started{c: c, cl: cl}
	q.sctx = startedCtx{Context: ctx, st: &q.st}
	q.ctx = &q.sctx
	q.callDone = ctx.Done()
	q.hier = cl.h != nil
	if cl.p == 1 {
		// Nobody to wait for: the call is complete at once.
		q.claim.Store(true)
		q.finish(q.ctx)
		return
	}
	if cl.ac.Slot() > 0 { // the communicator's calls go through its region
		cl.ahead = true
		q.runAhead()
		cl.ahead = false
		q.st.taken.Store(false)
		q.ahead = cl.ac.Ahead()
		q.post, q.one = cl.ac, cl.askOne
	}
	if !q.ahead {
		// Not posted (its part is large, the communicator has no region,
		// or an earlier call holds it): the progress goroutine runs it, in
		// its turn, while the caller computes.
		enqueue(c, q, true)
		return
	}
	q.small = payloadLen(cl.payload) < aheadMax && cl.h == nil
	if q.ready() && q.claim.CompareAndSwap(false, true) {
		// Every rank has posted and the rest is reading: done here.
		q.finish(q.ctx)
		return
	}
	// Posted: what remains is to wait for the others' posts and read
	// them, which the caller's Wait does on its own core if it comes
	// first, or a later call on c that needs the region (agree's
	// finisher), or the progress goroutine, so that the call completes
	// (and frees its step for the others' later calls) without them.
	cl.ac.SetFinisher(q)
	// A posted call's rest costs its caller's Wait less than starting a
	// goroutine would: the progress goroutine starts lazily for it
	// (progressDelay). (A hierarchical call's rest, messages between
	// hosts, starts in the background now.)
	enqueue(c, q, !q.small)
}

// runAhead runs the blocking form up to its agreement step, where it
// posts in the region if it can, and ends (errAhead).
func (q *Request[T]) runAhead() {
	if q.runE != nil {
		_ = q.runE(q.ctx)
	} else {
		_, _ = q.run(q.ctx)
	}
}

// progressDelay: a small call posted ahead that is not complete this long
// after it started (nobody waited for it, and no later call on its
// communicator finished it) is finished by the progress goroutine. A
// variable for the tests (read under enginesMu).
var progressDelay = time.Millisecond
