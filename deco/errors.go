package deco

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
)

// Errors of this package. Test for them with errors.Is.
var (
	// ErrEncode: an argument or result could not be encoded.
	ErrEncode = errors.New("deco: cannot encode")
	// ErrType: an argument or result type cannot travel between ranks (a
	// channel, a function, an unexported struct field); every call of
	// such a function fails with it, in every mode.
	// It is also an ErrEncode.
	ErrType error = typeError{}
	// ErrNotRegistered: a rank was asked to run a function that was not
	// wrapped (Concurrent and friends) in the same order on that rank.
	ErrNotRegistered = errors.New("deco: function not registered")
	// ErrScopeDone: a task was issued on a Scope whose block has ended.
	ErrScopeDone = errors.New("deco: synchronized block has ended")
	// ErrStopped: Synchronized was called with a context from Run after
	// Run returned.
	ErrStopped = errors.New("deco: Run has returned")
)

type typeError struct{}

func (typeError) Error() string        { return "deco: type cannot travel between ranks" }
func (typeError) Is(target error) bool { return target == ErrEncode }

// TaskError is one failed task of a synchronized block.
type TaskError struct {
	Task  int    // index of the task in its block, in issue order, from 0
	Func  string // the function's registered name
	Args  string // the arguments, as fmt prints them (shortened)
	Rank  int    // the rank that ran it; -1 if it failed at the call
	Panic bool   // the task panicked
	Stack string // the panicking goroutine's stack (only when it ran in this process)
	Err   error  // what went wrong; across ranks only the message travels
}

func (e *TaskError) Error() string {
	what := fmt.Sprintf("deco: task %d %s(%s)", e.Task, shortName(e.Func), e.Args)
	if e.Rank >= 0 {
		what += fmt.Sprintf(" on rank %d", e.Rank)
	}
	if e.Panic {
		return what + ": panic: " + e.Err.Error()
	}
	return what + ": " + e.Err.Error()
}

func (e *TaskError) Unwrap() error { return e.Err }

// shortName drops the package path's directories: "github.com/x/fib.work"
// becomes "fib.work".
func shortName(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// panicMessage renders a recovered panic value with the line that panicked.
func panicMessage(p any) (msg, stack string) {
	msg = fmt.Sprint(p)
	pcs := make([]uintptr, 32)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "runtime.") && f.File != "" {
			msg += fmt.Sprintf(" (at %s:%d)", f.File, f.Line)
			break
		}
		if !more {
			break
		}
	}
	buf := make([]byte, 16<<10)
	return msg, string(buf[:runtime.Stack(buf, false)])
}
