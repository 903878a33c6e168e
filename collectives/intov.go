package collectives

import (
	"context"

	"github.com/decorun/decorun/comm"
)

// GathervInto writes every rank's part, of any length, into root's out
// (MPI_Gatherv with recvcounts and displs): rank q's part goes to
// out[displs[q]:displs[q]+counts[q]] and must have counts[q] elements.
// Other ranks ignore out, counts and displs (they may be nil). The blocks
// must not overlap. Root's bad counts or displs (not Size() of them, a
// negative one, a block outside out) are an error on every rank; a part
// whose length is not its count is an error at root naming the rank. A
// program that gathers parts of one layout again and again allocates no
// result.
func GathervInto[E Number](ctx context.Context, c *comm.Comm, part, out []E, counts, displs []int, root int) error {
	cl := begin(ctx, c, opGathervInto)
	defer cl.release()
	defer cl.done()
	k := elemsOf[E]()
	a := params{typ: k.hash, rooted: true, root: root}
	if cl.r == root {
		a.bad = checkLayout(cl, len(out), counts, displs)
	}
	if a.bad == nil {
		cl.offerGather(k.view(part), root, !overlaps(part, out))
	}
	s, err := cl.check(ctx, a)
	if err != nil {
		return cl.wrap(err)
	}
	blocks, err := cl.gathered(ctx, s, k.view(part), root)
	if err != nil || cl.r != root {
		return cl.wrap(err)
	}
	return cl.wrap(placeBlocks(cl, k, blocks, out, counts, displs))
}

// AllgathervInto writes every rank's part, of any length, into out on
// every rank (MPI_Allgatherv with recvcounts and displs): rank q's part
// goes to out[displs[q]:displs[q]+counts[q]] and must have counts[q]
// elements. Every rank passes its own out, counts and displs (the same
// counts everywhere); the blocks must not overlap. A rank's bad counts or
// displs are an error on every rank; a part whose length is not its count
// is an error naming that rank.
func AllgathervInto[E Number](ctx context.Context, c *comm.Comm, part, out []E, counts, displs []int) error {
	cl := begin(ctx, c, opAllgathervInto)
	defer cl.release()
	defer cl.done()
	k := elemsOf[E]()
	a := params{typ: k.hash}
	if a.bad = checkLayout(cl, len(out), counts, displs); a.bad == nil {
		cl.offer(k.view(part))
		if !overlaps(part, out) {
			cl.readOwn()
		}
	}
	s, err := cl.check(ctx, a)
	if err != nil {
		return cl.wrap(err)
	}
	blocks, err := cl.gathered(ctx, s, k.view(part), -1)
	if err != nil {
		return cl.wrap(err)
	}
	return cl.wrap(placeBlocks(cl, k, blocks, out, counts, displs))
}

// checkLayout checks counts and displs against an out of n elements.
func checkLayout(cl *call, n int, counts, displs []int) error {
	if len(counts) != cl.p || len(displs) != cl.p {
		return invalid(cl.op, nil, "rank %d passed %d counts and %d displs for %d ranks", cl.r, len(counts), len(displs), cl.p)
	}
	for q := range cl.p {
		if counts[q] < 0 || displs[q] < 0 || displs[q] > n-counts[q] {
			return invalid(cl.op, nil, "rank %d passed counts[%d] = %d, displs[%d] = %d for out of length %d",
				cl.r, q, counts[q], q, displs[q], n)
		}
	}
	return nil
}

// placeBlocks copies rank q's block to out[displs[q]:], checking its
// length against counts[q].
func placeBlocks[E Number](cl *call, k elems[E], blocks [][]byte, out []E, counts, displs []int) error {
	for q, b := range blocks {
		if len(b) != counts[q]*k.size {
			return invalid(cl.op, nil, "rank %d passed a part of %d elements where rank %d's counts[%d] is %d",
				q, len(b)/k.size, cl.r, q, counts[q])
		}
		copy(k.view(out[displs[q]:displs[q]+counts[q]]), b)
	}
	return nil
}
