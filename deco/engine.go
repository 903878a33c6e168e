package deco

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/internal/trace"
)

// Message tags on deco's private communicator (a Dup of the user's).
const (
	tagTask   = 1 // rank 0 to a worker: a batch of tasks
	tagResult = 2 // a worker to rank 0: the results of one batch
	tagStop   = 3 // rank 0 to a worker: Run is over
)

const (
	batchTarget = 2 * time.Millisecond // work per batch, once costs are known
	maxBatch    = 1024                 // tasks per batch
	maxBatchArg = 1 << 20              // bytes of arguments per batch
	shortTask   = 500 * time.Microsecond
)

// notifier wakes every goroutine waiting for a change; guarded by the
// engine's mutex.
type notifier struct{ ch chan struct{} }

func (n *notifier) wait() <-chan struct{} {
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) wake() {
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// engine runs the tasks of rank 0 (or of a process without decorun): one
// queue in issue order, executors on this process, links to the workers.
type engine struct {
	c        *comm.Comm // deco's communicator; nil: this process only
	rank     int
	slots    int // executors on this process
	maxTasks int
	maxBytes int
	progress int // -1 auto, 0 off, 1 on

	mu       sync.Mutex
	queue    []*task // issued, not handed out; queue[qhead:] is live
	qhead    int
	inflight int // issued and not finished
	inbytes  int // their encoded arguments
	running  int // executor goroutines
	links    []*link
	nextB    uint64
	wantN    int // a link waits for this many queued tasks
	stopping bool
	space    notifier // inflight went down
	work     notifier // something a link waits for changed

	wg   sync.WaitGroup // executors and link goroutines
	stop context.CancelFunc
}

// link is rank 0's view of one worker rank.
type link struct {
	rank  int
	slots int                // the worker's executors, from its replies (1 until known)
	out   map[uint64][]*task // batches handed out and not answered
	lost  bool
}

type config struct {
	slots    int
	maxTasks int
	maxBytes int
	progress int
}

func newEngine(c *comm.Comm, rank int, cfg config) *engine {
	return &engine{c: c, rank: rank, slots: cfg.slots, maxTasks: cfg.maxTasks, maxBytes: cfg.maxBytes,
		progress: cfg.progress}
}

type engineKey struct{}

var (
	localOnce sync.Once
	local     *engine
)

// engineFrom returns the engine of the Run that made ctx, or the process's
// goroutine pool.
func engineFrom(ctx context.Context) *engine {
	if e, ok := ctx.Value(engineKey{}).(*engine); ok {
		return e
	}
	localOnce.Do(func() {
		cfg := defaults()
		cfg.slots = runtime.GOMAXPROCS(0)
		local = newEngine(nil, 0, cfg)
	})
	return local
}

func (e *engine) isStopped() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopping
}

func (e *engine) queued() int { return len(e.queue) - e.qhead }

// take removes up to n tasks (and maxBatchArg bytes of arguments, at least
// one task) from the head of the queue. mu held.
func (e *engine) take(n int) []*task {
	var ts []*task
	bytes := 0
	for e.qhead < len(e.queue) && len(ts) < n {
		t := e.queue[e.qhead]
		if len(ts) > 0 && bytes+len(t.args) > maxBatchArg {
			break
		}
		e.queue[e.qhead] = nil
		e.qhead++
		bytes += len(t.args)
		ts = append(ts, t)
	}
	if e.qhead == len(e.queue) {
		e.queue, e.qhead = e.queue[:0], 0
	} else if e.qhead > 1024 && e.qhead > len(e.queue)/2 {
		e.queue = append(e.queue[:0], e.queue[e.qhead:]...)
		e.qhead = 0
	}
	return ts
}

// executors is the number of task slots on all live ranks. mu held.
func (e *engine) executors() int {
	n := e.slots
	for _, l := range e.links {
		if l != nil && !l.lost {
			n += l.slots
		}
	}
	return n
}

