package collectives

import (
	"context"
	"slices"

	"github.com/decorun/decorun/comm"
)

// Alltoall sends block i of data (len(data)/c.Size() elements) to rank i
// and returns the blocks received, the one from rank j at block j. Every
// rank must pass the same length, divisible by c.Size().
func Alltoall[T any](ctx context.Context, c *comm.Comm, data []T) ([]T, error) {
	cl := begin(ctx, c, opAlltoall)
	defer cl.release()
	k := elemsOf[T]()
	p, r := cl.p, cl.r
	var blocks [][]byte
	var bad error
	if !k.raw && len(data)%p == 0 {
		blocks, bad = encodeBlocks(cl, k, data, len(data)/p)
	}
	switch {
	case bad != nil || len(data)%p != 0:
	case k.raw:
		cl.offer(k.view(data))
	default:
		cl.offer(packBlocks(blocks))
	}
	s, err := cl.check(ctx, params{typ: k.hash, length: len(data), lenRule: lenEqual, bad: bad})
	if err != nil {
		return nil, cl.wrap(err)
	}
	if cl.fused(s) {
		defer cl.done()
	}
	if len(data)%p != 0 {
		return nil, invalid(cl.op, nil, "every rank passed %d elements, not divisible by %d ranks", len(data), p)
	}
	m := len(data) / p
	if cl.fused(s) {
		return alltoallRegion(cl, k, data, m)
	}
	out := make([]T, len(data))
	copy(out[r*m:(r+1)*m], data[r*m:(r+1)*m])
	for i := 1; i < p; i++ {
		dst, src := (r+i)%p, (r-i+p)%p
		if k.raw {
			if err := cl.exchangeInto(ctx, dst, k.view(data[dst*m:(dst+1)*m]), src, k.view(out[src*m:(src+1)*m])); err != nil {
				return nil, cl.wrap(err)
			}
			continue
		}
		b, err := cl.exchange(ctx, dst, blocks[dst], src)
		if err == nil {
			err = putBlock(k, out, src, m, b)
		}
		if err != nil {
			return nil, cl.wrap(err)
		}
	}
	return out, nil
}

// putBlock decodes rank q's encoded block b of m elements into block q of
// out.
func putBlock[T any](k elems[T], out []T, q, m int, b []byte) error {
	v, err := k.decode(b)
	if err != nil {
		return err
	}
	if len(v) != m {
		return errSize(q, len(v), m)
	}
	copy(out[q*m:], v)
	return nil
}

// Alltoallv sends parts[i] (of any length) to rank i and returns the parts
// received, indexed by source rank. parts must have one entry per rank.
func Alltoallv[T any](ctx context.Context, c *comm.Comm, parts [][]T) ([][]T, error) {
	cl := begin(ctx, c, opAlltoallv)
	defer cl.release()
	k := elemsOf[T]()
	p, r := cl.p, cl.r
	var blocks [][]byte
	var bad error
	if len(parts) != p {
		bad = invalid(cl.op, nil, "rank %d passed %d parts for %d ranks", r, len(parts), p)
	} else {
		blocks = make([][]byte, p)
		for i, part := range parts {
			var err error
			if blocks[i], err = k.encode(part); err != nil {
				bad = invalid(cl.op, err, "rank %d's part %d", r, i)
				break
			}
		}
	}
	if bad == nil {
		cl.offer(packBlocks(blocks))
	}
	s, err := cl.check(ctx, params{typ: k.hash, bad: bad})
	if err != nil {
		return nil, cl.wrap(err)
	}
	out := make([][]T, p)
	out[r] = slices.Clone(parts[r])
	if cl.fused(s) {
		defer cl.done()
		for q := range p {
			if q == r {
				continue
			}
			b, err := blockOf(cl, q, r)
			if err == nil {
				out[q], err = k.decode(b)
			}
			if err != nil {
				return nil, cl.wrap(err)
			}
		}
		return out, nil
	}
	for i := 1; i < p; i++ {
		dst, src := (r+i)%p, (r-i+p)%p
		b, err := cl.exchange(ctx, dst, blocks[dst], src)
		if err != nil {
			return nil, cl.wrap(err)
		}
		if out[src], err = k.decode(b); err != nil {
			return nil, cl.wrap(err)
		}
	}
	return out, nil
}
