package collectives_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// healthy checks that c still runs collectives correctly.
func healthy(ctx context.Context, c *comm.Comm) error {
	got, err := collectives.Allreduce(ctx, c, c.Rank()+1, collectives.Sum)
	if err != nil {
		return fmt.Errorf("Allreduce afterwards: %w", err)
	}
	if p := c.Size(); got != p*(p+1)/2 {
		return fmt.Errorf("Allreduce afterwards = %d; want %d", got, p*(p+1)/2)
	}
	return nil
}

// TestMismatch checks that calls that do not fit together fail on every
// rank with an error naming the ranks and values, and that the
// communicator works afterwards.
func TestMismatch(t *testing.T) {
	const n = 5
	cs := commtest.World(t, n)
	ctx := tctx(t)
	cases := []struct {
		name string
		call func(c *comm.Comm) error
		want []string // substrings of every rank's error
		is   error
	}{
		{"roots", func(c *comm.Comm) error {
			_, err := collectives.Bcast(ctx, c, 1, c.Rank()%2)
			return err
		}, []string{"Bcast: rank 0 passed root 0 but rank 1 passed root 1"}, collectives.ErrMismatch},
		{"collectives", func(c *comm.Comm) error {
			if c.Rank() == 3 {
				_, err := collectives.Reduce(ctx, c, 1, collectives.Sum, 0)
				return err
			}
			_, err := collectives.Bcast(ctx, c, 1, 0)
			return err
		}, []string{"rank 0 called Bcast but rank 3 called Reduce"}, collectives.ErrMismatch},
		{"lengths", func(c *comm.Comm) error {
			_, err := collectives.AllreduceSlice(ctx, c, make([]float64, 4+c.Rank()/4), collectives.Sum)
			return err
		}, []string{"AllreduceSlice: rank 0 passed length 4 but rank 4 passed length 5"}, collectives.ErrMismatch},
		{"reduce lengths", func(c *comm.Comm) error {
			_, err := collectives.ReduceSlice(ctx, c, make([]int, 3-c.Rank()/2), collectives.Sum, 1)
			return err
		}, []string{"ReduceSlice: rank 4 passed length 1 but rank 0 passed length 3"}, collectives.ErrMismatch},
		{"types", func(c *comm.Comm) error {
			if c.Rank() == 2 {
				_, err := collectives.Allreduce(ctx, c, 1.0, collectives.Sum)
				return err
			}
			_, err := collectives.Allreduce(ctx, c, 1, collectives.Sum)
			return err
		}, []string{"Allreduce: ranks 0 and 2 passed values of different types"}, collectives.ErrMismatch},
		{"indivisible", func(c *comm.Comm) error {
			_, err := collectives.Scatter(ctx, c, make([]int, 7), 3)
			return err
		}, []string{"Scatter: root 3 passed 7 elements, not divisible by 5 ranks"}, collectives.ErrInvalidArg},
		{"root out of range", func(c *comm.Comm) error {
			_, err := collectives.Gather(ctx, c, []int{1}, n)
			return err
		}, []string{"Gather: root 5 out of range [0, 5)"}, collectives.ErrInvalidArg},
		{"one negative root", func(c *comm.Comm) error {
			root := 0
			if c.Rank() == 4 {
				root = -1
			}
			_, err := collectives.Reduce(ctx, c, 1, collectives.Sum, root)
			return err
		}, []string{"rank 4 passed root -1 but rank 0 passed root 0"}, collectives.ErrMismatch},
		{"parts", func(c *comm.Comm) error {
			parts := make([][]int, n)
			if c.Rank() == 1 {
				parts = parts[:2]
			}
			_, err := collectives.Alltoallv(ctx, c, parts)
			return err
		}, []string{"Alltoallv: rank 1 passed"}, collectives.ErrInvalidArg},
		{"split and barrier", func(c *comm.Comm) error {
			if c.Rank() >= 3 {
				return collectives.Barrier(ctx, c)
			}
			_, err := c.Split(ctx, 0, 0)
			return err
		}, []string{"rank 3 called Barrier but rank 0 called Split"}, collectives.ErrMismatch},
		{"dup and allreduce", func(c *comm.Comm) error {
			if c.Rank() == 2 {
				_, err := c.Dup(ctx)
				return err
			}
			_, err := collectives.Allreduce(ctx, c, 1, collectives.Sum)
			return err
		}, []string{"rank 0 called Allreduce but rank 2 called Dup"}, comm.ErrMismatch},
		{"unencodable", func(c *comm.Comm) error {
			_, err := collectives.Bcast(ctx, c, make(chan int), 2)
			return err
		}, []string{"Bcast: "}, collectives.ErrInvalidArg},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			commtest.Run(t, cs, func(c *comm.Comm) error {
				err := tc.call(c)
				if err == nil {
					return errors.New("no error")
				}
				if !errors.Is(err, tc.is) {
					return fmt.Errorf("error %q is not %v", err, tc.is)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						return fmt.Errorf("error %q does not say %q", err, w)
					}
				}
				return healthy(ctx, c)
			})
		})
	}
	commtest.Run(t, cs, func(c *comm.Comm) error {
		var me *collectives.MismatchError
		_, err := collectives.Bcast(ctx, c, 1, c.Rank()/3)
		if !errors.As(err, &me) || me.Arg != "root" || me.RankA != 0 || me.ValueA != 0 || me.RankB != 3 || me.ValueB != 1 {
			return fmt.Errorf("error %#v, want a root MismatchError for ranks 0 and 3", err)
		}
		return nil
	})
}