// batchSize is how many tasks make a batch now: about batchTarget of work
// at the head function's estimated cost, one while that is unknown, and
// never more than a fair share of the queue. mu held.
func (e *engine) batchSize() int {
	est := time.Duration(e.queue[e.qhead].fn.est.Load())
	if est == 0 {
		return 1
	}
	n := min(max(int(batchTarget/est), 1), maxBatch)
	x := e.executors()
	return min(n, max((e.queued()+x-1)/x, 1))
}

// credit is how many batches a link may hold: one per worker slot while
// tasks are long or of unknown cost, three once they are short. mu held.
func (e *engine) credit(l *link) int {
	est := time.Duration(e.queue[e.qhead].fn.est.Load())
	if est == 0 || est > shortTask {
		return l.slots
	}
	return 3 * l.slots
}

// issue queues t, blocking while too much is pending. encErr is the
// arguments' encoding error, desc their rendering for it.
func (s *Scope) issue(t *task, encErr error, desc string) error {
	e := s.e
	t.sc = s
	e.mu.Lock()
	if s.closed {
		e.mu.Unlock()
		if t.sink != nil {
			t.sink.settle(ErrScopeDone)
		}
		return ErrScopeDone
	}
	t.idx = len(s.recs)
	s.recs = append(s.recs, rec{sink: t.sink})
	fail := func(err error) error { // mu held
		t.claim = true
		err = &TaskError{Task: t.idx, Func: t.fn.name, Args: desc, Rank: -1, Err: err}
		s.recs[t.idx].x = &extra{err: err}
		e.mu.Unlock()
		if t.sink != nil {
			t.sink.settle(err)
		}
		return err
	}
	if encErr != nil {
		return fail(encErr)
	}
	for e.inflight > 0 && (e.inflight >= e.maxTasks || e.inbytes+len(t.args) > e.maxBytes) {
		ch := e.space.wait()
		e.mu.Unlock()
		select {
		case <-ch:
		case <-s.ctx.Done():
			e.mu.Lock()
			desc = t.fn.format(t.args)
			return fail(s.ctx.Err())
		}
		e.mu.Lock()
		if s.closed {
			desc = t.fn.format(t.args)
			return fail(ErrScopeDone)
		}
	}
	e.inflight++
	e.inbytes += len(t.args)
	s.pending++
	t.queued = trace.Now()
	e.queue = append(e.queue, t)
	if e.running < e.slots {
		e.running++
		e.wg.Add(1)
		go e.execLoop()
	}
	if q := e.queued(); q == 1 || q >= e.wantN {
		e.work.wake()
	}
	e.mu.Unlock()
	return nil
}

// wait waits until every task of s has finished, or ctx ends.
func (e *engine) wait(s *Scope) error {
	e.mu.Lock()
	for s.pending > 0 {
		ch := s.done.wait()
		e.mu.Unlock()
		select {
		case <-ch:
		case <-s.ctx.Done():
			e.cancel(s, s.ctx.Err())
			return s.ctx.Err()
		}
		e.mu.Lock()
	}
	s.closed = true
	e.mu.Unlock()
	return nil
}

// cancel ends s early: its queued tasks are dropped (their futures fail
// with err); tasks already running finish unseen.
func (e *engine) cancel(s *Scope, err error) {
	e.mu.Lock()
	s.closed = true
	var dropped []*task
	kept := e.queue[:e.qhead]
	for _, t := range e.queue[e.qhead:] {
		if t.sc == s {
			dropped = append(dropped, t)
			t.claim = true
			e.inflight--
			e.inbytes -= len(t.args)
			s.pending--
		} else {
			kept = append(kept, t)
		}
	}
	clear(e.queue[len(kept):])
	e.queue = kept
	e.space.wake()
	e.mu.Unlock()
	for _, t := range dropped {
		if t.sink != nil {
			t.sink.settle(err)
		}
	}
}

