package comm

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"

	"github.com/decorun/decorun/internal/agree"
)

// Cartesian topologies (MPI_Cart_create and the calls around it): a
// communicator whose ranks form a grid, in row-major order (the last
// dimension varies fastest), periodic or not in each dimension. A stencil
// code asks it for its coordinates and for its neighbours along each
// dimension, which are ProcNull past a non-periodic edge:
//
//	dims, _ := comm.DimsCreate(c.Size(), []int{0, 0}) // e.g. 8 → [4 2]
//	grid, err := comm.CartCreate(ctx, c, dims, []bool{false, false}, true)
//	up, down, _ := grid.Shift(0, 1)
//	halo, _, err := grid.Sendrecv(ctx, myRow, down, 0, up, 0)

// cart is a communicator's grid.
type cart struct {
	dims    []int
	periods []bool
}

// DimsCreate returns a grid shape for nnodes ranks (MPI_Dims_create): the
// entries of dims that are not 0 are kept, the zeros are filled so that
// the product of all entries is nnodes, as close to each other as
// possible, in non-increasing order. It is an error when the fixed entries
// do not divide nnodes, or an entry is negative.
func DimsCreate(nnodes int, dims []int) ([]int, error) {
	if nnodes < 1 {
		return nil, fmt.Errorf("comm: DimsCreate: %d nodes", nnodes)
	}
	out := slices.Clone(dims)
	fixed, free := 1, 0
	for i, d := range out {
		switch {
		case d < 0:
			return nil, fmt.Errorf("comm: DimsCreate: dims[%d] = %d is negative", i, d)
		case d == 0:
			free++
		default:
			fixed *= d
		}
	}
	if nnodes%fixed != 0 {
		return nil, fmt.Errorf("comm: DimsCreate: the fixed dimensions %v (product %d) do not divide %d nodes", dims, fixed, nnodes)
	}
	rest := nnodes / fixed
	if free == 0 {
		if rest != 1 {
			return nil, fmt.Errorf("comm: DimsCreate: dims %v multiply to %d, not %d", dims, fixed, nnodes)
		}
		return out, nil
	}
	// The prime factors of rest, largest first, each to the free
	// dimension with the smallest product so far.
	var primes []int
	for f, x := 2, rest; x > 1; {
		if f*f > x {
			primes = append(primes, x)
			break
		}
		if x%f == 0 {
			primes = append(primes, f)
			x /= f
		} else {
			f++
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(primes)))
	fill := make([]int, free)
	for i := range fill {
		fill[i] = 1
	}
	for _, p := range primes {
		min := 0
		for i := range fill {
			if fill[i] < fill[min] {
				min = i
			}
		}
		fill[min] *= p
	}
	sort.Sort(sort.Reverse(sort.IntSlice(fill)))
	k := 0
	for i := range out {
		if out[i] == 0 {
			out[i] = fill[k]
			k++
		}
	}
	return out, nil
}

// CartCreate makes a communicator of c's ranks laid out as a grid of dims
// (MPI_Cart_create), periodic in dimension i when periods[i]. It is a
// collective call on c; every rank must pass the same dims and periods
// (else an error on every rank naming two ranks). The grid needs
// product(dims) ranks: c's ranks beyond that get a nil communicator. With
// reorder, the ranks of one host get neighbouring places in the grid
// (consecutive ranks, so neighbours along the last dimension), which keeps
// more halo exchanges in shared memory; without it, rank i of the grid is
// rank i of c.
func CartCreate(ctx context.Context, c *Comm, dims []int, periods []bool, reorder bool) (*Comm, error) {
	if err := c.alive("CartCreate"); err != nil {
		return nil, err
	}
	bad := checkGrid(c, dims, periods)
	typ := gridHash(dims, periods)
	if bad != nil {
		typ = -1
	}
	sum, err := c.agree(ctx, agree.CartCreate, typ, false)
	if err != nil {
		return nil, err
	}
	if err := gridAgreed("CartCreate", "dims or periods", sum, bad); err != nil {
		return nil, err
	}
	n := 1
	for _, d := range dims {
		n *= d
	}
	color, key := 0, c.rank
	if c.rank >= n {
		color = Undefined
	}
	if reorder {
		key = c.hostKey()*c.size + c.rank
	}
	nc, err := c.splitAgreed(ctx, color, key)
	if err != nil || nc == nil {
		return nil, err
	}
	nc.topo = &cart{dims: slices.Clone(dims), periods: slices.Clone(periods)}
	return nc, nil
}

