package collectives

import (
	"context"
	"sync"
	"unsafe"

	"github.com/decorun/decorun/comm"
)

// scratchPool holds the scratch memory of the halving, as 8-byte
// words (aligned for every raw kind), so that a large AllreduceSlice
// allocates its result and nothing else of its size (AllreduceSliceInto
// nothing at all of its size): fresh memory costs
// zeroing, and the garbage it becomes costs collections and the pages the
// scavenger returns to the OS and faults back in.
var scratchPool sync.Pool // *[]uint64

// getScratch returns n elements of scratch (not zeroed: every element is
// received before it is read) and the buffer to put back in scratchPool
// once nothing can use it any more.
func getScratch[E any](k elems[E], n int) ([]E, *[]uint64) {
	words := (n*k.size + 7) / 8
	bp, _ := scratchPool.Get().(*[]uint64)
	if bp == nil || cap(*bp) < words {
		b := make([]uint64, words)
		bp = &b
	}
	if n == 0 {
		return nil, bp
	}
	return unsafe.Slice((*E)(unsafe.Pointer(unsafe.SliceData(*bp))), n), bp
}

// halving is one rank's part of Rabenseifner's allreduce over the largest
// power of two q ≤ p: a reduce-scatter by recursive halving, then an
// allgather by recursive doubling, 2·lg q rounds. When p is not a power of
// two the first 2·(p−q) ranks first fold in pairs (rank 2i sends its whole
// vector to 2i+1, which keeps v(2i) op v(2i+1)) and the odd rank sends the
// result back at the end, as in allreduceDoubling.
//
// The halving takes the partner at distance 1 first, then 2, 4, ...: before
// the step with distance m, a rank holds for its window the fold over its
// aligned group of m (new) ranks, and combines it with the adjacent group's
// (the lower group on the left), so every element is folded in rank order.
// In each step the rank with the bit clear keeps the lower half of the
// window, so rank i ends with block bitreverse(i) of the result: one rank
// computes each block, and the allgather copies it to every rank, so all
// ranks get the same bits.
//
// postHalving posts every receive before the agreement step, each into its
// own memory, so that every message finds its receive posted and is copied
// once, straight into place: the fold into scratch, the first halving step
// into the result's half that the rank keeps, later halving steps into
// scratch (n/4 + n/8 + ... elements), and the allgather steps into the
// result's halves that the rank gave away.
//
// In place (the result's memory is v: AllreduceSliceInto with out = in),
// v's kept half must not be overwritten before it is combined, and a rank
// that folds must not lose v(r) before it is: the first halving step
// receives into scratch too (n/2 more) and is combined into the result
// like the later ones, and the fold is combined into the result (v(r−1)
// on the left, as otherwise) instead of into scratch. The result's other
// memory is written only by the allgather and, on the even rank of a fold,
// by the result coming back; both come from partners that have received
// everything this rank sends from that memory. Every combination is the
// same expression on the same operands, so the bits are the same as out of
// place. Its messages carry the call's
// tag with fanoutBit set, so the posted receives never match the agreement
// step's messages (AllreduceSlice never fans out). A halving step k ≥ 1
// sends from the result's memory that allgather step k later receives
// into; the partner of both steps sends the allgather message only after it
// received the halving one, so the two never overlap in time.
//
// run returns communication errors; a failure of op is left in cl.failed,
// and reaches every rank: from then on the rank sends its failure report
// in place of each message, every rank's result depends on every block,
// and every block passes through reports once a rank on its way failed.
type halving[E any] struct {
	cl  *call
	k   elems[E]
	tag int
	v   []E
	out []E
	// inPlace: out is v (see postHalving).
	inPlace bool

	root             int // ReduceSlice's root; -1 for AllreduceSlice
	foldTo, foldFrom int // the partner of the fold, or -1
	steps            []step[E]
	mine             []E // v, or the fold of v(r-1) and v(r)
	fold             *comm.Request
	rs, ag           []*comm.Request // halving and allgather receives, by step
	blocks           []*comm.Request // at ReduceSlice's root: each block's receive, by new rank
	lg, rem          int             // lg q, p − q
	reqs             []*comm.Request // every request, for cancel
	scratch          *[]uint64
}

// step i exchanges with new rank nr^(1<<i), keeping [keepLo, keepHi) of the
// window and giving away the other half.
type step[E any] struct {
	peer                           int
	keepLo, keepHi, giveLo, giveHi int
	// scr is where the halving step receives when that is not the result's
	// kept half: in steps i ≥ 1, and in step 0 too in place.
	scr []E
}

// direct reports whether halving step i receives straight into the
// result's kept half, to be combined with mine's.
func (h *halving[E]) direct(i int) bool { return i == 0 && !h.inPlace }

