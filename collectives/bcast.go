package collectives

import (
	"context"
	"sync/atomic"

	"github.com/decorun/decorun/comm"
)

// bcastLarge is the encoded size from which Bcast uses scatter + ring
// allgather instead of a binomial tree (with 3 or more ranks).
const bcastLarge = 256 << 10

// fanouts counts the Bcasts that used NATS's fan-out, on all ranks of this
// process (for tests).
var fanouts atomic.Int64

// fanMax is the largest encoded value this rank can receive or send by
// fan-out in a Bcast on s: comm's limit (one eager frame; 0 where it cannot
// fan out), which the agreement step reduces to the smallest over ranks.
func fanMax(s *comm.Comm) int { return s.MulticastMax() }

// Bcast sends root's v to every rank of c and returns it; the other ranks'
// v is ignored. At the root it returns v itself. It blocks until this rank
// has its copy and has passed it on.
func Bcast[T any](ctx context.Context, c *comm.Comm, v T, root int) (T, error) {
	var zero T
	cl := begin(ctx, c, opBcast)
	defer cl.release()
	k := valuesOf[T]()
	var buf []byte
	var bad error
	if cl.r == root {
		var err error
		if buf, err = k.encode(v); err != nil {
			bad = invalid(cl.op, err, "root's value")
		}
	}
	if cl.r == root {
		cl.offer(buf)
	} else {
		cl.offerNone()
	}
	a := params{typ: k.hash, rooted: true, root: root, length: len(buf), lenRule: lenRoot, fan: fanMax(cl.s), bad: bad}
	if cl.h != nil {
		return bcastHier(ctx, cl, k, v, buf, a, root)
	}
	s, err := cl.check(ctx, a)
	if err != nil {
		return zero, cl.wrap(err)
	}
	if cl.p == 1 {
		return v, nil
	}
	if cl.fused(s) {
		defer cl.done()
		if cl.r == root {
			return v, nil
		}
		out, err := k.decode(cl.data(root))
		return out, cl.wrap(err)
	}
	n := int(s[fLen].Max)
	out, direct := zero, false
	if cl.r != root {
		if out, buf, direct = k.alloc(n); !direct {
			buf = make([]byte, n)
		}
	}
	switch {
	case s[fFan].Min > 0 && n <= int(s[fFan].Min) && cl.p >= 3:
		err = cl.bcastFanout(ctx, buf, root)
	case n < bcastLarge || cl.p < 3:
		err = cl.bcastTree(ctx, buf, root)
	default:
		err = cl.bcastScatterRing(ctx, buf, root)
	}
	switch {
	case err != nil:
		return zero, cl.wrap(err)
	case cl.r == root:
		return v, nil
	case direct:
		return out, nil
	}
	out, err = k.decode(buf)
	return out, cl.wrap(err)
}

// bcastFanout is one NATS publish by the root, which the server delivers to
// every rank (comm.Multicast): every rank agreed that it can take part.
func (cl *call) bcastFanout(ctx context.Context, buf []byte, root int) error {
	cl.algo("fan-out (NATS multicast)")
	fanouts.Add(1)
	if cl.r == root {
		return cl.s.Multicast(ctx, cl.tag|fanoutBit, buf)
	}
	st, err := cl.s.RecvInto(ctx, buf, root, cl.tag|fanoutBit)
	if err == nil && st.Size != len(buf) {
		err = errSize(root, st.Size, len(buf))
	}
	return err
}

// bcastTree is the binomial tree over ranks relative to root: rank rel
// receives from rel minus its lowest set bit and sends to rel+2^j for the
// lower bits j.
func (cl *call) bcastTree(ctx context.Context, buf []byte, root int) error {
	cl.algo("binomial tree")
	p := cl.p
	rel := (cl.r - root + p) % p
	mask := 1
	for ; mask < p; mask <<= 1 {
		if rel&mask != 0 {
			if err := cl.recvInto(ctx, cl.abs(rel-mask, root), buf); err != nil {
				return err
			}
			break
		}
	}
	var reqs []*comm.Request
	for mask >>= 1; mask > 0; mask >>= 1 {
		if rel+mask < p {
			q, err := cl.s.Isend(cl.abs(rel+mask, root), cl.tag, buf)
			if err != nil {
				cancelAll(reqs)
				return err
			}
			reqs = append(reqs, q)
		}
	}
	return comm.WaitAll(ctx, reqs...)
}

// bcastScatterRing splits buf into p pieces, piece j for relative rank j,
// scatters them down the binomial tree (a subtree's pieces are contiguous)
// and then runs a ring allgather in which nobody sends to the root.
func (cl *call) bcastScatterRing(ctx context.Context, buf []byte, root int) error {
	cl.algo("scatter + ring allgather")
	p, n := cl.p, len(buf)
	cs := (n + p - 1) / p
	pieces := func(lo, hi int) []byte { return buf[min(lo*cs, n):min(hi*cs, n)] }
	rel := (cl.r - root + p) % p
	mask := 1
	for ; mask < p; mask <<= 1 {
		if rel&mask != 0 {
			if err := cl.recvInto(ctx, cl.abs(rel-mask, root), pieces(rel, rel+mask)); err != nil {
				return err
			}
			break
		}
	}
	for mask >>= 1; mask > 0; mask >>= 1 {
		if rel+mask < p {
			if err := cl.send(ctx, cl.abs(rel+mask, root), pieces(rel+mask, rel+2*mask)); err != nil {
				return err
			}
		}
	}
	next, prev := cl.abs(rel+1, root), cl.abs(rel+p-1, root)
	toRoot, isRoot := rel == p-1, rel == 0
	for s := 0; s < p-1; s++ {
		sj, rj := (rel-s+p)%p, (rel-1-s+2*p)%p
		var err error
		switch {
		case isRoot:
			err = cl.send(ctx, next, pieces(sj, sj+1))
		case toRoot:
			err = cl.recvInto(ctx, prev, pieces(rj, rj+1))
		default:
			err = cl.exchangeInto(ctx, next, pieces(sj, sj+1), prev, pieces(rj, rj+1))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func cancelAll(reqs []*comm.Request) {
	for _, q := range reqs {
		if q != nil {
			q.Cancel()
		}
	}
}
