package deco

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// RemoteError stands for one error of a failed task's error chain, rebuilt
// on rank 0 from its description after it came back from the rank that ran
// the task (in both modes: a task run on rank 0 or on the goroutine pool
// takes the same trip, so errors.Is and errors.As answer the same wherever
// it ran). It keeps the original's message, its Go type name and the
// errors it wrapped (Unwrap gives them, rebuilt the same way).
//
// errors.Is(err, target) holds for a node when target is a sentinel
// registered with RegisterError (or one of the standard ones: io.EOF,
// context.Canceled, fs.ErrNotExist, ...) that the original node matched,
// or when target has the node's Go type and message (an unregistered
// errors.New sentinel). errors.As(err, &target) holds when target's type
// is the node's Go type and that type can travel (see Encoding in the
// package doc): the value is decoded into target.
type RemoteError struct {
	Type string // the original's Go type, as %T prints it ("*fs.PathError")
	Msg  string // the original's message
	Rank int    // the rank whose task returned it

	full string  // Type with package paths, for matching
	data []byte  // the value as CBOR, if its type can travel
	is   []error // registered sentinels the original matched
	kids []error
}

// Error is the original's message (so that the messages of the errors
// wrapping it read as they did).
func (e *RemoteError) Error() string   { return e.Msg }
func (e *RemoteError) Unwrap() []error { return e.kids }

// Format prints the message with %v and %s; %+v adds where it came from:
// "secret 4 (a main.secretError returned on rank 2, not rebuilt)".
func (e *RemoteError) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('+'):
		fmt.Fprintf(f, "%s (a %s returned on rank %d, not rebuilt)", e.Msg, e.Type, e.Rank)
	case verb == 'q':
		fmt.Fprintf(f, "%q", e.Msg)
	default:
		io.WriteString(f, e.Msg)
	}
}

// Is reports whether the original error matched target (see RemoteError).
func (e *RemoteError) Is(target error) bool {
	for _, s := range e.is {
		if s == target {
			return true
		}
	}
	if target == nil || fullType(reflect.TypeOf(target)) != e.full {
		return false
	}
	return target.Error() == e.Msg
}

// As decodes the original into target if target points to its type.
func (e *RemoteError) As(target any) bool {
	p := reflect.ValueOf(target)
	if p.Kind() != reflect.Pointer || p.IsNil() || e.data == nil {
		return false
	}
	t := p.Type().Elem()
	if fullType(t) != e.full {
		return false
	}
	v := reflect.New(t)
	if err := decode(e.data, v.Interface()); err != nil {
		var te *cbor.UnmarshalTypeError // an interface field (a wrapped error) stays nil
		if !errors.As(err, &te) {
			return false
		}
	}
	e.relink(v.Elem())
	p.Elem().Set(v.Elem())
	return true
}

// relink puts back what a decoded value wrapped: a struct whose one error
// field is empty gets the node's one rebuilt cause.
func (e *RemoteError) relink(v reflect.Value) {
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct || len(e.kids) != 1 {
		return
	}
	field := -1
	for i := range v.NumField() {
		if f := v.Type().Field(i); f.IsExported() && f.Type == errorType {
			if field >= 0 {
				return
			}
			field = i
		}
	}
	if field >= 0 && v.Field(field).IsNil() {
		v.Field(field).Set(reflect.ValueOf(e.kids[0]))
	}
}

// fullType is t as %T prints it, with the named types' package paths.
func fullType(t reflect.Type) string {
	if t == nil {
		return ""
	}
	base := t
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	return base.PkgPath() + " " + t.String()
}

var sentinels struct {
	mu   sync.RWMutex
	list []error
	key  map[string]error // fullType and message → sentinel
}

func sentinelKey(err error) string { return fullType(reflect.TypeOf(err)) + "\x00" + err.Error() }

// RegisterError registers sentinel errors (package-level error variables)
// of the program, so that errors.Is finds them by identity in a task's
// error chain whichever rank ran the task, even through a type's own Is
// method. Call it at package level (var _ = deco.RegisterError(ErrX, ErrY))
// or before Main, the same on every rank. An unregistered errors.New
// sentinel is still found by its type and message. It returns nil.
func RegisterError(errs ...error) error {
	sentinels.mu.Lock()
	defer sentinels.mu.Unlock()
	if sentinels.key == nil {
		sentinels.key = map[string]error{}
	}
	for _, err := range errs {
		if err == nil {
			continue
		}
		k := sentinelKey(err)
		if _, dup := sentinels.key[k]; dup {
			continue
		}
		sentinels.key[k] = err
		sentinels.list = append(sentinels.list, err)
	}
	return nil
}