// hostKey orders hosts for CartCreate's reorder: the lowest world rank on
// this rank's host (its own when unknown).
func (c *Comm) hostKey() int {
	w := c.toWorld(c.rank)
	for _, r := range c.job.HostRanks {
		w = min(w, r)
	}
	return w
}

// checkGrid is the local check of CartCreate's arguments.
func checkGrid(c *Comm, dims []int, periods []bool) error {
	if len(dims) == 0 || len(periods) != len(dims) {
		return fmt.Errorf("comm: CartCreate: rank %d passed %d dims and %d periods (want at least 1, the same number)",
			c.rank, len(dims), len(periods))
	}
	n := 1
	for i, d := range dims {
		if d < 1 {
			return fmt.Errorf("comm: CartCreate: rank %d passed dims[%d] = %d", c.rank, i, d)
		}
		n *= d
		if n > c.size {
			return fmt.Errorf("comm: CartCreate: rank %d passed dims %v, more than the communicator's %d ranks", c.rank, dims, c.size)
		}
	}
	return nil
}

// gridHash identifies dims and periods for the agreement step.
func gridHash(dims []int, periods []bool) int64 {
	h := fnv.New64a()
	fmt.Fprint(h, dims, periods)
	return int64(h.Sum64() >> 1)
}

// gridAgreed turns the agreement's view of the ranks' grids into the error
// every rank returns: a rank whose arguments were bad (its own error there)
// or two ranks that passed different grids.
func gridAgreed(op, what string, sum agree.Summary, bad error) error {
	f := sum[agree.FType]
	switch {
	case bad != nil:
		return bad
	case f.Min == -1:
		return fmt.Errorf("comm: %s: rank %d passed invalid arguments", op, f.MinRank)
	case f.Min != f.Max:
		return fmt.Errorf("comm: %s: ranks %d and %d passed different %s", op,
			min(f.MinRank, f.MaxRank), max(f.MinRank, f.MaxRank), what)
	}
	return nil
}

// grid returns c's grid or an error naming op.
func (c *Comm) grid(op string) (*cart, error) {
	if c.topo == nil {
		return nil, fmt.Errorf("comm: %s: the communicator has no Cartesian topology (make one with CartCreate)", op)
	}
	return c.topo, nil
}

// Dims returns the grid's shape and periodicity (MPI_Cart_get).
func (c *Comm) Dims() (dims []int, periods []bool, err error) {
	g, err := c.grid("Dims")
	if err != nil {
		return nil, nil, err
	}
	return slices.Clone(g.dims), slices.Clone(g.periods), nil
}

// Coords returns the grid coordinates of rank (MPI_Cart_coords).
func (c *Comm) Coords(rank int) ([]int, error) {
	g, err := c.grid("Coords")
	if err != nil {
		return nil, err
	}
	if rank < 0 || rank >= c.size {
		return nil, fmt.Errorf("comm: Coords: rank %d out of range [0, %d)", rank, c.size)
	}
	co := make([]int, len(g.dims))
	for i := len(g.dims) - 1; i >= 0; i-- {
		co[i] = rank % g.dims[i]
		rank /= g.dims[i]
	}
	return co, nil
}

// RankOf returns the rank at coords (MPI_Cart_rank). A coordinate outside
// a periodic dimension wraps around; outside a non-periodic one it is an
// error.
func (c *Comm) RankOf(coords []int) (int, error) {
	g, err := c.grid("RankOf")
	if err != nil {
		return 0, err
	}
	r, ok, err := g.rankOf(coords)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("comm: RankOf: coordinates %v outside the grid %v", coords, g.dims)
	}
	return r, nil
}

