package collectives

import (
	"context"
	"reflect"
	"unsafe"

	"github.com/decorun/decorun/comm"
)

// reducer is an accumulator that the tree algorithms combine with what they
// receive, keeping rank order.
type reducer interface {
	encode() ([]byte, error)
	// combine sets acc = in op acc if in comes from lower ranks, else
	// acc = acc op in.
	combine(in []byte, fromLower bool) error
	set(in []byte) error // acc = in
}

// value is a reducer of whole values.
type value[T any] struct {
	k   values[T]
	op  func(a, b T) T
	acc T
}

func (v *value[T]) encode() ([]byte, error) { return v.k.encode(v.acc) }

func (v *value[T]) combine(in []byte, fromLower bool) error {
	t, err := v.k.decode(in)
	if err != nil {
		return err
	}
	if fromLower {
		v.acc = v.op(t, v.acc)
	} else {
		v.acc = v.op(v.acc, t)
	}
	return nil
}

func (v *value[T]) set(in []byte) (err error) {
	v.acc, err = v.k.decode(in)
	return err
}

// probe checks that v survives encoding, so that a rank fails in the
// agreement step rather than halfway through the algorithm, leaving its
// peers waiting. Raw kinds always do.
func (k values[T]) probe(v T) error {
	if k.scalar || k.slice {
		return nil
	}
	b, err := k.encode(v)
	if err == nil {
		_, err = k.decode(b)
	}
	return err
}

// Reduce folds op over every rank's v in rank order and returns the result
// at root (the zero T elsewhere). op must be associative; it need not be
// commutative.
func Reduce[T any](ctx context.Context, c *comm.Comm, v T, op func(a, b T) T, root int) (T, error) {
	var zero T
	cl := begin(ctx, c, opReduce)
	defer cl.release()
	k := valuesOf[T]()
	if cl.h != nil {
		return reduceHier(ctx, cl, k, v, op, valueParams(cl, k, v, op, true, root), root)
	}
	fused, err := checkValue(ctx, cl, k, v, op, true, root)
	if err != nil {
		return zero, err
	}
	if fused {
		if cl.r != root {
			cl.done()
			return zero, nil
		}
		return foldValue(cl, k, 0, cl.p, op)
	}
	red := &value[T]{k: k, op: op, acc: v}
	if err := cl.reduceTree(ctx, red, root); err != nil {
		return zero, cl.wrap(err)
	}
	if err := cl.result(); err != nil || cl.r != root {
		return zero, err
	}
	return red.acc, nil
}

// Allreduce folds op over every rank's v in rank order and returns the
// result on every rank; every rank computes the same expression, so the
// results are identical. op must be associative; it need not be
// commutative.
func Allreduce[T any](ctx context.Context, c *comm.Comm, v T, op func(a, b T) T) (T, error) {
	var zero T
	cl := begin(ctx, c, opAllreduce)
	defer cl.release()
	k := valuesOf[T]()
	if cl.h != nil {
		return reduceHier(ctx, cl, k, v, op, valueParams(cl, k, v, op, false, 0), -1)
	}
	fused, err := checkValue(ctx, cl, k, v, op, false, 0)
	if err != nil {
		return zero, err
	}
	if fused {
		return foldValue(cl, k, 0, cl.p, op)
	}
	red := &value[T]{k: k, op: op, acc: v}
	if err := cl.allreduceDoubling(ctx, red); err != nil {
		return zero, cl.wrap(err)
	}
	if err := cl.result(); err != nil {
		return zero, err
	}
	return red.acc, nil
}

// checkValue is the agreement step of the whole-value reductions. The
// length of a slice value is exchanged too, and must be equal on every
// rank when some rank's op came from Elementwise.
func checkValue[T any](ctx context.Context, cl *call, k values[T], v T, op func(a, b T) T, rooted bool, root int) (fused bool, err error) {
	a := valueParams(cl, k, v, op, rooted, root)
	switch {
	case a.bad != nil:
	case k.scalar && k.size <= 8*len(cl.inline): // in the call: no allocation
		*(*T)(unsafe.Pointer(&cl.inline)) = v
		cl.offer(unsafe.Slice((*byte)(unsafe.Pointer(&cl.inline)), k.size))
	default:
		if b, err := k.encode(v); err == nil {
			cl.offer(b)
		}
	}
	s, err := cl.check(ctx, a)
	return err == nil && cl.fused(s), cl.wrap(err)
}

// valueParams are the agreement's arguments of a whole-value reduction.
func valueParams[T any](cl *call, k values[T], v T, op func(a, b T) T, rooted bool, root int) params {
	var bad error
	if err := k.probe(v); err != nil {
		bad = invalid(cl.op, err, "rank %d's value", cl.r)
	}
	a := params{typ: k.hash, rooted: rooted, root: root, bad: bad}
	if k.t.Kind() == reflect.Slice {
		a.length, a.lenRule = reflect.ValueOf(v).Len(), lenAny
		if isElementwise(op) {
			a.lenRule = lenEqual
		}
	}
	return a
}

// foldValue is a whole-value reduction through the region: this rank folds
// the values of ranks lo..hi-1 itself.
func foldValue[T any](cl *call, k values[T], lo, hi int, op func(a, b T) T) (T, error) {
	defer cl.done()
	var zero T
	if lo >= hi {
		return zero, nil
	}
	acc, err := foldValues(cl, k, lo, hi, op)
	if err != nil {
		return zero, cl.wrap(err)
	}
	if err := cl.result(); err != nil {
		return zero, err
	}
	return acc, nil
}

