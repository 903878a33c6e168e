package deco

import (
	"bytes"
	"fmt"
	"reflect"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
)

// A write-back is a list of ops, each setting (or deleting) one place in
// one argument, found by comparing the argument after the call with a copy
// of it as issued. See "Write-back" in the package doc for the rule.

const (
	stepDeref = iota // *p
	stepField        // s.Field(I)
	stepIndex        // a[I]
	stepKey          // m[Key]
)

type step struct {
	_   struct{} `cbor:",toarray"`
	K   uint8
	I   int
	Key cbor.RawMessage
}

type wbOp struct {
	_    struct{} `cbor:",toarray"`
	Arg  int
	Path []step
	Del  bool
	Val  cbor.RawMessage
	// N > 0: Val is a slice of N elements for the places from the last
	// step's index on (a run of changed elements of a slice of numbers).
	N int
}

// diffArgs compares each sharing argument after the call with its copy as
// issued and returns the encoded ops (nil if nothing changed).
func diffArgs(shares []bool, before, after []any) ([]byte, error) {
	var d differ
	for i, s := range shares {
		if !s {
			continue
		}
		d.arg = i
		d.diff(nil, reflect.ValueOf(before[i]).Elem(), reflect.ValueOf(after[i]).Elem(), false)
		if d.err != nil {
			return nil, d.err
		}
	}
	if len(d.ops) == 0 {
		return nil, nil
	}
	return encode(d.ops)
}

type differ struct {
	arg int
	ops []wbOp
	err error
}

func with(path []step, s step) []step {
	return append(path[:len(path):len(path)], s)
}

// set records that the place at path now holds b.
func (d *differ) set(path []step, b reflect.Value) {
	v, err := encode(b.Interface())
	if err != nil {
		d.err = fmt.Errorf("write-back of argument %d: %w: %w", d.arg+1, ErrEncode, err)
		return
	}
	d.ops = append(d.ops, wbOp{Arg: d.arg, Path: path, Val: v})
}

// diff compares a (as issued) with b (after the call) at path. visible says
// whether the place itself lives in memory the caller shares (behind a
// pointer, in a map, in a slice's array), so that replacing it is seen.
func (d *differ) diff(path []step, a, b reflect.Value, visible bool) {
	if d.err != nil {
		return
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() && visible {
				d.set(path, b)
			}
			return
		}
		d.diff(with(path, step{K: stepDeref}), a.Elem(), b.Elem(), true)
	case reflect.Struct:
		t := a.Type()
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				d.diff(with(path, step{K: stepField, I: i}), a.Field(i), b.Field(i), visible)
			}
		}
	case reflect.Map:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() && visible {
				d.set(path, b)
			}
			return
		}
		it := a.MapRange()
		for it.Next() {
			k := it.Key()
			key, err := encode(k.Interface())
			if err != nil {
				d.err = fmt.Errorf("write-back of argument %d: map key: %w: %w", d.arg+1, ErrEncode, err)
				return
			}
			p := with(path, step{K: stepKey, Key: key})
			if bv := b.MapIndex(k); !bv.IsValid() {
				d.ops = append(d.ops, wbOp{Arg: d.arg, Path: p, Del: true})
			} else {
				d.diff(p, it.Value(), bv, true)
			}
		}
		it = b.MapRange()
		for it.Next() {
			if !a.MapIndex(it.Key()).IsValid() {
				key, err := encode(it.Key().Interface())
				if err != nil {
					d.err = fmt.Errorf("write-back of argument %d: map key: %w: %w", d.arg+1, ErrEncode, err)
					return
				}
				d.set(with(path, step{K: stepKey, Key: key}), it.Value())
			}
		}
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			if visible {
				d.set(path, b)
			}
			return
		}
		if rawElems(a.Type().Elem()) {
			d.diffRaw(path, a, b)
			return
		}
		if a.Len() > 16 && !shares(a.Type().Elem(), map[reflect.Type]bool{}) && reflect.DeepEqual(a.Interface(), b.Interface()) {
			return // fast path for large unchanged slices of plain values
		}
		for i := range a.Len() {
			d.diff(with(path, step{K: stepIndex, I: i}), a.Index(i), b.Index(i), true)
		}
	case reflect.Array:
		for i := range a.Len() {
			d.diff(with(path, step{K: stepIndex, I: i}), a.Index(i), b.Index(i), visible)
		}
	default: // numbers, strings, bools, interfaces: replaced whole
		if visible && !reflect.DeepEqual(a.Interface(), b.Interface()) {
			d.set(path, b)
		}
	}
}

// snapshotArgs fills dsts[i] (when not nil) with a copy of the argument
// as issued, for diffArgs: a slice of numbers is copied from the decoded
// argument (*srcs[i], not yet called with), anything else decoded again
// from args.
func snapshotArgs(args []byte, dsts, srcs []any) {
	for i, dst := range dsts {
		if dst == nil {
			continue
		}
		d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(srcs[i]).Elem()
		if s.Kind() == reflect.Slice && rawElems(s.Type().Elem()) {
			if !s.IsNil() {
				c := reflect.MakeSlice(s.Type(), s.Len(), s.Len())
				reflect.Copy(c, s)
				d.Set(c)
			}
			continue
		}
		ptrs := make([]any, i+1)
		ptrs[i] = dst
		decArgs(args, ptrs...)
	}
}

// rawElems reports whether t is a number or bool kind, whose values are
// equal when their memory is.
func rawElems(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	}
	return false
}

