package deco

import (
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"sync"

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
	if e.bad != nil {
		return nil, nil, e.bad
	}
	for i, v := range vals {
		if i < len(e.dyn) && e.dyn[i] {
			if err := valueProblem(reflect.ValueOf(&v).Elem(), 0); err != nil {
				return nil, nil, fmt.Errorf("argument %d (%s) holds %w", i+1, e.args[i], err)
			}
		}
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

// checkType returns an error wrapping ErrType if values of t cannot travel
// between ranks: what cannot be encoded (channels, functions, complex
// numbers) or would arrive as zeros (unexported struct fields).
func checkType(fn, what string, t reflect.Type) error {
	if bad := travelProblem(t, map[reflect.Type]bool{}); bad != "" {
		return fmt.Errorf("%s: %s has type %s: %s: %w (export the field, tag it `cbor:\"-\"` if it need not travel, "+
			"or give the type MarshalBinary and UnmarshalBinary methods)", fn, what, t, bad, ErrType)
	}
	return nil
}

var (
	cborMarshaler   = reflect.TypeFor[cbor.Marshaler]()
	binaryMarshaler = reflect.TypeFor[encoding.BinaryMarshaler]()
	bigInt          = reflect.TypeFor[big.Int]()
)

// selfEncoding reports whether t (or *t) encodes itself, or is one of the
// types CBOR knows (time.Time, big.Int).
func selfEncoding(t reflect.Type) bool {
	if t == bigInt {
		return true
	}
	for _, x := range []reflect.Type{t, reflect.PointerTo(t)} {
		if x.Implements(cborMarshaler) || x.Implements(binaryMarshaler) {
			return true
		}
	}
	return false
}

// travelProblem describes why values of t cannot travel ("" if they can).
// Interface types are checked value by value, at the call (valueProblem).
func travelProblem(t reflect.Type, seen map[reflect.Type]bool) string {
	if seen[t] {
		return ""
	}
	seen[t] = true
	if t.Kind() != reflect.Interface && t.Kind() != reflect.Pointer && selfEncoding(t) {
		return ""
	}
	switch t.Kind() {
	case reflect.Chan:
		return "it is a channel"
	case reflect.Func:
		return "it is a function"
	case reflect.UnsafePointer:
		return "it is an unsafe.Pointer"
	case reflect.Complex64, reflect.Complex128:
		return "it is a complex number"
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return travelProblem(t.Elem(), seen)
	case reflect.Map:
		if p := travelProblem(t.Key(), seen); p != "" {
			return p
		}
		return travelProblem(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Tag.Get("cbor") == "-" || f.Tag.Get("json") == "-" {
				continue
			}
			ft := f.Type
			if f.Anonymous && ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if !f.IsExported() && !(f.Anonymous && ft.Kind() == reflect.Struct) {
				return fieldProblem(t, f.Name, "is unexported")
			}
			p := travelProblem(f.Type, seen)
			switch {
			case p == "":
			case strings.HasPrefix(p, "it is "):
				return fieldProblem(t, f.Name, strings.TrimPrefix(p, "it "))
			default:
				return p
			}
		}
	}
	return ""
}

func fieldProblem(t reflect.Type, field, what string) string {
	return fmt.Sprintf("field %s of %s %s", field, t, what)
}

// hasInterface reports whether values of t can hold interface values,
// whose dynamic types are checked at the call.
func hasInterface(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return hasInterface(t.Elem(), seen)
	case reflect.Map:
		return hasInterface(t.Key(), seen) || hasInterface(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && hasInterface(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// okTypes caches the dynamic types found fit to travel.
var okTypes sync.Map // reflect.Type → struct{}

// valueProblem checks the dynamic types of the interface values inside v.
func valueProblem(v reflect.Value, depth int) error {
	if depth > 64 || !v.IsValid() {
		return nil
	}
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return nil
		}
		d := v.Elem()
		t := d.Type()
		if _, ok := okTypes.Load(t); !ok {
			if p := travelProblem(t, map[reflect.Type]bool{}); p != "" {
				return fmt.Errorf("a value of type %s: %s: %w", t, p, ErrType)
			}
			okTypes.Store(t, struct{}{})
		}
		if hasInterface(t, map[reflect.Type]bool{}) {
			return valueProblem(d, depth+1)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return valueProblem(v.Elem(), depth+1)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := valueProblem(v.Index(i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if err := valueProblem(it.Key(), depth+1); err != nil {
				return err
			}
			if err := valueProblem(it.Value(), depth+1); err != nil {
				return err
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				if err := valueProblem(v.Field(i), depth+1); err != nil {
					return err
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
