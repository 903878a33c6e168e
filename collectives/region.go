package collectives

import (
	"context"
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/decorun/decorun/internal/shm"
)

// Collectives through a shared-memory region (see the package doc, Shared
// memory). When every rank of a communicator shares this host, each call
// is one step in the communicator's region: every rank posts its header
// (the agreement's) and its payload, when the payload fits its slot, and
// reads every other rank's header; when every payload is there (fused),
// the ranks read what they need straight from each other's slots and
// combine it themselves, in rank order, and no message moves. Otherwise
// the call goes on with the message algorithms, its agreement already
// done.

// fused reports whether every rank's payload of the call is in the region.
func (cl *call) fused(s *summary) bool {
	ok := cl.ac.Region() && s[fData].Min >= 0
	if ok {
		cl.algo("shared-memory region")
	}
	return ok
}

// data is rank q's payload (a view into shared memory until done; this
// rank's own, after readOwn, the bytes it posted).
func (cl *call) data(q int) []byte {
	if q == cl.r && cl.own != nil {
		return cl.own
	}
	return cl.ac.Data(q)
}

// readOwn lets the call read this rank's payload from the bytes it offered
// rather than from its post: they are likely in this core's cache, where
// Publish wrote a large post past it. The caller must not write them
// before the call has read them (an output that overlaps its input).
func (cl *call) readOwn() {
	if len(cl.payload) == 1 {
		cl.own = cl.payload[0]
	}
}

// done ends the call's use of the region (idempotent).
func (cl *call) done() {
	if !cl.ahead {
		cl.ac.Done()
	}
}

// offer sets the payload this rank posts (nothing when it is larger than
// the region's slot: the call then goes by messages).
func (cl *call) offer(b []byte) {
	cl.nbytes = max(cl.nbytes, len(b))
	cl.pl[0] = b
	cl.payload = cl.pl[:1]
}

// offerGather offers this rank's part b of a gather to root. The root
// posts nothing, since nobody else reads its part, and reads it from b,
// when safe (the caller will not write b before the call has read it);
// the other ranks post theirs.
func (cl *call) offerGather(b []byte, root int, safe bool) {
	if cl.r == root && safe {
		cl.offerNone()
		cl.own = b
		return
	}
	cl.offer(b)
}

// offer2 offers the concatenation of a and b.
func (cl *call) offer2(a, b []byte) {
	cl.pl[0], cl.pl[1] = a, b
	cl.payload = cl.pl[:2]
}

// offerNone offers an empty payload (the call goes through the region
// with nothing of this rank's).
func (cl *call) offerNone() { cl.payload = cl.pl[:0] }

// asElems views b as elements of a raw kind, without a copy. Payloads lie
// at 8-byte aligned offsets in the region.
func asElems[E any](k elems[E], b []byte) []E {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*E)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/k.size)
}

// elemsAt returns rank q's payload as elements: a view for raw kinds, a
// decoded copy otherwise.
func elemsAt[E any](cl *call, k elems[E], q int) ([]E, error) {
	b := cl.data(q)
	if k.raw {
		if len(b)%k.size != 0 {
			return nil, errSize(q, len(b), len(b)/k.size*k.size)
		}
		return asElems(k, b), nil
	}
	return k.decode(b)
}

// foldSlices sets out to the element-wise fold over ranks lo..hi-1 of
// their payloads' elements [a, b), in rank order. It goes piece by piece
// (foldPiece bytes of out), so that a piece of out stays in this core's
// cache while every payload is folded into it, and, in stream mode, each
// piece is folded as soon as it is in every payload.
func foldSlices[E any](ctx context.Context, cl *call, k elems[E], out []E, lo, hi, a, b int, op func(x, y E) E) error {
	var buf [8][]E // no allocation up to 8 ranks
	ins := buf[:0]
	for q := lo; q < hi; q++ {
		in, err := elemsAt(cl, k, q)
		if err != nil {
			return err
		}
		if len(in) < b {
			return errSize(q, len(in)*k.size, b*k.size)
		}
		ins = append(ins, in)
	}
	step := max(foldPiece/k.size, 1)
	for x := a; x < b; x += step {
		y := min(x+step, b)
		for i, in := range ins {
			q := lo + i
			if k.raw {
				if err := cl.waitData(ctx, q, y*k.size); err != nil {
					return err
				}
			}
			if i == 0 && len(ins) > 1 {
				continue // folded with the next: out = op(in0, in1) in one pass
			}
			if i == 0 {
				copy(out[x-a:y-a], in[x:y])
				continue
			}
			if i == 1 {
				cl.guard(func() { combine2(op, out[x-a:y-a], ins[0][x:y], in[x:y]) })
				continue
			}
			cl.guard(func() { combineRight(op, out[x-a:y-a], in[x:y]) })
		}
	}
	return nil
}