// TestCancel cancels collectives part-way and checks that the call returns
// ctx's error and that the communicator still works.
func TestCancel(t *testing.T) {
	const n = 4
	cs := commtest.World(t, n)
	ctx := tctx(t)
	t.Run("one rank cancelled", func(t *testing.T) {
		commtest.Run(t, cs, func(c *comm.Comm) error {
			cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			if c.Rank() == 3 {
				cancel() // rank 3 gives up at once; the others wait for it until their deadline
			}
			_, err := collectives.AllreduceSlice(cctx, c, make([]float64, 100), collectives.Sum)
			// Rank 3 gives up; a rank that had all it needed from rank 3
			// before it did may complete, the others reach their deadline.
			switch {
			case c.Rank() == 3 && err != context.Canceled:
				return fmt.Errorf("err = %#v; want context.Canceled unchanged", err)
			case c.Rank() != 3 && err != nil && err != context.DeadlineExceeded:
				return fmt.Errorf("err = %#v; want nil or context.DeadlineExceeded unchanged", err)
			}
			return healthy(ctx, c)
		})
	})
	t.Run("mid-transfer", func(t *testing.T) {
		commtest.Run(t, cs, func(c *comm.Comm) error {
			for _, d := range []time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond} {
				cctx, cancel := context.WithTimeout(ctx, d)
				data := make([]byte, 4<<20)
				_, err := collectives.Bcast(cctx, c, data, 1)
				cancel()
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("Bcast: %v; want nil or a deadline", err)
				}
				// Ranks that finished must not run ahead into ranks still
				// cancelling; they meet at the next collective.
				if err := healthy(ctx, c); err != nil {
					return err
				}
			}
			return nil
		})
	})
	t.Run("closed", func(t *testing.T) {
		commtest.Run(t, cs, func(c *comm.Comm) error {
			d, err := c.Dup(ctx)
			if err != nil {
				return err
			}
			d.Close()
			if err := collectives.Barrier(ctx, d); !errors.Is(err, comm.ErrClosed) && n > 1 {
				return fmt.Errorf("Barrier on a closed communicator: %v; want ErrClosed", err)
			}
			return nil
		})
	})
}

