package deco

import (
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
)

// entry is one registered function, the same on every rank.
type entry struct {
	name   string
	args   []reflect.Type
	shares []bool // args[i] can carry writes back to the caller
	dyn    []bool // args[i] can hold interface values, checked at each call
	dynRes bool   // the result can hold interface values
	bad    error  // the argument or result types cannot travel: every call fails
	// run decodes the arguments, calls the function and encodes its result
	// and write-backs.
	run func(args []byte) (res, wb []byte, err error)
	// format renders encoded arguments for error messages.
	format func(args []byte) string
	est    atomic.Int64 // estimated ns per call (0: not measured yet)
}

// observe folds a measured cost per call into the estimate.
func (e *entry) observe(ns int64) {
	if ns < 1 {
		ns = 1
	}
	old := e.est.Load()
	if old == 0 {
		e.est.Store(ns)
	} else {
		e.est.Store((3*old + ns) / 4)
	}
}

var registry struct {
	mu     sync.RWMutex
	byName map[string]*entry // guarded by mu
	count  map[string]int    // registrations per function name; guarded by mu
}

// register names e after fn's identity: its full name (package path
// included) and, from the second registration of the same function on,
// "#k".
func register(fn any, e *entry) {
	name := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.byName == nil {
		registry.byName = map[string]*entry{}
		registry.count = map[string]int{}
	}
	if k := registry.count[name]; k > 0 {
		registry.count[name]++
		name = fmt.Sprintf("%s#%d", name, k)
	} else {
		registry.count[name] = 1
	}
	e.name = name
	registry.byName[name] = e
}

func lookup(name string) *entry {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	return registry.byName[name]
}

func newEntry(fn any, res reflect.Type, args ...reflect.Type) *entry {
	if reflect.ValueOf(fn).IsNil() {
		panic("deco: Concurrent of a nil function")
	}
	name := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	e := &entry{args: args, shares: make([]bool, len(args)), dyn: make([]bool, len(args))}
	for i, t := range args {
		if err := checkType(name, fmt.Sprintf("argument %d", i+1), t); err != nil && e.bad == nil {
			e.bad = err
		}
		e.shares[i] = shares(t, map[reflect.Type]bool{})
		e.dyn[i] = hasInterface(t, map[reflect.Type]bool{})
	}
	if err := checkType(name, "the result", res); err != nil && e.bad == nil {
		e.bad = err
	}
	e.dynRes = hasInterface(res, map[reflect.Type]bool{})
	register(fn, e)
	return e
}

func anyShares(s []bool) bool {
	for _, b := range s {
		if b {
			return true
		}
	}
	return false
}

// finish encodes a successful call's result and write-backs.
func finish[R any](e *entry, r R, before, after []any) (res, wb []byte, err error) {
	if e.dynRes {
		if err := valueProblem(reflect.ValueOf(&r).Elem(), 0); err != nil {
			return nil, nil, fmt.Errorf("the result holds %w", err)
		}
	}
	res, err = encode(r)
	if err != nil {
		return nil, nil, fmt.Errorf("result: %w: %w", ErrEncode, err)
	}
	if before != nil {
		if wb, err = diffArgs(e.shares, before, after); err != nil {
			return nil, nil, err
		}
	}
	return res, wb, nil
}

// before returns a pointer to a fresh T if argument i can carry writes
// (to decode the issued copy into), else nil.
func before[T any](e *entry, i int) *T {
	if e.shares[i] {
		return new(T)
	}
	return nil
}

// orNil turns a typed nil pointer into an untyped nil for decArgs.
func orNil[T any](p *T) any {
	if p == nil {
		return nil
	}
	return p
}

// --- one argument ---

// Func is a concurrent function of one argument, made by Concurrent,
// ConcurrentErr or Action. Its methods are safe for concurrent use.
type Func[A, R any] struct {
	e *entry
	f func(A) (R, error)
}

// Concurrent wraps f so that calls issued in a synchronized block run
// concurrently, on any rank. Call it at package level (var fib =
// deco.Concurrent(fibSerial)) so that every rank registers the same
// functions in the same order. If A or R cannot travel between ranks (see
// the package doc), every issuing call fails with an error wrapping
// ErrType that names the type and the field, whether or not decorun runs.
func Concurrent[A, R any](f func(A) R) *Func[A, R] {
	return newFunc(f, func(a A) (R, error) { return f(a), nil })
}

// ConcurrentErr is Concurrent for a function that can fail.
func ConcurrentErr[A, R any](f func(A) (R, error)) *Func[A, R] {
	return newFunc(f, f)
}

// Action is Concurrent for a function run for its side effects (its
// write-backs); issue it with Go.
func Action[A any](f func(A)) *Func[A, struct{}] {
	return newFunc(f, func(a A) (struct{}, error) { f(a); return struct{}{}, nil })
}

