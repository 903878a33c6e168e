package cluster_test

import (
	"fmt"
	"math"
	"testing"
)

// jacobi is examples/overlap computed serially: the same update of each
// point, the same convergence test one step behind, the same report line.
func jacobi(n, p int, tol float64, maxSteps int) string {
	h := 1 / float64(n+1)
	h2 := h * h
	u, next := make([]float64, n+2), make([]float64, n+2)
	steps, residual := 0, math.Inf(1)
	prev, have := 0.0, false
	stopped := false
	for steps < maxSteps {
		local := 0.0
		for i := 1; i <= n; i++ {
			res := 1 + (u[i-1]-2*u[i]+u[i+1])/h2
			next[i] = u[i] + h2/2*res
			local += res * res
		}
		u, next = next, u
		steps++
		if have {
			if residual = math.Sqrt(prev / float64(n)); residual < tol {
				stopped = true
				break
			}
		}
		prev, have = local, true
	}
	if !stopped && have {
		residual = math.Sqrt(prev / float64(n))
	}
	sum := 0.0
	for _, x := range u[1 : n+1] {
		sum += x
	}
	return fmt.Sprintf("jacobi: %d points on %d ranks: %d steps, rms residual %.3e, sum(u) = %.15e, u(%d) = %.15e\n",
		n, p, steps, residual, sum, n/2, u[1+n/2])
}

// TestExampleOverlap runs the Jacobi example, whose halo exchange overlaps
// an Iallreduce of the previous step's residual, and checks its report
// against the serial computation: the solution bit for bit, the step
// count, and the residual to the digits printed.
func TestExampleOverlap(t *testing.T) {
	for _, tc := range []struct {
		n, points int
		tol       float64
		steps     int
	}{
		{1, 40, 1e-6, 100_000},
		{3, 40, 1e-6, 100_000},
		{8, 20, 1e-5, 100_000},
		{8, 9, 1e-6, 100_000}, // blocks of one and two points
		{4, 40, 1e-12, 50},    // stops at -steps with a sum in flight
	} {
		t.Run(fmt.Sprint(tc.n, "x", tc.points, "-", tc.steps), func(t *testing.T) {
			got := runExample(t, "overlap", tc.n, "-points", fmt.Sprint(tc.points), "-tol", fmt.Sprint(tc.tol), "-steps", fmt.Sprint(tc.steps))
			if want := jacobi(tc.points, tc.n, tc.tol, tc.steps); got+"\n" != want && got != want {
				t.Errorf("output\n%s\nwant (serial)\n%s", got, want)
			}
		})
	}
}
