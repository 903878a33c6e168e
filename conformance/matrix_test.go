package conformance

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/decorun/decorun/comm"
)

// TestCollectivesMatrix: every collective, on 1 to 9 ranks, at 8 B, 1 KiB,
// 64 KiB, 300 KiB and 2 MiB per rank (the sizes on both sides of the
// thresholds where an implementation switches algorithms or data paths),
// with a non-zero root, gives exactly MPI's result: integer sums, and
// compositions of affine maps and concatenations of strings, whose value
// changes if ranks are combined in any other than rank order. Each call
// runs while point-to-point messages on the same communicator are in
// flight (posted before it, received after it, of up to 300 KiB), and the
// calls alternate between the world, a Split communicator (two halves in
// reverse rank order) and a Dup of the world. The 300 KiB and 2 MiB sizes
// run a few calls only, so that the suite stays fast.
func TestCollectivesMatrix(t *testing.T) {
	for _, n := range sizes() {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			// A hang guard only: 9 ranks in one process with -race on
			// two loaded cores are slow.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			run(t, n, func(_ context.Context, c *comm.Comm) error { return matrix(ctx, c) })
		})
	}
}

// The size classes: m 8-byte elements per rank. The two large ones run
// only the calls named (the large-message algorithms of each kind), so
// that the suite stays fast; the others run every call. At 8 B each call
// runs on every communicator; at the other sizes on one in turn (the
// world, the Split, the Dup), shifted by one from each size to the next.
var matrixClasses = []struct {
	name string
	m    int
	only []string
}{
	{"8 B", 1, nil},
	{"1 KiB", 128, nil},
	{"64 KiB", 8 << 10, nil},
	{"300 KiB", 300 << 7, []string{"Bcast", "Scatter", "Gatherv", "Allgather", "Alltoallv", "ReduceSlice",
		"AllreduceSliceInto in place", "ReduceScatter", "ScanSlice"}},
	{"2 MiB", 2 << 17, []string{"Bcast", "AllreduceSliceInto in place", "ReduceSlice", "Alltoall"}},
}

// mx runs the checks of one rank. Every check has a number s, the same on
// every rank, which goes into its data, so that a result of another call
// is caught.
type mx struct {
	ctx   context.Context
	s     int
	names map[*comm.Comm]string
}

// mop is one check: it calls a collective on cm with m elements per rank
// and compares the result with the serial answer.
type mop struct {
	name string
	f    func(ctx context.Context, cm *comm.Comm, m, s int) error
}

func matrix(ctx context.Context, c *comm.Comm) error {
	split, err := c.Split(ctx, c.Rank()%2, -c.Rank())
	if err != nil {
		return err
	}
	defer split.Close()
	dup, err := c.Dup(ctx)
	if err != nil {
		return err
	}
	defer dup.Close()
	x := &mx{ctx: ctx, names: map[*comm.Comm]string{c: "world", split: "split", dup: "dup"}}
	comms := []*comm.Comm{c, split, dup}
	for ci, cl := range matrixClasses {
		if cl.only != nil {
			for k, name := range cl.only {
				i := slices.IndexFunc(matrixOps, func(o mop) bool { return o.name == name })
				if err := x.do(comms[k%3], cl.name, cl.m, matrixOps[i]); err != nil {
					return err
				}
			}
			continue
		}
		ops := matrixOps
		if cl.m == 1 {
			ops = append(slices.Clone(scalarOps), ops...)
		}
		for i, o := range ops {
			on := comms
			if cl.m > 1 { // one communicator in turn, another for each size
				on = comms[(i+ci)%3 : (i+ci)%3+1]
			}
			for _, cm := range on {
				if err := x.do(cm, cl.name, cl.m, o); err != nil {
					return err
				}
			}
		}
	}
	return x.do(c, "end", 1, scalarOps[0])
}

// do runs check o on cm while a message from each rank to its right
// neighbour on cm, posted before the call, is in flight; it is received
// after the call, by a receive posted before it with AnyTag (which
// collective traffic must never match).
func (x *mx) do(cm *comm.Comm, class string, m int, o mop) error {
	x.s++
	s := x.s
	r, p := cm.Rank(), cm.Size()
	right, left := (r+1)%p, (r+p-1)%p
	size := min(8*m, 300<<10)
	tag := s
	rq, err := cm.Irecv(left, comm.AnyTag)
	if err != nil {
		return err
	}
	sq, err := cm.Isend(right, tag, payload(r, s, size))
	if err != nil {
		return err
	}
	where := fmt.Sprintf("%s, %s per rank, on %s (rank %d of %d), check %d", o.name, class, x.names[cm], r, p, s)
	if err := o.f(x.ctx, cm, m, s); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	st, err := rq.Wait(x.ctx)
	if err != nil {
		return fmt.Errorf("%s: the point-to-point receive: %w", where, err)
	}
	if st.Tag != tag {
		return fmt.Errorf("%s: the point-to-point receive got tag %d; want %d", where, st.Tag, tag)
	}
	if err := checkPayload(where+": point to point", rq.Data(), left, s, size); err != nil {
		return err
	}
	if _, err := sq.Wait(x.ctx); err != nil {
		return fmt.Errorf("%s: the point-to-point send: %w", where, err)
	}
	return nil
}

// iv is element i of rank r's integer data in check s: every value tells
// which rank, check and element it is, and sums over 9 ranks are exact.
func iv(r, i, s int) int64 { return int64(r)<<40 | int64(s)<<24 | int64(i) }

// ivs is elements off..off+m-1 of rank r's integer data in check s.
func ivs(r, off, m, s int) []int64 {
	v := make([]int64, m)
	for k := range v {
		v[k] = iv(r, off+k, s)
	}
	return v
}

// sumIvs is the element-wise sum of ivs over ranks lo..hi-1 (nil if none).
func sumIvs(lo, hi, off, m, s int) []int64 {
	if lo >= hi {
		return nil
	}
	v := make([]int64, m)
	for r := lo; r < hi; r++ {
		for k := range v {
			v[k] += iv(r, off+k, s)
		}
	}
	return v
}

// av is element i of rank r's affine map in check s (odd multipliers).
func av(r, i, s int) affine {
	return affine(uint64(2*r+3+4*i+8*s)<<32 | uint64(7*r+i+1+3*s))
}

func avs(r, off, m, s int) []affine {
	v := make([]affine, m)
	for k := range v {
		v[k] = av(r, off+k, s)
	}
	return v
}

// foldAvs composes avs of ranks lo..hi-1 in rank order (nil if none).
func foldAvs(lo, hi, off, m, s int) []affine {
	if lo >= hi {
		return nil
	}
	v := avs(lo, off, m, s)
	for r := lo + 1; r < hi; r++ {
		for k := range v {
			v[k] = compose(v[k], av(r, off+k, s))
		}
	}
	return v
}

// eq compares two vectors, naming the first element that differs.
func eq[T comparable](what string, got, want []T) error {
	if slices.Equal(got, want) {
		return nil
	}
	if len(got) != len(want) {
		return fmt.Errorf("%s: %d elements; want %d", what, len(got), len(want))
	}
	i := 0
	for got[i] == want[i] {
		i++
	}
	return fmt.Errorf("%s: element %d of %d is %v; want %v", what, i, len(got), got[i], want[i])
}

// mroot is the root of check s: never 0 unless there is one rank.
func mroot(p, s int) int {
	if p == 1 {
		return 0
	}
	return 1 + s%(p-1)
}

// block is the per-destination count of the all-to-all and reduce-scatter
// checks: about m elements per rank in all.
func block(m, p int) int { return max(1, m/p) }
