package collectives

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"reflect"
	"strconv"
	"sync"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
)

// Encoding of collective payloads. Numeric and bool kinds (and slices of
// them) travel as their memory image; everything else as CBOR. The
// agreement step compares a hash of the type (with the byte order and word
// size), so a receiver never reinterprets another type's image.

func rawKind(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	}
	return false
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// typeHashes caches typeHash, which every call needs and which formats.
var typeHashes sync.Map // reflect.Type → int64

// typeHash identifies T (with its package path) on this architecture.
func typeHash(t reflect.Type) int64 {
	if v, ok := typeHashes.Load(t); ok {
		return v.(int64)
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%s|%d|%v", t.PkgPath(), t.String(), strconv.IntSize, littleEndian)
	v := int64(h.Sum64() >> 1)
	typeHashes.Store(t, v)
	return v
}

// elems encodes slices of E.
type elems[E any] struct {
	raw  bool
	size int // bytes per element when raw
	hash int64
}

func elemsOf[E any]() elems[E] {
	t := reflect.TypeFor[E]()
	return elems[E]{raw: rawKind(t), size: int(t.Size()), hash: typeHash(reflect.TypeFor[[]E]())}
}

// view is the memory of s (raw kinds only).
func (k elems[E]) view(s []E) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*k.size)
}

func (k elems[E]) encode(s []E) ([]byte, error) {
	if k.raw {
		return k.view(s), nil
	}
	b, err := cbor.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %T: %w", s, err)
	}
	return b, nil
}

// decode returns a new slice; it never aliases b.
func (k elems[E]) decode(b []byte) ([]E, error) {
	if k.raw {
		if len(b)%k.size != 0 {
			return nil, fmt.Errorf("payload of %d bytes is not a whole number of %d-byte elements", len(b), k.size)
		}
		s := make([]E, len(b)/k.size)
		copy(k.view(s), b)
		return s, nil
	}
	var s []E
	if err := cbor.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("cannot decode %T: %w", s, err)
	}
	return s, nil
}

// values encodes whole values of T.
type values[T any] struct {
	t      reflect.Type
	scalar bool // a raw kind
	slice  bool // a slice of a raw kind
	size   int  // bytes of a raw kind
	align  int  // its alignment
	esize  int
	hash   int64
}

func valuesOf[T any]() values[T] {
	t := reflect.TypeFor[T]()
	k := values[T]{t: t, hash: typeHash(t)}
	switch {
	case rawKind(t):
		k.scalar, k.size, k.align = true, int(t.Size()), t.Align()
	case t.Kind() == reflect.Slice && rawKind(t.Elem()):
		k.slice, k.esize = true, int(t.Elem().Size())
	}
	return k
}

// encode returns v's bytes; for raw slices, v's own memory.
func (k values[T]) encode(v T) ([]byte, error) {
	switch {
	case k.scalar:
		b := make([]byte, k.t.Size())
		copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&v)), len(b)))
		return b, nil
	case k.slice:
		rv := reflect.ValueOf(&v).Elem()
		if rv.Len() == 0 {
			return []byte{}, nil
		}
		return unsafe.Slice((*byte)(rv.UnsafePointer()), rv.Len()*k.esize), nil
	}
	b, err := cbor.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %s: %w", k.t, err)
	}
	return b, nil
}

// alloc returns a new T whose memory is n bytes, and that memory, for raw
// slices; ok is false for other types.
func (k values[T]) alloc(n int) (v T, b []byte, ok bool) {
	if !k.slice || n%k.esize != 0 {
		return v, nil, false
	}
	rv := reflect.MakeSlice(k.t, n/k.esize, n/k.esize)
	v = rv.Interface().(T)
	if n == 0 {
		return v, []byte{}, true
	}
	return v, unsafe.Slice((*byte)(rv.UnsafePointer()), n), true
}

// decodeScalar is decode of a raw kind, which allocates nothing.
func (k values[T]) decodeScalar(b []byte) (T, error) {
	if len(b) != k.size || k.size > 16 {
		var zero T
		return zero, fmt.Errorf("payload of %d bytes for a %d-byte %s", len(b), k.size, k.t)
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%uintptr(k.align) != 0 {
		// Through an aligned buffer of a fixed type (a pointer to a T
		// would move it to the heap).
		var buf [2]uint64
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&buf)), len(b)), b)
		p = unsafe.Pointer(&buf)
	}
	return *(*T)(p), nil
}

// decode returns a new T; it never aliases b.
func (k values[T]) decode(b []byte) (T, error) {
	if k.scalar {
		return k.decodeScalar(b)
	}
	var v T
	switch {
	case k.slice:
		v, view, ok := k.alloc(len(b))
		if !ok {
			return v, fmt.Errorf("payload of %d bytes is not a whole number of %d-byte elements", len(b), k.esize)
		}
		copy(view, b)
		return v, nil
	}
	if err := cbor.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("cannot decode %s: %w", k.t, err)
	}
	return v, nil
}

// packBlocks joins blocks into one message: their lengths (8 bytes each),
// then their bytes.
func packBlocks(blocks [][]byte) []byte {
	n := 8 * len(blocks)
	for _, b := range blocks {
		n += len(b)
	}
	out := make([]byte, 8*len(blocks), n)
	for i, b := range blocks {
		binary.LittleEndian.PutUint64(out[8*i:], uint64(len(b)))
	}
	for _, b := range blocks {
		out = append(out, b...)
	}
	return out
}

// unpackBlocks splits a packBlocks message of k blocks; the blocks alias b.
func unpackBlocks(b []byte, k int) ([][]byte, error) {
	if len(b) < 8*k {
		return nil, fmt.Errorf("block message of %d bytes is too short for %d blocks", len(b), k)
	}
	blocks := make([][]byte, k)
	off := 8 * k
	for i := range blocks {
		n := binary.LittleEndian.Uint64(b[8*i:])
		if n > uint64(len(b)-off) {
			return nil, fmt.Errorf("block message of %d bytes is too short for its block %d", len(b), i)
		}
		blocks[i] = b[off : off+int(n) : off+int(n)]
		off += int(n)
	}
	if off != len(b) {
		return nil, fmt.Errorf("block message has %d bytes after its %d blocks", len(b)-off, k)
	}
	return blocks, nil
}
