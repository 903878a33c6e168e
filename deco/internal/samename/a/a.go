// Package a holds a function named like one in package b, for deco's
// registration tests.
package a

import "github.com/decorun/decorun/deco"

// Work adds one.
func Work(n int) int { return n + 1 }

// F is Work, wrapped.
var F = deco.Concurrent(Work)