// rankOf is RankOf; !ok when coords are past a non-periodic edge.
func (g *cart) rankOf(coords []int) (int, bool, error) {
	if len(coords) != len(g.dims) {
		return 0, false, fmt.Errorf("comm: RankOf: %d coordinates for a grid of %d dimensions", len(coords), len(g.dims))
	}
	r := 0
	for i, x := range coords {
		d := g.dims[i]
		if x < 0 || x >= d {
			if !g.periods[i] {
				return 0, false, nil
			}
			x = (x%d + d) % d
		}
		r = r*d + x
	}
	return r, true, nil
}

// Shift returns the ranks disp steps before and after this rank along
// dimension dim (MPI_Cart_shift): source is where a shift by disp comes
// from, dest where it goes. Past a non-periodic edge either is ProcNull, so
// that Sendrecv(…, dest, …, source, …) needs no special case at the edges.
func (c *Comm) Shift(dim, disp int) (source, dest int, err error) {
	g, err := c.grid("Shift")
	if err != nil {
		return 0, 0, err
	}
	if dim < 0 || dim >= len(g.dims) {
		return 0, 0, fmt.Errorf("comm: Shift: dimension %d of a grid of %d", dim, len(g.dims))
	}
	co, _ := c.Coords(c.rank)
	at := func(off int) int {
		x := slices.Clone(co)
		x[dim] += off
		r, ok, _ := g.rankOf(x)
		if !ok {
			return ProcNull
		}
		return r
	}
	return at(-disp), at(disp), nil
}

// Neighbors returns the ranks of a Cartesian communicator's neighbours in
// the order of the neighbourhood collectives (MPI's): for each dimension,
// the one before this rank and the one after it, ProcNull past a
// non-periodic edge.
func (c *Comm) Neighbors() ([]int, error) {
	g, err := c.grid("Neighbors")
	if err != nil {
		return nil, err
	}
	nb := make([]int, 0, 2*len(g.dims))
	for d := range g.dims {
		src, dst, _ := c.Shift(d, 1)
		nb = append(nb, src, dst)
	}
	return nb, nil
}

// CartSub splits a Cartesian communicator into sub-grids that keep the
// dimensions i with keep[i] (MPI_Cart_sub): the ranks that share their
// coordinates in the other dimensions form one, a grid of the kept
// dimensions. Keeping none gives each rank a grid of its own, of one
// dimension of size 1. It is a collective call on c.
func (c *Comm) CartSub(ctx context.Context, keep []bool) (*Comm, error) {
	if err := c.alive("CartSub"); err != nil {
		return nil, err
	}
	g, bad := c.grid("CartSub")
	if bad == nil && len(keep) != len(g.dims) {
		bad = fmt.Errorf("comm: CartSub: rank %d passed %d flags for a grid of %d dimensions", c.rank, len(keep), len(g.dims))
	}
	typ := int64(0)
	if bad != nil {
		typ = -1
	} else {
		for i, k := range keep {
			if k {
				typ |= 1 << i
			}
		}
	}
	sum, err := c.agree(ctx, agree.CartSub, typ, false)
	if err != nil {
		return nil, err
	}
	if err := gridAgreed("CartSub", "dimensions to keep", sum, bad); err != nil {
		return nil, err
	}
	co, _ := c.Coords(c.rank)
	color, key := 0, 0
	sub := &cart{}
	for i, k := range keep {
		if k {
			key = key*g.dims[i] + co[i]
			sub.dims = append(sub.dims, g.dims[i])
			sub.periods = append(sub.periods, g.periods[i])
		} else {
			color = color*g.dims[i] + co[i]
		}
	}
	if len(sub.dims) == 0 {
		sub.dims, sub.periods = []int{1}, []bool{false}
	}
	nc, err := c.splitAgreed(ctx, color, key)
	if err != nil || nc == nil {
		return nil, err
	}
	nc.topo = sub
	return nc, nil
}
