package collectives

import (
	"context"
	"fmt"
	"slices"
	"unsafe"

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

// set copies in into acc, whose length it keeps.
func (v *vector[E]) set(in []byte) error {
	if v.k.raw && len(in) == len(v.acc)*v.k.size {
		copy(v.k.view(v.acc), in)
		return nil
	}
	t, err := v.k.decode(in)
	if err != nil {
		return err
	}
	if len(t) != len(v.acc) {
		return fmt.Errorf("received %d elements, want %d", len(t), len(v.acc))
	}
	copy(v.acc, t)
	return nil
}

// sliceParams are the agreement step's arguments of an element-wise
// reduction of v: same type and length everywhere, and v must survive
// encoding.
func sliceParams[E any](cl *call, k elems[E], v []E, rooted bool, root int) params {
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
	return params{typ: k.hash, rooted: rooted, root: root, length: len(v), lenRule: lenEqual, bad: bad}
}

// checkSlice is the agreement step of the element-wise reductions.
func checkSlice[E any](ctx context.Context, cl *call, k elems[E], v []E, rooted bool, root int) (fused bool, err error) {
	a := sliceParams(cl, k, v, rooted, root)
	if a.bad == nil {
		offerSlice(cl, k, v)
	}
	s, err := cl.check(ctx, a)
	return err == nil && cl.fused(s), cl.wrap(err)
}

// checkOut adds to a the local check of an *Into call's out against its in:
// the same length, and either the same slice (in place) or no memory in
// common. A bad out is a local argument error, which the agreement step
// turns into an error on every rank (see check); the rank does not touch
// out. same reports that out is in.
func checkOut[E any](cl *call, in, out []E, a *params) (same bool) {
	switch {
	case len(out) != len(in):
		a.bad, a.outBad, a.outLen = errOutLen(cl.op, cl.r, len(out), len(in)), true, len(out)
	case len(in) == 0:
	case &in[0] == &out[0]:
		return true
	case overlaps(in, out):
		a.bad = invalid(cl.op, nil, "rank %d passed in and out that overlap without being the same slice", cl.r)
	}
	return false
}

// overlaps reports whether a and b share memory (as in package slices).
func overlaps[E any](a, b []E) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	size := unsafe.Sizeof(a[0])
	if size == 0 {
		return false
	}
	return uintptr(unsafe.Pointer(&a[0])) <= uintptr(unsafe.Pointer(&b[len(b)-1]))+(size-1) &&
		uintptr(unsafe.Pointer(&b[0])) <= uintptr(unsafe.Pointer(&a[len(a)-1]))+(size-1)
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
// length. op must be associative; it need not be commutative. It is
// ReduceSliceInto with a new result.
func ReduceSlice[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E, root int) ([]E, error) {
	var out []E
	if c.Rank() == root && v != nil {
		out = make([]E, len(v))
	}
	cl := begin(ctx, c, opReduceSlice)
	defer cl.release()
	if err := reduceSlice(ctx, cl, v, out, op, root); err != nil || c.Rank() != root {
		return nil, err
	}
	return out, nil
}

// ReduceSliceInto is ReduceSlice with the result written into out at root
// (MPI_Reduce with a receive buffer): len(out) must equal len(in) at root,
// and out may be in itself (MPI_IN_PLACE) but must not otherwise share
// memory with it. Other ranks ignore out (it may be nil) and leave it
// untouched. A bad out at root is an ErrInvalidArg error on every rank,
// from the agreement step, before any data moves. On an error out's
// contents are unspecified.
func ReduceSliceInto[E any](ctx context.Context, c *comm.Comm, in, out []E, op func(a, b E) E, root int) error {
	cl := begin(ctx, c, opReduceSliceInto)
	defer cl.release()
	return reduceSlice(ctx, cl, in, out, op, root)
}

func reduceSlice[E any](ctx context.Context, cl *call, v, out []E, op func(a, b E) E, root int) error {
	k := elemsOf[E]()
	a := sliceParams(cl, k, v, true, root)
	if cl.p > 2 && k.raw && len(v)*k.size >= regionSplit {
		a.crowded = cl.ac.Crowded() // rootFoldsAll
	}
	same := false
	if cl.r == root {
		same = checkOut(cl, v, out, &a)
	} else {
		out = nil
	}
	if cl.h != nil && !hierFlat(k, len(v)) {
		return sliceHier(ctx, cl, k, v, out, op, a, root)
	}
	large := cl.large(k.raw, len(v)*k.size) && root >= 0 && root < cl.p
	h, fused, err := agreeSlice(ctx, cl, k, a, v, out, same, large, root)
	if err != nil {
		return err
	}
	if fused {
		defer cl.done()
		if k.raw && len(v)*k.size >= regionSplit && !rootFoldsAll(cl.p, cl.crowded) && !cl.onePhase {
			if out == nil { // this rank folds one block of it
				var bp *[]uint64
				out, bp = getScratch(k, len(v))
				defer scratchPool.Put(bp)
			}
			if err := foldBlocks(ctx, cl, k, out, op, root); err != nil {
				return cl.wrap(err)
			}
			if cl.r != root {
				return nil
			}
			return cl.result()
		}
		if cl.r != root {
			return nil
		}
		if err := foldSlices(ctx, cl, k, out, 0, cl.p, 0, len(out), op); err != nil {
			return cl.wrap(err)
		}
		return cl.result()
	}
	if cl.p == 1 {
		copy(out, v)
		return nil
	}
	if h == nil {
		acc := out
		if acc == nil {
			acc = slices.Clone(v) // not the root
		} else {
			copy(acc, v)
		}
		red := &vector[E]{k: k, op: op, acc: acc}
		if err := cl.reduceTree(ctx, red, root); err != nil {
			return cl.wrap(err)
		}
		return cl.result()
	}
	cl.algo("recursive halving + allgather")
	if err := h.run(ctx, op); err != nil {
		return cl.wrap(err)
	}
	return cl.result()
}

// AllreduceSlice reduces the ranks' slices element-wise, like ReduceSlice,
// and returns the result (identical on every rank) on every rank. Large
// vectors of numbers use Rabenseifner's algorithm (a reduce-scatter by
// recursive halving, then an allgather by recursive doubling), so that no
// rank holds more than the result and half a vector of scratch. It is
// AllreduceSliceInto with a new result; a caller that reduces vectors of
// one size again and again should use that with a buffer of its own (the
// new result is the call's only allocation of the vector's size, and at
// 1 MiB on 8 ranks its garbage collections cost about half the call's
// time).
func AllreduceSlice[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E) ([]E, error) {
	var out []E
	if v != nil {
		out = make([]E, len(v))
	}
	cl := begin(ctx, c, opAllreduceSlice)
	defer cl.release()
	if err := allreduceSlice(ctx, cl, v, out, op); err != nil {
		return nil, err
	}
	return out, nil
}

// AllreduceSliceInto is AllreduceSlice with the result written into out
// (MPI_Allreduce with a receive buffer) on every rank: the same result,
// bit for bit, the same algorithms and costs. len(out) must equal len(in);
// out may be in itself (MPI_IN_PLACE: in is overwritten with the result)
// but must not otherwise share memory with it. A rank whose out is bad
// takes part in the agreement step without touching out, and every rank
// returns an error wrapping ErrInvalidArg (for a length, "rank 3 passed out
// of length 99 for in of length 100") before any data moves. Ranks may mix
// AllreduceSlice and AllreduceSliceInto in one call. On an error out's
// contents are unspecified. With numeric elements of 64 KiB or more it
// allocates nothing of the vector's size: its scratch comes from a pool.
func AllreduceSliceInto[E any](ctx context.Context, c *comm.Comm, in, out []E, op func(a, b E) E) error {
	cl := begin(ctx, c, opAllreduceSliceInto)
	defer cl.release()
	return allreduceSlice(ctx, cl, in, out, op)
}

func allreduceSlice[E any](ctx context.Context, cl *call, v, out []E, op func(a, b E) E) error {
	k := elemsOf[E]()
	a := sliceParams(cl, k, v, false, 0)
	same := checkOut(cl, v, out, &a)
	if cl.h != nil && !hierFlat(k, len(v)) {
		return sliceHier(ctx, cl, k, v, out, op, a, -1)
	}
	h, fused, err := agreeSlice(ctx, cl, k, a, v, out, same, cl.largeAll(k.raw, len(v)*k.size), -1)
	if err != nil {
		return err
	}
	if fused {
		defer cl.done()
		var err error
		if k.raw && len(v)*k.size >= regionSplit && !cl.onePhase {
			err = foldBlocks(ctx, cl, k, out, op, -1)
		} else {
			err = foldSlices(ctx, cl, k, out, 0, cl.p, 0, len(out), op)
		}
		if err != nil {
			return cl.wrap(err)
		}
		return cl.result()
	}
	if cl.p == 1 {
		copy(out, v)
		return nil
	}
	if h == nil {
		copy(out, v)
		red := &vector[E]{k: k, op: op, acc: out}
		if err := cl.allreduceDoubling(ctx, red); err != nil {
			return cl.wrap(err)
		}
		return cl.result()
	}
	cl.algo("recursive halving + allgather")
	if err := h.run(ctx, op); err != nil {
		return cl.wrap(err)
	}
	return cl.result()
}

// ReduceScatter reduces the ranks' slices element-wise, like ReduceSlice,
// and returns block Rank() of the result (len(v)/c.Size() elements) on
// each rank (MPI_Reduce_scatter_block). Every rank must pass the same
// length, divisible by c.Size().
func ReduceScatter[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E) ([]E, error) {
	cl := begin(ctx, c, opReduceScatter)
	defer cl.release()
	k := elemsOf[E]()
	fused, err := checkSlice(ctx, cl, k, v, false, 0)
	if err != nil {
		return nil, err
	}
	if fused {
		defer cl.done()
	}
	if len(v)%cl.p != 0 {
		return nil, invalid(cl.op, nil, "every rank passed %d elements, not divisible by %d ranks", len(v), cl.p)
	}
	m := len(v) / cl.p
	if fused {
		out := make([]E, m)
		if err := foldSlices(ctx, cl, k, out, 0, cl.p, cl.r*m, (cl.r+1)*m, op); err != nil {
			return nil, cl.wrap(err)
		}
		if err := cl.result(); err != nil {
			return nil, err
		}
		return out, nil
	}
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
	cl := begin(ctx, c, opScanSlice)
	defer cl.release()
	fused, err := checkSlice(ctx, cl, elemsOf[E](), v, false, 0)
	if err != nil {
		return nil, err
	}
	if fused {
		return foldSliceRanks(ctx, cl, elemsOf[E](), len(v), cl.r+1, op)
	}
	out, err := scan(ctx, cl, valuesOf[[]E](), v, lift(op))
	if cl.r == 0 && err == nil {
		out = slices.Clone(out) // v itself
	}
	return out, err
}

// ExscanSlice returns, on rank r > 0, the element-wise fold of the ranks'
// slices over ranks 0..r-1 in rank order, and nil on rank 0, the zero
// value of its result as Exscan's is (MPI_Exscan of a buffer). Every rank must pass the same length. op must be associative;
// it need not be commutative.
func ExscanSlice[E any](ctx context.Context, c *comm.Comm, v []E, op func(a, b E) E) ([]E, error) {
	cl := begin(ctx, c, opExscanSlice)
	defer cl.release()
	fused, err := checkSlice(ctx, cl, elemsOf[E](), v, false, 0)
	if err != nil {
		return nil, err
	}
	if fused {
		return foldSliceRanks(ctx, cl, elemsOf[E](), len(v), cl.r, op)
	}
	return scan(ctx, cl, valuesOf[[]E](), v, lift(op))
}

// agreeSlice runs the agreement step of ReduceSlice (root ≥ 0) and
// AllreduceSlice (root -1). When large, it first posts the recursive
// halving's receives, so that a partner that finishes the agreement first
// finds them; a mismatch withdraws them (nobody sends). It returns the
// halving, nil when not large.
func agreeSlice[E any](ctx context.Context, cl *call, k elems[E], a params, v, out []E, same, large bool, root int) (*halving[E], bool, error) {
	var h *halving[E]
	offered := a.bad == nil && offerSlice(cl, k, v)
	if offered && !same {
		cl.readOwn() // out, written while the call reads, is not v
		if root >= 0 && cl.r == root && cl.p == 2 {
			cl.offerNone() // nobody else reads the root's part (rootFoldsAll)
		} else if root < 0 && k.raw && len(v)*k.size >= regionSplit && !cl.nb {
			offerBlocks(cl, k, v) // (a nonblocking call may ask for one phase, which reads whole vectors)
		}
	}
	if offered && k.raw {
		cl.streamIf(len(v) * k.size) // foldSlices and foldBlocks wait for the bytes they read
	}
	if a.bad == nil && large && !offered && !cl.ahead {
		var err error
		if h, err = postHalving(cl, k, v, out, same, root); err != nil {
			return nil, false, cl.wrap(err)
		}
	}
	s, err := cl.check(ctx, a)
	if err != nil {
		if h != nil {
			h.cancel()
		}
		return nil, false, cl.wrap(err)
	}
	if cl.fused(s) {
		cl.crowded = s[fCrowded].Max == 1
		// One phase reads every rank's whole vector: not when a blocking
		// rank posted its own without its block (offerBlocks).
		cl.onePhase = s[fOne].Max == 1 && s[fData].Min == s[fData].Max && s[fData].Min == int64(len(v)*k.size)
		return nil, true, nil
	}
	if h == nil && large && a.bad == nil { // offered, but some rank's slice did not fit
		if h, err = postHalving(cl, k, v, out, same, root); err != nil {
			return nil, false, cl.wrap(err)
		}
	}
	return h, false, nil
}

// offerBlocks offers, for an AllreduceSlice folded by blocks (foldBlocks),
// this rank's vector without its own block, which nobody else reads: the
// blocks after it, then those before it (the rotated layout), so that a
// streamed post gives the next rank its block first. A rank whose block
// is empty offers the whole vector (the two layouts then differ by
// length), and so does a rank whose vector does not fit the slot (the call
// then goes by messages, as it would have).
func offerBlocks[E any](cl *call, k elems[E], v []E) {
	n := len(v)
	lo, hi := cl.r*n/cl.p, (cl.r+1)*n/cl.p
	// The folded block goes after the payload: the whole vector must fit
	// the slot, as in the other layout.
	if lo < hi && n*k.size <= cl.ac.Slot() {
		cl.offer2(k.view(v[hi:]), k.view(v[:lo]))
	}
}

// rootFoldsAll tells a fused ReduceSlice of p ranks that its root folds
// every payload itself, whatever its size, rather than each rank folding a
// block (foldBlocks), which takes a second phase (publish, mark, wait,
// copy): with two ranks that phase cost more than it saved (64 KiB:
// 12.6-13.5 µs against Open MPI's 6.4-6.7), and on a host with more ranks
// than cores (crowded: some rank said so) it makes every rank wait for a
// core twice, where the other ranks now leave as soon as they have posted
// (8 ranks on 2 cores, 64 KiB: 145-168 µs against 232-257). With a core
// per rank and more than two ranks, the blocks share the work.
func rootFoldsAll(p int, crowded bool) bool { return p == 2 || crowded && !splitCrowded }

// splitCrowded makes crowded hosts fold by blocks too (tests: on the
// 2-core test VM every world of three ranks or more is crowded).
var splitCrowded bool

// offerSlice offers v as the call's payload in the communicator's
// shared-memory region, if it has one.
func offerSlice[E any](cl *call, k elems[E], v []E) bool {
	if cl.ac.Slot() == 0 {
		return false
	}
	b, err := k.encode(v)
	if err != nil {
		return false
	}
	cl.offer(b)
	return true
}

// foldSliceRanks is ScanSlice and ExscanSlice through the region: the
// element-wise fold of ranks 0..hi-1 (nil when hi is 0).
func foldSliceRanks[E any](ctx context.Context, cl *call, k elems[E], n, hi int, op func(a, b E) E) ([]E, error) {
	defer cl.done()
	if hi == 0 {
		return nil, nil
	}
	out := make([]E, n)
	if err := foldSlices(ctx, cl, k, out, 0, hi, 0, n, op); err != nil {
		return nil, cl.wrap(err)
	}
	if err := cl.result(); err != nil {
		return nil, err
	}
	return out, nil
}
