package shm

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestRegionStream is a property test of streamed posts: members post
// payloads of more than streamMin bytes (up to the slot, in split pieces);
// every other member reads each one while it is being written, as far as
// Avail says at each look, and checks that Avail never goes back or past
// the payload's length, that the header can be read as soon as WaitHeads
// returns, and that every byte below Avail is already the one posted.
func TestRegionStream(t *testing.T) {
	const slot = 1 << 20
	for _, tc := range []struct {
		n       int
		crowded bool
	}{{2, false}, {3, true}} {
		t.Run(fmt.Sprintf("n%d", tc.n), func(t *testing.T) {
			gs := regionsSlot(t, t.TempDir(), tc.n, tc.crowded, slot)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			const steps = 40
			want := func(m int, s uint64) []byte {
				r := rand.New(rand.NewPCG(uint64(m), s))
				b := make([]byte, streamMin+1+r.IntN(slot-streamMin))
				for i := range b {
					b[i] = byte(r.Uint32())
				}
				return b
			}
			errs := make(chan error, tc.n)
			var wg sync.WaitGroup
			for m, g := range gs {
				wg.Go(func() {
					errs <- func() error {
						r := rand.New(rand.NewPCG(uint64(m), 99))
						for s := uint64(1); s <= steps; s++ {
							p := want(m, s)
							cut := r.IntN(len(p) + 1)
							if err := g.Post(ctx, s, []int64{int64(m), int64(s)}, p[:cut], p[cut:]); err != nil {
								return fmt.Errorf("member %d step %d: post: %w", m, s, err)
							}
							if err := g.WaitHeads(ctx, s); err != nil {
								return fmt.Errorf("member %d step %d: heads: %w", m, s, err)
							}
							for q := range tc.n {
								if q == m {
									continue
								}
								if h0, h1 := g.Head(q, s, 0), g.Head(q, s, 1); h0 != int64(q) || h1 != int64(s) {
									return fmt.Errorf("member %d step %d: member %d's header %d %d", m, s, q, h0, h1)
								}
								w := want(q, s)
								got := g.Data(q, s)
								if len(got) != len(w) {
									return fmt.Errorf("member %d step %d: member %d's length %d, want %d", m, s, q, len(got), len(w))
								}
								seen, looks := 0, 0
								for seen < len(w) {
									a := g.Avail(q, s)
									looks++
									if a < seen || a > len(w) {
										return fmt.Errorf("member %d step %d: member %d's Avail %d after %d (length %d)", m, s, q, a, seen, len(w))
									}
									if !bytes.Equal(got[seen:a], w[seen:a]) {
										return fmt.Errorf("member %d step %d: member %d's bytes [%d, %d) differ", m, s, q, seen, a)
									}
									seen = a
									if seen < len(w) {
										if err := g.WaitAvail(ctx, q, s, min(seen+1+r.IntN(64<<10), len(w))); err != nil {
											return err
										}
									}
								}
							}
							if err := g.WaitAll(ctx, s); err != nil {
								return fmt.Errorf("member %d step %d: wait: %w", m, s, err)
							}
							g.Ack(s)
						}
						return nil
					}()
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
