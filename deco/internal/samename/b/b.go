// Package b holds a function named like one in package a, for deco's
// registration tests.
package b

import "github.com/decorun/decorun/deco"

// Work doubles.
func Work(n int) int { return 2 * n }

// F is Work, wrapped.
var F = deco.Concurrent(Work)
