package conformance

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

// record is a typed message that goes by CBOR.
type record struct {
	Name  string
	Tags  map[string]int
	Vals  []float64
	Next  *record
	Empty []int
}

// TestTypedValuesRoundTrip: typed messages arrive equal to what was sent
// (numbers, numeric slices, strings, structs with maps and pointers); a
// raw message may be received as []byte or string; a typed receive of
// another type fails with ErrType naming both types.
func TestTypedValuesRoundTrip(t *testing.T) {
	rec := record{Name: "a", Tags: map[string]int{"x": 1, "y": -2}, Vals: []float64{0.5, -1e300},
		Next: &record{Name: "b"}}
	run(t, 2, func(ctx context.Context, c *comm.Comm) error {
		if c.Rank() == 1 {
			for _, send := range []func() error{
				func() error { return comm.SendValue(ctx, c, 0, 0, 42) },
				func() error { return comm.SendValue(ctx, c, 0, 0, []float32{1.5, -2}) },
				func() error { return comm.SendValue(ctx, c, 0, 0, "text") },
				func() error { return comm.SendValue(ctx, c, 0, 0, rec) },
				func() error { return c.Send(ctx, 0, 0, []byte("raw")) },
				func() error { return comm.SendValue(ctx, c, 0, 0, []int64{7}) },
			} {
				if err := send(); err != nil {
					return err
				}
			}
			return nil
		}
		if v, _, err := comm.RecvValue[int](ctx, c, 1, 0); err != nil || v != 42 {
			return fmt.Errorf("int: %v, %v", v, err)
		}
		if v, _, err := comm.RecvValue[[]float32](ctx, c, 1, 0); err != nil || fmt.Sprint(v) != "[1.5 -2]" {
			return fmt.Errorf("[]float32: %v, %v", v, err)
		}
		if v, _, err := comm.RecvValue[string](ctx, c, 1, 0); err != nil || v != "text" {
			return fmt.Errorf("string: %q, %v", v, err)
		}
		v, _, err := comm.RecvValue[record](ctx, c, 1, 0)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(v, rec) {
			return fmt.Errorf("record: %+v (next %+v); want %+v (next %+v)", v, v.Next, rec, rec.Next)
		}
		if s, _, err := comm.RecvValue[string](ctx, c, 1, 0); err != nil || s != "raw" {
			return fmt.Errorf("raw bytes as a string: %q, %v", s, err)
		}
		_, _, err = comm.RecvValue[[]float64](ctx, c, 1, 0)
		if !errors.Is(err, comm.ErrType) || !strings.Contains(err.Error(), "[]int64") || !strings.Contains(err.Error(), "[]float64") {
			return fmt.Errorf("[]int64 received as []float64: %v; want ErrType naming both", err)
		}
		return nil
	})
}

// TestMinLocMaxLocTieToLowerIndex: MinLoc and MaxLoc pick the lowest
// index among equal values, as MPI_MINLOC and MPI_MAXLOC do, element-wise
// too.
func TestMinLocMaxLocTieToLowerIndex(t *testing.T) {
	run(t, 6, func(ctx context.Context, c *comm.Comm) error {
		r := c.Rank()
		v := collectives.Loc[int]{Value: []int{3, 1, 4, 1, 5, 5}[r], Index: r}
		lo, err := collectives.Allreduce(ctx, c, v, collectives.MinLoc)
		if err != nil {
			return err
		}
		hi, err := collectives.Allreduce(ctx, c, v, collectives.MaxLoc)
		if err != nil {
			return err
		}
		if lo != (collectives.Loc[int]{Value: 1, Index: 1}) || hi != (collectives.Loc[int]{Value: 5, Index: 4}) {
			return fmt.Errorf("MinLoc = %+v, MaxLoc = %+v; want {1 1}, {5 4}", lo, hi)
		}
		vs := []collectives.Loc[float64]{{Value: 2, Index: r}, {Value: float64(r % 2), Index: r}}
		got, err := collectives.AllreduceSlice(ctx, c, vs, collectives.MinLoc)
		if err != nil {
			return err
		}
		return same("AllreduceSlice(MinLoc)", got, []collectives.Loc[float64]{{Value: 2, Index: 0}, {Value: 0, Index: 0}})
	})
}

// TestManyCommunicatorsCreatedAndFreed: communicators made and closed in a
// loop (Dup, Split of the Dup) each get a context of their own: traffic of
// one never reaches another, and collectives on each are right.
func TestManyCommunicatorsCreatedAndFreed(t *testing.T) {
	const rounds = 30
	run(t, 3, func(ctx context.Context, c *comm.Comm) error {
		r := c.Rank()
		for i := range rounds {
			d, err := c.Dup(ctx)
			if err != nil {
				return err
			}
			s, err := d.Split(ctx, 0, -r)
			if err != nil {
				return err
			}
			// A message on each, same tag, received with wildcards.
			peer := (r + 1) % 3
			from := (r + 2) % 3
			for k, x := range []*comm.Comm{d, s} {
				dst := peer
				if x == s { // s reverses the ranks
					dst = 2 - peer
				}
				if err := x.Send(ctx, dst, 0, payload(r, 2*i+k, 16)); err != nil {
					return err
				}
				got, _, err := x.Recv(ctx, comm.AnySource, comm.AnyTag)
				if err != nil {
					return err
				}
				if err := checkPayload(fmt.Sprintf("round %d, communicator %d", i, k), got, from, 2*i+k, 16); err != nil {
					return err
				}
			}
			sum, err := collectives.Allreduce(ctx, s, i+r, collectives.Sum)
			if err != nil || sum != 3*i+3 {
				return fmt.Errorf("round %d: Allreduce = %d, %v; want %d", i, sum, err, 3*i+3)
			}
			s.Close()
			d.Close()
		}
		return nil
	})
}

