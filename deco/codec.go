package deco

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// Values travel as CBOR. nil slices and maps stay nil (encoded as null), so
// that write-back can tell a nil slice from an empty one.
var (
	encMode, _ = cbor.EncOptions{}.EncMode()
	decMode, _ = cbor.DecOptions{MaxArrayElements: 1<<31 - 1, MaxMapPairs: 1<<31 - 1}.DecMode()
)

var errMalformed = errors.New("deco: malformed message")

func encode(v any) ([]byte, error) { return encMode.Marshal(v) }

func decode(b []byte, p any) error { return decMode.Unmarshal(b, p) }

// encArgs encodes a call's arguments, each with a length prefix, and keeps
// the caller's values of those that can carry writes back (orig[i] is nil
// for the others; orig is nil when none can).
func encArgs(e *entry, vals ...any) (args []byte, orig []any, err error) {
	for i, v := range vals {
		b, err := encode(v)
		if err != nil {
			return nil, nil, fmt.Errorf("argument %d (%s): %w: %w", i+1, e.args[i], ErrEncode, err)
		}
		args = binary.AppendUvarint(args, uint64(len(b)))
		args = append(args, b...)
		if e.shares[i] {
			if orig == nil {
				orig = make([]any, len(vals))
			}
			orig[i] = v
		}
	}
	return args, orig, nil
}

// decArgs decodes encArgs's output into ptrs; a nil pointer skips that
// argument.
func decArgs(args []byte, ptrs ...any) error {
	for i, p := range ptrs {
		seg, rest, err := chunk(args)
		if err != nil {
			return fmt.Errorf("argument %d: %w", i+1, err)
		}
		args = rest
		if p == nil {
			continue
		}
		if err := decode(seg, p); err != nil {
			return fmt.Errorf("decoding argument %d: %w", i+1, err)
		}
	}
	return nil
}

// chunk splits a length-prefixed segment off b.
func chunk(b []byte) (seg, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, errMalformed
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

func appendChunk(b, seg []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(seg)))
	return append(b, seg...)
}

func uvarint(b []byte) (uint64, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return 0, nil, errMalformed
	}
	return n, b[k:], nil
}

// checkType panics if values of t can never be encoded: a programmer error
// found when the function is wrapped, not at the first call.
func checkType(fn, what string, t reflect.Type) {
	if bad := unencodable(t, map[reflect.Type]bool{}); bad != nil {
		panic(fmt.Sprintf("deco: %s: %s has type %s, which contains %s: it cannot be sent to another rank",
			fn, what, t, bad))
	}
}

func unencodable(t reflect.Type, seen map[reflect.Type]bool) reflect.Type {
	if seen[t] {
		return nil
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		return t
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return unencodable(t.Elem(), seen)
	case reflect.Map:
		if b := unencodable(t.Key(), seen); b != nil {
			return b
		}
		return unencodable(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() {
				if b := unencodable(f.Type, seen); b != nil {
					return b
				}
			}
		}
	}
	return nil
}

// shares reports whether a value of type t can carry a task's writes back
// to its caller: it holds a pointer, map or slice.
func shares(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice:
		return true
	case reflect.Array:
		return shares(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && shares(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// fmtArgs renders arguments for error messages, each shortened.
func fmtArgs(vals ...any) string {
	var s string
	for i, v := range vals {
		if i > 0 {
			s += ", "
		}
		a := fmt.Sprintf("%v", v)
		if len(a) > 40 {
			a = a[:37] + "..."
		}
		s += a
	}
	return s
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
