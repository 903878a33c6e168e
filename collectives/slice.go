package collectives

import (
	"context"
	"fmt"
	"slices"

	"github.com/decorun/decorun/comm"
)

// sliceLarge is the vector size in bytes from which ReduceSlice and
// AllreduceSlice (with numeric elements) use the reduce-scatter by
// recursive halving (see halving) instead of the binomial tree and
// recursive doubling.
const sliceLarge = 64 << 10

// vector is a reducer of equal-length slices, combined element-wise.
type vector[E any] struct {
	k   elems[E]
	op  func(a, b E) E
	acc []E
}

func (v *vector[E]) encode() ([]byte, error) { return v.k.encode(v.acc) }

func (v *vector[E]) combine(in []byte, fromLower bool) error {
	t, err := v.k.decode(in)
	if err != nil {
		return err
	}
	if len(t) != len(v.acc) {
		return fmt.Errorf("received %d elements, want %d", len(t), len(v.acc))
	}
	if fromLower {
		combineLeft(v.op, t, v.acc)
	} else {
		combineRight(v.op, v.acc, t)
	}
	return nil
}

func (v *vector[E]) set(in []byte) (err error) {
	v.acc, err = v.k.decode(in)
	return err
}

// checkSlice is the agreement step of the element-wise reductions: same
// type and length everywhere.
func checkSlice[E any](ctx context.Context, cl *call, k elems[E], v []E, rooted bool, root int) error {
	var bad error
	if !k.raw {
		b, err := k.encode(v)
		if err == nil {
			_, err = k.decode(b)
		}
		if err != nil {
			bad = invalid(cl.op, err, "rank %d's slice", cl.r)
		}
	}
	_, err := cl.check(ctx, params{typ: k.hash, rooted: rooted, root: root, length: len(v), lenRule: lenEqual, bad: bad})
	return cl.wrap(err)
}

// large tells ReduceSlice whether to use the recursive-halving
// reduce-scatter (with 2 ranks the tree is the same one message); largeAll
// tells AllreduceSlice whether to use Rabenseifner's algorithm, which with
// 2 ranks exchanges halves instead of whole vectors and receives into
// place.
func (cl *call) large(raw bool, bytes int) bool { return raw && bytes >= sliceLarge && cl.p >= 3 }

func (cl *call) largeAll(raw bool, bytes int) bool { return raw && bytes >= sliceLarge && cl.p >= 2 }

// ReduceSlice reduces the ranks' slices element-wise (element i of the
// result is op folded over element i of every rank's v, in rank order) and
// returns the result at root, nil elsewhere. Every rank must pass the same
// length. op must be associative; it need not be commutative.
func ReduceSlice[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E, root int) ([]E, error) {
	cl := begin(c, opReduceSlice)
	k := elemsOf[E]()
	var h *halving[E]
	if cl.large(k.raw, len(v)*k.size) && root >= 0 && root < cl.p {
		// As in AllreduceSlice, the receives come before the agreement.
		var err error
		if h, err = postHalving(cl, k, v, root); err != nil {
			return nil, cl.wrap(err)
		}
	}
	if err := checkSlice(ctx, cl, k, v, true, root); err != nil {
		if h != nil {
			h.cancel()
		}
		return nil, err
	}
	if cl.p == 1 {
		return slices.Clone(v), nil
	}
	if h == nil {
		red := &vector[E]{k: k, op: op, acc: slices.Clone(v)}
		if err := cl.reduceTree(ctx, red, root); err != nil {
			return nil, cl.wrap(err)
		}
		if err := cl.result(); err != nil || cl.r != root {
			return nil, err
		}
		return red.acc, nil
	}
	out, err := h.run(ctx, op)
	if err != nil {
		return nil, cl.wrap(err)
	}
	if err := cl.result(); err != nil {
		return nil, err
	}
	return out, nil
}

// AllreduceSlice reduces the ranks' slices element-wise, like ReduceSlice,
// and returns the result (identical on every rank) on every rank. Large
// vectors of numbers use Rabenseifner's algorithm (a reduce-scatter by
// recursive halving, then an allgather by recursive doubling), so that no
// rank holds more than the result and half a vector of scratch.
func AllreduceSlice[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E) ([]E, error) {
	cl := begin(c, opAllreduceSlice)
	k := elemsOf[E]()
	var h *halving[E]
	if cl.largeAll(k.raw, len(v)*k.size) {
		// Every receive is posted before the agreement step, so that a
		// partner that finishes it first finds them (a mismatch then
		// withdraws them: nobody sends).
		var err error
		if h, err = postHalving(cl, k, v, -1); err != nil {
			return nil, cl.wrap(err)
		}
	}
	if err := checkSlice(ctx, cl, k, v, false, 0); err != nil {
		if h != nil {
			h.cancel()
		}
		return nil, err
	}
	if cl.p == 1 {
		return slices.Clone(v), nil
	}
	if h == nil {
		red := &vector[E]{k: k, op: op, acc: slices.Clone(v)}
		if err := cl.allreduceDoubling(ctx, red); err != nil {
			return nil, cl.wrap(err)
		}
		if err := cl.result(); err != nil {
			return nil, err
		}
		return red.acc, nil
	}
	out, err := h.run(ctx, op)
	if err != nil {
		return nil, cl.wrap(err)
	}
	if err := cl.result(); err != nil {
		return nil, err
	}
	return out, nil
}