// foldPiece is the piece of out that foldSlices folds every payload into
// before the next.
const foldPiece = 16 << 10

// copyData copies rank q's payload bytes [off, off+len(dst)) into dst, in
// stream mode piece by piece as they arrive.
func (cl *call) copyData(ctx context.Context, dst []byte, q, off int) error {
	src := cl.data(q)[off : off+len(dst)]
	for x := 0; x < len(dst); x += foldPiece {
		y := min(x+foldPiece, len(dst))
		if err := cl.waitData(ctx, q, off+y); err != nil {
			return err
		}
		copy(dst[x:y], src[x:y])
	}
	return nil
}

// streamIf puts the call in stream mode (agree.Call.Stream) when its
// payloads of n bytes are streamed.
func (cl *call) streamIf(n int) {
	if n >= regionSplit {
		cl.ac.Stream()
	}
}

// waitData waits, in stream mode, until rank q's first n payload bytes
// can be read; this rank's own post is whole.
func (cl *call) waitData(ctx context.Context, q, n int) error {
	if q == cl.r {
		return nil
	}
	return cl.ac.WaitData(ctx, q, n)
}

// foldValues folds op over ranks lo..hi-1's whole values, in rank order.
func foldValues[T any](cl *call, k values[T], lo, hi int, op func(a, b T) T) (T, error) {
	var acc T
	for q := lo; q < hi; q++ {
		v, err := k.decode(cl.data(q))
		if err != nil {
			return acc, err
		}
		if q == lo {
			acc = v
			continue
		}
		cl.guard(func() { acc = op(acc, v) })
	}
	return acc, nil
}

// gathered returns every rank's payload at root (root -1: at every rank),
// from the region when the call went through it (views, valid until done),
// else by the message algorithms.
func (cl *call) gathered(ctx context.Context, s *summary, mine []byte, root int) ([][]byte, error) {
	if !cl.fused(s) {
		if root < 0 {
			return cl.allgatherBlocks(ctx, mine)
		}
		return cl.gatherBlocks(ctx, mine, root)
	}
	if root >= 0 && cl.r != root {
		cl.done()
		return nil, nil
	}
	// The caller copies the blocks out and then calls done (deferred).
	blocks := make([][]byte, cl.p)
	for q := range blocks {
		blocks[q] = cl.data(q)
	}
	return blocks, nil
}

// scattered returns this rank's block of root's packed blocks, from the
// region when the call went through it, else by the message algorithm.
func (cl *call) scattered(ctx context.Context, s *summary, blocks [][]byte, root int) ([]byte, error) {
	if !cl.fused(s) {
		return cl.scatterBlocks(ctx, blocks, root)
	}
	return blockOf(cl, root, cl.r)
}

// blockOf is block i of rank q's packed blocks (packBlocks) in the region.
func blockOf(cl *call, q, i int) ([]byte, error) {
	blocks, err := unpackBlocks(cl.data(q), cl.p)
	if err != nil {
		return nil, fmt.Errorf("rank %d's blocks: %w", q, err)
	}
	return blocks[i], nil
}

// alltoallRegion is Alltoall through the region: block r of every rank's
// payload.
func alltoallRegion[T any](cl *call, k elems[T], data []T, m int) ([]T, error) {
	p, r := cl.p, cl.r
	out := make([]T, len(data))
	for q := range p {
		if k.raw {
			b := cl.data(q)
			if len(b) != len(data)*k.size {
				return nil, cl.wrap(errSize(q, len(b), len(data)*k.size))
			}
			copy(k.view(out[q*m:(q+1)*m]), b[r*m*k.size:(r+1)*m*k.size])
			continue
		}
		b, err := blockOf(cl, q, r)
		if err == nil {
			err = putBlock(k, out, q, m, b)
		}
		if err != nil {
			return nil, cl.wrap(err)
		}
	}
	return out, nil
}

