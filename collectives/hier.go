package collectives

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/decorun/decorun/comm"
	"github.com/decorun/decorun/internal/agree"
)

// Hierarchical calls on a communicator whose ranks span hosts (see the
// package doc, Across hosts): a call is three steps. Up: the ranks of each
// host post their headers and payloads in their host's region (or send
// them by messages to the leader, the host's lowest rank); the leader
// folds what its host contributes. Across: the leaders exchange their
// hosts' summaries and contributions (Bruck's allgather), and each folds
// them, in host order, into the same global summary and result. Down: the
// leader posts both in the host's region (or sends them down a binomial
// tree), and every rank returns what the global summary says: the same
// errors as the flat agreement, or the result.

// hierCalls counts the calls run hierarchically in this process (tests).
var hierCalls atomic.Int64

// hier is a call's parts on the sub-communicators of c's comm.HostGroups,
// numbered when the call is (begin), so that they are made in the order of
// the calls on c, nonblocking ones included.
type hier struct {
	hg       *comm.HostGroups
	lead     int   // c's rank of this host's leader
	up, down *call // on hg.Host
	leaders  *call // on hg.Leaders; nil unless this rank leads its host
}

// beginHier numbers the parts of a call of op on c, or returns nil when c
// does not span hosts (c.HostGroups).
func beginHier(c *comm.Comm, op opcode) *hier {
	hg := c.HostGroups()
	if hg == nil {
		return nil
	}
	h := &hier{hg: hg, lead: hg.Leader[hg.HostIndex], up: subCall(hg.Host, op), down: subCall(hg.Host, op)}
	if hg.Leaders != nil {
		h.leaders = subCall(hg.Leaders, op)
	}
	return h
}

func init() { agree.Hier = hierAgree }

// hierAgree is the agreement of comm's Split and Dup on a communicator
// that spans hosts: the same steps as a collective's (agree.Hier).
func hierAgree(ctx context.Context, x any, h header, s *summary) (bool, error) {
	c, ok := x.(*comm.Comm)
	if !ok {
		return false, nil
	}
	op := opcode(h[fOp])
	hh := beginHier(c, op)
	if hh == nil {
		return false, nil
	}
	cl := &call{op: op, s: c.Shadow(), p: c.Size(), r: c.Rank(), h: hh, keep: true}
	var err error
	*s, _, err = cl.hierRun(ctx, h, nil)
	return true, err
}

func subCall(c *comm.Comm, op opcode) *call {
	ac := agree.Begin(c)
	return &call{op: op, s: c.Shadow(), tag: ac.Tag, p: c.Size(), r: c.Rank(), ac: ac, keep: true}
}

// hierOp is what a call with data does in its three steps.
type hierOp struct {
	payload []byte // this rank's contribution (posted even when empty)
	a       params // for the checks that decide whether data moves
	// local folds the payloads of the host's ranks, in rank order, into
	// the host's contribution (at the leader); global folds the hosts'
	// contributions, in host order, into the result (at every leader).
	// Neither may keep its arguments, which may be views of shared
	// memory; a failure of op is left in cl.failed.
	local, global func(blocks [][]byte) ([]byte, error)
}

// Flags of a leader's contribution and of the result.
const (
	hierData   = 0 // data follows
	hierNoData = 1 // the calls do not fit together: nothing moved
	hierFailed = 2 // op failed: "rank:message" follows
)

// hierRun runs a call hierarchically and returns the global summary and
// the result (nil when op is nil: the agreement alone, as every call on c
// that does not move its data this way runs its agreement step).
func (cl *call) hierRun(ctx context.Context, h header, op *hierOp) (summary, []byte, error) {
	hierCalls.Add(1)
	hh := cl.h
	up, leader := hh.up, hh.leaders != nil
	if op != nil {
		up.offer(op.payload)
	}
	sp, err := up.agree(ctx, h)
	s := *sp // up's call ends below; its summary goes on
	if err != nil {
		hh.down.ac.Skip()
		return s, nil, err
	}
	// Data moves within the host when its ranks' calls fit together: a
	// decision every rank of the host makes alike, from the host's summary.
	data := op != nil && cl.verdict(&s, op.a) == nil
	var mine []byte
	if !leader {
		if data && !up.fused(&s) {
			_, err = up.gathered(ctx, &s, op.payload, 0) // to the leader
		}
		up.done()
	} else {
		mine, err = cl.hierLocal(ctx, s, op, data)
	}
	if err != nil {
		hh.down.ac.Skip()
		return s, nil, err
	}
	var out []byte
	if leader {
		if out, err = cl.hierAcross(ctx, mine, op); err != nil {
			hh.down.ac.Skip()
			return s, nil, err
		}
	}
	if out, err = cl.hierDown(ctx, out); err != nil {
		return s, nil, err
	}
	return cl.hierResult(out)
}

