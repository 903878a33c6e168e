package deco_test

import (
	"context"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/decorun/decorun/deco"
)

type pair struct {
	A, B   int
	Next   *pair
	Tags   []string
	hidden int `cbor:"-"` // declared not to travel
}

var (
	setKey = deco.Action3(func(m map[string]int, k string, v int) { m[k] = v })
	delKey = deco.Action2(func(m map[string]int, k string) { delete(m, k) })
	square = deco.Action2(func(xs []int, i int) {
		xs[i] = i * i
		xs = append(xs, 99) // not seen by the caller, as in serial Go
		xs[0] = -1          // the new array: not seen either
	})
	setField = deco.Action2(func(p *pair, which int) {
		if which == 0 {
			p.A = 1
		} else {
			p.B = 2
		}
		p.hidden = 7 // unexported: never travels
	})
	grow = deco.Action(func(p *pair) {
		p.Next = &pair{A: 5}
		p.Tags = append(p.Tags, "grown")
	})
	nested  = deco.Action2(func(m map[string][]int, i int) { m["x"][i] = 10 + i })
	failing = deco.ConcurrentErr2(func(m map[string]int, k string) (int, error) {
		m[k] = 1
		return 0, errors.New("no")
	})
	keep = deco.Concurrent(func(m map[string]int) int { return len(m) })
)

// A task's writes through pointer, map and slice arguments reach the
// caller's value at the end of the block, element by element, later tasks
// winning; see "Write-back" in the package doc.
func TestWriteBack(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		m := map[string]int{"gone": 1, "same": 2}
		xs := make([]int, 6)
		p := &pair{Tags: []string{"a"}}
		nest := map[string][]int{"x": {0, 0, 0, 0}}
		var n int
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			for v := 1; v <= 4; v++ {
				setKey.Go(s, m, "k", v) // serial order: the last (4) wins
			}
			setKey.Go(s, m, "other", 7)
			delKey.Go(s, m, "gone")
			keep.Assign(s, &n, m) // reads m as issued, changes nothing
			for i := 1; i < len(xs); i++ {
				square.Go(s, xs, i)
			}
			setField.Go(s, p, 0)
			setField.Go(s, p, 1) // a different field: both writes survive
			grow.Go(s, p)
			for i := range 4 {
				nested.Go(s, nest, i)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"k": 4, "other": 7, "same": 2}; !reflect.DeepEqual(m, want) {
			t.Errorf("map %v, want %v", m, want)
		}
		if n != 2 {
			t.Errorf("len(m) seen by a task = %d, want 2 (the map as issued)", n)
		}
		if want := []int{0, 1, 4, 9, 16, 25}; !reflect.DeepEqual(xs, want) {
			t.Errorf("slice %v, want %v", xs, want)
		}
		want := &pair{A: 1, B: 2, Next: &pair{A: 5}, Tags: []string{"a", "grown"}}
		if !reflect.DeepEqual(p, want) {
			t.Errorf("pair %+v (next %+v), want %+v", p, p.Next, want)
		}
		if !reflect.DeepEqual(nest["x"], []int{10, 11, 12, 13}) {
			t.Errorf("nested %v", nest["x"])
		}
	})
}

// A failed task's writes are dropped; the others are applied.
func TestWriteBackFailedTask(t *testing.T) {
	modes(t, func(t *testing.T, ctx context.Context) {
		m := map[string]int{}
		err := deco.Synchronized(ctx, func(s *deco.Scope) {
			failing.Go(s, m, "x")
			setKey.Go(s, m, "y", 2)
		})
		var te *deco.TaskError
		if !errors.As(err, &te) || te.Task != 0 {
			t.Fatalf("err %v, want task 0's error", err)
		}
		if !reflect.DeepEqual(m, map[string]int{"y": 2}) {
			t.Errorf("map %v, want only y", m)
		}
	})
}

var (
	fillRuns = deco.Action2(func(xs []float64, k int) {
		// Two runs of changed elements, and one element set to its old
		// value (no change).
		for i := k * 10; i < k*10+3; i++ {
			xs[i] = float64(i) + 0.5
		}
		xs[k*10+7] = -float64(k)
		xs[k*10+9] = -1 // its value as issued: no change
	})
	setAt = deco.Action3(func(xs []float64, i int, v float64) { xs[i] = v })
)

// TestWriteBackRuns: tasks that change runs of elements of a shared slice
// of numbers write back exactly those (each run in one op), so tasks that
// change different elements all land, and an element a task left alone is
// never written back, NaN included (a NaN is not equal to itself, so a
// comparison of values would send it back and overwrite another task's
// write).
func TestWriteBackRuns(t *testing.T) {
	ctx := context.Background()
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = -1
	}
	xs[50] = math.NaN()
	err := deco.Synchronized(ctx, func(s *deco.Scope) {
		setAt.Go(s, xs, 50, 5.0) // issued first: its write-back comes first
		for k := range 10 {
			fillRuns.Go(s, xs, k)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range 10 {
		for i := k * 10; i < k*10+10; i++ {
			want := -1.0
			switch {
			case i < k*10+3:
				want = float64(i) + 0.5
			case i == k*10+7:
				want = -float64(k)
			case i == 50:
				want = 5
			}
			if xs[i] != want {
				t.Errorf("xs[%d] = %v; want %v", i, xs[i], want)
			}
		}
	}
}