// ReduceScatter reduces the ranks' slices element-wise, like ReduceSlice,
// and returns block Rank() of the result (len(v)/c.Size() elements) on
// each rank (MPI_Reduce_scatter_block). Every rank must pass the same
// length, divisible by c.Size().
func ReduceScatter[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E) ([]E, error) {
	cl := begin(c, opReduceScatter)
	k := elemsOf[E]()
	if err := checkSlice(ctx, cl, k, v, false, 0); err != nil {
		return nil, err
	}
	if len(v)%cl.p != 0 {
		return nil, invalid(cl.op, nil, "every rank passed %d elements, not divisible by %d ranks", len(v), cl.p)
	}
	m := len(v) / cl.p
	blk, err := reduceScatterPairwise(ctx, cl, k, v, func(i int) (int, int) { return i * m, (i + 1) * m }, op)
	if err != nil {
		return nil, cl.wrap(err)
	}
	if err := cl.result(); err != nil {
		return nil, err
	}
	return blk, nil
}

// reduceScatterPairwise returns block Rank() (by bounds) of the element-wise
// reduction. What it sends does not depend on op, so a failure of op only
// stops the combining here (cl.failed); the caller passes it on. In step i rank r sends its own block r+i to rank r+i and
// receives rank r−i's block r, so the owner sees every rank's raw
// contribution, from r−1 down to 0 and then from p−1 down to r+1. It keeps
// rank order with two accumulators: lower = v(0) op ... op v(r), built by
// prepending, and upper = v(r+1) op ... op v(p−1), likewise; the result is
// lower op upper.
func reduceScatterPairwise[E any](ctx context.Context, cl *call, k elems[E], v []E, bounds func(int) (int, int), op func(a, b E) E) ([]E, error) {
	p, r := cl.p, cl.r
	lo, hi := bounds(r)
	lower := slices.Clone(v[lo:hi])
	var upper []E
	scratch := make([]E, hi-lo)
	for i := 1; i < p; i++ {
		dst, src := (r+i)%p, (r-i+p)%p
		dlo, dhi := bounds(dst)
		in := scratch
		if k.raw {
			if err := cl.exchangeInto(ctx, dst, k.view(v[dlo:dhi]), src, k.view(scratch)); err != nil {
				return nil, err
			}
		} else {
			out, err := k.encode(v[dlo:dhi])
			if err != nil {
				return nil, err
			}
			b, err := cl.exchange(ctx, dst, out, src)
			if err != nil {
				return nil, err
			}
			if in, err = k.decode(b); err != nil {
				return nil, err
			}
			if len(in) != hi-lo {
				return nil, errSize(src, len(in), hi-lo)
			}
		}
		cl.guard(func() {
			switch {
			case src < r:
				combineLeft(op, in, lower)
			case upper == nil:
				upper = slices.Clone(in)
			default:
				combineLeft(op, in, upper)
			}
		})
	}
	if upper != nil {
		cl.guard(func() { combineRight(op, lower, upper) })
	}
	return lower, nil
}

// ScanSlice returns, on rank r, the element-wise fold of the ranks' slices
// over ranks 0..r in rank order (MPI_Scan of a buffer): element i of the
// result is op folded over element i of the v of ranks 0..r. Every rank
// must pass the same length. op must be associative; it need not be
// commutative.
func ScanSlice[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E) ([]E, error) {
	cl := begin(c, opScanSlice)
	if err := checkSlice(ctx, cl, elemsOf[E](), v, false, 0); err != nil {
		return nil, err
	}
	out, err := scan(ctx, cl, valuesOf[[]E](), v, lift(op))
	if cl.r == 0 && err == nil {
		out = slices.Clone(out) // v itself
	}
	return out, err
}

// ExscanSlice returns, on rank r > 0, the element-wise fold of the ranks'
// slices over ranks 0..r-1 in rank order, and nil on rank 0 (MPI_Exscan of
// a buffer). Every rank must pass the same length. op must be associative;
// it need not be commutative.
func ExscanSlice[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E) ([]E, error) {
	cl := begin(c, opExscanSlice)
	if err := checkSlice(ctx, cl, elemsOf[E](), v, false, 0); err != nil {
		return nil, err
	}
	return scan(ctx, cl, valuesOf[[]E](), v, lift(op))
}
