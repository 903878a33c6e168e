package collectives_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// TestNonblockingMixed interleaves nonblocking collectives on two
// communicators with blocking collectives, Split and point-to-point
// messages on the same communicators, and completes the requests in
// reverse order, many times: each I-call must keep the place in the order
// of its communicator's collective calls that it took when it started,
// whatever the blocking calls after it do meanwhile.
func TestNonblockingMixed(t *testing.T) {
	const n = 5
	cs := commtest.World(t, n)
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		me := c.Rank()
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		defer d.Close()
		for it := range 20 {
			var w waits
			expect(&w, ctx, "Iallreduce(c)", collectives.Iallreduce(ctx, c, me+it, collectives.Sum), n*(n-1)/2+n*it, eqV)
			expect(&w, ctx, "Ibcast(d)", collectives.Ibcast(ctx, d, vec(me+it, 3000), it%n), vec(it%n+it, 3000), eqS)
			// A blocking collective on c while the Iallreduce may not have run yet.
			b, err := collectives.Bcast(ctx, c, fmt.Sprint("it", it, "from", me), (it+1)%n)
			if err != nil {
				return fmt.Errorf("Bcast: %w", err)
			}
			if want := fmt.Sprint("it", it, "from", (it+1)%n); b != want {
				return fmt.Errorf("Bcast = %q; want %q", b, want)
			}
			// Point-to-point on c, around the ring.
			right, left := (me+1)%n, (me+n-1)%n
			sq, err := c.Isend(right, 7, []byte(fmt.Sprint(me, ":", it)))
			if err != nil {
				return err
			}
			expect(&w, ctx, "Igather(c)", collectives.Igather(ctx, c, []int{me * it}, 0), gatherWant(me, n, it), eqS)
			msg, _, err := c.Recv(ctx, left, 7)
			if err != nil {
				return fmt.Errorf("Recv: %w", err)
			}
			if want := fmt.Sprint(left, ":", it); string(msg) != want {
				return fmt.Errorf("Recv = %q; want %q", msg, want)
			}
			if _, err := sq.Wait(ctx); err != nil {
				return err
			}
			ar, err := collectives.Allreduce(ctx, d, 1, collectives.Sum)
			if err != nil {
				return fmt.Errorf("Allreduce(d): %w", err)
			}
			if ar != n {
				return fmt.Errorf("Allreduce(d) = %d; want %d", ar, n)
			}
			expect(&w, ctx, "Ibarrier(d)", collectives.Ibarrier(ctx, d), struct{}{}, eqV)
			expect(&w, ctx, "Iscan(d)", collectives.Iscan(ctx, d, 1, collectives.Sum), me+1, eqV)
			if it%5 == 0 { // Split counts in c's sequence too
				s, err := c.Split(ctx, me%2, 0)
				if err != nil {
					return fmt.Errorf("Split: %w", err)
				}
				qs := collectives.Iallreduce(ctx, s, 1, collectives.Sum)
				w = append(w, func() error {
					defer s.Close() // after the call on s is complete
					v, err := qs.Wait(ctx)
					if err != nil {
						return fmt.Errorf("Iallreduce(split): %w", err)
					}
					return check("Iallreduce(split)", v, (n+1-me%2)/2, eqV)
				})
			}
			expect(&w, ctx, "Ialltoall(c)", collectives.Ialltoall(ctx, c, make([]int, n)), make([]int, n), eqS)
			if err := w.reverse(); err != nil {
				return fmt.Errorf("iteration %d: %w", it, err)
			}
		}
		return nil
	})
	if err := noWorkers(ctx); err != nil {
		t.Fatal(err)
	}
}

func gatherWant(me, n, it int) []int {
	if me != 0 {
		return nil
	}
	var v []int
	for r := range n {
		v = append(v, r*it)
	}
	return v
}

// TestNonblockingTest polls Test until the call is complete; before then
// it reports false without blocking.
func TestNonblockingTest(t *testing.T) {
	const n = 4
	cs := commtest.World(t, n)
	ctx := tctx(t)
	var started sync.WaitGroup
	started.Add(n - 1)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		if c.Rank() == 0 {
			started.Wait() // the others poll a call that cannot be complete yet
		}
		q := collectives.Iallreduce(ctx, c, c.Rank(), collectives.Sum)
		if c.Rank() != 0 {
			if _, done, err := q.Test(); done || err != nil {
				return fmt.Errorf("Test before rank 0 called: done %v, err %v", done, err)
			}
			started.Done()
		}
		polls := 0
		for {
			v, done, err := q.Test()
			if err != nil {
				return err
			}
			if done {
				if v != n*(n-1)/2 {
					return fmt.Errorf("Test gave %d; want %d", v, n*(n-1)/2)
				}
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("still not complete after %d polls", polls)
			}
			polls++
			time.Sleep(100 * time.Microsecond)
		}
		// Completed requests give the same result again.
		if v, err := q.Wait(ctx); err != nil || v != n*(n-1)/2 {
			return fmt.Errorf("Wait after Test: %d, %v", v, err)
		}
		return nil
	})
}

// TestNonblockingWaitCtx: a Wait whose ctx ends returns ctx.Err() and
// leaves the request valid; a later Wait gets the result.
func TestNonblockingWaitCtx(t *testing.T) {
	const n = 3
	cs := commtest.World(t, n)
	ctx := tctx(t)
	var expired sync.WaitGroup
	expired.Add(n - 1)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		if c.Rank() == 0 {
			expired.Wait() // the call cannot complete before rank 0 starts it
		}
		q := collectives.Ibcast(ctx, c, vec(c.Rank(), 1000), 0)
		if c.Rank() != 0 {
			wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			_, err := q.Wait(wctx)
			cancel()
			expired.Done()
			if err != context.DeadlineExceeded {
				return fmt.Errorf("Wait with an expired ctx: %v; want context.DeadlineExceeded unchanged", err)
			}
		}
		got, err := q.Wait(ctx)
		if err != nil {
			return fmt.Errorf("second Wait: %w", err)
		}
		return check("Ibcast after an expired Wait", got, vec(0, 1000), eqS)
	})
}

