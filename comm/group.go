package comm

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/decorun/decorun/internal/agree"
	"github.com/decorun/decorun/internal/shm"
)

// Undefined is the color a rank passes to Split to be in no new communicator.
// It is distinct from AnySource, AnyTag and ProcNull, so that none of
// them passed as a color by mistake quietly leaves a rank out.
const Undefined = -3

// Context ids. The world is 0; every derived communicator gets a 64-bit id
// computed from its parent's id, the number of communicators derived from the
// parent before it (Split and Dup are collective, so every member counts the
// same) and its color. Each member computes the same id without any message;
// distinct communicators collide only with probability ~n²/2⁶⁴.
const (
	saltSplit  = 0x5b1e7c3a9d
	saltDup    = 0x0d0fd0fd0f
	saltShadow = 0x5ad0_5ad0
	saltExch   = 0xe8c4a9be
	saltSpawn  = 0x5ba3_7c01
	saltInter  = 0x1d7e_4c03
)

func mix(parts ...uint64) uint64 {
	var h uint64 = 0x9E3779B97F4A7C15
	for _, p := range parts {
		h ^= p + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2)
		// splitmix64 finaliser
		h ^= h >> 30
		h *= 0xbf58476d1ce4e5b9
		h ^= h >> 27
		h *= 0x94d049bb133111eb
		h ^= h >> 31
	}
	if h == 0 {
		h = 1
	}
	return h
}

// group maps a communicator's ranks to world ranks; nil means the world.
type group struct {
	world   []int       // comm rank -> world rank
	byWorld map[int]int // world rank -> comm rank
}

func (c *Comm) toWorld(r int) int {
	if c.grp == nil || r == AnySource {
		return r
	}
	return c.grp.world[r]
}

func (c *Comm) fromWorld(w int) int {
	if c.grp == nil {
		return w
	}
	return c.grp.byWorld[w]
}

func (c *Comm) status(st Status) Status {
	st.Source = c.fromWorld(st.Source)
	return st
}

// derive returns a communicator with c's group and context id.
func (c *Comm) derive(id uint64) *Comm {
	return &Comm{e: c.e, id: id, rank: c.rank, size: c.size, job: c.job, host: c.host, grp: c.grp,
		derived: true, closedFlag: new(atomic.Bool)}
}

// Shadow returns a communicator with the same ranks as c and a separate
// matching context: nothing sent on one is ever received on the other,
// wildcards included. Libraries (such as package collectives) use it so that
// their traffic never matches the user's. It needs no communication and
// returns the same context on every call. Once a rank of c is lost
// (decorun --keep-going), every send and receive on the Shadow fails with
// its ErrRankLost error, on every rank, so that no collective call waits for
// a survivor that has left it.
func (c *Comm) Shadow() *Comm {
	if s := c.shadow.Load(); s != nil {
		return s
	}
	s := c.derive(mix(c.id, saltShadow))
	s.closedFlag = c.closedFlag // closing either closes both
	s.derived = c.derived
	s.noColl = c.inter // an Intercomm's Remote view has no collectives
	if !c.shadow.CompareAndSwap(nil, s) {
		return c.shadow.Load()
	}
	return s
}

// Dup returns a new communicator with the same ranks as c and its own
// matching context (MPI_Comm_dup). It is a collective call: every rank of c
// must call Dup, in the same order relative to the other collective calls on
// c (Split, Dup and those of package collectives); ranks that made different
// calls get an error wrapping ErrMismatch on every rank (see Split).
func (c *Comm) Dup(ctx context.Context) (*Comm, error) {
	if err := c.alive("Dup"); err != nil {
		return nil, err
	}
	id := mix(c.id, saltDup, c.nderived.Load()+1)
	g := c.childRegion(id) // before the agreement: see host.go
	sum, err := c.agree(ctx, agree.Dup, 0, g != nil || c.aloneOnHost())
	if err != nil {
		dropRegion(g)
		return nil, err
	}
	n := c.nderived.Add(1) // after the agreement: every rank counts the same calls
	nc := c.derive(mix(c.id, saltDup, n))
	var members []int // nil: the world's
	if c.grp != nil {
		members = c.grp.world
	}
	c.e.addColl(nc.Shadow().id, members)
	if nc.id != id { // another Split or Dup on c ran meanwhile (an error of the program's)
		dropRegion(g)
		g = nil
	}
	nc.adopt(g, sum[agree.FRegion].Min == 1, sum[agree.FRegion].Min == 1)
	nc.topo, nc.graph = c.topo, c.graph // a duplicate keeps the topology (MPI_Comm_dup)
	return nc, nil
}

