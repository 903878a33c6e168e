package collectives

import (
	"context"

	"github.com/decorun/decorun/comm"
)

// Forms of Bcast, Gather and Scatter that fill the caller's buffer, as MPI's
// calls do, for slices of numbers: no result is allocated, so a program
// that moves buffers of one size again and again makes no garbage. Ranks
// must not mix them with the plain forms in one call (the mismatch is an
// error on every rank).

// BcastInto copies root's buf into buf on every other rank (MPI_Bcast):
// every rank passes a buffer of the same length (else a *MismatchError on
// every rank).
func BcastInto[E Number](ctx context.Context, c *comm.Comm, buf []E, root int) error {
	cl := begin(ctx, c, opBcastInto)
	defer cl.release()
	defer cl.done()
	k := elemsOf[E]()
	if cl.r == root {
		cl.offer(k.view(buf))
	} else {
		cl.offerNone()
	}
	a := params{typ: k.hash, rooted: true, root: root, length: len(buf), lenRule: lenEqual, fan: fanMax(cl.s)}
	if cl.h != nil {
		return bcastIntoHier(ctx, cl, k, buf, a, root)
	}
	cl.streamIf(len(buf) * k.size)
	s, err := cl.check(ctx, a)
	if err != nil {
		return cl.wrap(err)
	}
	if cl.p == 1 {
		return nil
	}
	b := k.view(buf)
	if cl.fused(s) {
		if cl.r != root {
			if len(cl.data(root)) != len(b) {
				return cl.wrap(errSize(root, len(cl.data(root)), len(b)))
			}
			return cl.wrap(cl.copyData(ctx, b, root, 0))
		}
		return nil
	}
	n := len(b)
	switch {
	case s[fFan].Min > 0 && n <= int(s[fFan].Min) && cl.p >= 3:
		err = cl.bcastFanout(ctx, b, root)
	case n < bcastLarge || cl.p < 3:
		err = cl.bcastTree(ctx, b, root)
	default:
		err = cl.bcastScatterRing(ctx, b, root)
	}
	return cl.wrap(err)
}

// GatherInto writes every rank's part, in rank order, into out at root
// (MPI_Gather): parts have the same length on every rank, and root's out
// holds Size() of them; other ranks ignore out (it may be nil). A wrong
// length is an error on every rank.
func GatherInto[E Number](ctx context.Context, c *comm.Comm, part, out []E, root int) error {
	cl := begin(ctx, c, opGatherInto)
	defer cl.release()
	defer cl.done()
	k := elemsOf[E]()
	m := len(part)
	a := params{typ: k.hash, rooted: true, root: root, length: m, lenRule: lenEqual}
	if cl.r == root && len(out) != m*cl.p {
		a.bad = invalid(cl.op, nil, "root %d passed out of length %d for %d parts of %d", root, len(out), cl.p, m)
	} else {
		cl.offerGather(k.view(part), root, !overlaps(part, out))
	}
	cl.streamIf(m * k.size)
	s, err := cl.check(ctx, a)
	if err != nil {
		return cl.wrap(err)
	}
	if cl.fused(s) && cl.r == root {
		for q := range cl.p {
			if b := cl.data(q); len(b) != m*k.size {
				return cl.wrap(errSize(q, len(b), m*k.size))
			}
			if err := cl.copyData(ctx, k.view(out[q*m:(q+1)*m]), q, 0); err != nil {
				return cl.wrap(err)
			}
		}
		return nil
	}
	blocks, err := cl.gathered(ctx, s, k.view(part), root)
	if err != nil || cl.r != root {
		return cl.wrap(err)
	}
	for q, b := range blocks {
		if len(b) != m*k.size {
			return cl.wrap(errSize(q, len(b), m*k.size))
		}
		copy(k.view(out[q*m:(q+1)*m]), b)
	}
	return nil
}

// ScatterInto writes block Rank() of root's data into out on every rank
// (MPI_Scatter): every rank passes an out of the same length, and root's
// data holds Size() such blocks; other ranks ignore data (it may be nil).
// A wrong length is an error on every rank.
func ScatterInto[E Number](ctx context.Context, c *comm.Comm, data, out []E, root int) error {
	cl := begin(ctx, c, opScatterInto)
	defer cl.release()
	defer cl.done()
	k := elemsOf[E]()
	m := len(out)
	a := params{typ: k.hash, rooted: true, root: root, length: m, lenRule: lenEqual}
	switch {
	case cl.r != root:
		cl.offerNone()
	case len(data) != m*cl.p:
		a.bad = invalid(cl.op, nil, "root %d passed data of length %d for %d blocks of %d", root, len(data), cl.p, m)
	default: // every block but root's own, which it copies itself
		cl.offer2(k.view(data[:root*m]), k.view(data[(root+1)*m:]))
	}
	cl.streamIf(m * k.size * (cl.p - 1))
	s, err := cl.check(ctx, a)
	if err != nil {
		return cl.wrap(err)
	}
	sz := m * k.size
	if cl.fused(s) {
		if cl.r == root {
			copy(out, data[root*m:(root+1)*m])
			return nil
		}
		b := cl.data(root)
		if len(b) != sz*(cl.p-1) {
			return cl.wrap(errSize(root, len(b), sz*(cl.p-1)))
		}
		i := cl.r // this rank's block among the root's others
		if i > root {
			i--
		}
		return cl.wrap(cl.copyData(ctx, k.view(out), root, i*sz))
	}
	var blocks [][]byte
	if cl.r == root {
		blocks = make([][]byte, cl.p)
		for q := range blocks {
			blocks[q] = k.view(data[q*m : (q+1)*m])
		}
	}
	var b []byte
	if sz >= linearScatter { // each block straight to its rank, into out
		b, err = cl.scatterLinear(ctx, blocks, root, k.view(out))
	} else {
		b, err = cl.scatterBlocks(ctx, blocks, root)
	}
	if err != nil {
		return cl.wrap(err)
	}
	if len(b) != sz {
		return cl.wrap(errSize(root, len(b), sz))
	}
	copy(k.view(out), b)
	return nil
}

// linearScatter: from this block size on, ScatterInto's message path sends
// each block straight from root's data to its rank, received straight into
// out: every byte moves once, where the binomial tree forwards and packs
// subtrees' blocks (lg p times the bytes, at ranks that take turns on the
// cores when they outnumber them).
const linearScatter = 64 << 10
