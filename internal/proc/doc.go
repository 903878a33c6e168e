// Package proc is the launcher's process plumbing: it starts a program as
// the leader of its own process group with a parent-death signal, signals the
// whole group without ever hitting a recycled process id, reports how the
// process ended, and copies output line by line without mixing lines of
// different writers.
//
// It is Linux only.
package proc
