package deco_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
	"github.com/decorun/decorun/deco"
)

var check = deco.ConcurrentErr(func(n int) (int, error) {
	switch {
	case n%5 == 3:
		return 0, fmt.Errorf("boom %d", n)
	case n%5 == 4:
		var m map[int]int
		m[n] = 1 // panics
	}
	return n, nil
})

// Every failed task is reported, in issue order, with its index, function,
// arguments, rank and message; the others are applied.
func TestTaskErrors(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		got := make([]int, 10)
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			for i := range got {
				check.Assign(s, &got[i], i)
			}
		})
		if err == nil {
			t.Fatal("no error")
		}
		var errs []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		if len(errs) != 4 {
			t.Fatalf("%d errors, want 4:\n%v", len(errs), err)
		}
		for k, i := range []int{3, 4, 8, 9} {
			var te *deco.TaskError
			if !errors.As(errs[k], &te) {
				t.Fatalf("error %d is %T", k, errs[k])
			}
			if te.Task != i || te.Args != fmt.Sprint(i) || te.Rank < 0 || te.Panic != (i%5 == 4) ||
				!strings.HasSuffix(te.Func, "deco_test.init.func") && !strings.Contains(te.Func, "deco_test.") {
				t.Errorf("error %d: %+v", k, te)
			}
			var re string
			if te.Panic {
				re = fmt.Sprintf(`^deco: task %d deco_test\.\S+\(%d\) on rank \d: panic: assignment to entry in nil map \(at \S+errors_test\.go:\d+\)$`, i, i)
			} else {
				re = fmt.Sprintf(`^deco: task %d deco_test\.\S+\(%d\) on rank \d: boom %d$`, i, i, i)
			}
			if !regexp.MustCompile(re).MatchString(te.Error()) {
				t.Errorf("error %d: %q does not match %s", k, te.Error(), re)
			}
		}
		for i, v := range got {
			if i%5 < 3 && v != i {
				t.Errorf("got[%d] = %d: a successful task was not applied", i, v)
			}
		}
	})
}

var takesAny = deco.Concurrent(func(v any) int { return 1 })

// An argument that cannot be encoded fails at the call, and the block
// reports it too; the other tasks still run.
func TestEncodeErrorAtCall(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		var x, y int
		var callErr error
		var fut *deco.Future[int]
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			callErr = takesAny.Assign(s, &x, func() {})
			takesAny.Assign(s, &y, 3)
			fut = takesAny.Future(s, make(chan int))
		})
		if !errors.Is(callErr, deco.ErrEncode) {
			t.Fatalf("call error %v, want ErrEncode", callErr)
		}
		var te *deco.TaskError
		if !errors.As(callErr, &te) || te.Rank != -1 || te.Task != 0 {
			t.Errorf("call error %#v", callErr)
		}
		if !errors.Is(err, deco.ErrEncode) || y != 1 || x != 0 {
			t.Errorf("block: err %v, x %d, y %d", err, x, y)
		}
		if _, ferr := fut.Wait(ctx); !errors.Is(ferr, deco.ErrEncode) {
			t.Errorf("future error %v", ferr)
		}
	})
}

// A nil function is a programmer error found when it is wrapped.
func TestNilFuncPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	deco.Concurrent[int, int](nil)
}

func TestScopeDone(t *testing.T) {
	ctx := t.Context()
	var kept *deco.Scope
	if err := deco.Synchronized(ctx, func(s *deco.Scope) { kept = s }); err != nil {
		t.Fatal(err)
	}
	var x int
	if err := fib.Assign(kept, &x, 3); !errors.Is(err, deco.ErrScopeDone) {
		t.Errorf("issue after the block: %v", err)
	}
	if _, err := fib.Future(kept, 3).Wait(ctx); !errors.Is(err, deco.ErrScopeDone) {
		t.Errorf("future after the block: %v", err)
	}
}