// reduceTree reduces to rank 0 over a binomial tree in which rank r
// receives from r+2^j for the low zero bits j of r and sends to r minus its
// lowest set bit, so that every message holds a contiguous range of ranks
// following the receiver's; then rank 0 sends the result to root. It
// returns communication errors; a failure of op is left in cl.failed.
func (cl *call) reduceTree(ctx context.Context, red reducer, root int) error {
	cl.algo("binomial tree")
	p, r := cl.p, cl.r
	for mask := 1; mask < p; mask <<= 1 {
		if r&mask != 0 {
			if err := cl.sendRed(ctx, r-mask, cl.encodeRed(red.encode)); err != nil {
				return err
			}
			break
		}
		if r+mask < p {
			b, ok, err := cl.recvRed(ctx, r+mask)
			if err != nil {
				return err
			}
			if ok {
				if err := cl.combine(red, b, false); err != nil {
					return err
				}
			}
		}
	}
	if root == 0 {
		return nil
	}
	switch r {
	case 0:
		return cl.sendRed(ctx, root, cl.encodeRed(red.encode))
	case root:
		b, ok, err := cl.recvRed(ctx, 0)
		if err != nil || !ok {
			return err
		}
		return red.set(b)
	}
	return nil
}

// allreduceDoubling is recursive doubling over the largest power of two
// pof2 ≤ p. The first 2·(p−pof2) ranks first fold in pairs (rank 2i sends
// to 2i+1) and get the result back at the end, so every participant holds a
// contiguous range of ranks and the order is kept. It returns
// communication errors; a failure of op is left in cl.failed, and reaches
// every rank: both partners of a step compute the same combination, and
// the report travels the remaining steps.
func (cl *call) allreduceDoubling(ctx context.Context, red reducer) error {
	cl.algo("recursive doubling")
	p, r := cl.p, cl.r
	pof2 := 1
	for pof2*2 <= p {
		pof2 *= 2
	}
	rem := p - pof2
	newrank := r - rem
	if r < 2*rem {
		if r%2 == 0 {
			if err := cl.sendRed(ctx, r+1, cl.encodeRed(red.encode)); err != nil {
				return err
			}
			b, ok, err := cl.recvRed(ctx, r+1)
			if err != nil || !ok {
				return err
			}
			return red.set(b)
		}
		b, ok, err := cl.recvRed(ctx, r-1)
		if err != nil {
			return err
		}
		if ok {
			if err := cl.combine(red, b, true); err != nil {
				return err
			}
		}
		newrank = r / 2
	}
	for mask := 1; mask < pof2; mask <<= 1 {
		nd := newrank ^ mask
		dst := nd + rem
		if nd < rem {
			dst = 2*nd + 1
		}
		in, ok, err := cl.exchangeRed(ctx, dst, cl.encodeRed(red.encode), dst)
		if err != nil {
			return err
		}
		if ok {
			if err := cl.combine(red, in, dst < r); err != nil {
				return err
			}
		}
	}
	if r < 2*rem { // odd: send the result back to r-1
		return cl.sendRed(ctx, r-1, cl.encodeRed(red.encode))
	}
	return nil
}

// Scan returns, on rank r, op folded over the v of ranks 0..r in rank
// order. op must be associative; it need not be commutative. For
// element-wise scans of slices use ScanSlice.
func Scan[T any](ctx context.Context, c *comm.Comm, v T, op func(a, b T) T) (T, error) {
	cl := begin(ctx, c, opScan)
	defer cl.release()
	k := valuesOf[T]()
	fused, err := checkValue(ctx, cl, k, v, op, false, 0)
	if err != nil {
		var zero T
		return zero, err
	}
	if fused {
		return foldValue(cl, k, 0, cl.r+1, op)
	}
	return scan(ctx, cl, k, v, op)
}

// Exscan returns, on rank r > 0, op folded over the v of ranks 0..r-1 in
// rank order, and the zero T on rank 0. op must be associative; it need not
// be commutative. For element-wise scans of slices use ExscanSlice.
func Exscan[T any](ctx context.Context, c *comm.Comm, v T, op func(a, b T) T) (T, error) {
	cl := begin(ctx, c, opExscan)
	defer cl.release()
	k := valuesOf[T]()
	fused, err := checkValue(ctx, cl, k, v, op, false, 0)
	if err != nil {
		var zero T
		return zero, err
	}
	if fused {
		return foldValue(cl, k, 0, cl.r, op)
	}
	return scan(ctx, cl, k, v, op)
}

// scan is recursive doubling over aligned blocks of ranks: before the round
// with distance mask, partial is the fold over r's aligned block of mask
// ranks; r exchanges it with r^mask (if that rank exists) and prepends what
// a lower partner sends to both partial and the result. A failure of op
// reaches every rank whose result includes the failed combination.
func scan[T any](ctx context.Context, cl *call, k values[T], v T, f func(a, b T) T) (T, error) {
	var zero T
	partial := v
	result, have := v, cl.op == opScan || cl.op == opScanSlice
	for mask := 1; mask < cl.p; mask <<= 1 {
		dst := cl.r ^ mask
		if dst >= cl.p {
			continue
		}
		out := cl.encodeRed(func() ([]byte, error) { return k.encode(partial) })
		in, ok, err := cl.exchangeRed(ctx, dst, out, dst)
		if err != nil {
			return zero, cl.wrap(err)
		}
		if !ok || cl.failed != nil {
			continue
		}
		t, err := k.decode(in)
		if err != nil {
			return zero, cl.wrap(err)
		}
		cl.guard(func() {
			if dst < cl.r {
				partial = f(t, partial)
				if have {
					result = f(t, result)
				} else {
					result, have = t, true
				}
			} else {
				partial = f(partial, t)
			}
		})
	}
	if err := cl.result(); err != nil || !have {
		return zero, err
	}
	return result, nil
}
