package conformance

import (
	"context"
	"fmt"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

// real is the element types checked: integers and floats.
type real interface {
	collectives.Integer | ~float32 | ~float64
}

// elem is rank r's element i: small values, so that sums and products
// are exact in every type, with zeros for the logical ops.
func elem[T real](r, i int) T { return T((r*7 + i*3) % 5) }

type op[T real] struct {
	name string
	f    func(a, b T) T
	long bool // also check a long vector (the bandwidth-optimal algorithms)
}

// checkOps checks AllreduceSlice with each op (and, if long, with a long
// vector for the ops marked long) against the fold of every
// rank's values in rank order (whole-value Allreduce and Reduce share its
// combining code and are checked with user ops in coll_test.go).
func checkOps[T real](ctx context.Context, c *comm.Comm, ops []op[T], long bool) error {
	r, p := c.Rank(), c.Size()
	for _, o := range ops {
		for _, m := range []int{100, 70001} {
			if m == 70001 && !(o.long && long) {
				continue
			}
			v := make([]T, m)
			for i := range v {
				v[i] = elem[T](r, i)
			}
			want := make([]T, m)
			for i := range want {
				want[i] = elem[T](0, i)
				for s := 1; s < p; s++ {
					want[i] = o.f(want[i], elem[T](s, i))
				}
			}
			got, err := collectives.AllreduceSlice(ctx, c, v, o.f)
			if err != nil {
				return err
			}
			if err := same(fmt.Sprintf("AllreduceSlice(%s) of %d %T", o.name, m, v[0]), got, want); err != nil {
				return err
			}
		}
	}
	return nil
}

func intOps[T collectives.Integer]() []op[T] {
	return []op[T]{{"Sum", collectives.Sum[T], true}, {"Prod", collectives.Prod[T], false},
		{"Min", collectives.Min[T], false}, {"Max", collectives.Max[T], false},
		{"LAnd", collectives.LAnd[T], false}, {"LOr", collectives.LOr[T], false}, {"LXor", collectives.LXor[T], false},
		{"BAnd", collectives.BAnd[T], false}, {"BOr", collectives.BOr[T], false}, {"BXor", collectives.BXor[T], false}}
}

func floatOps[T float32 | float64]() []op[T] {
	return []op[T]{{"Sum", collectives.Sum[T], true}, {"Prod", collectives.Prod[T], false},
		{"Min", collectives.Min[T], false}, {"Max", collectives.Max[T], false},
		{"LAnd", collectives.LAnd[T], false}, {"LOr", collectives.LOr[T], false}, {"LXor", collectives.LXor[T], false}}
}

// TestBuiltinOpsOnEveryNumericType: every built-in reduction operator
// gives MPI's result on integer and floating-point types of every width,
// for short vectors and, with Sum on three types, long ones (which take
// another algorithm and, for int32 and float64, a loop of their own).
func TestBuiltinOpsOnEveryNumericType(t *testing.T) {
	run(t, 5, func(ctx context.Context, c *comm.Comm) error {
		for _, check := range []func() error{
			func() error { return checkOps(ctx, c, intOps[int8](), false) },
			func() error { return checkOps(ctx, c, intOps[uint16](), true) },
			func() error { return checkOps(ctx, c, intOps[int32](), true) },
			func() error { return checkOps(ctx, c, intOps[int](), false) },
			func() error { return checkOps(ctx, c, intOps[int64](), false) },
			func() error { return checkOps(ctx, c, intOps[uint64](), false) },
			func() error { return checkOps(ctx, c, floatOps[float32](), false) },
			func() error { return checkOps(ctx, c, floatOps[float64](), true) },
		} {
			if err := check(); err != nil {
				return err
			}
		}
		return nil
	})
}
