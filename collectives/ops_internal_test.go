package collectives

import (
	"slices"
	"testing"
)

// testSumInto checks that combineLeft and combineRight with sum (Sum on E)
// take the loop without calls when fast and give op's results either way.
// sum comes from a non-generic caller, as in a program: within generic
// code Sum[E] is another closure, which takes the calls.
func testSumInto[E Number](t *testing.T, sum func(a, b E) E, fast bool) {
	t.Helper()
	in := []E{1, 2, 3, 4, 5}
	acc := []E{10, 20, 30, 40, 50}
	want := []E{11, 22, 33, 44, 55}
	if got := sumInto(sum, slices.Clone(acc), in, acc); got != fast {
		t.Errorf("%T: sumInto(Sum) = %v; want %v", in, got, fast)
	}
	l, r := slices.Clone(acc), slices.Clone(acc)
	combineLeft(sum, in, l)
	combineRight(sum, r, in)
	if !slices.Equal(l, want) || !slices.Equal(r, want) {
		t.Errorf("%T: combineLeft, combineRight = %v, %v; want %v", in, l, r, want)
	}
}

type celsius float64

func TestSumInto(t *testing.T) {
	testSumInto(t, Sum[float64], true)
	testSumInto(t, Sum[float32], true)
	testSumInto(t, Sum[int], true)
	testSumInto(t, Sum[int64], true)
	testSumInto(t, Sum[int32], true)
	testSumInto(t, Sum[uint64], true)
	testSumInto(t, Sum[uint8], false)
	testSumInto(t, Sum[celsius], false)
	sub := func(a, b float64) float64 { return a - b }
	if sumInto(sub, []float64{0}, []float64{1}, []float64{2}) {
		t.Error("sumInto took an op that is not Sum")
	}
	acc := []float64{10, 20}
	combineLeft(sub, []float64{1, 2}, acc)
	if !slices.Equal(acc, []float64{-9, -18}) {
		t.Errorf("combineLeft(sub) = %v; want [-9 -18]", acc)
	}
	if sumInto(Prod[float64], []float64{0}, []float64{1}, []float64{2}) {
		t.Error("sumInto took Prod")
	}
}