var _ = RegisterError(io.EOF, io.ErrUnexpectedEOF, context.Canceled, context.DeadlineExceeded,
	fs.ErrNotExist, fs.ErrExist, fs.ErrPermission, fs.ErrClosed, fs.ErrInvalid, os.ErrDeadlineExceeded,
	ErrEncode, ErrType, ErrNotRegistered, ErrScopeDone, ErrStopped, ErrNoRun)

// wireErr describes one node of an error chain for the trip between ranks.
type wireErr struct {
	Type string    `cbor:"1,keyasint"`
	Full string    `cbor:"2,keyasint"`
	Msg  string    `cbor:"3,keyasint"`
	Data []byte    `cbor:"4,keyasint,omitempty"`
	Is   []string  `cbor:"5,keyasint,omitempty"` // keys of the registered sentinels it matched
	Same bool      `cbor:"6,keyasint,omitempty"` // it is the sentinel Is[0] itself
	Kids []wireErr `cbor:"7,keyasint,omitempty"`
}

const maxErrDepth = 32

// describeErr turns err's chain into its description.
func describeErr(err error, depth int) wireErr {
	t := reflect.TypeOf(err)
	w := wireErr{Type: t.String(), Full: fullType(t), Msg: err.Error()}
	sentinels.mu.RLock()
	for _, s := range sentinels.list {
		if matches(err, s) {
			k := sentinelKey(s)
			if t.Comparable() && err == s {
				w.Same = true
				w.Is = append([]string{k}, w.Is...)
			} else {
				w.Is = append(w.Is, k)
			}
		}
	}
	sentinels.mu.RUnlock()
	if !w.Same {
		w.Data = errData(err)
	}
	if depth >= maxErrDepth {
		return w
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if k := u.Unwrap(); k != nil {
			w.Kids = []wireErr{describeErr(k, depth+1)}
		}
	case interface{ Unwrap() []error }:
		for _, k := range u.Unwrap() {
			if k != nil {
				w.Kids = append(w.Kids, describeErr(k, depth+1))
			}
		}
	}
	return w
}

var errorType = reflect.TypeFor[error]()

// errData encodes err's value if its type can travel, with its error
// fields (what it wraps, which travels as the chain) left out.
func errData(err error) []byte {
	v := reflect.ValueOf(err)
	if travelProblem(v.Type(), map[reflect.Type]bool{}) != "" {
		return nil
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		for i := range c.NumField() {
			if f := v.Type().Field(i); f.IsExported() && f.Type.Kind() == reflect.Interface {
				c.Field(i).SetZero()
			}
		}
		v = c
	}
	b, e := encode(v.Interface())
	if e != nil {
		return nil
	}
	return b
}

// matches reports whether err itself (not what it wraps) is or claims to
// be s.
func matches(err, s error) (ok bool) {
	defer func() {
		if recover() != nil { // a comparison of uncomparable values, a panicking Is
			ok = false
		}
	}()
	if reflect.TypeOf(err).Comparable() && err == s {
		return true
	}
	if x, is := err.(interface{ Is(error) bool }); is {
		return x.Is(s)
	}
	return false
}

// rebuild turns a description back into an error chain.
func rebuild(w wireErr, rank int) error {
	sentinels.mu.RLock()
	var is []error
	for _, k := range w.Is {
		if s, ok := sentinels.key[k]; ok {
			is = append(is, s)
		}
	}
	sentinels.mu.RUnlock()
	if w.Same && len(is) > 0 && len(w.Is) > 0 && sentinelKey(is[0]) == w.Is[0] {
		return is[0]
	}
	e := &RemoteError{Type: w.Type, Msg: w.Msg, Rank: rank, full: w.Full, data: w.Data, is: is}
	for _, k := range w.Kids {
		e.kids = append(e.kids, rebuild(k, rank))
	}
	return e
}

// encodeErr and decodeErr carry a task's error between ranks.
func encodeErr(err error) []byte {
	b, e := encode(describeErr(err, 0))
	if e != nil {
		b, _ = encode(wireErr{Type: reflect.TypeOf(err).String(), Msg: err.Error()})
	}
	return b
}

func decodeErr(b []byte, rank int) error {
	var w wireErr
	if err := decode(b, &w); err != nil {
		return fmt.Errorf("deco: the error from rank %d cannot be decoded: %w", rank, err)
	}
	return rebuild(w, rank)
}
