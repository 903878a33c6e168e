package collectives

// Workers is the number of communicators whose nonblocking-call worker is
// running.
var Workers = workers
