package comm

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
)

// Typed messages carry the sender's Go type name; a typed receive checks it,
// so that decoding into the wrong type is an error naming both types rather
// than garbage.
//
// Encoding: []byte and string are sent as they are; numbers and slices of
// numbers as their little-endian memory image (no reflection, no per-element
// work); every other type with CBOR (github.com/fxamacker/cbor/v2, RFC 8949),
// which handles structs, maps, nested slices and pointers and refuses
// channels and functions with an error at the Send.

// SendValue sends v to dst with tag.
func SendValue[T any](ctx context.Context, c *Comm, dst, tag int, v T) error {
	typ, data, err := encode(v)
	if err != nil {
		return fmt.Errorf("comm: rank %d: SendValue to rank %d: %w", c.rank, dst, err)
	}
	return c.send(ctx, "SendValue", dst, tag, typ, data)
}

// IsendValue starts sending v to dst and returns at once. For numeric
// slices the slice's memory is sent: do not change it until the request
// completes.
func IsendValue[T any](c *Comm, dst, tag int, v T) (*Request, error) {
	typ, data, err := encode(v)
	if err != nil {
		return nil, fmt.Errorf("comm: rank %d: IsendValue to rank %d: %w", c.rank, dst, err)
	}
	return c.isend("IsendValue", dst, tag, typ, data)
}

// RecvValue receives a message sent with SendValue of the same type T (or a
// raw Send, for T []byte or string).
func RecvValue[T any](ctx context.Context, c *Comm, src, tag int) (T, Status, error) {
	var zero T
	data, st, err := c.recv(ctx, "RecvValue", src, tag)
	if err != nil {
		return zero, st, err
	}
	v, err := Decode[T](data, st)
	return v, st, err
}

// Decode decodes the payload of a completed typed receive (for example an
// Irecv's Data and Status) as a T.
func Decode[T any](data []byte, st Status) (T, error) {
	var v T
	if st.Source == ProcNull {
		return v, nil // a receive from ProcNull: no message, the zero T
	}
	want := typeName[T]()
	if st.typ != want && !(st.typ == "" && rawOK[T]()) {
		got := st.typ
		if got == "" {
			got = "raw []byte"
		}
		return v, fmt.Errorf("comm: message from rank %d (tag %d) holds %s but the receive expects %s: %w",
			st.Source, st.Tag, got, want, ErrType)
	}
	if err := decode(data, &v); err != nil {
		return v, fmt.Errorf("comm: decoding %s from rank %d (tag %d): %w", want, st.Source, st.Tag, err)
	}
	return v, nil
}

func rawOK[T any]() bool {
	var v T
	switch any(v).(type) {
	case []byte, string:
		return true
	}
	return false
}

// typeName names T with its package path, so that two types with one short
// name in different packages never agree.
func typeName[T any]() string {
	return qualified(reflect.TypeFor[T]())
}

func qualified(t reflect.Type) string {
	if t.Name() != "" && t.PkgPath() != "" {
		return t.PkgPath() + "." + t.Name()
	}
	switch t.Kind() {
	case reflect.Slice:
		return "[]" + qualified(t.Elem())
	case reflect.Array:
		return "[" + strconv.Itoa(t.Len()) + "]" + qualified(t.Elem())
	case reflect.Pointer:
		return "*" + qualified(t.Elem())
	case reflect.Map:
		return "map[" + qualified(t.Key()) + "]" + qualified(t.Elem())
	}
	return t.String()
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func asBytes[E any](s []E) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	var e E
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(e)))
}

func fromBytes[E any](b []byte) ([]E, error) {
	var e E
	sz := int(unsafe.Sizeof(e))
	if len(b)%sz != 0 {
		return nil, fmt.Errorf("payload of %d bytes is not a whole number of %d-byte elements", len(b), sz)
	}
	s := make([]E, len(b)/sz)
	copy(asBytes(s), b)
	return s, nil
}

func scalarBytes[E any](v *E) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

func encode[T any](v T) (typ string, data []byte, err error) {
	typ = typeName[T]()
	if littleEndian && strconv.IntSize == 64 {
		switch x := any(v).(type) {
		case []byte:
			return typ, x, nil
		case string:
			return typ, []byte(x), nil
		case []int:
			return typ, asBytes(x), nil
		case []int8:
			return typ, asBytes(x), nil
		case []int16:
			return typ, asBytes(x), nil
		case []int32:
			return typ, asBytes(x), nil
		case []int64:
			return typ, asBytes(x), nil
		case []uint:
			return typ, asBytes(x), nil
		case []uint16:
			return typ, asBytes(x), nil
		case []uint32:
			return typ, asBytes(x), nil
		case []uint64:
			return typ, asBytes(x), nil
		case []float32:
			return typ, asBytes(x), nil
		case []float64:
			return typ, asBytes(x), nil
		case []complex64:
			return typ, asBytes(x), nil
		case []complex128:
			return typ, asBytes(x), nil
		case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64,
			float32, float64, complex64, complex128:
			b := make([]byte, unsafe.Sizeof(v))
			copy(b, scalarBytes(&v))
			return typ, b, nil
		}
	}
	data, err = cbor.Marshal(v)
	if err != nil {
		return "", nil, fmt.Errorf("cannot encode %s: %w", typ, err)
	}
	return typ, data, nil
}

