package collectives

import (
	"cmp"
	"fmt"
	"reflect"
	"sync"
)

// Integer is the set of integer types, named ones included.
type Integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

// Number is the set of types with + and *: integers, floats and complex
// numbers.
type Number interface {
	Integer | ~float32 | ~float64 | ~complex64 | ~complex128
}

// Sum returns a + b.
func Sum[T Number](a, b T) T { return a + b }

// Prod returns a * b.
func Prod[T Number](a, b T) T { return a * b }

// Min returns the smaller of a and b (the built-in min: a NaN wins).
func Min[T cmp.Ordered](a, b T) T { return min(a, b) }

// Max returns the larger of a and b (the built-in max: a NaN wins).
func Max[T cmp.Ordered](a, b T) T { return max(a, b) }

func truth[T Number](b bool) T {
	if b {
		return 1
	}
	return 0
}

// LAnd is logical and: 1 if a and b are both nonzero, else 0.
func LAnd[T Number](a, b T) T { return truth[T](a != 0 && b != 0) }

// LOr is logical or: 1 if a or b is nonzero, else 0.
func LOr[T Number](a, b T) T { return truth[T](a != 0 || b != 0) }

// LXor is logical exclusive or: 1 if exactly one of a and b is nonzero.
func LXor[T Number](a, b T) T { return truth[T]((a != 0) != (b != 0)) }

// BAnd returns a & b.
func BAnd[T Integer](a, b T) T { return a & b }

// BOr returns a | b.
func BOr[T Integer](a, b T) T { return a | b }

// BXor returns a ^ b.
func BXor[T Integer](a, b T) T { return a ^ b }

// Loc is a value with the index it came from, for MinLoc and MaxLoc (MPI's
// MINLOC and MAXLOC); the index is usually a rank or a position.
type Loc[T cmp.Ordered] struct {
	Value T
	Index int
}

// MinLoc returns the pair with the smaller Value; of equal Values, the one
// with the smaller Index.
func MinLoc[T cmp.Ordered](a, b Loc[T]) Loc[T] {
	if c := cmp.Compare(a.Value, b.Value); c < 0 || c == 0 && a.Index <= b.Index {
		return a
	}
	return b
}

// MaxLoc returns the pair with the larger Value; of equal Values, the one
// with the smaller Index.
func MaxLoc[T cmp.Ordered](a, b Loc[T]) Loc[T] {
	if c := cmp.Compare(a.Value, b.Value); c > 0 || c == 0 && a.Index <= b.Index {
		return a
	}
	return b
}

// Elementwise lifts op on elements to equal-length slices: the result's
// element i is op(a[i], b[i]), in a new slice. Reduce, Allreduce, Scan and
// Exscan recognise an op made by Elementwise and then check in their
// agreement step that every rank passed the same length, returning a
// [*MismatchError] on every rank if not; called directly on slices of
// different lengths it panics. ReduceSlice, AllreduceSlice, ScanSlice,
// ExscanSlice and ReduceScatter apply an element op themselves, always
// check lengths, and allocate less.
func Elementwise[E any](op func(a, b E) E) func(a, b []E) []E {
	f := lift(op)
	elementwiseOps.LoadOrStore(reflect.ValueOf(f).Pointer(), struct{}{})
	return f
}

func lift[E any](op func(a, b E) E) func(a, b []E) []E {
	return func(a, b []E) []E {
		if len(a) != len(b) {
			panic(fmt.Sprintf("collectives: element-wise op on slices of lengths %d and %d", len(a), len(b)))
		}
		out := make([]E, len(a))
		for i := range a {
			out[i] = op(a[i], b[i])
		}
		return out
	}
}

// elementwiseOps holds the code pointers of the functions Elementwise
// returns (one per element shape, however many times it is called), so
// that the whole-value reductions can tell that op needs equal lengths.
var elementwiseOps sync.Map // uintptr -> struct{}

func isElementwise(op any) bool {
	v := reflect.ValueOf(op)
	if v.Kind() != reflect.Func || v.IsNil() {
		return false
	}
	_, ok := elementwiseOps.Load(v.Pointer())
	return ok
}

// combineLeft sets acc[i] = op(in[i], acc[i]): in comes from lower ranks.
func combineLeft[E any](op func(a, b E) E, in, acc []E) {
	if sumInto(op, acc, in, acc) {
		return
	}
	for i := range acc {
		acc[i] = op(in[i], acc[i])
	}
}

// combineRight sets acc[i] = op(acc[i], in[i]): in comes from higher ranks.
func combineRight[E any](op func(a, b E) E, acc, in []E) {
	if sumInto(op, acc, acc, in) {
		return
	}
	for i := range acc {
		acc[i] = op(acc[i], in[i])
	}
}

// combine2 sets dst[i] = op(a[i], b[i]): a comes from lower ranks than b.
// (dst may be a or b.)
func combine2[E any](op func(a, b E) E, dst, a, b []E) {
	if sumInto(op, dst, a, b) {
		return
	}
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = op(a[i], b[i])
	}
}

// The code addresses of Sum for the element types that sumInto adds
// without calling op. (Within a generic function Sum[E] is another
// closure, so they are taken here, for each type by name.)
var (
	sumFloat64 = funcPC(Sum[float64])
	sumFloat32 = funcPC(Sum[float32])
	sumInt     = funcPC(Sum[int])
	sumInt64   = funcPC(Sum[int64])
	sumInt32   = funcPC(Sum[int32])
	sumUint64  = funcPC(Sum[uint64])
)

func funcPC(f any) uintptr { return reflect.ValueOf(f).Pointer() }

// sumInto sets dst[i] = a[i] + b[i] and reports true when op is Sum on one
// of the element types above: the same expression as op(a[i], b[i]),
// without a call per element. It reports false for any other op.
func sumInto[E any](op func(a, b E) E, dst, a, b []E) bool {
	switch f := any(op).(type) {
	case func(a, b float64) float64:
		return funcPC(f) == sumFloat64 && add(any(dst).([]float64), any(a).([]float64), any(b).([]float64))
	case func(a, b float32) float32:
		return funcPC(f) == sumFloat32 && add(any(dst).([]float32), any(a).([]float32), any(b).([]float32))
	case func(a, b int) int:
		return funcPC(f) == sumInt && add(any(dst).([]int), any(a).([]int), any(b).([]int))
	case func(a, b int64) int64:
		return funcPC(f) == sumInt64 && add(any(dst).([]int64), any(a).([]int64), any(b).([]int64))
	case func(a, b int32) int32:
		return funcPC(f) == sumInt32 && add(any(dst).([]int32), any(a).([]int32), any(b).([]int32))
	case func(a, b uint64) uint64:
		return funcPC(f) == sumUint64 && add(any(dst).([]uint64), any(a).([]uint64), any(b).([]uint64))
	}
	return false
}

func add[N Number](dst, a, b []N) bool {
	a, b = a[:len(dst)], b[:len(dst)]
	i := 0
	if len(dst) >= 16 { // a vector kernel's block at the least (128 bytes of 8-byte numbers)
		i = addVec(dst, a, b)
	}
	for ; i < len(dst); i++ {
		dst[i] = a[i] + b[i]
	}
	return true
}