// Split partitions c (MPI_Comm_split): ranks that pass the same color form a
// new communicator, ordered by key and then by their rank in c. A rank that
// passes Undefined gets a nil communicator. It is a collective call: every
// rank of c must call Split, in the same order relative to the other
// collective calls on c (Split, Dup and those of package collectives). When
// the ranks' calls differ (one calls Split while another calls Dup or
// collectives.Barrier, say), every rank's call fails with a *MismatchError
// naming two ranks and what each called, instead of waiting for the others.
// A negative color other than Undefined is an error on every rank, naming
// the rank.
func (c *Comm) Split(ctx context.Context, color, key int) (*Comm, error) {
	if err := c.alive("Split"); err != nil {
		return nil, err
	}
	if _, err := c.agree(ctx, agree.Split, 0, false); err != nil {
		return nil, err
	}
	return c.splitAgreed(ctx, color, key)
}

// splitAgreed is Split after its agreement step (CartCreate and CartSub
// run their own).
func (c *Comm) splitAgreed(ctx context.Context, color, key int) (*Comm, error) {
	n := c.nderived.Add(1)                // after the agreement: every rank counts the same calls
	x := c.derive(mix(c.id, saltExch, n)) // private context for the exchange
	// A collective context, so that a rank lost meanwhile (--keep-going)
	// fails the exchange on every survivor, not only on rank 0, which
	// waits for any rank's color.
	var world []int // nil: the world's
	if c.grp != nil {
		world = c.grp.world
	}
	c.e.addColl(x.id, world)
	defer c.e.dropColl(x.id)
	// This rank's file of the new communicator's region, made before its
	// color goes out (see host.go); table holds (color, key, made) by rank.
	var g *shm.Region
	if color != Undefined {
		g = c.childRegion(mix(c.id, saltSplit, n, uint64(color)))
	}
	made := 0
	if g != nil {
		made = 1
	}
	nc, err := c.split(ctx, x, n, color, key, made)
	if err != nil || nc == nil {
		dropRegion(g)
		return nil, err
	}
	nc.adopt(g, nc.regionsMade, nc.hostMade)
	return nc, nil
}

// split is Split after the agreement step: the exchange of colors, keys
// and whether each rank made its region file, through rank 0.
func (c *Comm) split(ctx context.Context, x *Comm, n uint64, color, key, made int) (*Comm, error) {
	// Gather every (color, key) at rank 0, which sends the table to all.
	var table []int
	if c.rank == 0 {
		table = make([]int, 3*c.size)
		table[0], table[1], table[2] = color, key, made
		for i := 1; i < c.size; i++ {
			v, st, err := RecvValue[[]int](ctx, x, AnySource, 0)
			if err != nil {
				return nil, fmt.Errorf("comm: Split: %w", err)
			}
			if len(v) != 3 {
				return nil, fmt.Errorf("comm: Split: rank %d sent %d values", st.Source, len(v))
			}
			copy(table[3*st.Source:], v)
		}
		for i := 1; i < c.size; i++ {
			if err := SendValue(ctx, x, i, 1, table); err != nil {
				return nil, fmt.Errorf("comm: Split: %w", err)
			}
		}
	} else {
		if err := SendValue(ctx, x, 0, 0, []int{color, key, made}); err != nil {
			return nil, fmt.Errorf("comm: Split: %w", err)
		}
		v, _, err := RecvValue[[]int](ctx, x, 0, 1)
		if err != nil {
			return nil, fmt.Errorf("comm: Split: %w", err)
		}
		table = v
	}
	for r := 0; r < c.size; r++ {
		if col := table[3*r]; col < 0 && col != Undefined {
			return nil, fmt.Errorf("comm: Split: rank %d passed color %d; colors are >= 0 or comm.Undefined", r, col)
		}
	}
	if color == Undefined {
		return nil, nil
	}
	var members []int // ranks of c with my color, in new-rank order
	allMade, hostMade := true, true
	for r := 0; r < c.size; r++ {
		if table[3*r] == color {
			members = append(members, r)
			allMade = allMade && table[3*r+2] == 1
			if c.sameHost(r) {
				hostMade = hostMade && table[3*r+2] == 1
			}
		}
	}
	slices.SortStableFunc(members, func(a, b int) int { return table[3*a+1] - table[3*b+1] })
	g := &group{world: make([]int, len(members)), byWorld: make(map[int]int, len(members))}
	me := -1
	for i, r := range members {
		w := c.toWorld(r)
		g.world[i] = w
		g.byWorld[w] = i
		if r == c.rank {
			me = i
		}
	}
	nc := c.derive(mix(c.id, saltSplit, n, uint64(color)))
	nc.grp, nc.rank, nc.size = g, me, len(members)
	nc.regionsMade, nc.hostMade = allMade, hostMade
	c.e.addColl(nc.Shadow().id, g.world)
	return nc, nil
}