var sleepy = deco.Concurrent(func(d time.Duration) int { time.Sleep(d); return 1 })

// A context that ends stops the block at once: ctx.Err(), nothing applied.
func TestCancel(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		cctx, cancel := context.WithCancel(ctx)
		got := make([]int, 50)
		start := time.Now()
		time.AfterFunc(50*time.Millisecond, cancel)
		err := deco.Synchronized(cctx, func(s *deco.Scope) {
			for i := range got {
				sleepy.Assign(s, &got[i], 20*time.Millisecond)
			}
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("took %v to return after cancel", d)
		}
		for i, v := range got {
			if v != 0 {
				t.Fatalf("got[%d] = %d applied after cancel", i, v)
			}
		}
		// The engine still works.
		var x int
		if err := deco.Synchronized(ctx, func(s *deco.Scope) { fib.Assign(s, &x, 10) }); err != nil || x != 55 {
			t.Fatalf("after cancel: %d, %v", x, err)
		}
	}, deco.Slots(2))
}

// A panic in the body drops its tasks and goes on.
func TestBodyPanic(t *testing.T) {
	defer func() {
		if p := recover(); p != "body" {
			t.Fatalf("recovered %v", p)
		}
	}()
	deco.Synchronized(t.Context(), func(s *deco.Scope) {
		for range 10 {
			sleepy.Go(s, time.Millisecond)
		}
		panic("body")
	})
}

func TestStopped(t *testing.T) {
	cs := commtest.World(t, 2)
	var saved context.Context
	commtest.Run(t, cs, func(c *comm.Comm) error {
		return deco.Run(t.Context(), c, func(ctx context.Context) error { saved = ctx; return nil })
	})
	if err := deco.Synchronized(saved, func(s *deco.Scope) {}); !errors.Is(err, deco.ErrStopped) {
		t.Fatalf("Synchronized after Run: %v", err)
	}
}

// Run returns body's error on rank 0 and nil on the workers.
func TestRunError(t *testing.T) {
	cs := commtest.World(t, 3)
	errs := make([]error, 3)
	done := make(chan int)
	for r, c := range cs {
		go func() {
			errs[r] = deco.Run(t.Context(), c, func(ctx context.Context) error { return errors.New("body failed") })
			done <- r
		}()
	}
	for range cs {
		<-done
	}
	if errs[0] == nil || errs[0].Error() != "body failed" || errs[1] != nil || errs[2] != nil {
		t.Fatalf("errors %v", errs)
	}
}

var slowFail = deco.ConcurrentErr(func(n int) (int, error) {
	time.Sleep(5 * time.Millisecond)
	return 0, fmt.Errorf("task %d", n)
})

// Tasks run on every rank, rank 0 included, and errors say which.
func TestSpread(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := commtest.World(t, n)
			runWorld(t, cs, func(ctx context.Context) error {
				err := deco.Synchronized(ctx, func(s *deco.Scope) {
					for i := range 12 * n {
						slowFail.Go(s, i)
					}
				})
				seen := map[int]bool{}
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					seen[e.(*deco.TaskError).Rank] = true
				}
				if len(seen) != n {
					t.Errorf("tasks ran on ranks %v, want all %d", seen, n)
				}
				return nil
			})
		})
	}
}

var badResult = deco.Concurrent(func(n int) any {
	if n == 1 {
		return func() {}
	}
	return n
})

// A result that cannot be encoded fails its task (where it ran).
func TestResultEncodeError(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		var x, y any
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			badResult.Assign(s, &x, 1)
			badResult.Assign(s, &y, 2)
		})
		var te *deco.TaskError
		if !errors.As(err, &te) || te.Task != 0 ||
			!strings.Contains(err.Error(), "the result holds a value of type func(): it is a function") {
			t.Fatalf("err %v", err)
		}
		if x != nil || y == nil {
			t.Errorf("x %v, y %v", x, y)
		}
	})
}