// postHalving posts the receives of AllreduceSlice (root < 0) or of
// ReduceSlice to root, whose result goes into out (len(v) elements; at
// ReduceSlice's other ranks nil). inPlace says that out is v.
func postHalving[E any](cl *call, k elems[E], v, out []E, inPlace bool, root int) (h *halving[E], err error) {
	p, r, n := cl.p, cl.r, len(v)
	h = &halving[E]{cl: cl, k: k, tag: cl.tag | fanoutBit, v: v, out: out, inPlace: inPlace, root: root,
		foldTo: -1, foldFrom: -1, mine: v}
	defer func() {
		if err != nil {
			h.cancel()
		}
	}()
	q := 1
	for q*2 <= p {
		q *= 2
	}
	rem := p - q
	nr := r - rem // rank among the q participants
	h.rem = rem
	world := h.world
	lg := 0
	for 1<<lg < q {
		lg++
	}
	h.lg = lg
	if r < 2*rem {
		if r%2 == 0 { // folds into r+1 and gets the result back
			h.foldTo = r + 1
			switch {
			case root < 0:
				h.fold, err = h.post(r+1, h.out)
			case r == root:
				err = h.postBlocks(-1)
			}
			return h, err
		}
		h.foldFrom, nr = r-1, r/2
	}
	h.steps = make([]step[E], lg)
	lo, hi, scrLen := 0, n, 0
	for i := range h.steps {
		mid := lo + (hi-lo)/2
		s := step[E]{peer: world(nr ^ 1<<i), keepLo: lo, keepHi: mid, giveLo: mid, giveHi: hi}
		if nr&(1<<i) != 0 {
			s.keepLo, s.keepHi, s.giveLo, s.giveHi = mid, hi, lo, mid
		}
		if !h.direct(i) {
			scrLen += s.keepHi - s.keepLo
		}
		h.steps[i] = s
		lo, hi = s.keepLo, s.keepHi
	}
	if h.foldFrom >= 0 {
		scrLen += n
	}
	if h.out == nil { // not ReduceSlice's root: works in scratch
		scrLen += n
	}
	var scratch []E
	scratch, h.scratch = getScratch(k, scrLen)
	off := 0
	for i := range h.steps {
		if s := &h.steps[i]; !h.direct(i) {
			s.scr, off = scratch[off:off+s.keepHi-s.keepLo], off+s.keepHi-s.keepLo
		}
	}
	if h.out == nil {
		h.out, off = scratch[off:off+n], off+n
	}

	// Post every receive, in the order each peer sends.
	if h.foldFrom >= 0 {
		h.mine = scratch[off : off+n]
		if h.fold, err = h.post(h.foldFrom, h.mine); err != nil {
			return h, err
		}
	}
	h.rs = make([]*comm.Request, lg)
	for i, s := range h.steps {
		b := s.scr
		if h.direct(i) {
			b = h.out[s.keepLo:s.keepHi]
		}
		if h.rs[i], err = h.post(s.peer, b); err != nil {
			return h, err
		}
	}
	switch {
	case root < 0:
		h.ag = make([]*comm.Request, lg)
		for i := lg - 1; i >= 0; i-- {
			s := h.steps[i]
			if h.ag[i], err = h.post(s.peer, h.out[s.giveLo:s.giveHi]); err != nil {
				return h, err
			}
		}
	case r == root:
		err = h.postBlocks(nr)
	}
	return h, err
}

// world is the rank of new rank j.
func (h *halving[E]) world(j int) int {
	if j < h.rem {
		return 2*j + 1
	}
	return j + h.rem
}