func newFunc[A, R any](id any, f func(A) (R, error)) *Func[A, R] {
	e := newEntry(id, reflect.TypeFor[R](), reflect.TypeFor[A]())
	e.run = func(args []byte) ([]byte, []byte, error) {
		var a A
		b := before[A](e, 0)
		if err := decArgs(args, &a); err != nil {
			return nil, nil, err
		}
		if b != nil {
			snapshotArgs(args, []any{b}, []any{&a})
		}
		r, err := f(a)
		if err != nil {
			return nil, nil, err
		}
		if b == nil {
			return finish(e, r, nil, nil)
		}
		return finish(e, r, []any{b}, []any{&a})
	}
	e.format = func(args []byte) string {
		var a A
		decArgs(args, &a)
		return fmtArgs(a)
	}
	return &Func[A, R]{e: e, f: f}
}

// Name is the function's registered name.
func (f *Func[A, R]) Name() string { return f.e.name }

// Call calls the function on this goroutine, as a plain serial call.
func (f *Func[A, R]) Call(a A) (R, error) { return f.f(a) }

// Assign issues f(a) in s; at the end of the block the result is stored
// in *dst. It blocks while too many tasks are pending (back-pressure). An
// argument that cannot be encoded is an error, returned here and by
// Synchronized.
func (f *Func[A, R]) Assign(s *Scope, dst *R, a A) error {
	args, orig, err := encArgs(f.e, a)
	return assign(s, f.e, args, orig, err, describe(err, a), dst)
}

// Then issues f(a) in s; at the end of the block, in issue order, fn is
// called with the result on the goroutine that called Synchronized.
func (f *Func[A, R]) Then(s *Scope, fn func(R), a A) error {
	args, orig, err := encArgs(f.e, a)
	return then(s, f.e, args, orig, err, describe(err, a), fn)
}

// Go issues f(a) in s for its side effects: the result is dropped, the
// write-backs to a's pointers, maps and slices are applied at the end of
// the block.
func (f *Func[A, R]) Go(s *Scope, a A) error {
	args, orig, err := encArgs(f.e, a)
	return then[R](s, f.e, args, orig, err, describe(err, a), nil)
}

// Future issues f(a) in s and returns its future; an argument that cannot
// be encoded makes a future that has already failed.
func (f *Func[A, R]) Future(s *Scope, a A) *Future[R] {
	args, orig, err := encArgs(f.e, a)
	return future[R](s, f.e, args, orig, err, describe(err, a))
}

// --- two arguments ---

// Func2 is a concurrent function of two arguments; see Func.
type Func2[A, B, R any] struct {
	e *entry
	f func(A, B) (R, error)
}

// Concurrent2 is Concurrent for a function of two arguments.
func Concurrent2[A, B, R any](f func(A, B) R) *Func2[A, B, R] {
	return newFunc2(f, func(a A, b B) (R, error) { return f(a, b), nil })
}

// ConcurrentErr2 is ConcurrentErr for a function of two arguments.
func ConcurrentErr2[A, B, R any](f func(A, B) (R, error)) *Func2[A, B, R] {
	return newFunc2(f, f)
}

// Action2 is Action for a function of two arguments.
func Action2[A, B any](f func(A, B)) *Func2[A, B, struct{}] {
	return newFunc2(f, func(a A, b B) (struct{}, error) { f(a, b); return struct{}{}, nil })
}

func newFunc2[A, B, R any](id any, f func(A, B) (R, error)) *Func2[A, B, R] {
	e := newEntry(id, reflect.TypeFor[R](), reflect.TypeFor[A](), reflect.TypeFor[B]())
	sh := anyShares(e.shares)
	e.run = func(args []byte) ([]byte, []byte, error) {
		var a A
		var b B
		if err := decArgs(args, &a, &b); err != nil {
			return nil, nil, err
		}
		var a0, b0 = before[A](e, 0), before[B](e, 1)
		if sh {
			snapshotArgs(args, []any{orNil(a0), orNil(b0)}, []any{&a, &b})
		}
		r, err := f(a, b)
		if err != nil {
			return nil, nil, err
		}
		if !sh {
			return finish(e, r, nil, nil)
		}
		return finish(e, r, []any{a0, b0}, []any{&a, &b})
	}
	e.format = func(args []byte) string {
		var a A
		var b B
		decArgs(args, &a, &b)
		return fmtArgs(a, b)
	}
	return &Func2[A, B, R]{e: e, f: f}
}

// Name is the function's registered name.
func (f *Func2[A, B, R]) Name() string { return f.e.name }

// Call calls the function on this goroutine.
func (f *Func2[A, B, R]) Call(a A, b B) (R, error) { return f.f(a, b) }

// Assign issues f(a, b) in s; see Func.Assign.
func (f *Func2[A, B, R]) Assign(s *Scope, dst *R, a A, b B) error {
	args, orig, err := encArgs(f.e, a, b)
	return assign(s, f.e, args, orig, err, describe(err, a, b), dst)
}

