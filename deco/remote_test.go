package deco_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/decorun/decorun/deco"
)

var ErrItem = errors.New("item failed") // an unregistered errors.New sentinel

var ErrQuota = &quotaError{} // a registered sentinel with its own type

type quotaError struct{}

func (*quotaError) Error() string { return "over quota" }

var _ = deco.RegisterError(ErrQuota)

// CodeError is an error type of the program whose fields travel.
type CodeError struct {
	Code int
	Op   string
}

func (e *CodeError) Error() string { return fmt.Sprintf("%s: code %d", e.Op, e.Code) }

// secretError cannot be rebuilt elsewhere (unexported field).
type secretError struct{ code int }

func (e secretError) Error() string { return fmt.Sprintf("secret %d", e.code) }

var failing6 = deco.ConcurrentErr(func(i int) (int, error) {
	time.Sleep(10 * time.Millisecond) // long enough that every rank gets tasks
	switch i % 6 {
	case 0:
		return 0, fmt.Errorf("item %d: %w", i, ErrItem)
	case 1:
		return 0, fmt.Errorf("task %d: %w", i, errors.Join(errors.New("first"), &CodeError{Code: i, Op: "write"}))
	case 2:
		_, err := os.Open("/nonexistent/deco-test") // *fs.PathError wrapping syscall.ENOENT
		return 0, fmt.Errorf("item %d: %w", i, err)
	case 3:
		return 0, fmt.Errorf("item %d: %w", i, ErrQuota)
	case 4:
		return 0, fmt.Errorf("item %d: %w", i, secretError{i})
	}
	return i, nil
})

// errors.Is and errors.As give the same answers whichever rank ran the
// task: sentinels and the program's error types survive the trip through
// %w and errors.Join chains; what cannot be rebuilt keeps its message, type
// name and chain. The task error names the rank once.
func TestErrorsTravel(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		got := make([]int, 12)
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			for i := range got {
				failing6.Assign(s, &got[i], i)
			}
		})
		var errs []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		if len(errs) != 10 {
			t.Fatalf("%d errors, want 10: %v", len(errs), err)
		}
		remote := false
		for k, e := range errs {
			var te *deco.TaskError
			if !errors.As(e, &te) {
				t.Fatalf("error %d: %T", k, e)
			}
			i := te.Task
			remote = remote || te.Rank > 0
			if n := strings.Count(e.Error(), "on rank"); n != 1 {
				t.Errorf("task %d: %q names the rank %d times", i, e.Error(), n)
			}
			if is := errors.Is(e, ErrItem); is != (i%6 == 0) {
				t.Errorf("task %d: errors.Is(ErrItem) = %v: %v", i, is, e)
			}
			var ce *CodeError
			if as := errors.As(e, &ce); as != (i%6 == 1) || as && (ce.Code != i || ce.Op != "write") {
				t.Errorf("task %d: errors.As(*CodeError) = %v, %+v: %v", i, as, ce, e)
			}
			if is := errors.Is(e, fs.ErrNotExist); is != (i%6 == 2) {
				t.Errorf("task %d: errors.Is(fs.ErrNotExist) = %v: %v", i, is, e)
			}
			var pe *fs.PathError
			if as := errors.As(e, &pe); as != (i%6 == 2) || as && (pe.Path != "/nonexistent/deco-test" ||
				!errors.Is(pe.Err, fs.ErrNotExist)) {
				t.Errorf("task %d: errors.As(*fs.PathError) = %v, %+v", i, as, pe)
			}
			if is := errors.Is(e, ErrQuota); is != (i%6 == 3) {
				t.Errorf("task %d: errors.Is(ErrQuota) = %v: %v", i, is, e)
			}
			if i%6 == 4 {
				var se secretError
				var re *deco.RemoteError
				if errors.As(e, &se) || !errors.As(te.Err, &re) || re.Rank != te.Rank {
					t.Errorf("task %d: As(secretError) %v, RemoteError %+v", i, errors.As(e, &se), re)
				} else {
					var inner error
					if ks := re.Unwrap(); len(ks) == 1 {
						inner = ks[0]
					}
					if inner == nil {
						t.Errorf("task %d: no chain: %+v", i, re)
					} else if x, ok := inner.(*deco.RemoteError); !ok || x.Type != "deco_test.secretError" ||
						x.Msg != fmt.Sprintf("secret %d", i) || re.Msg != fmt.Sprintf("item %d: secret %d", i, i) ||
						fmt.Sprintf("%+v", x) != fmt.Sprintf("secret %d (a deco_test.secretError returned on rank %d, not rebuilt)", i, te.Rank) {
						t.Errorf("task %d: chain %+v / %+v", i, re, inner)
					}
				}
			}
		}
		if !remote && (strings.HasSuffix(t.Name(), "ranks2") || strings.HasSuffix(t.Name(), "ranks3")) {
			t.Error("no task ran on another rank")
		}
	}, deco.Slots(1))
}
