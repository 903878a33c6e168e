package collectives

import (
	"context"
	"sync"
	"unsafe"

	"github.com/decorun/decorun/comm"
)

// scratchPool holds the scratch memory of allreduceHalving, as 8-byte
// words (aligned for every raw kind), so that a large AllreduceSlice
// allocates its result and nothing else of its size: fresh memory costs
// zeroing, and the garbage it becomes costs collections and the pages the
// scavenger returns to the OS and faults back in.
var scratchPool sync.Pool // *[]uint64

// getScratch returns n elements of scratch (not zeroed) and the buffer to
// give back to putScratch once nothing can use it any more.
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

// allreduceHalving is Rabenseifner's allreduce over the largest power of two
// pof2 ≤ p: a reduce-scatter by recursive halving, then an allgather by
// recursive doubling, 2·lg pof2 rounds. When p is not a power of two the
// first 2·(p−pof2) ranks first fold in pairs (rank 2i sends its whole
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
// Every receive is posted before the first send, each into its own memory,
// so every message finds its receive posted and is copied once, straight
// into place: the fold into a scratch vector, the first halving step into
// the result's half that the rank keeps, later halving steps into scratch
// (n/4 + n/8 + ... elements), and the allgather steps into the result's
// halves that the rank gave away. A halving step k ≥ 1 sends from the
// result's memory that allgather step k later receives into; the partner
// of both steps sends the allgather message only after it received the
// halving one, so the two never overlap in time.
//
// It returns communication errors; a failure of op is left in cl.failed,
// and reaches every rank: from then on the rank sends its failure report
// in place of each message, every rank's result depends on every block,
// and every block passes through reports once a rank on its way failed.
func allreduceHalving[E any](ctx context.Context, cl *call, k elems[E], v []E, op func(a, b E) E) (out []E, err error) {
	p, r, n := cl.p, cl.r, len(v)
	pof2 := 1
	for pof2*2 <= p {
		pof2 *= 2
	}
	rem := p - pof2
	out = make([]E, n)

	var reqs []*comm.Request // every request, cancelled on error
	defer func() {
		if err != nil {
			for _, q := range reqs {
				q.Cancel()
			}
		}
	}()
	post := func(src int, b []E) (*comm.Request, error) {
		q, err := cl.s.IrecvInto(k.view(b), src, cl.tag)
		if err == nil {
			reqs = append(reqs, q)
		}
		return q, err
	}
	send := func(dst int, b []E) error {
		bb := k.view(b)
		q, err := cl.isendRed(dst, bb, len(bb))
		if err == nil {
			reqs = append(reqs, q)
		}
		return err
	}
	wait := func(q *comm.Request, src int, b []E) error {
		st, err := q.Wait(ctx)
		if err != nil {
			return err
		}
		bb := k.view(b)
		if isReport(st) {
			cl.adopt(bb[:st.Size], st)
			return nil
		}
		if st.Size != len(bb) {
			return errSize(src, st.Size, len(bb))
		}
		return nil
	}
	waitSends := func() error {
		for _, q := range reqs {
			if _, err := q.Wait(ctx); err != nil {
				return err
			}
		}
		return nil
	}

	nr := r - rem // rank among the pof2 participants
	if r < 2*rem {
		if r%2 == 0 { // folds into r+1 and gets the result back
			q, err := post(r+1, out)
			if err != nil {
				return nil, err
			}
			if err := send(r+1, v); err != nil {
				return nil, err
			}
			if err := wait(q, r+1, out); err != nil {
				return nil, err
			}
			return out, waitSends()
		}
		nr = r / 2
	}
	world := func(nr int) int {
		if nr < rem {
			return 2*nr + 1
		}
		return nr + rem
	}

	// The schedule: step i exchanges with new rank nr^(1<<i), keeping
	// [keepLo, keepHi) of the window and giving away the other half.
	type step struct {
		peer                           int
		keepLo, keepHi, giveLo, giveHi int
		scr                            []E // where halving step i ≥ 1 receives
	}
	lg := 0
	for 1<<lg < pof2 {
		lg++
	}
	steps := make([]step, lg)
	lo, hi, scrLen := 0, n, 0
	for i := range steps {
		mid := lo + (hi-lo)/2
		s := step{peer: world(nr ^ 1<<i), keepLo: lo, keepHi: mid, giveLo: mid, giveHi: hi}
		if nr&(1<<i) != 0 {
			s.keepLo, s.keepHi, s.giveLo, s.giveHi = mid, hi, lo, mid
		}
		if i > 0 {
			scrLen += s.keepHi - s.keepLo
		}
		steps[i] = s
		lo, hi = s.keepLo, s.keepHi
	}
	folds := r < 2*rem // odd rank of a folding pair
	if folds {
		scrLen += n
	}
	scratch, scratchBuf := getScratch(k, scrLen)
	off := 0
	for i := 1; i < lg; i++ {
		s := &steps[i]
		s.scr, off = scratch[off:off+s.keepHi-s.keepLo], off+s.keepHi-s.keepLo
	}

	// Post every receive, in the order each peer sends.
	var fold *comm.Request
	mine := v
	if folds {
		mine = scratch[off : off+n]
		if fold, err = post(r-1, mine); err != nil {
			return nil, err
		}
	}
	rs := make([]*comm.Request, lg) // halving
	ag := make([]*comm.Request, lg) // allgather
	for i, s := range steps {
		b := s.scr
		if i == 0 {
			b = out[s.keepLo:s.keepHi]
		}
		if rs[i], err = post(s.peer, b); err != nil {
			return nil, err
		}
	}
	for i := lg - 1; i >= 0; i-- {
		s := steps[i]
		if ag[i], err = post(s.peer, out[s.giveLo:s.giveHi]); err != nil {
			return nil, err
		}
	}

	if folds {
		if err := wait(fold, r-1, mine); err != nil {
			return nil, err
		}
		cl.guard(func() { combineRight(op, mine, v) }) // v(r-1) op v(r)
	}
	for i, s := range steps {
		src := mine
		if i > 0 {
			src = out
		}
		if err := send(s.peer, src[s.giveLo:s.giveHi]); err != nil {
			return nil, err
		}
		acc := out[s.keepLo:s.keepHi]
		if i == 0 {
			if err := wait(rs[i], s.peer, acc); err != nil {
				return nil, err
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
		if err := wait(rs[i], s.peer, s.scr); err != nil {
			return nil, err
		}
		cl.guard(func() {
			if s.peer < r {
				combineLeft(op, s.scr, acc)
			} else {
				combineRight(op, acc, s.scr)
			}
		})
	}
	for i := lg - 1; i >= 0; i-- {
		s := steps[i]
		if err := send(s.peer, out[s.keepLo:s.keepHi]); err != nil {
			return nil, err
		}
		if err := wait(ag[i], s.peer, out[s.giveLo:s.giveHi]); err != nil {
			return nil, err
		}
	}
	if folds {
		if err := send(r-1, out); err != nil {
			return nil, err
		}
	}
	if err := waitSends(); err != nil {
		return nil, err
	}
	scratchPool.Put(scratchBuf) // every request is complete: nothing uses it
	return out, nil
}