// Then issues f(a, b) in s; see Func.Then.
func (f *Func2[A, B, R]) Then(s *Scope, fn func(R), a A, b B) error {
	args, orig, err := encArgs(f.e, a, b)
	return then(s, f.e, args, orig, err, describe(err, a, b), fn)
}

// Go issues f(a, b) in s for its side effects; see Func.Go.
func (f *Func2[A, B, R]) Go(s *Scope, a A, b B) error {
	args, orig, err := encArgs(f.e, a, b)
	return then[R](s, f.e, args, orig, err, describe(err, a, b), nil)
}

// Future issues f(a, b) in s and returns its future; see Func.Future.
func (f *Func2[A, B, R]) Future(s *Scope, a A, b B) *Future[R] {
	args, orig, err := encArgs(f.e, a, b)
	return future[R](s, f.e, args, orig, err, describe(err, a, b))
}

// --- three arguments ---

// Func3 is a concurrent function of three arguments; see Func. For more
// arguments, pass a struct.
type Func3[A, B, C, R any] struct {
	e *entry
	f func(A, B, C) (R, error)
}

// Concurrent3 is Concurrent for a function of three arguments.
func Concurrent3[A, B, C, R any](f func(A, B, C) R) *Func3[A, B, C, R] {
	return newFunc3(f, func(a A, b B, c C) (R, error) { return f(a, b, c), nil })
}

// ConcurrentErr3 is ConcurrentErr for a function of three arguments.
func ConcurrentErr3[A, B, C, R any](f func(A, B, C) (R, error)) *Func3[A, B, C, R] {
	return newFunc3(f, f)
}

// Action3 is Action for a function of three arguments.
func Action3[A, B, C any](f func(A, B, C)) *Func3[A, B, C, struct{}] {
	return newFunc3(f, func(a A, b B, c C) (struct{}, error) { f(a, b, c); return struct{}{}, nil })
}

func newFunc3[A, B, C, R any](id any, f func(A, B, C) (R, error)) *Func3[A, B, C, R] {
	e := newEntry(id, reflect.TypeFor[R](), reflect.TypeFor[A](), reflect.TypeFor[B](), reflect.TypeFor[C]())
	sh := anyShares(e.shares)
	e.run = func(args []byte) ([]byte, []byte, error) {
		var a A
		var b B
		var c C
		if err := decArgs(args, &a, &b, &c); err != nil {
			return nil, nil, err
		}
		a0, b0, c0 := before[A](e, 0), before[B](e, 1), before[C](e, 2)
		if sh {
			snapshotArgs(args, []any{orNil(a0), orNil(b0), orNil(c0)}, []any{&a, &b, &c})
		}
		r, err := f(a, b, c)
		if err != nil {
			return nil, nil, err
		}
		if !sh {
			return finish(e, r, nil, nil)
		}
		return finish(e, r, []any{a0, b0, c0}, []any{&a, &b, &c})
	}
	e.format = func(args []byte) string {
		var a A
		var b B
		var c C
		decArgs(args, &a, &b, &c)
		return fmtArgs(a, b, c)
	}
	return &Func3[A, B, C, R]{e: e, f: f}
}

// Name is the function's registered name.
func (f *Func3[A, B, C, R]) Name() string { return f.e.name }

// Call calls the function on this goroutine.
func (f *Func3[A, B, C, R]) Call(a A, b B, c C) (R, error) { return f.f(a, b, c) }

// Assign issues f(a, b, c) in s; see Func.Assign.
func (f *Func3[A, B, C, R]) Assign(s *Scope, dst *R, a A, b B, c C) error {
	args, orig, err := encArgs(f.e, a, b, c)
	return assign(s, f.e, args, orig, err, describe(err, a, b, c), dst)
}

// Then issues f(a, b, c) in s; see Func.Then.
func (f *Func3[A, B, C, R]) Then(s *Scope, fn func(R), a A, b B, c C) error {
	args, orig, err := encArgs(f.e, a, b, c)
	return then(s, f.e, args, orig, err, describe(err, a, b, c), fn)
}

// Go issues f(a, b, c) in s for its side effects; see Func.Go.
func (f *Func3[A, B, C, R]) Go(s *Scope, a A, b B, c C) error {
	args, orig, err := encArgs(f.e, a, b, c)
	return then[R](s, f.e, args, orig, err, describe(err, a, b, c), nil)
}

// Future issues f(a, b, c) in s and returns its future; see Func.Future.
func (f *Func3[A, B, C, R]) Future(s *Scope, a A, b B, c C) *Future[R] {
	args, orig, err := encArgs(f.e, a, b, c)
	return future[R](s, f.e, args, orig, err, describe(err, a, b, c))
}

// Entry returns a function that stores its argument in m[k], for Then:
// work.Then(s, deco.Entry(results[lat], lon), lat, lon) is DECO's
// results[lat][lon] = work(lat, lon) for maps.
func Entry[K comparable, V any](m map[K]V, k K) func(V) {
	return func(v V) { m[k] = v }
}