// TestConcurrentComms runs collectives on the world and on two halves from
// Split at the same time, while a user receive with AnySource and AnyTag
// waits on the world: collective traffic must never match it.
func TestConcurrentComms(t *testing.T) {
	const n = 6
	cs := commtest.World(t, n)
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		half, err := c.Split(ctx, c.Rank()%2, -c.Rank())
		if err != nil {
			return err
		}
		defer half.Close()
		user, err := c.Irecv(comm.AnySource, comm.AnyTag)
		if err != nil {
			return err
		}
		errc := make(chan error, 1)
		go func() {
			for i := range 20 {
				v := make([]int, 1000)
				for j := range v {
					v[j] = half.Rank() + i
				}
				got, err := collectives.AllreduceSlice(ctx, half, v, collectives.Sum)
				if err != nil {
					errc <- err
					return
				}
				if want := 3*i + 3; got[999] != want {
					errc <- fmt.Errorf("half: AllreduceSlice = %d; want %d", got[999], want)
					return
				}
				b, err := collectives.Bcast(ctx, half, fmt.Sprint("half", c.Rank()%2, i), 0)
				if err != nil || b != fmt.Sprint("half", c.Rank()%2, i) {
					errc <- fmt.Errorf("half: Bcast = %q, %v", b, err)
					return
				}
			}
			errc <- nil
		}()
		for i := range 20 {
			got, err := collectives.Allgather(ctx, c, []int{c.Rank() * i})
			if err != nil {
				return err
			}
			for r, x := range got {
				if x != r*i {
					return fmt.Errorf("world: Allgather[%d] = %d; want %d", r, x, r*i)
				}
			}
			if err := collectives.Barrier(ctx, c); err != nil {
				return err
			}
		}
		if err := <-errc; err != nil {
			return err
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		if done, st, _ := user.Test(); done {
			return fmt.Errorf("the user's AnySource/AnyTag receive matched collective traffic from rank %d tag %d", st.Source, st.Tag)
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		// Now the user's own message arrives.
		if err := c.Send(ctx, (c.Rank()+1)%n, 9, []byte("user")); err != nil {
			return err
		}
		st, err := user.Wait(ctx)
		if err != nil {
			return err
		}
		if string(user.Data()) != "user" || st.Tag != 9 || st.Source != (c.Rank()+n-1)%n {
			return fmt.Errorf("user receive got %q tag %d from %d", user.Data(), st.Tag, st.Source)
		}
		return nil
	})
}

// TestLengths checks that element-wise reductions of slices whose lengths
// differ fail on every rank with an error naming two ranks and their
// lengths: the *Slice calls, and the whole-value calls with an op from
// Elementwise. Whole-value calls with other ops accept different lengths.
func TestLengths(t *testing.T) {
	for _, n := range []int{2, 3, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := commtest.World(t, n)
			ctx := tctx(t)
			last := n - 1
			// ranks 0..n-2 pass 4 elements, the last rank 5
			v := func(c *comm.Comm) []float64 { return make([]float64, 4+c.Rank()/last) }
			want := fmt.Sprintf("rank 0 passed length 4 but rank %d passed length 5", last)
			ew := collectives.Elementwise(collectives.Sum[float64])
			cases := []struct {
				name string
				call func(c *comm.Comm) error
			}{
				{"ScanSlice", func(c *comm.Comm) error {
					_, err := collectives.ScanSlice(ctx, c, v(c), collectives.Sum)
					return err
				}},
				{"ExscanSlice", func(c *comm.Comm) error {
					_, err := collectives.ExscanSlice(ctx, c, v(c), collectives.Max)
					return err
				}},
				{"Scan", func(c *comm.Comm) error {
					_, err := collectives.Scan(ctx, c, v(c), ew)
					return err
				}},
				{"Exscan", func(c *comm.Comm) error {
					_, err := collectives.Exscan(ctx, c, v(c), collectives.Elementwise(collectives.Prod[float64]))
					return err
				}},
				{"Reduce", func(c *comm.Comm) error {
					_, err := collectives.Reduce(ctx, c, v(c), ew, last)
					return err
				}},
				{"Allreduce", func(c *comm.Comm) error {
					_, err := collectives.Allreduce(ctx, c, v(c), ew)
					return err
				}},
				{"Allreduce", func(c *comm.Comm) error {
					// Only rank 0's op needs equal lengths: every rank still
					// checks them.
					op := func(a, b []float64) []float64 { return append(a[:len(a):len(a)], b...) }
					if c.Rank() == 0 {
						op = ew
					}
					_, err := collectives.Allreduce(ctx, c, v(c), op)
					return err
				}},
			}
			for _, tc := range cases {
				commtest.Run(t, cs, func(c *comm.Comm) error {
					err := tc.call(c)
					if !errors.Is(err, collectives.ErrMismatch) || !strings.Contains(err.Error(), tc.name+": "+want) {
						return fmt.Errorf("%s: error %v; want a mismatch saying %q", tc.name, err, tc.name+": "+want)
					}
					return healthy(ctx, c)
				})
			}
			commtest.Run(t, cs, func(c *comm.Comm) error {
				cat := func(a, b []int) []int { return append(a[:len(a):len(a)], b...) }
				got, err := collectives.Allreduce(ctx, c, []int{c.Rank(), c.Rank()}[:1+c.Rank()%2], cat)
				if err != nil {
					return fmt.Errorf("Allreduce(concatenate) of different lengths: %v", err)
				}
				var want []int
				for r := range n {
					want = append(want, []int{r, r}[:1+r%2]...)
				}
				if !slices.Equal(got, want) {
					return fmt.Errorf("Allreduce(concatenate) = %v; want %v", got, want)
				}
				return nil
			})
		})
	}
}

