package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

// TestDupIsolatesTraffic: a message sent on a Dup is received only on the
// Dup and one sent on the parent only on the parent, wildcards included,
// even with the same tag and sent in the opposite order.
func TestDupIsolatesTraffic(t *testing.T) {
	run(t, 3, func(ctx context.Context, c *comm.Comm) error {
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		defer d.Close()
		if d.Rank() != c.Rank() || d.Size() != c.Size() {
			return fmt.Errorf("Dup: rank %d of %d; want %d of %d", d.Rank(), d.Size(), c.Rank(), c.Size())
		}
		if c.Rank() != 0 {
			if err := d.Send(ctx, 0, 0, []byte(fmt.Sprint("dup", c.Rank()))); err != nil {
				return err
			}
			return c.Send(ctx, 0, 0, []byte(fmt.Sprint("world", c.Rank())))
		}
		for _, x := range []struct {
			c    *comm.Comm
			name string
		}{{c, "world"}, {d, "dup"}} {
			for range 2 {
				got, st, err := x.c.Recv(ctx, comm.AnySource, comm.AnyTag)
				if err != nil {
					return err
				}
				if want := fmt.Sprint(x.name, st.Source); string(got) != want {
					return fmt.Errorf("Recv on the %s: %q; want %q", x.name, got, want)
				}
			}
		}
		return nil
	})
}

// TestSplitOrdersByKeyThenRank: Split groups the ranks by color and
// numbers each group by key, ties broken by the rank in the parent; a rank
// with Undefined gets no communicator; a Split of a Split works the same.
func TestSplitOrdersByKeyThenRank(t *testing.T) {
	const n = 7
	run(t, n, func(ctx context.Context, c *comm.Comm) error {
		r := c.Rank()
		color, key := r%2, []int{1, 0, 1, 0, 0, 0, 0}[r]
		if r == 6 {
			color = comm.Undefined
		}
		s, err := c.Split(ctx, color, key)
		if err != nil {
			return err
		}
		if r == 6 {
			if s != nil {
				return fmt.Errorf("Undefined got a communicator of %d ranks", s.Size())
			}
			return nil
		}
		defer s.Close()
		// The members of each color, in the order Split must give: color 0
		// is ranks 4 (key 0), then 0 and 2 (key 1, a tie: by rank).
		want := map[int][]int{0: {4, 0, 2}, 1: {1, 3, 5}}
		members := want[color]
		if s.Size() != len(members) || members[s.Rank()] != r {
			return fmt.Errorf("color %d: rank %d of %d; want position of %d in %v", color, s.Rank(), s.Size(), r, members)
		}
		// Collectives on the new communicator see only its members.
		all, err := collectives.Allgather(ctx, s, []int{r})
		if err != nil {
			return err
		}
		if fmt.Sprint(all) != fmt.Sprint(members) {
			return fmt.Errorf("Allgather on color %d: %v; want %v", color, all, members)
		}
		// Split again: everyone in one group, reversed.
		s2, err := s.Split(ctx, 0, -s.Rank())
		if err != nil {
			return err
		}
		defer s2.Close()
		if s2.Rank() != s.Size()-1-s.Rank() {
			return fmt.Errorf("Split of a Split: rank %d; want %d", s2.Rank(), s.Size()-1-s.Rank())
		}
		return nil
	})
}

