package deco

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// task is one issued call, alive until it has finished.
type task struct {
	sc    *Scope
	idx   int // issue index in the block
	fn    *entry
	args  []byte // encoded arguments
	orig  []any  // the caller's arguments that can carry writes back
	claim bool   // guarded by e.mu: an executor or a link took it
	sink  sink   // what to do with the result; nil: drop it

	// tracing (trace.go): when it was queued (0: not tracing), and
	// whether it was put back after its worker was lost (guarded by e.mu)
	queued  int64
	retried bool

	// written by whoever finishes the task, before it is counted done
	rank int
	err  error
	wb   []byte // encoded write-backs
}

// sink receives a task's result: deliver when it arrives (on the
// finishing goroutine), settle once the outcome is known, apply at the end
// of the block (on the caller's goroutine).
type sink interface {
	deliver(res []byte) error
	settle(err error)
	apply()
}

// rec is what a block keeps of a task until its end: small, because a
// block may issue millions.
type rec struct {
	sink sink
	x    *extra // nil unless the task failed or has write-backs
}

type extra struct {
	err  error
	wb   []byte
	orig []any
}

// Scope is a synchronized block in progress: the handle through which the
// body issues tasks (f.Assign(s, ...), f.Then, f.Go, f.Future). It is used
// by the goroutine running the body; issuing from other goroutines is safe
// but their order is then the order the calls happen.
type Scope struct {
	e     *engine
	ctx   context.Context
	start time.Time
	prog  *progress

	// guarded by e.mu
	recs    []rec // one per issued task, in issue order
	pending int   // issued and not finished
	ndone   int
	closed  bool
	done    notifier // pending reached 0
}

// Synchronized runs body, which issues concurrent calls through the Scope
// it is given, then waits for every task it issued and applies their
// results and write-backs in issue order (see the package doc). It returns
// the failed tasks' errors joined (each a *TaskError), or ctx.Err() if ctx
// ends first: then tasks not yet started are dropped and nothing is
// applied. Tasks run on the ranks of the Run (or Main) whose context ctx
// comes from, or on a goroutine pool if there is none; under decorun with
// more than one rank a ctx without Run is an error wrapping ErrNoRun (and
// body does not run).
func Synchronized(ctx context.Context, body func(s *Scope)) error {
	if _, ok := ctx.Value(engineKey{}).(*engine); !ok {
		if err := checkNoRun(); err != nil {
			return err
		}
	}
	e := engineFrom(ctx)
	if e.isStopped() {
		return ErrStopped
	}
	s := &Scope{e: e, ctx: ctx, start: time.Now(), prog: newProgress(e.progress)}
	ok := false
	defer func() {
		if !ok { // body panicked: drop its tasks, let the panic go on
			e.cancel(s, errors.New("deco: synchronized body panicked"))
		}
	}()
	body(s)
	ok = true
	if err := e.wait(s); err != nil {
		s.prog.finish()
		return err
	}
	s.prog.finish()
	var errs []error
	for i, r := range s.recs {
		if r.x != nil && r.x.err != nil {
			errs = append(errs, r.x.err)
			continue
		}
		if r.sink != nil {
			r.sink.apply()
		}
		if r.x != nil && r.x.wb != nil {
			if err := applyWriteBack(r.x.orig, r.x.wb); err != nil {
				errs = append(errs, fmt.Errorf("deco: task %d: %w", i, err))
			}
		}
	}
	return errors.Join(errs...)
}

type assignSink[R any] struct {
	dst *R
	v   R
}

func (a *assignSink[R]) deliver(b []byte) error { return decode(b, &a.v) }
func (a *assignSink[R]) settle(error)           {}
func (a *assignSink[R]) apply()                 { *a.dst = a.v }

type thenSink[R any] struct {
	fn func(R)
	v  R
}

func (t *thenSink[R]) deliver(b []byte) error { return decode(b, &t.v) }
func (t *thenSink[R]) settle(error)           {}
func (t *thenSink[R]) apply()                 { t.fn(t.v) }

func (f *Future[R]) deliver(b []byte) error { return decode(b, &f.v) }
func (f *Future[R]) settle(err error)       { f.err = err; close(f.done) }
func (f *Future[R]) apply()                 {}

// describe renders a call's arguments for an error at the call (and only
// then: rendering every call would cost more than the call).
func describe(err error, vals ...any) string {
	if err == nil {
		return ""
	}
	return fmtArgs(vals...)
}

func assign[R any](s *Scope, e *entry, args []byte, orig []any, err error, desc string, dst *R) error {
	var sk sink
	if dst != nil {
		sk = &assignSink[R]{dst: dst}
	}
	return s.issue(&task{fn: e, args: args, orig: orig, sink: sk}, err, desc)
}

func then[R any](s *Scope, e *entry, args []byte, orig []any, err error, desc string, fn func(R)) error {
	var sk sink
	if fn != nil {
		sk = &thenSink[R]{fn: fn}
	}
	return s.issue(&task{fn: e, args: args, orig: orig, sink: sk}, err, desc)
}

func future[R any](s *Scope, e *entry, args []byte, orig []any, err error, desc string) *Future[R] {
	f := &Future[R]{done: make(chan struct{})}
	s.issue(&task{fn: e, args: args, orig: orig, sink: f}, err, desc)
	return f
}

// Future is the result of a task issued with Future.
type Future[R any] struct {
	done chan struct{}
	v    R
	err  error
}

// Wait blocks until the task has finished (on whichever rank) or ctx ends,
// and returns its result or error. It may be called inside the block or
// after it, any number of times, from any goroutine. The task's
// write-backs are applied at the end of the block, not here.
func (f *Future[R]) Wait(ctx context.Context) (R, error) {
	select {
	case <-f.done:
		return f.v, f.err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// Done is closed when the task has finished.
func (f *Future[R]) Done() <-chan struct{} { return f.done }
