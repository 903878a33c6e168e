package conformance

import (
	"context"
	"fmt"
	"testing"

	"github.com/decorun/decorun/collectives"
	"github.com/decorun/decorun/comm"
)

// bigPart is rank r's part for rank d in the large-message checks: 1.2 MB
// (above W/4 from 5 ranks up, so by rendezvous) when d is r's right
// neighbour, else empty or a few elements.
func bigPart(r, d, p int) []int32 {
	n := (r + d) % 3
	if d == (r+1)%p {
		n = 300000
	}
	v := make([]int32, n)
	for k := range min(n, 1<<16) {
		v[k] = int32(r<<24 | d<<16 | k)
	}
	for done := min(n, 1<<16); done < n; done *= 2 { // the pattern repeats every 2¹⁶
		copy(v[done:], v[:done])
	}
	return v
}

// TestCollectivesWithLargeUnevenParts: the v-collectives with parts that
// differ from empty to 1.2 MB in one call (the large ones travel by
// rendezvous) give every part to the right rank, at 2, 5 and 9 ranks.
func TestCollectivesWithLargeUnevenParts(t *testing.T) {
	for _, n := range []int{2, 5, 9} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			run(t, n, func(ctx context.Context, c *comm.Comm) error {
				r, p := c.Rank(), c.Size()
				parts := make([][]int32, p)
				for d := range p {
					parts[d] = bigPart(r, d, p)
				}
				got, err := collectives.Alltoallv(ctx, c, parts)
				if err != nil {
					return err
				}
				for s := range p {
					if err := same(fmt.Sprintf("Alltoallv from %d", s), got[s], bigPart(s, r, p)); err != nil {
						return err
					}
				}
				root := p - 1
				gv, err := collectives.Gatherv(ctx, c, bigPart(r, root, p), root)
				if err != nil {
					return err
				}
				if r == root {
					for s := range p {
						if err := same(fmt.Sprintf("Gatherv[%d]", s), gv[s], bigPart(s, root, p)); err != nil {
							return err
						}
					}
				}
				var sparts [][]int32
				if r == 0 {
					sparts = make([][]int32, p)
					for d := range p {
						sparts[d] = bigPart(p-1, d, p) // the last rank's pattern: one big part, for rank 0
					}
				}
				sv, err := collectives.Scatterv(ctx, c, sparts, 0)
				if err != nil {
					return err
				}
				if err := same("Scatterv", sv, bigPart(p-1, r, p)); err != nil {
					return err
				}
				// Rank 0's part is the big one.
				agLen := func(r int) int {
					if r == 0 {
						return 300000
					}
					return r % 3
				}
				av, err := collectives.Allgatherv(ctx, c, bigPart(r, (r+1)%p, p)[:agLen(r)])
				if err != nil {
					return err
				}
				for s := range p {
					if err := same(fmt.Sprintf("Allgatherv[%d]", s), av[s], bigPart(s, (s+1)%p, p)[:agLen(s)]); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

// note is a value that goes by CBOR in collectives (mpi4py's object
// collectives).
type note struct {
	From  int
	Text  string
	Attrs map[string][]int
}

func noteOf(r int) note {
	return note{From: r, Text: fmt.Sprintf("rank %d says %s", r, string(rune('a'+r))),
		Attrs: map[string][]int{"r": {r}, "sq": {r * r, -r}}}
}

// TestCollectivesOfEncodedValues: collectives of values that are not
// plain numbers (structs with maps, strings, slices of them) deliver
// values equal to those passed, at 1, 3 and 4 ranks, with every root.
func TestCollectivesOfEncodedValues(t *testing.T) {
	for _, n := range []int{1, 3, 4} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			run(t, n, func(ctx context.Context, c *comm.Comm) error {
				r, p := c.Rank(), c.Size()
				for root := range p {
					b, err := collectives.Bcast(ctx, c, noteOf(r), root)
					if err != nil {
						return err
					}
					if err := same("Bcast(note)", b, noteOf(root)); err != nil {
						return err
					}
					g, err := collectives.Gather(ctx, c, []note{noteOf(r)}, root)
					if err != nil {
						return err
					}
					if r == root {
						for s := range p {
							if err := same(fmt.Sprintf("Gather(note)[%d]", s), g[s], noteOf(s)); err != nil {
								return err
							}
						}
					}
					var all []string
					if r == root {
						for d := range p {
							all = append(all, fmt.Sprint("for ", d))
						}
					}
					sc, err := collectives.Scatter(ctx, c, all, root)
					if err != nil {
						return err
					}
					if err := same("Scatter(string)", sc, []string{fmt.Sprint("for ", r)}); err != nil {
						return err
					}
				}
				words := make([]string, r%3)
				for i := range words {
					words[i] = fmt.Sprint(r, "/", i)
				}
				av, err := collectives.Allgatherv(ctx, c, words)
				if err != nil {
					return err
				}
				for s := range p {
					if len(av[s]) != s%3 || s%3 > 0 && av[s][s%3-1] != fmt.Sprint(s, "/", s%3-1) {
						return fmt.Errorf("Allgatherv(string)[%d] = %q", s, av[s])
					}
				}
				parts := make([][]note, p)
				for d := range p {
					parts[d] = []note{noteOf(10*r + d)}
				}
				a2a, err := collectives.Alltoallv(ctx, c, parts)
				if err != nil {
					return err
				}
				for s := range p {
					if err := same(fmt.Sprintf("Alltoallv(note) from %d", s), a2a[s], []note{noteOf(10*s + r)}); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}
