package deco_test

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/decorun/decorun/deco"
)

// result is the kind of type package main declares: its fields are
// unexported, so CBOR cannot carry them.
type result struct{ sq, rank int }

type holder struct {
	Name string
	Ch   chan int
}

type inner struct{ N int }

type embeds struct {
	inner // an embedded type's exported fields travel
	When  time.Time
	Big   *big.Int
	skip  int `cbor:"-"` // declared not to travel
}

var (
	hidden    = deco.Concurrent(func(n int) result { return result{n * n, 0} })
	withChan  = deco.Concurrent(func(h holder) int { return len(h.Name) })
	nestedBad = deco.Concurrent(func(m map[string][]result) int { return len(m) })
	fine      = deco.Concurrent(func(e embeds) embeds { e.N *= 2; return e })
)

// A type that cannot travel is an error at every issuing call, in every
// mode (the goroutine pool too), naming the type and the field; no task
// runs and nothing comes back as zeros.
func TestTypesThatCannotTravel(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		var r result
		var n int
		var callErrs [3]error
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			callErrs[0] = hidden.Assign(s, &r, 3)
			callErrs[1] = withChan.Assign(s, &n, holder{Name: "x"})
			callErrs[2] = nestedBad.Assign(s, &n, nil)
		})
		wants := []string{
			"the result has type deco_test.result: field sq of deco_test.result is unexported",
			"argument 1 has type deco_test.holder: field Ch of deco_test.holder is a channel",
			"argument 1 has type map[string][]deco_test.result: field sq of deco_test.result is unexported",
		}
		for i, w := range wants {
			if !errors.Is(callErrs[i], deco.ErrType) || !strings.Contains(fmtErr(callErrs[i]), w) {
				t.Errorf("call %d: error %v, want ErrType and %q", i, callErrs[i], w)
			}
		}
		if !errors.Is(err, deco.ErrType) || r != (result{}) {
			t.Errorf("block: err %v, r %+v", err, r)
		}
	})
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// Embedded structs, time.Time, *big.Int and fields tagged cbor:"-" are
// fine.
func TestTypesThatTravel(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		when := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
		in := embeds{inner: inner{N: 21}, When: when, Big: big.NewInt(1 << 40)}
		var out embeds
		if err := deco.Synchronized(ctx, func(s *deco.Scope) { fine.Assign(s, &out, in) }); err != nil {
			t.Fatal(err)
		}
		if out.N != 42 || !out.When.Equal(when) || out.Big.Cmp(in.Big) != 0 {
			t.Errorf("got %+v", out)
		}
	})
}

var anyArg = deco.Concurrent(func(v any) int { return 1 })

// A value held in an interface is checked at the call: its dynamic type
// must travel too.
func TestInterfaceValueCannotTravel(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		var n int
		var callErr error
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			callErr = anyArg.Assign(s, &n, []any{1, result{1, 2}})
		})
		if !errors.Is(callErr, deco.ErrType) || !strings.Contains(fmtErr(callErr), "deco_test.result: field sq of deco_test.result is unexported") {
			t.Errorf("call error %v", callErr)
		}
		if !errors.Is(err, deco.ErrType) || n != 0 {
			t.Errorf("block: err %v, n %d", err, n)
		}
	})
}

// Under decorun with several ranks, a block whose context did not come
// from Main or Run fails at once, saying what to add; body does not run.
func TestSynchronizedWithoutRun(t *testing.T) {
	t.Setenv("DECORUN_RANK", "1")
	t.Setenv("DECORUN_SIZE", "3")
	t.Setenv("DECORUN_JOB", "j")
	t.Setenv("DECORUN_NATS_URL", "nats://127.0.0.1:1") // never dialled
	ran := false
	err := deco.Synchronized(t.Context(), func(s *deco.Scope) { ran = true })
	if !errors.Is(err, deco.ErrNoRun) || ran ||
		!strings.Contains(fmtErr(err), "(rank 1 of 3)") || !strings.Contains(fmtErr(err), "deco.Main(func(ctx context.Context) error") {
		t.Fatalf("ran %v, err %v", ran, err)
	}
	t.Setenv("DECORUN_SIZE", "1") // a job of one rank: the goroutine pool, as without decorun
	var x int
	if err := deco.Synchronized(t.Context(), func(s *deco.Scope) { fib.Assign(s, &x, 10) }); err != nil || x != 55 {
		t.Fatalf("x %d, err %v", x, err)
	}
}
