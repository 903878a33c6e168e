package collectives

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/decorun/decorun/comm"
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
	done chan struct{} // closed when v and err are set
	v    T
	err  error
	// run finishes the call; claim is taken by whoever runs it: the
	// worker, or Wait when the call was posted ahead and the worker has
	// not begun it.
	run   func(ctx context.Context)
	ctx   context.Context // the call's, for Wait's run
	ahead bool
	claim atomic.Bool
	timer atomic.Pointer[time.Timer] // finishes a call posted ahead that nobody waits for
	// ready: every rank's part of a call posted ahead is in the region,
	// and the call finishes without another wait (see Test).
	ready func() bool
}

// aheadTimeout: a call posted ahead that nobody has waited for, and that
// no later call on its communicator has finished, is finished in the
// background after this long.
const aheadTimeout = time.Millisecond

func (q *Request[T]) stopTimer() {
	if t := q.timer.Load(); t != nil {
		t.Stop()
	}
}

// Wait blocks until the call is complete and returns its result, or until
// ctx ends and returns ctx.Err(). ctx only bounds this wait: the call goes
// on, and a later Wait or Test returns its result. (The call itself is
// governed by the ctx given to the I-function that started it.)
func (q *Request[T]) Wait(ctx context.Context) (T, error) {
	select {
	case <-q.done:
		return q.v, q.err
	default:
	}
	if q.ahead && q.claim.CompareAndSwap(false, true) {
		// The call posted in its caller and nobody has begun to finish
		// it: finish it here, without a hand-off. (Its own ctx governs
		// it.)
		q.stopTimer()
		q.run(q.ctx)
		return q.v, q.err
	}
	select {
	case <-q.done:
		return q.v, q.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Test reports whether the call is complete, with its result if it is
// (MPI_Test). It never blocks.
func (q *Request[T]) Test() (T, bool, error) {
	select {
	case <-q.done:
		return q.v, true, q.err
	default:
	}
	if q.ahead && !q.claim.Load() && q.ready() && q.claim.CompareAndSwap(false, true) {
		// Every rank's part is in the region and the call reads it
		// without waiting again: finish it here.
		q.stopTimer()
		q.run(q.ctx)
		return q.v, true, q.err
	}
	var zero T
	return zero, false, nil
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

// queue holds the started nonblocking calls of one communicator that have
// not yet run. A worker goroutine runs them one after another, in the order
// in which they were started, which is their order among the communicator's
// collective calls; it exists while the queue is not empty.
type queue struct {
	jobs []func()
}

var (
	queuesMu sync.Mutex
	// queues has an entry exactly while the communicator's worker runs.
	queues = map[*comm.Comm]*queue{}
)

// start numbers a call of op on c now, posts it in the communicator's
// shared-memory region when it can without waiting (running run, the
// blocking form, up to its agreement step: call.ahead), and queues run to
// finish it, with a ctx that makes its begin take that number.
func start[T any](ctx context.Context, c *comm.Comm, op opcode, run func(ctx context.Context) (T, error)) *Request[T] {
	q := &Request[T]{done: make(chan struct{})}
	cl := begin(context.Background(), c, op)
	cl.keep = true // the request holds it
	st := &started{c: c, cl: cl}
	if cl.ac.Slot() > 0 { // the communicator's calls go through its region
		cl.ahead = true
		_, _ = run(context.WithValue(ctx, startedKey{}, st)) // ends with errAhead
		cl.ahead = false
		st.taken.Store(false)
		q.ahead = cl.ac.Ahead()
	}
	q.ctx = context.WithValue(ctx, startedKey{}, st)
	q.run = func(ctx context.Context) {
		q.v, q.err = run(ctx)
		close(q.done)
	}
	if q.ahead {
		q.ready = func() bool {
			ok, lo, hi := cl.ac.Ready()
			return ok && lo >= 0 && hi < regionSplit // fused, one phase (see foldBlocks)
		}
		// Posted: what remains is to wait for the others' posts and read
		// them, which the caller's Wait does on its own core, or a later
		// call on c that needs the region (agree's finisher), or, if
		// neither comes first, a timer, so that the call completes (and
		// frees its step for the others' later calls) without them.
		cl.ac.SetFinisher(func() {
			if q.claim.CompareAndSwap(false, true) {
				q.stopTimer()
				q.run(q.ctx)
			}
		})
		q.timer.Store(time.AfterFunc(aheadTimeout, func() {
			if q.claim.CompareAndSwap(false, true) {
				q.run(shm.Patient(q.ctx))
			}
		}))
		return q
	}
	// The worker's waits in a region yield the core rather than spin: the
	// caller computes meanwhile.
	wctx := shm.Patient(q.ctx)
	job := func() {
		if q.claim.CompareAndSwap(false, true) {
			q.run(wctx)
		}
	}
	queuesMu.Lock()
	if w, ok := queues[c]; ok {
		w.jobs = append(w.jobs, job)
		queuesMu.Unlock()
		return q
	}
	w := &queue{jobs: []func(){job}}
	queues[c] = w
	queuesMu.Unlock()
	go w.work(c)
	// The new goroutine waits in this P's run queue; if the caller now
	// computes without blocking, it may stay there until the scheduler
	// preempts the caller (milliseconds). Let it run first: it starts the
	// call and, once it waits for a message, is woken wherever that
	// message is handled.
	runtime.Gosched()
	return q
}

// work runs w's jobs until the queue is empty, then ends.
func (w *queue) work(c *comm.Comm) {
	for {
		queuesMu.Lock()
		if len(w.jobs) == 0 {
			delete(queues, c)
			queuesMu.Unlock()
			return
		}
		job := w.jobs[0]
		w.jobs[0] = nil
		w.jobs = w.jobs[1:]
		queuesMu.Unlock()
		job()
	}
}

// workers is the number of communicators with a worker running (tests).
func workers() int {
	queuesMu.Lock()
	defer queuesMu.Unlock()
	return len(queues)
}

// startErr is start for the calls that return only an error.
func startErr(ctx context.Context, c *comm.Comm, op opcode, run func(ctx context.Context) error) *Request[struct{}] {
	return start(ctx, c, op, func(ctx context.Context) (struct{}, error) { return struct{}{}, run(ctx) })
}
