package deco

import (
	"context"
	"errors"
	"time"
)

// task is one issued call. Fields after the first group are written by
// whoever finishes it (an executor or the result receiver) and read at the
// end of the block, after the engine's mutex orders the two.
type task struct {
	sc     *Scope
	idx    int // issue index in the block
	fn     *entry
	args   []byte // encoded arguments; nil once finished
	orig   []any  // the caller's arguments that can carry writes back
	claim  bool   // guarded by e.mu: an executor or a result took it
	render func() string

	deliver func(res []byte) error // decodes the result (completion time)
	apply   func()                 // assignment or Then callback (end of block)
	settle  func(err error)        // completes a future (completion time)

	rank int
	err  error
	wb   []byte // encoded write-backs
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
	tasks   []*task
	pending int // issued and not finished
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
// comes from, or on a goroutine pool if there is none.
func Synchronized(ctx context.Context, body func(s *Scope)) error {
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
	for _, t := range s.tasks {
		if t.err != nil {
			errs = append(errs, t.err)
			continue
		}
		if t.apply != nil {
			t.apply()
		}
		if t.wb != nil {
			if err := applyWriteBack(t.orig, t.wb); err != nil {
				errs = append(errs, &TaskError{Task: t.idx, Func: t.fn.name, Args: t.render(), Rank: t.rank, Err: err})
			}
		}
	}
	return errors.Join(errs...)
}

func assign[R any](s *Scope, e *entry, args []byte, orig []any, err error, dst *R, render func() string) error {
	var v R
	t := &task{fn: e, args: args, orig: orig, render: render,
		deliver: func(b []byte) error { return decode(b, &v) }}
	if dst != nil {
		t.apply = func() { *dst = v }
	}
	return s.issue(t, err)
}

func then[R any](s *Scope, e *entry, args []byte, orig []any, err error, fn func(R), render func() string) error {
	t := &task{fn: e, args: args, orig: orig, render: render}
	if fn != nil {
		var v R
		t.deliver = func(b []byte) error { return decode(b, &v) }
		t.apply = func() { fn(v) }
	}
	return s.issue(t, err)
}

func future[R any](s *Scope, e *entry, args []byte, orig []any, err error, render func() string) *Future[R] {
	f := &Future[R]{done: make(chan struct{})}
	t := &task{fn: e, args: args, orig: orig, render: render,
		deliver: func(b []byte) error { return decode(b, &f.v) },
		settle: func(err error) {
			f.err = err
			close(f.done)
		}}
	s.issue(t, err)
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