// TestSplitIsolatesTraffic: communicators from one Split do not see each
// other's messages, nor the parent's, though their ranks and tags overlap.
func TestSplitIsolatesTraffic(t *testing.T) {
	run(t, 4, func(ctx context.Context, c *comm.Comm) error {
		r := c.Rank()
		s, err := c.Split(ctx, r%2, r)
		if err != nil {
			return err
		}
		defer s.Close()
		// Rank 0 of each half gets a message from rank 1 of its half, and
		// world rank 0 one from world rank 3 on the world, all with tag 0.
		if s.Rank() == 1 {
			if err := s.Send(ctx, 0, 0, []byte(fmt.Sprint("half", r%2))); err != nil {
				return err
			}
		}
		if r == 3 {
			if err := c.Send(ctx, 0, 0, []byte("world")); err != nil {
				return err
			}
		}
		if s.Rank() == 0 {
			pst, err := s.Probe(ctx, comm.AnySource, comm.AnyTag)
			if err != nil || pst.Source != 1 {
				return fmt.Errorf("world rank %d: Probe on its half: %+v, %v; want source 1 (its half's rank)", r, pst, err)
			}
			got, st, err := s.Recv(ctx, comm.AnySource, comm.AnyTag)
			if err != nil {
				return err
			}
			if want := fmt.Sprint("half", r%2); string(got) != want || st.Source != 1 {
				return fmt.Errorf("world rank %d: %q from %d on its half; want %q from 1", r, got, st.Source, want)
			}
		}
		if r == 0 {
			got, st, err := c.Recv(ctx, comm.AnySource, comm.AnyTag)
			if err != nil {
				return err
			}
			if string(got) != "world" || st.Source != 3 {
				return fmt.Errorf("world: %q from %d; want \"world\" from 3", got, st.Source)
			}
		}
		return nil
	})
}

// TestMismatchedSplitAndOtherCalls: Split on some ranks while the others
// call Dup, or a collective, fails on every rank with an error wrapping
// comm.ErrMismatch that names a rank of each call; the communicator works
// afterwards.
func TestMismatchedSplitAndOtherCalls(t *testing.T) {
	others := []struct {
		name string
		call func(ctx context.Context, c *comm.Comm) error
	}{
		{"Dup", func(ctx context.Context, c *comm.Comm) error { _, err := c.Dup(ctx); return err }},
		{"Barrier", func(ctx context.Context, c *comm.Comm) error { return collectives.Barrier(ctx, c) }},
		{"Bcast", func(ctx context.Context, c *comm.Comm) error { _, err := collectives.Bcast(ctx, c, 1, 0); return err }},
		{"AllreduceSlice", func(ctx context.Context, c *comm.Comm) error { // large: posts its receives first
			_, err := collectives.AllreduceSlice(ctx, c, make([]float64, 70000), collectives.Sum)
			return err
		}},
	}
	for _, o := range others {
		t.Run(o.name, func(t *testing.T) {
			run(t, 5, func(ctx context.Context, c *comm.Comm) error {
				var err error
				if c.Rank() == 3 {
					err = o.call(ctx, c)
				} else {
					_, err = c.Split(ctx, 0, 0)
				}
				if !errors.Is(err, comm.ErrMismatch) {
					return fmt.Errorf("error %v; want comm.ErrMismatch", err)
				}
				for _, w := range []string{"rank 3 called " + o.name, "called Split"} {
					if !strings.Contains(err.Error(), w) {
						return fmt.Errorf("error %q does not say %q", err, w)
					}
				}
				got, err := collectives.Allreduce(ctx, c, 1, collectives.Sum)
				if err != nil || got != c.Size() {
					return fmt.Errorf("Allreduce after the mismatch: %d, %v", got, err)
				}
				return nil
			})
		})
	}
}

