package cluster_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestExampleHeat2D: the 2-D heat equation on a Cartesian grid of 4 and 6
// ranks gives, value for value, what one rank computes alone (the steps,
// the last change and a digest of every point of the plate).
func TestExampleHeat2D(t *testing.T) {
	serial := runExample(t, "heat2d", 1, "-size", "36")
	if !strings.HasPrefix(serial, "36x36 plate: ") || !strings.Contains(serial, "digest") {
		t.Fatalf("serial run: %q", serial)
	}
	for _, n := range []int{4, 6} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			if got := runExample(t, "heat2d", n, "-size", "36"); got != serial {
				t.Errorf("on %d ranks: %q; alone: %q", n, got, serial)
			}
		})
	}
}
