// Package agree is the agreement step that starts every collective call on
// a communicator: package comm's Split and Dup and every call of package
// collectives. The ranks of one call exchange a small header (which call,
// a hash of the element type, a root, a length, ...) so that every rank
// learns whether the calls fit together before any data moves, and ranks
// that made different calls fail with the same error instead of waiting
// for each other.
//
// Both packages number the collective calls on a communicator with one
// counter (NextTag): the n-th collective call on a communicator, whichever
// package made it, exchanges its header on the communicator's shadow
// context with tag n. A rank that calls Split while another calls Barrier
// therefore exchanges headers with it, and both see the mismatch.
package agree

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"
)

// TagMask bounds the tags NextTag returns; the bit above it is free for a
// call's own use (collectives' Bcast fan-out).
const TagMask = math.MaxInt32 >> 1

// states maps each communicator to its state: its count of collective
// calls and its shared-memory region (host.go). Entries are keyed by weak
// pointers and removed (their region closed) when the communicator is
// garbage.
var states sync.Map // weak.Pointer[T] -> *state

// Cache holds a communicator's agreement state in the communicator itself
// (CacheOf), so that a call finds it without the weak-keyed lookup, which
// cost a tenth of a small call through a region.
type Cache struct{ st atomic.Pointer[state] }

// CacheOf returns the Cache that communicator c holds, or nil; package
// comm sets it.
var CacheOf func(c any) *Cache

func stateOf[T any](c *T) *state {
	var ca *Cache
	if CacheOf != nil {
		if ca = CacheOf(c); ca != nil {
			if st := ca.st.Load(); st != nil {
				return st
			}
		}
	}
	st := lookup(c)
	if ca != nil {
		ca.st.Store(st)
	}
	return st
}

func lookup[T any](c *T) *state {
	k := weak.Make(c)
	v, ok := states.Load(k)
	if !ok {
		var loaded bool
		v, loaded = states.LoadOrStore(k, newState())
		if !loaded {
			runtime.AddCleanup(c, func(k weak.Pointer[T]) {
				if v, ok := states.LoadAndDelete(k); ok {
					v.(*state).release()
				}
			}, k)
		}
	}
	return v.(*state)
}

// NextTag counts a collective call on c and returns its tag.
func NextTag[T any](c *T) int { return Begin(c).Tag }

// Begin counts a collective call on c: the call's place in the order of
// collective calls on c, whichever package made it.
// The Call is returned by value, for its caller to keep in place (a field
// of its own call's struct, a local variable): its methods take its
// address, and a copy made after its first use does not share its state.
func Begin[T any](c *T) Call {
	st := stateOf(c)
	seq := st.seq.Add(1)
	return Call{Tag: int(seq & TagMask), Seq: seq, st: st, comm: c}
}

// Op names a collective call in the header.
type Op int64

// The collective calls.
const (
	Barrier Op = iota + 1
	Bcast
	Scatter
	Scatterv
	Gather
	Gatherv
	Allgather
	Allgatherv
	Alltoall
	Alltoallv
	Reduce
	Allreduce
	ReduceSlice
	AllreduceSlice
	ReduceScatter
	Scan
	Exscan
	ScanSlice
	ExscanSlice
	// The *Into forms are the same collectives as their plain ones (Wire):
	// ranks may mix them in one call. They differ in name only.
	ReduceSliceInto
	AllreduceSliceInto
	// Package comm's.
	Split
	Dup
	// Package collectives' forms that fill the caller's buffer.
	BcastInto
	GatherInto
	ScatterInto
	GathervInto
	AllgathervInto
	// Package comm's topologies.
	CartCreate
	CartSub
	// Package collectives' neighbourhood collectives.
	NeighborAllgather
	NeighborAlltoall
	DistGraphCreate // package comm's
	Spawn           // package comm's intercommunicators
	Merge
)

var names = [...]string{"?", "Barrier", "Bcast", "Scatter", "Scatterv", "Gather", "Gatherv", "Allgather",
	"Allgatherv", "Alltoall", "Alltoallv", "Reduce", "Allreduce", "ReduceSlice", "AllreduceSlice",
	"ReduceScatter", "Scan", "Exscan", "ScanSlice", "ExscanSlice", "ReduceSliceInto", "AllreduceSliceInto",
	"Split", "Dup", "BcastInto", "GatherInto", "ScatterInto", "GathervInto", "AllgathervInto",
	"CartCreate", "CartSub", "NeighborAllgather", "NeighborAlltoall", "DistGraphCreate", "Spawn", "Merge"}

// names has one entry per Op (a compile-time check).
var (
	_ [len(names) - int(Merge) - 1]struct{}
	_ [int(Merge) + 1 - len(names)]struct{}
)

