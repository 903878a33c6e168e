package collectives_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
	"github.com/decorun/decorun/internal/jobenv"
)

// payload is root's message of size bytes in round i.
func msgOf(root, size, i int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(root*31 + j*7 + i)
	}
	return b
}

// TestBcastFanout runs Bcast over NATS alone, where it uses NATS's fan-out
// below its switch point, on 1 to 9 ranks from every root at sizes around
// the switch points, and checks that the fan-out was used where it should.
func TestBcastFanout(t *testing.T) {
	t.Setenv(jobenv.EnvTransport, "nats")
	for n := 1; n <= 9; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := commtest.World(t, n)
			ctx := tctx(t)
			// The switch point is comm's eager limit: one frame.
			fan := max(cs[0].MulticastMax(), 1<<10)
			sizes := []int{0, 1, 100, fan - 1, fan, fan + 1}
			before := collectives.Fanouts.Load()
			commtest.Run(t, cs, func(c *comm.Comm) error {
				for root := range n {
					for i, size := range sizes {
						if size > 100 && root != 0 && root != n-1 {
							continue // the switch point's sizes from two roots (fewer MiB under -race)
						}
						var v []byte
						if c.Rank() == root {
							v = msgOf(root, size, i)
						}
						got, err := collectives.Bcast(ctx, c, v, root)
						if err != nil {
							return fmt.Errorf("Bcast of %d bytes from %d: %w", size, root, err)
						}
						if !bytes.Equal(got, msgOf(root, size, i)) {
							return fmt.Errorf("Bcast of %d bytes from %d: wrong value (%d bytes)", size, root, len(got))
						}
					}
					// A value that is not raw bytes (CBOR-encoded).
					s, err := collectives.Bcast(ctx, c, fmt.Sprint("root ", c.Rank()), root)
					if err != nil || s != fmt.Sprint("root ", root) {
						return fmt.Errorf("Bcast(string) from %d = %q, %v", root, s, err)
					}
				}
				return nil
			})
			// Every call up to the switch point with 3 or more ranks fans
			// out (and the string), on every rank: all sizes but one.
			want := int64(0)
			if n >= 3 {
				want = int64(n * (2*len(sizes) + (n-2)*4))
			}
			if got := collectives.Fanouts.Load() - before; got != want {
				t.Errorf("%d Bcasts fanned out; want %d", got, want)
			}
			// A communicator that leaves a rank out never fans out.
			before = collectives.Fanouts.Load()
			commtest.Run(t, cs, func(c *comm.Comm) error {
				sub, err := c.Split(ctx, min(c.Rank(), 1), c.Rank())
				if err != nil {
					return err
				}
				defer sub.Close()
				for _, size := range []int{0, 100} {
					got, err := collectives.Bcast(ctx, sub, msgOf(sub.Rank(), size, 0), 0)
					if err != nil || !bytes.Equal(got, msgOf(0, size, 0)) {
						return fmt.Errorf("Bcast of %d bytes on a Split: %d bytes, %v", size, len(got), err)
					}
				}
				return nil
			})
			if got := collectives.Fanouts.Load() - before; n > 1 && got != 0 {
				t.Errorf("%d Bcasts on a Split without rank 0 fanned out", got)
			}
		})
	}
}

// TestBcastFanoutConcurrent runs Bcasts on the world (fan-out), a Dup of it
// (fan-out, another context) and a Split half (a tree: it does not span
// the job) at once, with user point-to-point traffic on the world.
func TestBcastFanoutConcurrent(t *testing.T) {
	t.Setenv(jobenv.EnvTransport, "nats")
	const n = 5
	cs := commtest.World(t, n)
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		half, err := c.Split(ctx, c.Rank()%2, c.Rank())
		if err != nil {
			return err
		}
		defer half.Close()
		run := func(x *comm.Comm, name string) error {
			for i := range 50 {
				root := i % x.Size()
				want := fmt.Sprint(name, i, root)
				var v string
				if x.Rank() == root {
					v = want
				}
				got, err := collectives.Bcast(ctx, x, v, root)
				if err != nil || got != want {
					return fmt.Errorf("%s: Bcast %d = %q, %v; want %q", name, i, got, err, want)
				}
			}
			return nil
		}
		errc := make(chan error, 3)
		go func() { errc <- run(d, "dup") }()
		go func() { errc <- run(half, "half") }()
		go func() {
			// User traffic on the world, from every rank to the next.
			for i := range 50 {
				if err := c.Send(ctx, (c.Rank()+1)%n, i, []byte{byte(i)}); err != nil {
					errc <- err
					return
				}
				b, _, err := c.Recv(ctx, (c.Rank()+n-1)%n, i)
				if err != nil || len(b) != 1 || b[0] != byte(i) {
					errc <- fmt.Errorf("user Recv %d: %v, %v", i, b, err)
					return
				}
			}
			errc <- nil
		}()
		err = run(c, "world")
		for range 3 {
			err = errorsJoin(err, <-errc)
		}
		return err
	})
}

func errorsJoin(a, b error) error {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	return fmt.Errorf("%v; %v", a, b)
}
