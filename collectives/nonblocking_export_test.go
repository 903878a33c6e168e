package collectives

// Workers is the number of communicators whose nonblocking-call worker is
// running.
var Workers = workers

// Ahead reports whether a request's call was posted in its communicator's
// region when it started.
func Ahead[T any](q *Request[T]) bool { return q.ahead }