// diffRaw compares two slices of numbers of one length by their memory
// and records each run of changed elements as one op: a write-back costs
// a pass over the memory and what changed, not a reflective comparison
// per element. (Equal memory is no change, so a NaN left alone is not
// written back; a float whose bits changed, -0 for 0, is.)
func (d *differ) diffRaw(path []step, a, b reflect.Value) {
	n, sz := a.Len(), int(a.Type().Elem().Size())
	if n == 0 {
		return
	}
	am := unsafe.Slice((*byte)(a.UnsafePointer()), n*sz)
	bm := unsafe.Slice((*byte)(b.UnsafePointer()), n*sz)
	if bytes.Equal(am, bm) {
		return
	}
	for i := 0; i < n; {
		if string(am[i*sz:(i+1)*sz]) == string(bm[i*sz:(i+1)*sz]) {
			i++
			continue
		}
		j := i + 1
		for j < n && string(am[j*sz:(j+1)*sz]) != string(bm[j*sz:(j+1)*sz]) {
			j++
		}
		v, err := encode(b.Slice(i, j).Interface())
		if err != nil {
			d.err = fmt.Errorf("write-back of argument %d: %w: %w", d.arg+1, ErrEncode, err)
			return
		}
		d.ops = append(d.ops, wbOp{Arg: d.arg, Path: with(path, step{K: stepIndex, I: i}), Val: v, N: j - i})
		i = j
	}
}

// applyWriteBack applies encoded ops to the caller's arguments orig.
func applyWriteBack(orig []any, wb []byte) error {
	var ops []wbOp
	if err := decode(wb, &ops); err != nil {
		return fmt.Errorf("write-back: %w", err)
	}
	for _, op := range ops {
		if op.Arg < 0 || op.Arg >= len(orig) || orig[op.Arg] == nil || len(op.Path) == 0 {
			return fmt.Errorf("write-back: %w", errMalformed)
		}
		if _, err := applyAt(reflect.ValueOf(orig[op.Arg]), op.Path, op); err != nil {
			return fmt.Errorf("write-back of argument %d: %w", op.Arg+1, err)
		}
	}
	return nil
}

// applyAt applies op at path below v and returns v's new value. Places that
// are addressable are changed in place; for the others (map values, struct
// and array values not behind a pointer) a changed copy is returned for the
// parent to store.
func applyAt(v reflect.Value, path []step, op wbOp) (reflect.Value, error) {
	if len(path) == 0 {
		nv := reflect.New(v.Type())
		if err := decode(op.Val, nv.Interface()); err != nil {
			return v, err
		}
		return nv.Elem(), nil
	}
	s, rest := path[0], path[1:]
	switch s.K {
	case stepDeref:
		if v.Kind() != reflect.Pointer {
			return v, errMalformed
		}
		if v.IsNil() {
			return v, fmt.Errorf("the caller's pointer is now nil")
		}
		el := v.Elem()
		nv, err := applyAt(el, rest, op)
		if err == nil {
			el.Set(nv)
		}
		return v, err
	case stepField, stepIndex:
		switch v.Kind() {
		case reflect.Struct, reflect.Array, reflect.Slice:
		default:
			return v, errMalformed
		}
		if v.Kind() != reflect.Slice && !v.CanAddr() {
			c := reflect.New(v.Type()).Elem()
			c.Set(v)
			v = c
		}
		if s.K == stepIndex && op.N > 0 && len(rest) == 0 { // a run of elements (diffRaw)
			if v.Kind() == reflect.Struct || s.I < 0 || op.N > v.Len()-s.I {
				return v, fmt.Errorf("elements %d to %d out of range: the caller's value has %d elements now", s.I, s.I+op.N, v.Len())
			}
			run := reflect.New(reflect.SliceOf(v.Type().Elem()))
			if err := decode(op.Val, run.Interface()); err != nil {
				return v, err
			}
			if run.Elem().Len() != op.N {
				return v, errMalformed
			}
			reflect.Copy(v.Slice(s.I, s.I+op.N), run.Elem())
			return v, nil
		}
		var el reflect.Value
		if s.K == stepField {
			if v.Kind() != reflect.Struct || s.I < 0 || s.I >= v.NumField() {
				return v, errMalformed
			}
			el = v.Field(s.I)
		} else {
			if v.Kind() == reflect.Struct || s.I < 0 || s.I >= v.Len() {
				return v, fmt.Errorf("index %d out of range: the caller's value has %d elements now", s.I, v.Len())
			}
			el = v.Index(s.I)
		}
		nv, err := applyAt(el, rest, op)
		if err == nil {
			el.Set(nv)
		}
		return v, err
	case stepKey:
		if v.Kind() != reflect.Map {
			return v, errMalformed
		}
		k := reflect.New(v.Type().Key())
		if err := decode(s.Key, k.Interface()); err != nil {
			return v, err
		}
		if v.IsNil() {
			return v, fmt.Errorf("the caller's map is now nil")
		}
		if len(rest) == 0 && op.Del {
			v.SetMapIndex(k.Elem(), reflect.Value{})
			return v, nil
		}
		cur := reflect.New(v.Type().Elem()).Elem()
		if old := v.MapIndex(k.Elem()); old.IsValid() {
			cur.Set(old)
		}
		nv, err := applyAt(cur, rest, op)
		if err == nil {
			v.SetMapIndex(k.Elem(), nv)
		}
		return v, err
	}
	return v, errMalformed
}
