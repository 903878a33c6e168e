// Command overlap solves −u″ = 1 on (0, 1) with u(0) = u(1) = 0 by Jacobi
// iteration on -points interior grid points split into blocks over the
// ranks, and overlaps communication with computation in two ways:
//
//   - the halo exchange (Isend and Irecv of each block's edge values with
//     the neighbouring ranks) goes on while the rank updates the points
//     that do not need the halo;
//   - the convergence test is one step behind: the Iallreduce that sums the
//     ranks' squared residuals of step k runs in the background during
//     step k+1 (its halo exchange and its sweep), and is waited for only
//     at the end of step k+1.
//
// The iteration stops once the root-mean-square residual of a step is below
// -tol (one step later than a blocking test would, the price of the
// overlap) or after -steps steps. Rank 0 prints the number of steps, that
// residual, and the sum and middle value of the solution gathered from
// every rank. Each point's update is the same expression on any number of
// ranks, so the solution is bit for bit the serial one.
//
//	go run ./cmd/decorun -n 4 ./examples/overlap
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"math"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

func main() {
	points := flag.Int("points", 40, "interior grid points")
	tol := flag.Float64("tol", 1e-6, "stop once the RMS residual of a step is below this")
	steps := flag.Int("steps", 100_000, "at most this many steps")
	flag.Parse()
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := run(ctx, c, *points, *tol, *steps); err != nil {
		log.Fatal(err)
	}
}

// Message tags of the halo exchange: a value travelling to the right-hand
// neighbour, and one travelling to the left-hand one.
const (
	toRight = 1
	toLeft  = 2
)

// update is the Jacobi update of a point of value u between ul and ur on
// a grid of spacing² h2, and the point's residual 1 + u″.
func update(ul, u, ur, h2 float64) (next, res float64) {
	res = 1 + (ul-2*u+ur)/h2
	return u + h2/2*res, res
}

func run(ctx context.Context, c *comm.Comm, n int, tol float64, maxSteps int) error {
	p, me := c.Size(), c.Rank()
	if n < p {
		return fmt.Errorf("rank %d: -points %d is fewer than the %d ranks", me, n, p)
	}
	lo, hi := me*n/p, (me+1)*n/p // this rank's points
	m := hi - lo
	h := 1 / float64(n+1)
	h2 := h * h
	// u[0] and u[m+1] are the halo (or the boundary value 0), u[1..m] this
	// rank's points.
	u, next := make([]float64, m+2), make([]float64, m+2)
	left, right := me-1, me+1
	var prev *collectives.Request[float64] // the residual of the step before
	steps, residual := 0, math.Inf(1)
	for steps < maxSteps {
		// Start the halo exchange.
		var reqs []*comm.Request
		var fromLeft, fromRight *comm.Request
		var err error
		if left >= 0 {
			if fromLeft, err = c.Irecv(left, toRight); err != nil {
				return err
			}
			q, err := c.Isend(left, toLeft, f64(u[1]))
			if err != nil {
				return err
			}
			reqs = append(reqs, q)
		}
		if right < p {
			if fromRight, err = c.Irecv(right, toLeft); err != nil {
				return err
			}
			q, err := c.Isend(right, toRight, f64(u[m]))
			if err != nil {
				return err
			}
			reqs = append(reqs, q)
		}
		// Update the points that need no halo meanwhile.
		local := 0.0
		for i := 2; i < m; i++ {
			var r float64
			next[i], r = update(u[i-1], u[i], u[i+1], h2)
			local += r * r
		}
		// Then the edge points.
		for _, q := range append(reqs, fromLeft, fromRight) {
			if q == nil {
				continue
			}
			if _, err := q.Wait(ctx); err != nil {
				return err
			}
		}
		if fromLeft != nil {
			u[0] = fromF64(fromLeft.Data())
		}
		if fromRight != nil {
			u[m+1] = fromF64(fromRight.Data())
		}
		for _, i := range edges(m) {
			var r float64
			next[i], r = update(u[i-1], u[i], u[i+1], h2)
			local += r * r
		}
		u, next = next, u
		steps++
		// The residual of the step before, summed while this step ran.
		if prev != nil {
			sum, err := prev.Wait(ctx)
			if err != nil {
				return err
			}
			prev = nil
			if residual = math.Sqrt(sum / float64(n)); residual < tol {
				break
			}
		}
		prev = collectives.Iallreduce(ctx, c, local, collectives.Sum)
	}
	if prev != nil { // -steps ran out with a sum in flight
		sum, err := prev.Wait(ctx)
		if err != nil {
			return err
		}
		residual = math.Sqrt(sum / float64(n))
	}
	parts, err := collectives.Gatherv(ctx, c, u[1:m+1], 0)
	if err != nil || me != 0 {
		return err
	}
	var all []float64
	for _, part := range parts {
		all = append(all, part...)
	}
	fmt.Println(report(n, p, steps, residual, all))
	return nil
}

// report is the line rank 0 prints.
func report(n, p, steps int, residual float64, u []float64) string {
	sum := 0.0
	for _, x := range u {
		sum += x
	}
	return fmt.Sprintf("jacobi: %d points on %d ranks: %d steps, rms residual %.3e, sum(u) = %.15e, u(%d) = %.15e",
		n, p, steps, residual, sum, n/2, u[n/2])
}

// edges are the indices of a block's first and last points (one index for
// a block of one point).
func edges(m int) []int {
	if m == 1 {
		return []int{1}
	}
	return []int{1, m}
}

func f64(x float64) []byte { return binary.LittleEndian.AppendUint64(nil, math.Float64bits(x)) }

func fromF64(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) }