// hierLocal is the leader's part of the up step: the host's summary and
// contribution, packed.
func (cl *call) hierLocal(ctx context.Context, s summary, op *hierOp, data bool) ([]byte, error) {
	up := cl.h.up
	defer up.done()
	flag, b := byte(hierNoData), []byte(nil)
	if data {
		blocks, err := up.gathered(ctx, &s, op.payload, 0)
		if err != nil {
			return nil, err
		}
		if b, err = op.local(blocks); err != nil {
			return nil, err
		}
		flag = hierData
	}
	if op == nil {
		flag = hierData
	}
	s.Shift(cl.h.lead)
	s[fData] = agree.Field{Min: -1, Max: -1}
	return cl.hierPack(s, flag, b), nil
}

// hierPack is a summary, a flag and data, or a failure of op.
func (cl *call) hierPack(s summary, flag byte, b []byte) []byte {
	if cl.failed != nil {
		flag, b = hierFailed, []byte(strconv.Itoa(cl.failed.Rank)+":"+cl.failed.Msg)
	}
	out := make([]byte, 0, agree.SummaryBytes+1+len(b))
	out = append(append(append(out, s.Marshal()...), flag), b...)
	return out
}

// hierUnpack splits what hierPack packed.
func hierUnpack(b []byte) (summary, byte, []byte, error) {
	var s summary
	if err := s.Unmarshal(b); err != nil || len(b) < agree.SummaryBytes+1 {
		return s, 0, nil, fmt.Errorf("a host's part of %d bytes is too short", len(b))
	}
	return s, b[agree.SummaryBytes], b[agree.SummaryBytes+1:], nil
}

// hierDirect: up to this many hosts, each leader sends its host's part to
// every other leader at once (one round), instead of Bruck's ⌈lg h⌉.
const hierDirect = 8

// hierAcross is the leaders' step: every leader gets every host's part,
// merges the summaries and folds the contributions, alike.
func (cl *call) hierAcross(ctx context.Context, mine []byte, op *hierOp) ([]byte, error) {
	var parts [][]byte
	var err error
	if l := cl.h.leaders; l.p <= hierDirect {
		parts, err = l.allgatherDirect(ctx, mine)
	} else {
		parts, err = l.allgatherBlocks(ctx, mine)
	}
	if err != nil {
		return nil, err
	}
	var g summary
	flag := byte(hierData)
	var failed []byte
	blobs := make([][]byte, len(parts))
	for i, p := range parts {
		s, f, b, err := hierUnpack(p)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			g = s
		} else {
			g.Merge(&s)
		}
		switch {
		case f == hierFailed && failed == nil:
			failed = b
		case f == hierNoData:
			flag = hierNoData
		}
		blobs[i] = b
	}
	var res []byte
	switch {
	case failed != nil:
		return cl.hierPackRaw(g, hierFailed, failed), nil
	case op == nil:
	case flag == hierNoData || cl.verdict(&g, op.a) != nil:
		flag = hierNoData
	default:
		if res, err = op.global(blobs); err != nil {
			return nil, err
		}
	}
	return cl.hierPack(g, flag, res), nil
}