// alive reports ErrClosed for a closed derived communicator; the world's
// state is the engine's.
func (c *Comm) alive(op string) error {
	if c.closedFlag != nil && c.closedFlag.Load() {
		return fmt.Errorf("comm: rank %d: %s: %w", c.rank, op, ErrClosed)
	}
	if c.noColl {
		return fmt.Errorf("comm: rank %d: %s: %w", c.rank, op, ErrInterCollective)
	}
	return nil
}

// MismatchError is the error of a collective call (Split, Dup) whose ranks
// made different collective calls on the communicator; it wraps
// ErrMismatch. Package collectives reports the same disagreement, seen from
// its own calls, with a collectives.MismatchError.
type MismatchError struct {
	Op           string // the call this rank made
	RankA, RankB int    // two ranks that made different calls
	CallA, CallB string // what each called
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("comm: %s: rank %d called %s but rank %d called %s", e.Op, e.RankA, e.CallA, e.RankB, e.CallB)
}

// Unwrap returns ErrMismatch.
func (e *MismatchError) Unwrap() error { return ErrMismatch }

// agree runs the agreement step that starts every collective call on c
// (internal/agree): the ranks exchange headers on c's shadow context with
// the call's sequence number as tag, and every rank learns whether all
// made the same call.
func (c *Comm) agree(ctx context.Context, op agree.Op, typ int64, region bool) (agree.Summary, error) {
	h := agree.Header{agree.FOp: int64(op), agree.FType: typ, agree.FLen: -1}
	if region {
		h[agree.FRegion] = 1
	}
	return c.agreeHeader(ctx, op, h)
}

// agreeHeader is agree with a header of the caller's.
func (c *Comm) agreeHeader(ctx context.Context, op agree.Op, h agree.Header) (agree.Summary, error) {
	s := c.Shadow()
	call := agree.Begin(c)
	defer call.Done()
	tag := call.Tag
	exchange := func(ctx context.Context, dst int, out []byte, src int, in []byte) error {
		q, err := s.Isend(dst, tag, out)
		if err != nil {
			return err
		}
		st, err := s.RecvInto(ctx, in, src, tag)
		if err == nil && st.Size != len(in) {
			err = fmt.Errorf("rank %d sent %d bytes, want %d", src, st.Size, len(in))
		}
		if err != nil {
			q.Cancel()
			return err
		}
		_, err = q.Wait(ctx)
		return err
	}
	sum, err := call.Check(ctx, c.size, c.rank, h, nil, exchange)
	if err != nil {
		return sum, fmt.Errorf("comm: %s: %w", op, err)
	}
	if f := sum[agree.FOp]; sum.Mismatch(agree.FOp) {
		return sum, &MismatchError{Op: op.String(), RankA: int(f.MinRank), CallA: agree.Op(f.Min).String(),
			RankB: int(f.MaxRank), CallB: agree.Op(f.Max).String()}
	}
	return sum, nil
}