// regionSplit: from this payload size on, a fused element-wise reduction
// of numbers splits the vector into Size() blocks, each folded by one rank
// (a reduce-scatter within the region) and then copied by the others,
// instead of every rank folding the whole vector.
const regionSplit = 16 << 10

// failMark is set in a mark whose rank's op failed: its slot's block then
// holds the failure's message (8 bytes of length, then the text).
const failMark = 1 << 63

// foldBlocks is the element-wise reduction of the ranks' payloads (numbers)
// within the region: rank r folds block r of every payload, in rank order,
// into out, publishes it in its own slot (where the others read only their
// own blocks) and marks its step; then every rank (root < 0) or the root
// copies the others' blocks into out once they are marked.
//
// A payload comes in one of two layouts, told apart by its length (see
// offerBlocks): the whole vector, or (rotated) the vector without its
// rank's own block, starting at the block after it, so that the rank
// that needs it soonest reads it first from a streamed post. A rank
// publishes its folded block after its payload in the rotated layout, in
// its own block's place in the other.
func foldBlocks[E any](ctx context.Context, cl *call, k elems[E], out []E, op func(a, b E) E, root int) error {
	g, s := cl.ac.RegionOf()
	p, r, n, sz := cl.p, cl.r, len(out), k.size
	lo, hi := r*n/p, (r+1)*n/p
	bound := func(q int) int { return q * n / p * sz } // block q's start in the whole vector, in bytes
	// Cannot happen: a fused call's vector fits the slot (offerBlocks).
	if n*sz > g.Slot() {
		return fmt.Errorf("a vector of %d bytes in a slot of %d", n*sz, g.Slot())
	}
	var buf [8][]E
	var obuf [8]int
	ins, offs := buf[:0], obuf[:0]
	for q := range p {
		b := cl.data(q)
		off := lo * sz // where block r lies in q's payload
		switch {
		case len(b) == n*sz:
		case q != r && len(b) == n*sz-(bound(q+1)-bound(q)):
			if r > q {
				off -= bound(q + 1)
			} else {
				off += n*sz - bound(q+1)
			}
		default:
			return errSize(q, len(b), n*sz)
		}
		ins = append(ins, asElems(k, b[off:off+(hi-lo)*sz]))
		offs = append(offs, off)
	}
	step := max(foldPiece/sz, 1)
	for x := 0; x < hi-lo; x += step {
		y := min(x+step, hi-lo)
		for q, in := range ins {
			if q != r {
				if err := cl.waitData(ctx, q, offs[q]+y*sz); err != nil {
					return err
				}
			}
			if q == 0 {
				copy(out[lo+x:lo+y], in[x:y])
				continue
			}
			cl.guard(func() { combineRight(op, out[lo+x:lo+y], in[x:y]) })
		}
	}
	// This rank's folded block goes where its payload left room for it.
	at := func(q int, b []byte) int {
		if len(b) == n*sz {
			return bound(q)
		}
		return len(b)
	}
	own := g.Own(s)
	own = own[at(r, cl.ac.Data(r)):][:(hi-lo)*sz]
	mark := s
	if cl.failed != nil {
		msg := cl.failed.Msg
		if m := len(own) - 8; len(msg) > m {
			msg = msg[:max(m, 0)]
		}
		if len(own) >= 8 {
			binary.LittleEndian.PutUint64(own, uint64(len(msg)))
			copy(own[8:], msg)
		}
		mark |= failMark
	} else if r != root { // the root's block is in its out already, and nobody reads it
		shm.Publish(own, k.view(out[lo:hi]))
	}
	g.Mark(mark)
	if root >= 0 && r != root {
		return nil
	}
	if err := g.WaitMarks(ctx, s, nil); err != nil {
		return err
	}
	for q := range p {
		qlo, qhi := q*n/p, (q+1)*n/p
		d := cl.ac.Data(q)
		b := g.SlotOf(q, s)[at(q, d):][:(qhi-qlo)*sz]
		if g.MarkOf(q, s)&failMark != 0 {
			if cl.failed == nil {
				msg := "op failed"
				if len(b) >= 8 {
					if m := binary.LittleEndian.Uint64(b); m <= uint64(len(b)-8) {
						msg = string(b[8 : 8+m])
					}
				}
				cl.failed = &OpError{Op: cl.op.String(), Rank: q, Msg: msg}
			}
			continue
		}
		if q != r {
			copy(k.view(out[qlo:qhi]), b)
		}
	}
	return nil
}