// allgatherDirect sends mine to every other rank and receives theirs, all
// at once: one round.
func (cl *call) allgatherDirect(ctx context.Context, mine []byte) ([][]byte, error) {
	out := make([][]byte, cl.p)
	out[cl.r] = mine
	var sends []*comm.Request
	defer func() {
		for _, q := range sends {
			q.Cancel() // none left on success
		}
	}()
	for d := 1; d < cl.p; d++ {
		q, err := cl.s.Isend((cl.r+d)%cl.p, cl.tag, mine)
		if err != nil {
			return nil, err
		}
		sends = append(sends, q)
	}
	for d := 1; d < cl.p; d++ {
		src := (cl.r - d + cl.p) % cl.p
		b, err := cl.recv(ctx, src)
		if err != nil {
			return nil, err
		}
		out[src] = b
	}
	for _, q := range sends {
		if _, err := q.Wait(ctx); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (cl *call) hierPackRaw(s summary, flag byte, b []byte) []byte {
	return append(append(s.Marshal(), flag), b...)
}

// hierDown is the down step: the leader's result to every rank of the
// host, through the region when it fits, else down a binomial tree.
func (cl *call) hierDown(ctx context.Context, out []byte) ([]byte, error) {
	d := cl.h.down
	h := header{fOp: int64(cl.op.Wire()), fLen: -1}
	if d.r == 0 {
		h[fLen] = int64(len(out))
		d.offer(out)
	} else {
		d.offerNone()
	}
	s, err := d.agree(ctx, h)
	if err != nil {
		return nil, err
	}
	if d.fused(s) {
		if d.r != 0 {
			out = bytes.Clone(d.data(0))
		}
		d.done()
		return out, nil
	}
	if d.r != 0 {
		n := s[fLen].Max
		if n < 0 || n > 1<<40 {
			return nil, fmt.Errorf("the host's leader sent a result of %d bytes", n)
		}
		out = make([]byte, n)
	}
	return out, d.bcastTree(ctx, out, 0)
}

// hierResult reads the down step's result.
func (cl *call) hierResult(out []byte) (summary, []byte, error) {
	s, flag, b, err := hierUnpack(out)
	if err != nil {
		return s, nil, err
	}
	if flag == hierFailed && cl.failed == nil {
		e := &OpError{Op: cl.op.String(), Rank: -1}
		if r, msg, ok := bytes.Cut(b, []byte(":")); ok {
			if n, err := strconv.Atoi(string(r)); err == nil {
				e.Rank, e.Msg = n, string(msg)
			}
		}
		cl.failed = e
	}
	if flag != hierData {
		b = nil
	}
	return s, b, nil
}

// hierCall runs a call with data hierarchically: the error every rank
// returns, or the result.
func (cl *call) hierCall(ctx context.Context, op *hierOp) ([]byte, error) {
	s, b, err := cl.hierRun(ctx, cl.header(op.a), op)
	if err != nil {
		return nil, cl.wrap(err)
	}
	if err := cl.verdict(&s, op.a); err != nil {
		return nil, err
	}
	if err := cl.result(); err != nil {
		return nil, err
	}
	return b, nil
}

// bcastHier is Bcast across hosts: root's value goes up to its host's
// leader, across to the others, and down.
func bcastHier[T any](ctx context.Context, cl *call, k values[T], v T, buf []byte, a params, root int) (T, error) {
	b, err := cl.bcastBytes(ctx, buf, nil, 1, a, root)
	if err != nil || cl.r == root {
		return v, err
	}
	out, err := k.decode(b)
	return out, cl.wrap(err)
}

// bcastIntoHier is BcastInto across hosts, as bcastHier.
func bcastIntoHier[E any](ctx context.Context, cl *call, k elems[E], buf []E, a params, root int) error {
	var mine []byte
	if cl.r == root {
		mine = k.view(buf)
	}
	b, err := cl.bcastBytes(ctx, mine, k.view(buf), k.size, a, root)
	if err != nil || cl.r == root {
		return err
	}
	if len(b) != len(buf)*k.size {
		return cl.wrap(errSize(root, len(b), len(buf)*k.size))
	}
	if &b[0] != &k.view(buf)[0] {
		copy(k.view(buf), b)
	}
	return nil
}

// bcastBytes is root's buf on every rank (buf elsewhere is ignored). A
// value of bcastLarge bytes or more goes by the flat algorithms after the
// hierarchical agreement, which tells every rank its length (through the
// leaders, 1 MiB took 19.6–25.4 ms on 3 namespace hosts × 2 ranks, flat
// 12.5–18.9 ms); into dst, when it has that length, else a new slice.
// The agreement's length is in units of unit bytes.
func (cl *call) bcastBytes(ctx context.Context, buf, dst []byte, unit int, a params, root int) ([]byte, error) {
	hg := cl.h.hg
	pick := func(blocks [][]byte) ([]byte, error) { return slices.Clone(blocks[hg.HostOf(root)]), nil }
	payload := buf
	if len(buf) >= bcastLarge {
		payload = nil
	}
	op := &hierOp{payload: payload, a: a, global: pick, local: func(blocks [][]byte) ([]byte, error) {
		if i := root - cl.h.lead; hg.HostOf(root) == hg.HostIndex && i < len(blocks) {
			return slices.Clone(blocks[i]), nil
		}
		return nil, nil
	}}
	s, b, err := cl.hierRun(ctx, cl.header(a), op)
	if err != nil {
		return nil, cl.wrap(err)
	}
	if err := cl.verdict(&s, a); err != nil {
		return nil, err
	}
	n := int(s[fLen].Max) * unit // root's length
	if n < bcastLarge {
		return b, nil
	}
	if cl.r == root {
		dst = buf
	} else if len(dst) != n {
		dst = make([]byte, n)
	}
	switch {
	case s[fFan].Min > 0 && n <= int(s[fFan].Min):
		err = cl.bcastFanout(ctx, dst, root)
	default:
		err = cl.bcastScatterRing(ctx, dst, root)
	}
	return dst, cl.wrap(err)
}

// reduceHier is Reduce (root ≥ 0) and Allreduce (root -1) of whole values
// across hosts: each leader folds its host's values, in rank order, and
// every leader the hosts' folds, in host order.
func reduceHier[T any](ctx context.Context, cl *call, k values[T], v T, op func(a, b T) T, a params, root int) (T, error) {
	var zero T
	fold := func(blocks [][]byte) ([]byte, error) {
		var acc T
		for i, b := range blocks {
			x, err := k.decode(b)
			if err != nil {
				return nil, err
			}
			if i == 0 {
				acc = x
				continue
			}
			cl.guard(func() { acc = op(acc, x) })
		}
		if cl.failed != nil {
			return nil, nil
		}
		b, err := k.encode(acc)
		if err != nil {
			cl.failEncode(err)
			return nil, nil
		}
		return slices.Clone(b), nil
	}
	var payload []byte
	if a.bad == nil {
		payload, _ = k.encode(v)
	}
	b, err := cl.hierCall(ctx, &hierOp{payload: payload, a: a, local: fold, global: fold})
	if err != nil || root >= 0 && cl.r != root {
		return zero, err
	}
	out, err := k.decode(b)
	return out, cl.wrap(err)
}

// hierFlat tells ReduceSlice and AllreduceSlice across hosts to move
// vectors of numbers of sliceLarge bytes or more by the flat algorithms
// (Rabenseifner's and recursive halving), after the hierarchical
// agreement: they spread the data over every rank's connections, where
// the leaders' exchange sends whole vectors over one connection per host
// (3 hosts × 2 ranks, 64 KiB: 7.5–8.6 ms flat, 8.7–9.3 ms through the
// leaders; 256 KiB: 7.4–8.2 against 16.8–18.6 ms). Every rank of a call
// that fits together passes the same length, so all choose alike; when
// lengths differ, every rank still runs the same steps and gets the
// agreement's error.
func hierFlat[E any](k elems[E], n int) bool { return k.raw && n*k.size >= sliceLarge }

// sliceHier is ReduceSlice (root ≥ 0) and AllreduceSlice (root -1) across
// hosts, element-wise, folding as reduceHier does; the result goes into out.
func sliceHier[E any](ctx context.Context, cl *call, k elems[E], v, out []E, op func(a, b E) E, a params, root int) error {
	fold := func(blocks [][]byte) ([]byte, error) {
		var acc []E
		for i, b := range blocks {
			x, err := k.decode(b)
			if err != nil {
				return nil, err
			}
			if i == 0 {
				acc = x
				continue
			}
			if len(x) != len(acc) {
				return nil, fmt.Errorf("a contribution of %d elements, want %d", len(x), len(acc))
			}
			cl.guard(func() { combineRight(op, acc, x) })
		}
		if cl.failed != nil {
			return nil, nil
		}
		return k.encode(acc) // acc is new: no copy
	}
	var payload []byte
	if a.bad == nil {
		payload, _ = k.encode(v)
	}
	b, err := cl.hierCall(ctx, &hierOp{payload: payload, a: a, local: fold, global: fold})
	if err != nil || root >= 0 && cl.r != root {
		return err
	}
	if k.raw {
		if len(b) != len(out)*k.size {
			return cl.wrap(errSize(cl.h.lead, len(b), len(out)*k.size))
		}
		copy(k.view(out), b)
		return nil
	}
	res, err := k.decode(b)
	if err == nil && len(res) != len(out) {
		err = fmt.Errorf("a result of %d elements, want %d", len(res), len(out))
	}
	copy(out, res)
	return cl.wrap(err)
}
