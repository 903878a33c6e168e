package conformance

import (
	"context"
	"fmt"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

// TestNonblockingMatchInStartOrder: nonblocking collectives match in the
// order they were started, interleaved with blocking collectives on the
// same communicator, whatever the order in which they are waited for, at
// every size, including large messages that travel by rendezvous.
func TestNonblockingMatchInStartOrder(t *testing.T) {
	for _, n := range sizes() {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			run(t, n, func(ctx context.Context, c *comm.Comm) error {
				r, p := c.Rank(), c.Size()
				big := make([]int64, 200_000) // 1.6 MB
				for i := range big {
					big[i] = int64(r + i)
				}
				qb := collectives.Ibcast(ctx, c, payload(p-1, 1, 300_000), p-1)
				qs := collectives.IallreduceSlice(ctx, c, big, collectives.Sum)
				blocking, err := collectives.Allreduce(ctx, c, r+1, collectives.Sum)
				if err != nil {
					return fmt.Errorf("Allreduce: %w", err)
				}
				qg := collectives.Iallgather(ctx, c, []int{r})
				qa := collectives.Ialltoall(ctx, c, make([]byte, 3*p))
				sc, err := collectives.Scan(ctx, c, 1, collectives.Sum)
				if err != nil {
					return fmt.Errorf("Scan: %w", err)
				}
				if blocking != p*(p+1)/2 || sc != r+1 {
					return fmt.Errorf("blocking calls between nonblocking ones: Allreduce %d, Scan %d; want %d, %d", blocking, sc, p*(p+1)/2, r+1)
				}
				if _, err := qa.Wait(ctx); err != nil {
					return fmt.Errorf("Ialltoall: %w", err)
				}
				g, err := qg.Wait(ctx)
				if err != nil {
					return fmt.Errorf("Iallgather: %w", err)
				}
				for i, x := range g {
					if x != i {
						return fmt.Errorf("Iallgather = %v", g)
					}
				}
				s, err := qs.Wait(ctx)
				if err != nil {
					return fmt.Errorf("IallreduceSlice: %w", err)
				}
				for _, i := range []int{0, 1, len(big) - 1} {
					if want := int64(p*i + p*(p-1)/2); s[i] != want {
						return fmt.Errorf("IallreduceSlice: element %d = %d; want %d", i, s[i], want)
					}
				}
				b, err := qb.Wait(ctx)
				if err != nil {
					return fmt.Errorf("Ibcast: %w", err)
				}
				return checkPayload("Ibcast", b, p-1, 1, 300_000)
			})
		})
	}
}

// TestNonblockingCommunicatorsIndependent: nonblocking collectives on
// different communicators may be started in different orders on different
// ranks (MPI orders collectives per communicator only), and point-to-point
// traffic, wildcard receives included, goes on beside them without
// matching their messages.
func TestNonblockingCommunicatorsIndependent(t *testing.T) {
	run(t, 4, func(ctx context.Context, c *comm.Comm) error {
		r, p := c.Rank(), c.Size()
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		defer d.Close()
		var qc, qd *collectives.Request[int]
		if r%2 == 0 {
			qc = collectives.Iallreduce(ctx, c, r, collectives.Sum)
			qd = collectives.Iallreduce(ctx, d, 10*r, collectives.Sum)
		} else {
			qd = collectives.Iallreduce(ctx, d, 10*r, collectives.Sum)
			qc = collectives.Iallreduce(ctx, c, r, collectives.Sum)
		}
		// Every rank sends one message to every other and receives them
		// with AnySource and AnyTag while the collectives are outstanding.
		for dst := range p {
			if dst != r {
				if err := c.Send(ctx, dst, 100+r, payload(r, dst, 64)); err != nil {
					return err
				}
			}
		}
		for range p - 1 {
			b, st, err := c.Recv(ctx, comm.AnySource, comm.AnyTag)
			if err != nil {
				return err
			}
			if st.Tag != 100+st.Source {
				return fmt.Errorf("wildcard receive got tag %d from %d: collective traffic?", st.Tag, st.Source)
			}
			if err := checkPayload("wildcard receive", b, st.Source, r, 64); err != nil {
				return err
			}
		}
		vd, err := qd.Wait(ctx)
		if err != nil {
			return err
		}
		vc, err := qc.Wait(ctx)
		if err != nil {
			return err
		}
		if vc != p*(p-1)/2 || vd != 10*p*(p-1)/2 {
			return fmt.Errorf("Iallreduce on c = %d, on d = %d; want %d, %d", vc, vd, p*(p-1)/2, 10*p*(p-1)/2)
		}
		return nil
	})
}
