package collectives_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/comm/commtest"
)

// TestBufferForms: BcastInto, GatherInto and ScatterInto fill the caller's
// buffers with the same values as Bcast, Gather and Scatter, at sizes that
// go through a shared-memory region and beyond it (2 MiB: by messages),
// with roots other than 0, on 1 to 5 ranks.
func TestBufferForms(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := commtest.World(t, n)
			ctx := tctx(t)
			commtest.Run(t, cs, func(c *comm.Comm) error {
				p, r := c.Size(), c.Rank()
				for _, m := range []int{1, 8 << 10, 128<<10 - 3, 256 << 10} { // int64s: 8 B, 64 KiB, just under the 1 MiB slot (streamed), 2 MiB
					root := m % p
					buf := make([]int64, m)
					if r == root {
						for i := range buf {
							buf[i] = int64(i*7 + root)
						}
					}
					if err := collectives.BcastInto(ctx, c, buf, root); err != nil {
						return fmt.Errorf("BcastInto %d: %w", m, err)
					}
					for i, v := range buf {
						if v != int64(i*7+root) {
							return fmt.Errorf("BcastInto %d: [%d] = %d, want %d", m, i, v, i*7+root)
						}
					}
					part := make([]int64, m)
					for i := range part {
						part[i] = int64(r*1000003 + i)
					}
					var out []int64
					if r == root {
						out = make([]int64, m*p)
					}
					if err := collectives.GatherInto(ctx, c, part, out, root); err != nil {
						return fmt.Errorf("GatherInto %d: %w", m, err)
					}
					if r == root {
						for q := range p {
							for i := range m {
								if v := out[q*m+i]; v != int64(q*1000003+i) {
									return fmt.Errorf("GatherInto %d: out[%d] = %d, want %d", m, q*m+i, v, q*1000003+i)
								}
							}
						}
					}
					mine := make([]int64, m)
					var data []int64
					if r == root {
						data = make([]int64, m*p)
						for i := range data {
							data[i] = int64(3*i + 1)
						}
					}
					if err := collectives.ScatterInto(ctx, c, data, mine, root); err != nil {
						return fmt.Errorf("ScatterInto %d: %w", m, err)
					}
					for i, v := range mine {
						if want := int64(3*(r*m+i) + 1); v != want {
							return fmt.Errorf("ScatterInto %d: [%d] = %d, want %d", m, i, v, want)
						}
					}
				}
				return healthy(ctx, c)
			})
		})
	}
}

// TestBufferFormsErrors: buffers of different lengths, a root's out or
// data of the wrong length, and a plain form mixed with a buffer form fail
// on every rank, and the communicator works afterwards.
func TestBufferFormsErrors(t *testing.T) {
	const n = 3
	cs := commtest.World(t, n)
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		r := c.Rank()
		buf := make([]float64, 4+r/2) // rank 2's is longer
		err := collectives.BcastInto(ctx, c, buf, 0)
		var me *collectives.MismatchError
		if !errors.As(err, &me) || me.Arg != "length" {
			return fmt.Errorf("BcastInto of lengths 4, 4, 5: %v; want a length mismatch", err)
		}
		var out []float64
		if r == 1 {
			out = make([]float64, 5) // want 6
		}
		err = collectives.GatherInto(ctx, c, []float64{1, 2}, out, 1)
		if !errors.Is(err, collectives.ErrInvalidArg) {
			return fmt.Errorf("GatherInto with a short out at root: %v; want ErrInvalidArg", err)
		}
		var data []int32
		if r == 0 {
			data = make([]int32, 7) // want 6
		}
		err = collectives.ScatterInto(ctx, c, data, make([]int32, 2), 0)
		if !errors.Is(err, collectives.ErrInvalidArg) {
			return fmt.Errorf("ScatterInto with root's data of 7 for 3 blocks of 2: %v; want ErrInvalidArg", err)
		}
		if r == 2 {
			_, err = collectives.Bcast(ctx, c, []float64{1}, 0)
		} else {
			err = collectives.BcastInto(ctx, c, []float64{1}, 0)
		}
		if !errors.Is(err, collectives.ErrMismatch) {
			return fmt.Errorf("Bcast beside BcastInto: %v; want ErrMismatch", err)
		}
		v := []float64{float64(r)}
		if err := collectives.BcastInto(ctx, c, v, 2); err != nil || !slices.Equal(v, []float64{2}) {
			return fmt.Errorf("BcastInto afterwards: %v, %v", v, err)
		}
		return healthy(ctx, c)
	})
}

// TestBufferFormsNonblocking: the nonblocking forms of BcastInto,
// GatherInto and ScatterInto, started together and waited for in reverse,
// fill the buffers as the blocking forms do.
func TestBufferFormsNonblocking(t *testing.T) {
	const n = 3
	cs := commtest.World(t, n)
	ctx := tctx(t)
	commtest.Run(t, cs, func(c *comm.Comm) error {
		r := c.Rank()
		buf := []int32{0, 0, 0}
		if r == 1 {
			buf = []int32{7, 8, 9}
		}
		var out []int32
		if r == 2 {
			out = make([]int32, 2*n)
		}
		var data []int32
		if r == 0 {
			data = []int32{10, 11, 12, 13, 14, 15}
		}
		mine := make([]int32, 2)
		qb := collectives.IbcastInto(ctx, c, buf, 1)
		qg := collectives.IgatherInto(ctx, c, []int32{int32(r), int32(-r)}, out, 2)
		qs := collectives.IscatterInto(ctx, c, data, mine, 0)
		for _, q := range []*collectives.Request[struct{}]{qs, qg, qb} {
			if _, err := q.Wait(ctx); err != nil {
				return err
			}
		}
		if !slices.Equal(buf, []int32{7, 8, 9}) {
			return fmt.Errorf("IbcastInto: %v", buf)
		}
		if r == 2 && !slices.Equal(out, []int32{0, 0, 1, -1, 2, -2}) {
			return fmt.Errorf("IgatherInto: %v", out)
		}
		if want := []int32{int32(10 + 2*r), int32(11 + 2*r)}; !slices.Equal(mine, want) {
			return fmt.Errorf("IscatterInto: %v, want %v", mine, want)
		}
		return healthy(ctx, c)
	})
}