// Wire is the Op that the agreement step compares: the plain form of an
// *Into call.
func (o Op) Wire() Op {
	switch o {
	case ReduceSliceInto:
		return ReduceSlice
	case AllreduceSliceInto:
		return AllreduceSlice
	}
	return o
}

func (o Op) String() string {
	if o < 0 || int(o) >= len(names) {
		return fmt.Sprintf("collective %d", int64(o))
	}
	return names[o]
}

// Header fields.
const (
	FOp   = iota
	FType // type hash
	FRoot // 0 for collectives without a root
	FLen  // a length: equal on all ranks, or the root's (-1 elsewhere)
	FBad  // 1 if this rank's arguments are invalid; 2 + len(out) if only its out's length is (the *Into calls)
	FEq   // 1 if this rank requires the lengths to be equal
	FFan  // the largest message this rank can take part in a NATS fan-out of (Bcast)
	// FRegion: 1 if this rank can use a shared-memory region for the
	// communicator's collectives (the first call on it only; see host.go).
	FRegion
	// FData: the bytes of this rank's payload in the region post, -1 when
	// it is not there (too large, or the call went by messages).
	FData
	// FCrowded: 1 if this rank's host has more ranks than cores (as far as
	// this rank knows; collectives that choose an algorithm by it use the
	// summary's Max, the same on every rank).
	FCrowded
	// FOnePhase: 1 if this rank asks that the call finish in one phase
	// (a nonblocking call): once every rank has posted, each reads what it
	// needs from the posts and none waits for another again. Collectives
	// with a second phase skip it when the summary's Max is 1.
	FOnePhase
	NFields
)

// Header is one rank's part of the agreement.
type Header [NFields]int64

// Field is what the agreement tells about one header field: the smallest
// and largest value any rank passed and the lowest rank that passed each.
type Field struct {
	Min, Max         int64
	MinRank, MaxRank int64
}

// Summary is the agreement's result, the same on every rank.
type Summary [NFields]Field

// Mismatch reports whether ranks passed different values in field f.
func (s *Summary) Mismatch(f int) bool { return s[f].Min != s[f].Max }

func (s *Summary) merge(o *Summary) {
	for i := range s {
		a, b := &s[i], &o[i]
		if b.Min < a.Min || b.Min == a.Min && b.MinRank < a.MinRank {
			a.Min, a.MinRank = b.Min, b.MinRank
		}
		if b.Max > a.Max || b.Max == a.Max && b.MaxRank < a.MaxRank {
			a.Max, a.MaxRank = b.Max, b.MaxRank
		}
	}
}

// SummaryBytes is the size of the message each round exchanges.
const SummaryBytes = NFields * 4 * 8

func (s *Summary) marshal() []byte {
	b := make([]byte, 0, SummaryBytes)
	for _, f := range s {
		b = binary.LittleEndian.AppendUint64(b, uint64(f.Min))
		b = binary.LittleEndian.AppendUint64(b, uint64(f.MinRank))
		b = binary.LittleEndian.AppendUint64(b, uint64(f.Max))
		b = binary.LittleEndian.AppendUint64(b, uint64(f.MaxRank))
	}
	return b
}

func (s *Summary) unmarshal(b []byte) {
	for i := range s {
		f := &s[i]
		f.Min = int64(binary.LittleEndian.Uint64(b[32*i:]))
		f.MinRank = int64(binary.LittleEndian.Uint64(b[32*i+8:]))
		f.Max = int64(binary.LittleEndian.Uint64(b[32*i+16:]))
		f.MaxRank = int64(binary.LittleEndian.Uint64(b[32*i+24:]))
	}
}

// Exchange sends out to rank dst while it receives exactly len(in) bytes
// from rank src into in, on the call's context and tag.
type Exchange func(ctx context.Context, dst int, out []byte, src int, in []byte) error

// Run is the dissemination exchange of rank r of p: after round k each rank
// has merged the headers of the 2^(k+1) ranks below it (cyclically), so
// after ⌈lg p⌉ rounds every rank holds the same summary of all.
func Run(ctx context.Context, p, r int, h Header, exchange Exchange) (Summary, error) {
	var s Summary
	for i, v := range h {
		s[i].Min, s[i].Max = v, v
		s[i].MinRank, s[i].MaxRank = int64(r), int64(r)
	}
	in := make([]byte, SummaryBytes)
	for d := 1; d < p; d <<= 1 {
		dst, src := (r+d)%p, (r-d+p)%p
		if err := exchange(ctx, dst, s.marshal(), src, in); err != nil {
			return s, err
		}
		var o Summary
		o.unmarshal(in)
		s.merge(&o)
	}
	return s, nil
}