// TestOpPanic checks that a panic in op becomes an *OpError naming the rank
// and the panic, that no rank waits forever for a rank whose op failed,
// and that the communicator works afterwards.
func TestOpPanic(t *testing.T) {
	for _, n := range []int{2, 3, 5, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := commtest.World(t, n)
			ctx := tctx(t)
			bad := n / 2
			// neg panics on a negative input: rank bad passes negative
			// values, so every combination that includes its value panics,
			// on whichever rank computes it.
			neg := func(a, b int64) int64 {
				if a < 0 || b < 0 {
					panic("negative input")
				}
				return a + b
			}
			in := func(c *comm.Comm) int64 { return int64(c.Rank() + 1) }
			vec := func(c *comm.Comm, m int) []int64 {
				v := make([]int64, m)
				for i := range v {
					v[i] = in(c)
				}
				if c.Rank() == bad {
					v[m-1] = -1
				}
				return v
			}
			isPanic := func(err error) error {
				var oe *collectives.OpError
				if !errors.As(err, &oe) || oe.Rank < 0 || oe.Rank >= n || oe.Msg != "op panicked: negative input" ||
					!strings.Contains(err.Error(), fmt.Sprintf("on rank %d: op panicked: negative input", oe.Rank)) {
					return fmt.Errorf("error %v; want an OpError for the panic", err)
				}
				return nil
			}
			everyRank := []struct {
				name string
				call func(c *comm.Comm) error
			}{
				{"Allreduce", func(c *comm.Comm) error {
					v := in(c)
					if c.Rank() == bad {
						v = -1
					}
					_, err := collectives.Allreduce(ctx, c, v, neg)
					return err
				}},
				{"AllreduceSlice small", func(c *comm.Comm) error {
					_, err := collectives.AllreduceSlice(ctx, c, vec(c, 3), neg)
					return err
				}},
				{"AllreduceSlice large", func(c *comm.Comm) error {
					v := vec(c, 20_000) // 160 KB: Rabenseifner's algorithm
					if c.Rank() == bad {
						for i := range v {
							v[i] = -1
						}
					}
					_, err := collectives.AllreduceSlice(ctx, c, v, neg)
					return err
				}},
			}
			for _, tc := range everyRank {
				commtest.Run(t, cs, func(c *comm.Comm) error {
					if err := isPanic(tc.call(c)); err != nil {
						return fmt.Errorf("%s: %w", tc.name, err)
					}
					return healthy(ctx, c)
				})
			}
			// Reduce: the root has the error; Scan: the ranks from bad up.
			commtest.Run(t, cs, func(c *comm.Comm) error {
				v := int64(1)
				if c.Rank() == bad {
					v = -1
				}
				_, err := collectives.Reduce(ctx, c, v, neg, n-1)
				if c.Rank() == n-1 || err != nil {
					if err := isPanic(err); err != nil {
						return fmt.Errorf("Reduce: %w", err)
					}
				}
				got, err := collectives.Scan(ctx, c, v, neg)
				if c.Rank() >= bad || err != nil {
					if err := isPanic(err); err != nil {
						return fmt.Errorf("Scan: %w", err)
					}
				} else if got != int64(c.Rank()+1) {
					return fmt.Errorf("Scan = %d; want %d", got, c.Rank()+1)
				}
				return healthy(ctx, c)
			})
			// An op that panics only on rank bad's goroutine: that rank
			// fails, every rank that received its report fails likewise,
			// the others have the right sum.
			commtest.Run(t, cs, func(c *comm.Comm) error {
				me := c.Rank()
				op := func(a, b int) int {
					if me == bad {
						panic(fmt.Sprintf("rank %d's op", me))
					}
					return a + b
				}
				got, err := collectives.Allreduce(ctx, c, me, op)
				var oe *collectives.OpError
				switch {
				case err == nil && me != bad && got == n*(n-1)/2:
				case errors.As(err, &oe) && oe.Rank == bad &&
					strings.Contains(err.Error(), fmt.Sprintf("Allreduce: on rank %d: op panicked: rank %d's op", bad, bad)):
				default:
					return fmt.Errorf("Allreduce = %d, %v; want %d, or the error of rank %d's panic", got, err, n*(n-1)/2, bad)
				}
				return healthy(ctx, c)
			})
		})
	}
}