// TestCollectivesOnSeveralCommunicatorsAtOnce: collectives on several
// communicators (Dups and a Split) run at the same time, each from its own
// goroutine on every rank, alongside point-to-point traffic on the world,
// and every result is right.
func TestCollectivesOnSeveralCommunicatorsAtOnce(t *testing.T) {
	const ncomms, iters = 4, 8
	run(t, 4, func(ctx context.Context, c *comm.Comm) error {
		var subs []*comm.Comm
		for range ncomms - 1 {
			d, err := c.Dup(ctx)
			if err != nil {
				return err
			}
			subs = append(subs, d)
		}
		s, err := c.Split(ctx, c.Rank()%2, 0)
		if err != nil {
			return err
		}
		subs = append(subs, s)
		defer func() {
			for _, d := range subs {
				d.Close()
			}
		}()
		errs := make([]error, len(subs)+1)
		var wg sync.WaitGroup
		for k, d := range subs {
			wg.Go(func() {
				for i := range iters {
					v := 1000*k + 10*i + d.Rank()
					sum, err := collectives.Allreduce(ctx, d, v, collectives.Sum)
					if err != nil {
						errs[k] = fmt.Errorf("communicator %d: %w", k, err)
						return
					}
					p := d.Size()
					if want := p*(1000*k+10*i) + p*(p-1)/2; sum != want {
						errs[k] = fmt.Errorf("communicator %d, iteration %d: Allreduce = %d; want %d", k, i, sum, want)
						return
					}
					root := i % p
					b, err := collectives.Bcast(ctx, d, []int{k, i, d.Rank()}, root)
					if err != nil {
						errs[k] = fmt.Errorf("communicator %d: %w", k, err)
						return
					}
					if fmt.Sprint(b) != fmt.Sprint([]int{k, i, root}) {
						errs[k] = fmt.Errorf("communicator %d, iteration %d: Bcast = %v; want %v", k, i, b, []int{k, i, root})
						return
					}
				}
			})
		}
		wg.Go(func() { // point-to-point on the world meanwhile
			p, r := c.Size(), c.Rank()
			for i := range iters {
				got, _, err := c.Sendrecv(ctx, payload(r, i, 64), (r+1)%p, 0, (r+p-1)%p, 0)
				if err == nil {
					err = checkPayload("world ring", got, (r+p-1)%p, i, 64)
				}
				if err != nil {
					errs[len(subs)] = err
					return
				}
			}
		})
		wg.Wait()
		return errors.Join(errs...)
	})
}

// TestSplitWithEveryRankItsOwnColor: colors may be any non-negative
// numbers; a rank alone in its color gets a communicator of one rank that
// works (self messages, collectives), and a negative color other than
// Undefined is an error on every rank naming the rank.
func TestSplitWithEveryRankItsOwnColor(t *testing.T) {
	run(t, 4, func(ctx context.Context, c *comm.Comm) error {
		s, err := c.Split(ctx, 1000003*c.Rank(), 0)
		if err != nil {
			return err
		}
		defer s.Close()
		if s.Size() != 1 || s.Rank() != 0 {
			return fmt.Errorf("own color: rank %d of %d; want 0 of 1", s.Rank(), s.Size())
		}
		v, err := collectives.Allreduce(ctx, s, c.Rank(), collectives.Sum)
		if err != nil || v != c.Rank() {
			return fmt.Errorf("Allreduce on a communicator of one: %d, %v", v, err)
		}
		color := 0
		if c.Rank() == 2 {
			color = -7
		}
		_, err = c.Split(ctx, color, 0)
		if err == nil || !strings.Contains(err.Error(), "rank 2 passed color -7") {
			return fmt.Errorf("Split with rank 2's color -7: %v; want an error naming rank 2", err)
		}
		return nil
	})
}

// TestSplitAndDupOnSeveralCommunicatorsAtOnce: Split and Dup on different
// communicators, called from different goroutines at the same time, give
// each new communicator the right members and a context of its own.
func TestSplitAndDupOnSeveralCommunicatorsAtOnce(t *testing.T) {
	const k = 3
	run(t, 4, func(ctx context.Context, c *comm.Comm) error {
		parents := make([]*comm.Comm, k)
		for i := range parents {
			var err error
			if parents[i], err = c.Dup(ctx); err != nil {
				return err
			}
		}
		errs := make([]error, k)
		var wg sync.WaitGroup
		for i, p := range parents {
			wg.Go(func() {
				defer p.Close()
				s, err := p.Split(ctx, (c.Rank()+i)%2, 0)
				if err != nil {
					errs[i] = err
					return
				}
				defer s.Close()
				d, err := s.Dup(ctx)
				if err != nil {
					errs[i] = err
					return
				}
				defer d.Close()
				// Members of my color, in world ranks; sent on d, received
				// with wildcards.
				all, err := collectives.Allgather(ctx, d, []int{c.Rank()})
				if err != nil {
					errs[i] = err
					return
				}
				var want []int
				for r := range c.Size() {
					if (r+i)%2 == (c.Rank()+i)%2 {
						want = append(want, r)
					}
				}
				errs[i] = same(fmt.Sprintf("communicator %d: members", i), all, want)
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	})
}
