package collectives

import (
	"context"

	"github.com/decorun/decorun/comm"
)

// Scatter splits root's data into c.Size() blocks of equal length and gives
// block i to rank i; the other ranks' data is ignored. len(data) must be
// divisible by c.Size() (else ErrInvalidArg on every rank). The returned
// slice is new on every rank, the root included.
func Scatter[T any](ctx context.Context, c *comm.Comm, data []T, root int) ([]T, error) {
	cl := begin(ctx, c, opScatter)
	defer cl.release()
	k := elemsOf[T]()
	var blocks [][]byte
	var bad error
	if cl.r == root && len(data)%cl.p == 0 {
		blocks, bad = encodeBlocks(cl, k, data, len(data)/cl.p)
	}
	switch {
	case cl.r != root:
		cl.offerNone()
	case bad == nil && len(data)%cl.p == 0:
		cl.offer(packBlocks(blocks))
	}
	s, err := cl.check(ctx, params{typ: k.hash, rooted: true, root: root, length: len(data), lenRule: lenRoot, bad: bad})
	if err != nil {
		return nil, cl.wrap(err)
	}
	if cl.fused(s) {
		defer cl.done()
	}
	n := s[fLen].Max
	if n%int64(cl.p) != 0 {
		return nil, invalid(cl.op, nil, "root %d passed %d elements, not divisible by %d ranks", root, n, cl.p)
	}
	var b []byte
	if !cl.fused(s) && k.raw && int(n)/cl.p*k.size >= linearScatter {
		b, err = cl.scatterLinear(ctx, blocks, root, nil)
	} else {
		b, err = cl.scattered(ctx, s, blocks, root)
	}
	if err != nil {
		return nil, cl.wrap(err)
	}
	out, err := k.decode(b)
	return out, cl.wrap(err)
}

// Scatterv gives root's parts[i] to rank i; parts must have one entry per
// rank, of any length. The other ranks' parts are ignored.
func Scatterv[T any](ctx context.Context, c *comm.Comm, parts [][]T, root int) ([]T, error) {
	cl := begin(ctx, c, opScatterv)
	defer cl.release()
	k := elemsOf[T]()
	var blocks [][]byte
	var bad error
	if cl.r == root {
		if len(parts) != cl.p {
			bad = invalid(cl.op, nil, "root %d passed %d parts for %d ranks", root, len(parts), cl.p)
		} else {
			blocks = make([][]byte, cl.p)
			for i, part := range parts {
				var err error
				if blocks[i], err = k.encode(part); err != nil {
					bad = invalid(cl.op, err, "part %d", i)
					break
				}
			}
		}
	}
	switch {
	case cl.r != root:
		cl.offerNone()
	case bad == nil:
		cl.offer(packBlocks(blocks))
	}
	s, err := cl.check(ctx, params{typ: k.hash, rooted: true, root: root, bad: bad})
	if err != nil {
		return nil, cl.wrap(err)
	}
	if cl.fused(s) {
		defer cl.done()
	}
	b, err := cl.scattered(ctx, s, blocks, root)
	if err != nil {
		return nil, cl.wrap(err)
	}
	out, err := k.decode(b)
	return out, cl.wrap(err)
}

// Gather returns, at root, the concatenation of every rank's part in rank
// order, and nil elsewhere. Every rank must pass a part of the same length.
func Gather[T any](ctx context.Context, c *comm.Comm, part []T, root int) ([]T, error) {
	cl := begin(ctx, c, opGather)
	defer cl.release()
	defer cl.done()
	k := elemsOf[T]()
	mine, err := k.encode(part)
	var bad error
	if err != nil {
		bad = invalid(cl.op, err, "rank %d's part", cl.r)
	}
	if bad == nil {
		cl.offerGather(mine, root, true) // the result is a new slice
	}
	s, err := cl.check(ctx, params{typ: k.hash, rooted: true, root: root, length: len(part), lenRule: lenEqual, bad: bad})
	if err != nil {
		return nil, cl.wrap(err)
	}
	blocks, err := cl.gathered(ctx, s, mine, root)
	if err != nil || cl.r != root {
		return nil, cl.wrap(err)
	}
	m := len(part)
	out := make([]T, 0, m*cl.p)
	for i, b := range blocks {
		if k.raw {
			out = out[:(i+1)*m]
			if len(b) != m*k.size {
				return nil, cl.wrap(errSize(i, len(b), m*k.size))
			}
			copy(k.view(out[i*m:]), b)
			continue
		}
		v, err := k.decode(b)
		if err != nil {
			return nil, cl.wrap(err)
		}
		out = append(out, v...)
	}
	return out, nil
}

