package deco_test

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
	"github.com/decorun/decorun/deco"
	"github.com/decorun/decorun/deco/internal/samename/a"
	"github.com/decorun/decorun/deco/internal/samename/b"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func fibSerial(n int) int {
	if n < 2 {
		return n
	}
	return fibSerial(n-1) + fibSerial(n-2)
}

var fib = deco.Concurrent(fibSerial)

// modes runs f in every mode: the process's goroutine pool (no Run), Run
// over a world of one rank, and Run over in-process worlds of 2 and 3
// ranks with f as rank 0's body. All must give the same results.
func modes(t *testing.T, f func(t *testing.T, ctx context.Context), opts ...deco.Option) {
	t.Helper()
	t.Run("pool", func(t *testing.T) { f(t, t.Context()) })
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("ranks%d", n), func(t *testing.T) {
			cs := commtest.World(t, n)
			runWorld(t, cs, func(ctx context.Context) error { f(t, ctx); return nil }, opts...)
		})
	}
}

// runWorld runs deco.Run on every rank of cs with body on rank 0.
func runWorld(t *testing.T, cs []*comm.Comm, body func(ctx context.Context) error, opts ...deco.Option) {
	t.Helper()
	commtest.Run(t, cs, func(c *comm.Comm) error {
		return deco.Run(t.Context(), c, body, opts...)
	})
}

func TestFib(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		ns := []int{20, 19, 18, 17, 16, 15}
		results := make([]int, len(ns))
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			for i, n := range ns {
				if err := fib.Assign(s, &results[i], n); err != nil {
					t.Error(err)
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{6765, 4181, 2584, 1597, 987, 610}; !reflect.DeepEqual(results, want) {
			t.Fatalf("results %v, want %v", results, want)
		}
	})
}

// Many small tasks: batching, fair shares and the in-order end of block.
func TestManyTasks(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		const n = 5000
		got := make([]int, n)
		var order []int
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			for i := range n {
				a.F.Assign(s, &got[i], i)
				a.F.Then(s, func(v int) { order = append(order, v) }, i)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if got[i] != i+1 || order[i] != i+1 {
				t.Fatalf("got[%d] = %d, order[%d] = %d; want %d", i, got[i], i, order[i], i+1)
			}
		}
	})
}

func TestNamesByIdentity(t *testing.T) {
	if a.F.Name() == b.F.Name() {
		t.Fatalf("two functions named Work in different packages share the name %q", a.F.Name())
	}
	for _, n := range []string{a.F.Name(), b.F.Name()} {
		if !strings.HasPrefix(n, "github.com/decorun/decorun/deco/internal/samename/") {
			t.Errorf("name %q lacks the package path", n)
		}
	}
	// Registering fibSerial again gives it the next free suffix (#1 on a
	// first run of this test; -count=N runs register it again).
	again := deco.Concurrent(fibSerial)
	k, err := strconv.Atoi(strings.TrimPrefix(again.Name(), fib.Name()+"#"))
	if !strings.HasPrefix(again.Name(), fib.Name()+"#") || err != nil || k < 1 {
		t.Errorf("second registration of fibSerial is %q, want %q", again.Name(), fib.Name()+"#N")
	}
	if third := deco.Concurrent(fibSerial); third.Name() != fmt.Sprintf("%s#%d", fib.Name(), k+1) {
		t.Errorf("third registration of fibSerial is %q, want %q", third.Name(), fmt.Sprintf("%s#%d", fib.Name(), k+1))
	}
	modes(t, func(t *testing.T, ctx context.Context) {
		var x, y, z int
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			a.F.Assign(s, &x, 10)
			b.F.Assign(s, &y, 10)
			again.Assign(s, &z, 10)
		})
		if err != nil || x != 11 || y != 20 || z != 55 {
			t.Fatalf("a.Work(10) = %d, b.Work(10) = %d, fib(10) = %d, err %v; want 11, 20, 55", x, y, z, err)
		}
	})
}

type point struct{ Lat, Lon int }

type cell struct {
	Where point
	Value float64
}

var (
	area   = deco.Concurrent2(func(w, h int) int { return w * h })
	locate = deco.Concurrent3(func(lat, lon int, scale float64) cell {
		return cell{point{lat, lon}, float64(lat*lon) * scale}
	})
	half = deco.ConcurrentErr(func(n int) (int, error) {
		if n%2 != 0 {
			return 0, fmt.Errorf("%d is odd", n)
		}
		return n / 2, nil
	})
	label = deco.Concurrent(func(p point) string { return fmt.Sprintf("%d/%d", p.Lat, p.Lon) })
)

// Results go into slice elements, nested slices, struct fields and map
// entries; Then runs in issue order; futures can be waited for inside the
// block.
func TestTargets(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		grid := make([][]cell, 3)
		for i := range grid {
			grid[i] = make([]cell, 4)
		}
		byKey := map[int]map[int]float64{}
		var st struct{ Area int }
		var labels []string
		var fut *deco.Future[int]
		var early int
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			fut = half.Future(s, 8)
			for lat := range 3 {
				byKey[lat] = map[int]float64{}
				for lon := range 4 {
					locate.Assign(s, &grid[lat][lon], lat, lon, 0.5)
					locate.Then(s, func(c cell) { byKey[lat][lon] = c.Value }, lat, lon, 2)
				}
			}
			area.Assign(s, &st.Area, 6, 7)
			for i := range 5 {
				label.Then(s, func(l string) { labels = append(labels, l) }, point{i, -i})
			}
			v, err := fut.Wait(ctx)
			if err != nil {
				t.Error(err)
			}
			early = v
		})
		if err != nil {
			t.Fatal(err)
		}
		for lat := range 3 {
			for lon := range 4 {
				want := cell{point{lat, lon}, float64(lat*lon) * 0.5}
				if grid[lat][lon] != want || byKey[lat][lon] != float64(lat*lon)*2 {
					t.Fatalf("grid[%d][%d] = %v, byKey %v; want %v", lat, lon, grid[lat][lon], byKey[lat][lon], want)
				}
			}
		}
		if st.Area != 42 || early != 4 {
			t.Errorf("area %d, future %d; want 42, 4", st.Area, early)
		}
		if want := []string{"0/0", "1/-1", "2/-2", "3/-3", "4/-4"}; !reflect.DeepEqual(labels, want) {
			t.Errorf("Then order %v, want %v", labels, want)
		}
		if v, err := fut.Wait(ctx); v != 4 || err != nil {
			t.Errorf("future after the block: %d, %v", v, err)
		}
	})
}

func TestEntry(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		res := map[string]int{}
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			for _, k := range []string{"a", "b", "c"} {
				area.Then(s, deco.Entry(res, k), len(k), 3)
			}
		})
		if err != nil || !reflect.DeepEqual(res, map[string]int{"a": 3, "b": 3, "c": 3}) {
			t.Fatalf("res %v, err %v", res, err)
		}
	})
}
