package collectives

// Tracing hooks (decorun --trace, --report): every public call records
// one event, from its begin to its end, with the algorithm it took and the
// bytes this rank gave it. See package internal/trace.

import "github.com/decorun/decorun/internal/trace"

// traceBegin notes when the call began, if this process records.
func (cl *call) traceBegin() {
	if cl.t0 != 0 {
		return // a nonblocking call's number, taken when it started
	}
	cl.t0 = trace.Now()
	if cl.t0 != 0 && cl.h != nil {
		cl.alg = "hierarchical"
	}
}

// algo names the algorithm the call took (the first named stands: a
// hierarchical call's or a fused one's).
func (cl *call) algo(name string) {
	if cl.t0 != 0 && cl.alg == "" {
		cl.alg = name
	}
}

// end records the call; deferred by every public collective.
func (cl *call) end() {
	if cl.t0 == 0 || cl.ahead {
		return
	}
	trace.Record(trace.Event{Kind: trace.KindColl, Name: cl.op.String(), Peer: -1, Start: cl.t0, End: trace.Now(),
		Bytes: int64(cl.nbytes), Detail: cl.alg})
}
