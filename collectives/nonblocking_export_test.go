package collectives

import "time"

// Workers is the number of communicators with a progress goroutine
// running or about to start.
var Workers = workers

// Ahead reports whether a request's call was posted in its communicator's
// region when it started.
func Ahead[T any](q *Request[T]) bool { return q.ahead }

// Complete reports whether a request's call is complete, without
// finishing it as Test may.
func Complete[T any](q *Request[T]) bool { return q.complete.Load() }

// HoldProgress keeps posted small calls from the progress goroutine (its
// timer) until release is called, which sets the timers that are armed
// to fire at once.
func HoldProgress() (release func()) {
	enginesMu.Lock()
	old := progressDelay
	progressDelay = time.Hour
	enginesMu.Unlock()
	return func() {
		enginesMu.Lock()
		defer enginesMu.Unlock()
		progressDelay = old
		for _, e := range engines {
			for i := range e.jobs {
				e.jobs[i].at = time.Time{}
			}
			if e.armed {
				e.timer.Reset(0)
			}
		}
	}
}

// SetProgressDelay sets how long after it started a posted call that
// nobody finished is given to the progress goroutine, until restore.
func SetProgressDelay(d time.Duration) (restore func()) {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	old := progressDelay
	progressDelay = d
	return func() {
		enginesMu.Lock()
		defer enginesMu.Unlock()
		progressDelay = old
	}
}

// Due reports whether a request's call has been given to the progress
// goroutine.
func Due[T any](q *Request[T]) bool { return q.bg.Load() }