// TestNonblockingErrors: bad arguments and mismatched calls give, through
// Wait, the errors of the blocking forms, and the communicator works
// afterwards.
func TestNonblockingErrors(t *testing.T) {
	const n = 5
	cs := commtest.World(t, n)
	ctx := tctx(t)
	cases := []struct {
		name string
		call func(c *comm.Comm) error
		want string
		is   error
	}{
		{"collectives", func(c *comm.Comm) error {
			if c.Rank() == 3 {
				_, err := collectives.Ireduce(ctx, c, 1, collectives.Sum, 0).Wait(ctx)
				return err
			}
			_, err := collectives.Ibcast(ctx, c, 1, 0).Wait(ctx)
			return err
		}, "rank 0 called Bcast but rank 3 called Reduce", collectives.ErrMismatch},
		{"blocking and nonblocking", func(c *comm.Comm) error {
			if c.Rank() == 1 {
				return collectives.Barrier(ctx, c)
			}
			_, err := collectives.Iallreduce(ctx, c, 1, collectives.Sum).Wait(ctx)
			return err
		}, "rank 1 called Barrier but rank 0 called Allreduce", collectives.ErrMismatch},
		{"lengths", func(c *comm.Comm) error {
			_, err := collectives.IallreduceSlice(ctx, c, make([]float64, 4+c.Rank()/4), collectives.Sum).Wait(ctx)
			return err
		}, "AllreduceSlice: rank 0 passed length 4 but rank 4 passed length 5", collectives.ErrMismatch},
		{"indivisible", func(c *comm.Comm) error {
			_, err := collectives.Iscatter(ctx, c, make([]int, 7), 3).Wait(ctx)
			return err
		}, "Scatter: root 3 passed 7 elements, not divisible by 5 ranks", collectives.ErrInvalidArg},
		{"root out of range", func(c *comm.Comm) error {
			_, err := collectives.Igather(ctx, c, []int{1}, n).Wait(ctx)
			return err
		}, "Gather: root 5 out of range [0, 5)", collectives.ErrInvalidArg},
		{"bad out", func(c *comm.Comm) error {
			out := make([]int, 100)
			if c.Rank() == 3 {
				out = out[:99]
			}
			_, err := collectives.IallreduceSliceInto(ctx, c, make([]int, 100), out, collectives.Sum).Wait(ctx)
			return err
		}, "AllreduceSliceInto: rank 3 passed out of length 99 for in of length 100", collectives.ErrInvalidArg},
		{"parts", func(c *comm.Comm) error {
			parts := make([][]int, n)
			if c.Rank() == 1 {
				parts = parts[:2]
			}
			_, err := collectives.Ialltoallv(ctx, c, parts).Wait(ctx)
			return err
		}, "Alltoallv: rank 1 passed", collectives.ErrInvalidArg},
		{"split and ibarrier", func(c *comm.Comm) error {
			if c.Rank() >= 3 {
				_, err := collectives.Ibarrier(ctx, c).Wait(ctx)
				return err
			}
			_, err := c.Split(ctx, 0, 0)
			return err
		}, "rank 3 called Barrier but rank 0 called Split", collectives.ErrMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			commtest.Run(t, cs, func(c *comm.Comm) error {
				err := tc.call(c)
				if err == nil {
					return errors.New("no error")
				}
				if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
					return fmt.Errorf("error %q; want %v saying %q", err, tc.is, tc.want)
				}
				return healthy(ctx, c)
			})
		})
	}
	// A blocking call on some ranks and its nonblocking form on the others
	// are the same collective.
	commtest.Run(t, cs, func(c *comm.Comm) error {
		if c.Rank()%2 == 0 {
			v, err := collectives.Iallreduce(ctx, c, 1, collectives.Sum).Wait(ctx)
			if err != nil {
				return err
			}
			return check("Iallreduce beside Allreduce", v, n, eqV)
		}
		v, err := collectives.Allreduce(ctx, c, 1, collectives.Sum)
		if err != nil {
			return err
		}
		return check("Allreduce beside Iallreduce", v, n, eqV)
	})
}

// TestNonblockingCancel: when the ctx given to the I-call ends, the call
// fails with ctx.Err(), like the blocking form, and the communicator stays
// usable; calls queued behind it still run.
func TestNonblockingCancel(t *testing.T) {
	const n = 4
	cs := commtest.World(t, n)
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if c.Rank() == 3 {
			cancel() // rank 3 gives up at once; the others wait for it until their deadline
		}
		q := collectives.IallreduceSlice(cctx, c, make([]float64, 100), collectives.Sum)
		next := collectives.Iallreduce(ctx, c, c.Rank(), collectives.Max)
		_, err := q.Wait(ctx)
		switch {
		case c.Rank() == 3 && err != context.Canceled:
			return fmt.Errorf("err = %#v; want context.Canceled unchanged", err)
		case c.Rank() != 3 && err != nil && err != context.DeadlineExceeded:
			return fmt.Errorf("err = %#v; want nil or context.DeadlineExceeded unchanged", err)
		}
		if v, err := next.Wait(ctx); err != nil || v != n-1 {
			return fmt.Errorf("the call after the cancelled one: %d, %v; want %d", v, err, n-1)
		}
		return healthy(ctx, c)
	})
	if err := noWorkers(ctx); err != nil {
		t.Fatal(err)
	}
}
