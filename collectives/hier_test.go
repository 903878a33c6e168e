package collectives_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// Layouts of 6 ranks on pretend hosts (commtest.WorldHosts): even,
// uneven, and round-robin (not contiguous: the calls go flat).
var hierLayouts = []struct {
	name string
	host []int
	hier bool
}{
	{"3x2", []int{0, 0, 1, 1, 2, 2}, true},
	{"3+1+2", []int{0, 0, 0, 1, 2, 2}, true},
	{"round-robin", []int{0, 1, 2, 0, 1, 2}, false},
}

// foldAff is the fold of compose over ranks 0..p-1 of aff(r, i).
func foldAff(p, i int) affine {
	acc := aff(0, i)
	for r := 1; r < p; r++ {
		acc = compose(acc, aff(r, i))
	}
	return acc
}

// hierOps runs every collective on c and checks its values against the
// fold in rank order (non-commutative ops, so the order shows).
func hierOps(ctx context.Context, t *testing.T, c *comm.Comm) error {
	p, r := c.Size(), c.Rank()
	check := func(what string, ok bool, got any) {
		if !ok {
			t.Errorf("rank %d: %s: got %v", r, what, got)
		}
	}
	for range 3 {
		if err := collectives.Barrier(ctx, c); err != nil {
			return fmt.Errorf("Barrier: %w", err)
		}
	}
	for _, root := range []int{0, 3, p - 1} {
		v, err := collectives.Bcast(ctx, c, fmt.Sprintf("from %d", r), root)
		if err != nil {
			return fmt.Errorf("Bcast: %w", err)
		}
		check("Bcast", v == fmt.Sprintf("from %d", root), v)
		big := make([]int64, 300_000) // 2.4 MB: larger than a region's slot
		if r == root {
			for i := range big {
				big[i] = int64(i * root)
			}
		}
		got, err := collectives.Bcast(ctx, c, big, root)
		if err != nil {
			return fmt.Errorf("Bcast large: %w", err)
		}
		check("Bcast large", len(got) == len(big) && got[12345] == int64(12345*root), len(got))
		for _, n := range []int{10, 300_000} {
			into := make([]int64, n)
			if r == root {
				for i := range into {
					into[i] = int64(i + root)
				}
			}
			if err := collectives.BcastInto(ctx, c, into, root); err != nil {
				return fmt.Errorf("BcastInto: %w", err)
			}
			check("BcastInto", into[n-1] == int64(n-1+root), into[n-1])
		}
	}
	sum, err := collectives.Allreduce(ctx, c, r+1, collectives.Sum)
	if err != nil {
		return fmt.Errorf("Allreduce: %w", err)
	}
	check("Allreduce Sum", sum == p*(p+1)/2, sum)
	f, err := collectives.Allreduce(ctx, c, aff(r, 0), compose)
	if err != nil {
		return fmt.Errorf("Allreduce compose: %w", err)
	}
	check("Allreduce compose", f == foldAff(p, 0), f)
	s, err := collectives.Allreduce(ctx, c, fmt.Sprint(r), concat)
	if err != nil {
		return fmt.Errorf("Allreduce concat: %w", err)
	}
	check("Allreduce concat", s == "012345"[:p], s)
	f, err = collectives.Reduce(ctx, c, aff(r, 1), compose, 4)
	if err != nil {
		return fmt.Errorf("Reduce: %w", err)
	}
	check("Reduce", r != 4 && f == 0 || r == 4 && f == foldAff(p, 1), f)
	for _, n := range []int{1, 100, 150_000} { // 150,000 × 8 B: larger than a slot
		v, err := collectives.AllreduceSlice(ctx, c, vec(r, n), compose)
		if err != nil {
			return fmt.Errorf("AllreduceSlice %d: %w", n, err)
		}
		check(fmt.Sprintf("AllreduceSlice %d", n), len(v) == n && v[0] == foldAff(p, 0) && v[n-1] == foldAff(p, n-1), len(v))
		in := vec(r, n)
		if err := collectives.AllreduceSliceInto(ctx, c, in, in, compose); err != nil {
			return fmt.Errorf("AllreduceSliceInto %d: %w", n, err)
		}
		check("AllreduceSliceInto in place", in[n-1] == foldAff(p, n-1), in[n-1])
		w, err := collectives.ReduceSlice(ctx, c, vec(r, n), compose, 1)
		if err != nil {
			return fmt.Errorf("ReduceSlice %d: %w", n, err)
		}
		check("ReduceSlice", r != 1 && w == nil || r == 1 && w[n-1] == foldAff(p, n-1), len(w))
	}
	x, err := collectives.AllreduceSlice(ctx, c, []float64{float64(r), 0.1 * float64(r)}, collectives.Sum)
	if err != nil {
		return fmt.Errorf("AllreduceSlice float64: %w", err)
	}
	check("AllreduceSlice float64", x[0] == float64(p*(p-1)/2), x)
	// Calls that go by the flat algorithms after the agreement.
	all, err := collectives.Allgather(ctx, c, []int{r})
	if err != nil {
		return fmt.Errorf("Allgather: %w", err)
	}
	check("Allgather", slices.Equal(all, []int{0, 1, 2, 3, 4, 5}[:p]), all)
	sc, err := collectives.Scan(ctx, c, fmt.Sprint(r), concat)
	if err != nil {
		return fmt.Errorf("Scan: %w", err)
	}
	check("Scan", sc == "012345"[:r+1], sc)
	// Nonblocking calls, and a blocking one while they run.
	q1 := collectives.Iallreduce(ctx, c, aff(r, 2), compose)
	q2 := collectives.Ibarrier(ctx, c)
	b, err := collectives.Bcast(ctx, c, r*10, 2)
	if err != nil {
		return fmt.Errorf("Bcast after nonblocking: %w", err)
	}
	check("Bcast after nonblocking", b == 20, b)
	g, err := q1.Wait(ctx)
	if err != nil {
		return fmt.Errorf("Iallreduce: %w", err)
	}
	check("Iallreduce", g == foldAff(p, 2), g)
	if _, err := q2.Wait(ctx); err != nil {
		return fmt.Errorf("Ibarrier: %w", err)
	}
	return nil
}