// window is the block of the result that new rank j computes.
func window(n, j, lg int) (lo, hi int) {
	lo, hi = 0, n
	for i := range lg {
		mid := lo + (hi-lo)/2
		if j&(1<<i) != 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, hi
}

// postBlocks posts, at ReduceSlice's root (new rank nr, or -1 if it
// folded), the receive of every other new rank's block into the result.
// A block lies where the root sent partial sums from in a halving step; its
// sender has received them before it sends the block.
func (h *halving[E]) postBlocks(nr int) error {
	h.blocks = make([]*comm.Request, 1<<h.lg)
	for j := range h.blocks {
		if j == nr {
			continue
		}
		lo, hi := window(len(h.out), j, h.lg)
		q, err := h.post(h.world(j), h.out[lo:hi])
		if err != nil {
			return err
		}
		h.blocks[j] = q
	}
	return nil
}

// waitBlocks waits for the blocks that postBlocks posted.
func (h *halving[E]) waitBlocks(ctx context.Context) error {
	for j, q := range h.blocks {
		if q == nil {
			continue
		}
		lo, hi := window(len(h.out), j, h.lg)
		if err := h.wait(ctx, q, h.world(j), h.out[lo:hi]); err != nil {
			return err
		}
	}
	return nil
}

// cancel withdraws every request; the scratch memory is not reused.
func (h *halving[E]) cancel() {
	for _, q := range h.reqs {
		q.Cancel()
	}
}

func (h *halving[E]) post(src int, b []E) (*comm.Request, error) {
	q, err := h.cl.s.IrecvInto(h.k.view(b), src, h.tag)
	if err == nil {
		h.reqs = append(h.reqs, q)
	}
	return q, err
}

// send starts sending b to dst, or the failure report.
func (h *halving[E]) send(dst int, b []E) error {
	bb := h.k.view(b)
	q, err := h.cl.isendRedTag(dst, h.tag, bb, len(bb))
	if err == nil {
		h.reqs = append(h.reqs, q)
	}
	return err
}

// wait waits for the receive q from src into b, and adopts a failure report.
func (h *halving[E]) wait(ctx context.Context, q *comm.Request, src int, b []E) error {
	st, err := q.Wait(ctx)
	if err != nil {
		return err
	}
	bb := h.k.view(b)
	if isReport(st) {
		h.cl.adopt(bb[:st.Size], st)
		return nil
	}
	if st.Size != len(bb) {
		return errSize(src, st.Size, len(bb))
	}
	return nil
}

// run does the schedule that postHalving posted, leaving the result in
// h.out (at ReduceSlice's root; everywhere for AllreduceSlice). On an error
// it cancels every request.
func (h *halving[E]) run(ctx context.Context, op func(a, b E) E) (err error) {
	cl, r, mine, out := h.cl, h.cl.r, h.mine, h.out
	defer func() {
		if err != nil {
			h.cancel()
		}
	}()
	if h.foldTo >= 0 {
		if err := h.send(h.foldTo, h.v); err != nil {
			return err
		}
		switch {
		case h.root < 0:
			err = h.wait(ctx, h.fold, h.foldTo, out)
		case r == h.root:
			err = h.waitBlocks(ctx)
		}
		if err != nil {
			return err
		}
		return h.finish(ctx)
	}
	if h.foldFrom >= 0 {
		if err := h.wait(ctx, h.fold, h.foldFrom, mine); err != nil {
			return err
		}
		if h.inPlace { // v(r-1) op v(r), into v
			in := mine
			cl.guard(func() { combineLeft(op, in, h.v) })
			mine = h.v
		} else {
			cl.guard(func() { combineRight(op, mine, h.v) })
		}
	}
	for i, s := range h.steps {
		src := mine
		if i > 0 {
			src = out
		}
		if err := h.send(s.peer, src[s.giveLo:s.giveHi]); err != nil {
			return err
		}
		acc := out[s.keepLo:s.keepHi]
		if h.direct(i) {
			if err := h.wait(ctx, h.rs[i], s.peer, acc); err != nil {
				return err
			}
			in := mine[s.keepLo:s.keepHi]
			cl.guard(func() {
				if s.peer < r {
					combineRight(op, acc, in)
				} else {
					combineLeft(op, in, acc)
				}
			})
			continue
		}
		if err := h.wait(ctx, h.rs[i], s.peer, s.scr); err != nil {
			return err
		}
		cl.guard(func() {
			if s.peer < r {
				combineLeft(op, s.scr, acc)
			} else {
				combineRight(op, acc, s.scr)
			}
		})
	}
	if h.root >= 0 { // ReduceSlice: every block to the root
		if r == h.root {
			if err := h.waitBlocks(ctx); err != nil {
				return err
			}
			return h.finish(ctx)
		}
		lo, hi := 0, len(out)
		if last := len(h.steps) - 1; last >= 0 {
			lo, hi = h.steps[last].keepLo, h.steps[last].keepHi
		}
		if err := h.send(h.root, out[lo:hi]); err != nil {
			return err
		}
		return h.finish(ctx) // out is scratch
	}
	for i := len(h.steps) - 1; i >= 0; i-- {
		s := h.steps[i]
		if err := h.send(s.peer, out[s.keepLo:s.keepHi]); err != nil {
			return err
		}
		if err := h.wait(ctx, h.ag[i], s.peer, out[s.giveLo:s.giveHi]); err != nil {
			return err
		}
	}
	if h.foldFrom >= 0 {
		if err := h.send(h.foldFrom, out); err != nil {
			return err
		}
	}
	return h.finish(ctx)
}

// finish waits for the sends, then gives the scratch memory back: every
// request is complete, so nothing uses it any more.
func (h *halving[E]) finish(ctx context.Context) error {
	for _, q := range h.reqs {
		if _, err := q.Wait(ctx); err != nil {
			return err
		}
	}
	if h.scratch != nil {
		scratchPool.Put(h.scratch)
	}
	return nil
}
