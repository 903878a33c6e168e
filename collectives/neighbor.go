package collectives

import (
	"context"
	"sort"

	"github.com/decorun/decorun/comm"
)

// Neighbourhood collectives (MPI-3's MPI_Neighbor_allgather and
// MPI_Neighbor_alltoall) on a communicator with a topology: every rank
// exchanges with its neighbours only, in the order of c.NeighborRanks().
// On a Cartesian grid (comm.CartCreate) those are c.Neighbors(): for each
// dimension, the rank before and the rank after, ProcNull past a
// non-periodic edge (whose entry of the result is the zero T). On a
// distributed graph (comm.DistGraphCreateAdjacent) a rank receives from
// its sources and sends to its destinations. They are collective calls (every rank of c makes them, in order,
// with the same type), checked by the agreement step as the others are.
// T may be a slice, whose length may differ between ranks: MPI's v forms.

// NeighborAllgather gives v to every destination neighbour and returns
// what each source neighbour gave, indexed as its sources.
func NeighborAllgather[T any](ctx context.Context, c *comm.Comm, v T) ([]T, error) {
	cl := begin(ctx, c, opNeighborAllgather)
	defer cl.release()
	return neighbor(ctx, cl, c, func(int) T { return v }, -1)
}

// NeighborAlltoall sends vs[i] to destination neighbour i and returns what
// each source neighbour sent this rank, indexed as its sources. len(vs)
// must be the number of destinations (on a grid, twice its dimensions).
func NeighborAlltoall[T any](ctx context.Context, c *comm.Comm, vs []T) ([]T, error) {
	cl := begin(ctx, c, opNeighborAlltoall)
	defer cl.release()
	return neighbor(ctx, cl, c, func(i int) T { return vs[i] }, len(vs))
}

// neighbor runs a neighbourhood collective: part(i) goes to neighbour i; n
// is the number of parts given (-1: one for all).
func neighbor[T any](ctx context.Context, cl *call, c *comm.Comm, part func(i int) T, n int) ([]T, error) {
	k := valuesOf[T]()
	srcs, dsts, bad := c.NeighborRanks()
	if bad != nil {
		bad = invalid(cl.op, bad, "rank %d", cl.r)
	} else if n >= 0 && n != len(dsts) {
		bad = invalid(cl.op, nil, "rank %d passed %d values for %d neighbours", cl.r, n, len(dsts))
	}
	if _, err := cl.check(ctx, params{typ: k.hash, bad: bad}); err != nil {
		return nil, cl.wrap(err)
	}
	// Messages between two ranks with one tag arrive in the order sent,
	// and a rank sends in the order of its destinations, so the receives
	// from each source are posted in the order of the places it sends
	// from. In a distributed graph that is the order of this rank's
	// sources (MPI's rule). In a grid, neighbour i of this rank is at side
	// i%2 (0 before, 1 after) along dimension i/2 and is sent to from its
	// neighbour's slot i^1; the order matters when one rank is both
	// neighbours (a periodic dimension of 1 or 2).
	out := make([]T, len(srcs))
	order := make([]int, 0, len(srcs))
	for i, src := range srcs {
		if src != comm.ProcNull {
			order = append(order, i)
		}
	}
	if c.IsCartesian() {
		sort.SliceStable(order, func(a, b int) bool { return order[a]^1 < order[b]^1 })
	}
	recvs := make([]*comm.Request, len(srcs))
	for _, i := range order {
		q, err := cl.s.Irecv(srcs[i], cl.tag)
		if err != nil {
			cancelAll(recvs)
			return nil, cl.wrap(err)
		}
		recvs[i] = q
	}
	var sends []*comm.Request
	for i, dst := range dsts {
		if dst == comm.ProcNull {
			continue
		}
		b, err := k.encode(part(i))
		if err == nil {
			var q *comm.Request
			if q, err = cl.s.Isend(dst, cl.tag, b); err == nil {
				sends = append(sends, q)
			}
		}
		if err != nil {
			cancelAll(recvs)
			cancelAll(sends)
			return nil, cl.wrap(err)
		}
	}
	for i, q := range recvs {
		if q == nil {
			continue
		}
		if _, err := q.Wait(ctx); err != nil {
			cancelAll(recvs)
			cancelAll(sends)
			return nil, cl.wrap(err)
		}
		v, err := k.decode(q.Data())
		if err != nil {
			return nil, cl.wrap(err)
		}
		out[i] = v
	}
	if err := comm.WaitAll(ctx, sends...); err != nil {
		return nil, cl.wrap(err)
	}
	return out, nil
}