// TestHierarchical runs every collective on ranks spread over pretend
// hosts and checks the values; contiguous layouts run the hierarchical
// algorithms, the round-robin one the flat ones.
func TestHierarchical(t *testing.T) {
	for _, l := range hierLayouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := tctx(t)
			cs := commtest.WorldHosts(t, l.host)
			before := collectives.HierCalls.Load()
			commtest.Run(t, cs, func(c *comm.Comm) error { return hierOps(ctx, t, c) })
			if n := collectives.HierCalls.Load() - before; (n > 0) != l.hier {
				t.Errorf("%d calls ran hierarchically, want hierarchical %v", n, l.hier)
			}
			// A Split that keeps rank order spans the hosts too.
			commtest.Run(t, cs, func(c *comm.Comm) error {
				s, err := c.Split(ctx, 0, c.Rank())
				if err != nil {
					return err
				}
				defer s.Close()
				return hierOps(ctx, t, s)
			})
		})
	}
}

// TestHierMismatch: calls that do not fit together fail on every rank
// with the same error as on a communicator of one host (the flat
// agreement), whichever host the odd rank is on.
func TestHierMismatch(t *testing.T) {
	ctx := tctx(t)
	worlds := [][]*comm.Comm{commtest.WorldHosts(t, hierLayouts[0].host), commtest.World(t, 6)}
	cases := []struct {
		name string
		f    func(c *comm.Comm) error
	}{
		{"collective", func(c *comm.Comm) error {
			if c.Rank() == 4 {
				_, err := collectives.Bcast(ctx, c, 1, 0)
				return err
			}
			_, err := collectives.Allreduce(ctx, c, 1, collectives.Sum)
			return err
		}},
		{"barrier", func(c *comm.Comm) error {
			if c.Rank() == 1 {
				_, err := collectives.Allgather(ctx, c, []int{1})
				return err
			}
			return collectives.Barrier(ctx, c)
		}},
		{"type", func(c *comm.Comm) error {
			if c.Rank() == 5 {
				_, err := collectives.Allreduce(ctx, c, 1.5, collectives.Sum)
				return err
			}
			_, err := collectives.Allreduce(ctx, c, 1, collectives.Sum)
			return err
		}},
		{"root", func(c *comm.Comm) error {
			root := 0
			if c.Rank() == 3 {
				root = 2
			}
			_, err := collectives.Bcast(ctx, c, "x", root)
			return err
		}},
		{"root out of range", func(c *comm.Comm) error {
			_, err := collectives.Reduce(ctx, c, 1, collectives.Sum, 6)
			return err
		}},
		{"length", func(c *comm.Comm) error {
			_, err := collectives.AllreduceSlice(ctx, c, make([]int, 3+c.Rank()/4), collectives.Sum)
			return err
		}},
		{"bcastinto-length", func(c *comm.Comm) error {
			return collectives.BcastInto(ctx, c, make([]int32, 3+c.Rank()/5), 1)
		}},
		{"out", func(c *comm.Comm) error {
			in, out := make([]float64, 10), make([]float64, 10)
			if c.Rank() == 2 {
				out = out[:9]
			}
			return collectives.AllreduceSliceInto(ctx, c, in, out, collectives.Sum)
		}},
		{"split", func(c *comm.Comm) error {
			if c.Rank() >= 3 {
				return collectives.Barrier(ctx, c)
			}
			s, err := c.Split(ctx, 0, 0)
			if err == nil {
				s.Close()
			}
			return err
		}},
		{"dup", func(c *comm.Comm) error {
			if c.Rank() == 2 {
				_, err := collectives.Bcast(ctx, c, 1, 0)
				return err
			}
			d, err := c.Dup(ctx)
			if err == nil {
				d.Close()
			}
			return err
		}},
		{"local", func(c *comm.Comm) error {
			parts := make([][]int, 6)
			if c.Rank() == 5 {
				parts = parts[:2]
			}
			_, err := collectives.Alltoallv(ctx, c, parts)
			return err
		}},
	}
	for _, tc := range cases {
		var texts [2][6]string
		for w, cs := range worlds {
			commtest.Run(t, cs, func(c *comm.Comm) error {
				err := tc.f(c)
				if err == nil {
					t.Errorf("%s: rank %d: no error", tc.name, c.Rank())
					return nil
				}
				texts[w][c.Rank()] = err.Error()
				return healthy(ctx, c)
			})
		}
		for r := range 6 {
			if texts[0][r] != texts[1][r] {
				t.Errorf("%s: rank %d: across hosts %q, on one host %q", tc.name, r, texts[0][r], texts[1][r])
			}
		}
		t.Logf("%s: %q", tc.name, texts[0][0])
	}
}