func decode[T any](data []byte, v *T) error {
	if littleEndian && strconv.IntSize == 64 {
		var err error
		switch p := any(v).(type) {
		case *[]byte:
			*p = data
			return nil
		case *string:
			*p = string(data)
			return nil
		case *[]int:
			*p, err = fromBytes[int](data)
			return err
		case *[]int8:
			*p, err = fromBytes[int8](data)
			return err
		case *[]int16:
			*p, err = fromBytes[int16](data)
			return err
		case *[]int32:
			*p, err = fromBytes[int32](data)
			return err
		case *[]int64:
			*p, err = fromBytes[int64](data)
			return err
		case *[]uint:
			*p, err = fromBytes[uint](data)
			return err
		case *[]uint16:
			*p, err = fromBytes[uint16](data)
			return err
		case *[]uint32:
			*p, err = fromBytes[uint32](data)
			return err
		case *[]uint64:
			*p, err = fromBytes[uint64](data)
			return err
		case *[]float32:
			*p, err = fromBytes[float32](data)
			return err
		case *[]float64:
			*p, err = fromBytes[float64](data)
			return err
		case *[]complex64:
			*p, err = fromBytes[complex64](data)
			return err
		case *[]complex128:
			*p, err = fromBytes[complex128](data)
			return err
		case *int, *int8, *int16, *int32, *int64, *uint, *uint8, *uint16, *uint32, *uint64,
			*float32, *float64, *complex64, *complex128:
			dst := scalarBytes(v)
			if len(data) != len(dst) {
				return fmt.Errorf("payload of %d bytes for a %d-byte number", len(data), len(dst))
			}
			copy(dst, data)
			return nil
		}
	}
	return cbor.Unmarshal(data, v)
}

// ValueRequest is a nonblocking typed receive (IrecvValue).
type ValueRequest[T any] struct {
	q *Request
}

// IrecvValue posts a receive of a message sent with SendValue of the same
// type T (as RecvValue) and returns at once; Wait or Test decode it.
func IrecvValue[T any](c *Comm, src, tag int) (*ValueRequest[T], error) {
	var q *Request
	var err error
	if src == ProcNull {
		q, err = c.nullRecv("IrecvValue", tag)
	} else {
		var r *rreq
		if r, err = c.irecv("IrecvValue", src, tag, nil, false); err == nil {
			q = &Request{c: c, op: "IrecvValue", peer: src, r: r}
		}
	}
	if err != nil {
		return nil, err
	}
	return &ValueRequest[T]{q: q}, nil
}

// Wait blocks until the message has arrived and returns it decoded, with
// its Status. If ctx ends first, the receive is cancelled.
func (v *ValueRequest[T]) Wait(ctx context.Context) (T, Status, error) {
	st, err := v.q.Wait(ctx)
	if err != nil {
		var zero T
		return zero, st, err
	}
	x, err := Decode[T](v.q.Data(), st)
	return x, st, err
}

// Test reports whether the message has arrived, without blocking, and if
// so returns it decoded.
func (v *ValueRequest[T]) Test() (T, bool, Status, error) {
	var zero T
	done, st, err := v.q.Test()
	if !done || err != nil {
		return zero, done, st, err
	}
	x, err := Decode[T](v.q.Data(), st)
	return x, true, st, err
}

// Cancel withdraws the receive if no message has arrived yet.
func (v *ValueRequest[T]) Cancel() { v.q.Cancel() }

// Request is the underlying receive, for Waitany and the others; once it
// has completed there, Wait and Test decode its message.
func (v *ValueRequest[T]) Request() *Request { return v.q }

// SendrecvValue sends v to dst (as SendValue) and receives a value of type
// R from src (as RecvValue) at once, so that pairs of ranks exchange
// without deadlock; either peer may be ProcNull.
func SendrecvValue[R, S any](ctx context.Context, c *Comm, v S, dst, stag, src, rtag int) (R, Status, error) {
	var zero R
	rq, err := IrecvValue[R](c, src, rtag)
	if err != nil {
		return zero, Status{}, err
	}
	if err := SendValue(ctx, c, dst, stag, v); err != nil {
		rq.Cancel()
		return zero, Status{}, err
	}
	return rq.Wait(ctx)
}

// SendrecvInto sends data to dst and receives a message from src into buf
// at once (as RecvInto: the payload is buf[:st.Size], a larger message is
// an error wrapping ErrTruncate); either peer may be ProcNull. buf and data
// must not overlap.
func (c *Comm) SendrecvInto(ctx context.Context, data []byte, dst, stag int, buf []byte, src, rtag int) (Status, error) {
	rq, err := c.IrecvInto(buf, src, rtag)
	if err != nil {
		return Status{}, err
	}
	if err := c.Send(ctx, dst, stag, data); err != nil {
		rq.Cancel()
		return Status{}, err
	}
	return rq.Wait(ctx)
}