// Gatherv returns, at root, every rank's part (of any length) indexed by
// rank, and nil elsewhere.
func Gatherv[T any](ctx context.Context, c *comm.Comm, part []T, root int) ([][]T, error) {
	cl := begin(ctx, c, opGatherv)
	defer cl.release()
	defer cl.done()
	k := elemsOf[T]()
	mine, err := k.encode(part)
	var bad error
	if err != nil {
		bad = invalid(cl.op, err, "rank %d's part", cl.r)
	}
	if bad == nil {
		cl.offerGather(mine, root, true) // the result is a new slice
	}
	s, err := cl.check(ctx, params{typ: k.hash, rooted: true, root: root, bad: bad})
	if err != nil {
		return nil, cl.wrap(err)
	}
	blocks, err := cl.gathered(ctx, s, mine, root)
	if err != nil || cl.r != root {
		return nil, cl.wrap(err)
	}
	return decodeBlocks(cl, k, blocks)
}

func encodeBlocks[T any](cl *call, k elems[T], data []T, m int) ([][]byte, error) {
	blocks := make([][]byte, cl.p)
	for i := range blocks {
		var err error
		if blocks[i], err = k.encode(data[i*m : (i+1)*m]); err != nil {
			return nil, invalid(cl.op, err, "block %d", i)
		}
	}
	return blocks, nil
}

func decodeBlocks[T any](cl *call, k elems[T], blocks [][]byte) ([][]T, error) {
	out := make([][]T, len(blocks))
	for i, b := range blocks {
		var err error
		if out[i], err = k.decode(b); err != nil {
			return nil, cl.wrap(err)
		}
	}
	return out, nil
}

// scatterBlocks sends root's blocks (indexed by rank) down the binomial
// tree; each message carries the blocks of the receiver's whole subtree.
func (cl *call) scatterBlocks(ctx context.Context, blocks [][]byte, root int) ([]byte, error) {
	cl.algo("binomial tree")
	p := cl.p
	rel := (cl.r - root + p) % p
	var mine [][]byte // the blocks of relative ranks rel, rel+1, ...
	mask := 1
	if rel == 0 {
		mine = make([][]byte, p)
		for j := range mine {
			mine[j] = blocks[cl.abs(j, root)]
		}
		for mask < p {
			mask <<= 1
		}
	} else {
		for ; mask < p; mask <<= 1 {
			if rel&mask != 0 {
				b, err := cl.recv(ctx, cl.abs(rel-mask, root))
				if err != nil {
					return nil, err
				}
				if mine, err = unpackBlocks(b, min(mask, p-rel)); err != nil {
					return nil, err
				}
				break
			}
		}
	}
	var reqs []*comm.Request
	for mask >>= 1; mask > 0; mask >>= 1 {
		if rel+mask < p {
			q, err := cl.s.Isend(cl.abs(rel+mask, root), cl.tag, packBlocks(mine[mask:min(2*mask, p-rel)]))
			if err != nil {
				cancelAll(reqs)
				return nil, err
			}
			reqs = append(reqs, q)
		}
	}
	return mine[0], comm.WaitAll(ctx, reqs...)
}

// scatterLinear sends root's blocks (indexed by rank) straight to their
// ranks, for large blocks (see linearScatter), and returns this rank's:
// received into into when it is not nil (of the block's length).
func (cl *call) scatterLinear(ctx context.Context, blocks [][]byte, root int, into []byte) ([]byte, error) {
	cl.algo("linear")
	if cl.r != root {
		if into != nil {
			return into, cl.recvInto(ctx, root, into)
		}
		return cl.recv(ctx, root)
	}
	reqs := make([]*comm.Request, 0, cl.p-1)
	for i := 1; i < cl.p; i++ {
		q := (root + i) % cl.p
		r, err := cl.s.Isend(q, cl.tag, blocks[q])
		if err != nil {
			cancelAll(reqs)
			return nil, err
		}
		reqs = append(reqs, r)
	}
	return blocks[root], comm.WaitAll(ctx, reqs...)
}

// gatherBlocks collects every rank's block at root up the binomial tree
// and returns them indexed by rank at root, nil elsewhere.
func (cl *call) gatherBlocks(ctx context.Context, mine []byte, root int) ([][]byte, error) {
	cl.algo("binomial tree")
	p := cl.p
	rel := (cl.r - root + p) % p
	have := [][]byte{mine} // the blocks of relative ranks rel, rel+1, ...
	for mask := 1; mask < p; mask <<= 1 {
		if rel&mask != 0 {
			return nil, cl.send(ctx, cl.abs(rel-mask, root), packBlocks(have))
		}
		if child := rel + mask; child < p {
			b, err := cl.recv(ctx, cl.abs(child, root))
			if err != nil {
				return nil, err
			}
			blocks, err := unpackBlocks(b, min(mask, p-child))
			if err != nil {
				return nil, err
			}
			have = append(have, blocks...)
		}
	}
	out := make([][]byte, p)
	for j, b := range have {
		out[cl.abs(j, root)] = b
	}
	return out, nil
}