// TestClosingADerivedCommunicatorLeavesItsParent: closing a Dup or a
// Split makes calls on it fail with ErrClosed, while the parent (and its
// other derived communicators) go on working.
func TestClosingADerivedCommunicatorLeavesItsParent(t *testing.T) {
	run(t, 3, func(ctx context.Context, c *comm.Comm) error {
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		e, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		defer e.Close()
		d.Close()
		if err := d.Send(ctx, 0, 0, nil); !errors.Is(err, comm.ErrClosed) {
			return fmt.Errorf("Send on a closed Dup: %v; want ErrClosed", err)
		}
		if err := collectives.Barrier(ctx, d); !errors.Is(err, comm.ErrClosed) {
			return fmt.Errorf("Barrier on a closed Dup: %v; want ErrClosed", err)
		}
		for _, x := range []*comm.Comm{c, e} {
			sum, err := collectives.Allreduce(ctx, x, 1, collectives.Sum)
			if err != nil || sum != 3 {
				return fmt.Errorf("Allreduce after closing a sibling: %d, %v", sum, err)
			}
		}
		return nil
	})
}

// TestCollectivesWithZeroCounts: collectives of empty data (empty vectors,
// empty blocks, nothing to scatter) complete with empty results at 1, 3 and
// 4 ranks.
func TestCollectivesWithZeroCounts(t *testing.T) {
	for _, n := range []int{1, 3, 4} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			run(t, n, func(ctx context.Context, c *comm.Comm) error {
				empty := []float64{}
				checks := []struct {
					name string
					call func() (int, error) // the result's length
				}{
					{"Bcast", func() (int, error) { v, err := collectives.Bcast(ctx, c, empty, n-1); return len(v), err }},
					{"Allgather", func() (int, error) { v, err := collectives.Allgather(ctx, c, empty); return len(v), err }},
					{"Alltoall", func() (int, error) { v, err := collectives.Alltoall(ctx, c, empty); return len(v), err }},
					{"Scatter", func() (int, error) { v, err := collectives.Scatter(ctx, c, empty, 0); return len(v), err }},
					{"Gather", func() (int, error) { v, err := collectives.Gather(ctx, c, empty, 0); return len(v), err }},
					{"AllreduceSlice", func() (int, error) {
						v, err := collectives.AllreduceSlice(ctx, c, empty, collectives.Sum)
						return len(v), err
					}},
					{"ReduceSlice", func() (int, error) {
						v, err := collectives.ReduceSlice(ctx, c, empty, collectives.Sum, n/2)
						return len(v), err
					}},
					{"ReduceScatter", func() (int, error) {
						v, err := collectives.ReduceScatter(ctx, c, empty, collectives.Sum)
						return len(v), err
					}},
					{"ScanSlice", func() (int, error) {
						v, err := collectives.ScanSlice(ctx, c, empty, collectives.Sum)
						return len(v), err
					}},
				}
				for _, ch := range checks {
					got, err := ch.call()
					if err != nil || got != 0 {
						return fmt.Errorf("%s of nothing: %d elements, %v", ch.name, got, err)
					}
				}
				all, err := collectives.Allgatherv(ctx, c, empty)
				if err != nil || len(all) != n {
					return fmt.Errorf("Allgatherv of nothing: %v, %v", all, err)
				}
				for _, p := range all {
					if len(p) != 0 {
						return fmt.Errorf("Allgatherv of nothing: %v", all)
					}
				}
				return nil
			})
		})
	}
}

// TestSplitAndDupOfOneRank: in a world of one rank, Dup and Split (also
// with Undefined) work and need no peer.
func TestSplitAndDupOfOneRank(t *testing.T) {
	run(t, 1, func(ctx context.Context, c *comm.Comm) error {
		d, err := c.Dup(ctx)
		if err != nil || d.Size() != 1 || d.Rank() != 0 {
			return fmt.Errorf("Dup: %v", err)
		}
		defer d.Close()
		s, err := d.Split(ctx, 5, 9)
		if err != nil || s.Size() != 1 {
			return fmt.Errorf("Split: %v", err)
		}
		defer s.Close()
		if u, err := s.Split(ctx, comm.Undefined, 0); u != nil || err != nil {
			return fmt.Errorf("Split(Undefined): %v, %v; want nil, nil", u, err)
		}
		got, _, err := s.Sendrecv(ctx, []byte("me"), 0, 0, 0, 0)
		if err != nil || string(got) != "me" {
			return fmt.Errorf("Sendrecv on the Split: %q, %v", got, err)
		}
		return nil
	})
}
