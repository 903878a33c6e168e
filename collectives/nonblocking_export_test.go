package collectives

// Workers is the number of communicators with a progress goroutine
// running or about to start.
var Workers = workers

// Ahead reports whether a request's call was posted in its communicator's
// region when it started.
func Ahead[T any](q *Request[T]) bool { return q.ahead }

// Complete reports whether a request's call is complete, without
// finishing it as Test may.
func Complete[T any](q *Request[T]) bool { return q.complete.Load() }