// TestHierCancel: across pretend hosts, a rank that cancels its call (a
// host's leader, then a rank that is not) returns ctx.Err() unchanged, the
// others return by their deadline, and the communicator works afterwards;
// a closed one fails with ErrClosed.
func TestHierCancel(t *testing.T) {
	ctx := tctx(t)
	cs := commtest.WorldHosts(t, hierLayouts[0].host)
	calls := []func(ctx context.Context, c *comm.Comm) error{
		func(ctx context.Context, c *comm.Comm) error { return collectives.Barrier(ctx, c) },
		func(ctx context.Context, c *comm.Comm) error {
			_, err := collectives.Allreduce(ctx, c, 1, collectives.Sum)
			return err
		},
		func(ctx context.Context, c *comm.Comm) error {
			_, err := collectives.AllreduceSlice(ctx, c, make([]float64, 100), collectives.Sum)
			return err
		},
		func(ctx context.Context, c *comm.Comm) error {
			_, err := collectives.Bcast(ctx, c, "v", 5)
			return err
		},
	}
	for _, victim := range []int{2, 3} {
		for i, call := range calls {
			commtest.Run(t, cs, func(c *comm.Comm) error {
				cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
				if c.Rank() == victim {
					cancel()
				}
				err := call(cctx, c)
				switch {
				case c.Rank() == victim && err != context.Canceled:
					return fmt.Errorf("victim %d, call %d: err = %#v; want context.Canceled unchanged", victim, i, err)
				case c.Rank() != victim && err != nil && err != context.DeadlineExceeded:
					return fmt.Errorf("victim %d, call %d: err = %#v; want nil or context.DeadlineExceeded unchanged", victim, i, err)
				}
				return healthy(ctx, c)
			})
		}
	}
	commtest.Run(t, cs, func(c *comm.Comm) error {
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		d.Close()
		if err := collectives.Barrier(ctx, d); !errors.Is(err, comm.ErrClosed) {
			return fmt.Errorf("Barrier on a closed communicator: %v; want ErrClosed", err)
		}
		return nil
	})
}