// outcome is what running one task produced.
type outcome struct {
	res, wb []byte
	err     error
	msg     string // a remote panic's message
	wire    []byte // a returned error's description (encodeErr)
	status  byte
	stack   string
	ns      int64
}

// Result statuses on the wire.
const (
	stOK = iota
	stErr
	stPanic
	stUnknown // the function is not registered on that rank
)

// runTask runs one task, turning a panic into a failed outcome.
func runTask(fn *entry, args []byte) (o outcome) {
	start := time.Now()
	t0 := trace.Now()
	defer func() {
		if p := recover(); p != nil {
			msg, stack := panicMessage(p)
			o = outcome{status: stPanic, err: errors.New(msg), stack: stack}
		}
		o.ns = time.Since(start).Nanoseconds()
		traceTask(fn, t0, o.status != stOK)
	}()
	o.res, o.wb, o.err = fn.run(args)
	if o.err != nil {
		o.status = stErr
		o.wire = encodeErr(o.err)
	}
	return o
}

// execLoop runs queued tasks on this process until the queue is empty.
func (e *engine) execLoop() {
	defer e.wg.Done()
	for {
		e.mu.Lock()
		if e.queued() == 0 {
			e.running--
			e.mu.Unlock()
			return
		}
		n := e.batchSize()
		ts := e.take(n)
		for _, t := range ts {
			t.claim = true
		}
		e.mu.Unlock()
		outs := make([]outcome, len(ts))
		for i, t := range ts {
			outs[i] = runTask(t.fn, t.args)
			t.fn.observe(outs[i].ns)
		}
		e.settle(ts, outs, e.rank)
	}
}

// settle records finished tasks (already claimed): decodes results,
// completes futures, and counts them done.
func (e *engine) settle(ts []*task, outs []outcome, rank int) {
	for i, t := range ts {
		o := &outs[i]
		t.rank = rank
		if o.status != stOK {
			err := o.err
			switch {
			case o.status == stUnknown:
				err = fmt.Errorf("%w: %s", ErrNotRegistered, t.fn.name)
			case o.status == stErr:
				// The same trip in every mode, so that errors.Is and
				// errors.As do not depend on where the task ran.
				err = decodeErr(o.wire, rank)
			case err == nil:
				err = errors.New(o.msg)
			}
			t.err = &TaskError{Task: t.idx, Func: t.fn.name, Args: t.fn.format(t.args), Rank: rank,
				Panic: o.status == stPanic, Stack: o.stack, Err: err}
		} else {
			if t.sink != nil {
				if err := t.sink.deliver(o.res); err != nil {
					t.err = &TaskError{Task: t.idx, Func: t.fn.name, Args: t.fn.format(t.args), Rank: rank,
						Err: fmt.Errorf("decoding the result: %w", err)}
				}
			}
			if t.err == nil && len(o.wb) > 0 {
				t.wb = o.wb
			}
		}
		if t.sink != nil {
			t.sink.settle(t.err)
		}
	}
	e.mu.Lock()
	var scopes []*Scope
	for _, t := range ts {
		traceSettled(t)
		e.inflight--
		e.inbytes -= len(t.args)
		t.args = nil
		s := t.sc
		if t.err != nil || t.wb != nil {
			s.recs[t.idx].x = &extra{err: t.err, wb: t.wb, orig: t.orig}
		}
		s.pending--
		s.ndone++
		if s.pending == 0 {
			s.done.wake()
		}
		if s.prog != nil && (len(scopes) == 0 || scopes[len(scopes)-1] != s) {
			scopes = append(scopes, s)
		}
	}
	e.space.wake()
	e.work.wake()
	type count struct {
		p           *progress
		done, total int
	}
	counts := make([]count, len(scopes))
	for i, s := range scopes {
		counts[i] = count{s.prog, s.ndone, len(s.recs)}
	}
	e.mu.Unlock()
	for _, c := range counts {
		c.p.update(c.done, c.total)
	}
}
