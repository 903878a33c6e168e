package collectives

import (
	"context"

	"github.com/decorun/decorun/comm"
)

// Allgather returns, on every rank, the concatenation of every rank's part
// in rank order. Every rank must pass a part of the same length.
func Allgather[T any](ctx context.Context, c *comm.Comm, part []T) ([]T, error) {
	cl := begin(ctx, c, opAllgather)
	defer cl.release()
	defer cl.done()
	k := elemsOf[T]()
	mine, err := k.encode(part)
	var bad error
	if err != nil {
		bad = invalid(cl.op, err, "rank %d's part", cl.r)
	}
	if bad == nil {
		cl.offer(mine)
		cl.readOwn() // the result is a new slice
	}
	s, err := cl.check(ctx, params{typ: k.hash, length: len(part), lenRule: lenEqual, bad: bad})
	if err != nil {
		return nil, cl.wrap(err)
	}
	blocks, err := cl.gathered(ctx, s, mine, -1)
	if err != nil {
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

// Allgatherv returns, on every rank, every rank's part (of any length)
// indexed by rank.
func Allgatherv[T any](ctx context.Context, c *comm.Comm, part []T) ([][]T, error) {
	cl := begin(ctx, c, opAllgatherv)
	defer cl.release()
	defer cl.done()
	k := elemsOf[T]()
	mine, err := k.encode(part)
	var bad error
	if err != nil {
		bad = invalid(cl.op, err, "rank %d's part", cl.r)
	}
	if bad == nil {
		cl.offer(mine)
		cl.readOwn() // the result is a new slice
	}
	s, err := cl.check(ctx, params{typ: k.hash, bad: bad})
	if err != nil {
		return nil, cl.wrap(err)
	}
	blocks, err := cl.gathered(ctx, s, mine, -1)
	if err != nil {
		return nil, cl.wrap(err)
	}
	return decodeBlocks(cl, k, blocks)
}

// allgatherBlocks is Bruck's allgather: in the round with distance d, rank
// r sends the first min(d, p-d) blocks it holds (those of r, r+1, ...) to
// r-d and appends the ones r+d sends. It returns the blocks by rank.
func (cl *call) allgatherBlocks(ctx context.Context, mine []byte) ([][]byte, error) {
	cl.algo("Bruck")
	p, r := cl.p, cl.r
	have := [][]byte{mine}
	for d := 1; d < p; d <<= 1 {
		k := min(d, p-d)
		in, err := cl.exchange(ctx, (r-d+p)%p, packBlocks(have[:k]), (r+d)%p)
		if err != nil {
			return nil, err
		}
		blocks, err := unpackBlocks(in, k)
		if err != nil {
			return nil, err
		}
		have = append(have, blocks...)
	}
	out := make([][]byte, p)
	for j, b := range have {
		out[(r+j)%p] = b
	}
	return out, nil
}
