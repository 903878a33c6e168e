// Command heat2d solves the steady 2-D heat equation on a square plate by
// Jacobi iteration, on a Cartesian grid of ranks: the plate's top edge is
// held at 1, the others at 0. Each rank owns a block of the plate,
// exchanges its edges with its four neighbours every step (Shift and
// Sendrecv; ProcNull past the plate's edges, so the boundary ranks need no
// special case) and the ranks agree on convergence with an Allreduce of
// the largest change. Rank 0 gathers the plate and prints the number of
// steps, the last change and a digest of every value, which are the same
// on any number of ranks (each point is computed by the same arithmetic).
//
//	go run ./cmd/decorun -n 6 ./examples/heat2d
//	go run ./cmd/decorun -n 6 ./examples/heat2d -size 120 -tol 1e-5
package main

import (
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"log"
	"math"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

func main() {
	size := flag.Int("size", 48, "points along each side of the plate (interior)")
	tol := flag.Float64("tol", 1e-4, "stop when no point changes by more than this in a step")
	maxSteps := flag.Int("steps", 20000, "stop after this many steps")
	flag.Parse()
	ctx := context.Background()
	c, err := comm.Init(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := run(ctx, c, *size, *tol, *maxSteps); err != nil {
		log.Fatal(err)
	}
}

// block is a rank's part of the plate, rows × cols interior points with a
// halo of one point on every side, row-major.
type block struct {
	rows, cols int
	r0, c0     int // its first interior point's place on the plate
	u, next    []float64
}

func (b *block) at(i, j int) int { return (i+1)*(b.cols+2) + j + 1 }

func run(ctx context.Context, c *comm.Comm, n int, tol float64, maxSteps int) error {
	dims, err := comm.DimsCreate(c.Size(), []int{0, 0})
	if err != nil {
		return err
	}
	g, err := comm.CartCreate(ctx, c, dims, []bool{false, false}, true)
	if err != nil {
		return err
	}
	defer g.Close()
	co, _ := g.Coords(g.Rank())
	b := newBlock(n, dims, co)
	up, down, _ := g.Shift(0, 1)
	left, right, _ := g.Shift(1, 1)
	if up == comm.ProcNull { // the plate's top edge, held at 1
		for j := -1; j <= b.cols; j++ {
			b.u[b.at(-1, j)], b.next[b.at(-1, j)] = 1, 1
		}
	}
	col := make([]float64, b.rows)
	steps, change := 0, math.Inf(1)
	for steps < maxSteps && change > tol {
		// Halo exchange: rows go up and down, columns left and right.
		top := b.u[b.at(0, 0) : b.at(0, 0)+b.cols]
		bottom := b.u[b.at(b.rows-1, 0) : b.at(b.rows-1, 0)+b.cols]
		if err := exchange(ctx, g, top, up, b.u[b.at(b.rows, 0):], down); err != nil {
			return err
		}
		if err := exchange(ctx, g, bottom, down, b.u[b.at(-1, 0):], up); err != nil {
			return err
		}
		for _, side := range []struct{ send, recv, to, from int }{{0, b.cols, left, right}, {b.cols - 1, -1, right, left}} {
			for i := range b.rows {
				col[i] = b.u[b.at(i, side.send)]
			}
			in, _, err := comm.SendrecvValue[[]float64](ctx, g, col, side.to, 1, side.from, 1)
			if err != nil {
				return err
			}
			for i, v := range in {
				b.u[b.at(i, side.recv)] = v
			}
		}
		local := 0.0
		for i := range b.rows {
			for j := range b.cols {
				k := b.at(i, j)
				v := 0.25 * (b.u[k-1] + b.u[k+1] + b.u[k-b.cols-2] + b.u[k+b.cols+2])
				local = math.Max(local, math.Abs(v-b.u[k]))
				b.next[k] = v
			}
		}
		b.u, b.next = b.next, b.u
		if change, err = collectives.Allreduce(ctx, g, local, collectives.Max); err != nil {
			return err
		}
		steps++
	}
	return report(ctx, g, b, n, steps, change)
}

// exchange sends row to dst and receives its neighbour's row from src into
// into[:len(row)].
func exchange(ctx context.Context, g *comm.Comm, row []float64, dst int, into []float64, src int) error {
	in, _, err := comm.SendrecvValue[[]float64](ctx, g, row, dst, 0, src, 0)
	copy(into[:len(row)], in)
	return err
}

func newBlock(n int, dims, co []int) *block {
	b := &block{}
	b.r0, b.rows = split(n, dims[0], co[0])
	b.c0, b.cols = split(n, dims[1], co[1])
	b.u = make([]float64, (b.rows+2)*(b.cols+2))
	b.next = make([]float64, len(b.u))
	return b
}

// split gives part k of n points in p parts: its start and length.
func split(n, p, k int) (start, length int) {
	return k * n / p, (k+1)*n/p - k*n/p
}

// report gathers the plate at rank 0 and prints the result.
func report(ctx context.Context, g *comm.Comm, b *block, n, steps int, change float64) error {
	mine := []float64{float64(b.r0), float64(b.c0), float64(b.rows), float64(b.cols)}
	for i := range b.rows {
		mine = append(mine, b.u[b.at(i, 0):b.at(i, 0)+b.cols]...)
	}
	parts, err := collectives.Gatherv(ctx, g, mine, 0)
	if err != nil || g.Rank() != 0 {
		return err
	}
	plate := make([]float64, n*n)
	for _, p := range parts {
		r0, c0, rows, cols := int(p[0]), int(p[1]), int(p[2]), int(p[3])
		for i := range rows {
			copy(plate[(r0+i)*n+c0:], p[4+i*cols:4+(i+1)*cols])
		}
	}
	h := fnv.New64a()
	for _, v := range plate {
		fmt.Fprintf(h, "%x", math.Float64bits(v))
	}
	fmt.Printf("%dx%d plate: %d steps, last change %.3g, centre %.6f, digest %016x\n",
		n, n, steps, change, plate[(n/2)*n+n/2], h.Sum64())
	return nil
}
