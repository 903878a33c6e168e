package deco

// Tracing hooks (decorun --trace, --report): each rank records the tasks
// it runs; rank 0 records every task's life from queued to settled. See
// package internal/trace.

import "github.com/decorun/decorun/internal/trace"

// traceTask records a task of fn that ran here from t0 (0: not tracing).
func traceTask(fn *entry, t0 int64, failed bool) {
	if t0 == 0 {
		return
	}
	ev := trace.Event{Kind: trace.KindTask, Name: fn.name, Peer: -1, Start: t0, End: trace.Now()}
	if failed {
		ev.Flags = trace.FlagErr
	}
	trace.Record(ev)
}

// traceSettled records t's life on rank 0, from queued to now: the rank it
// ran on and whether it was rerun. e.mu held.
func traceSettled(t *task) {
	if t.queued == 0 {
		return
	}
	ev := trace.Event{Kind: trace.KindTaskLife, Name: t.fn.name, Peer: int32(t.rank), Start: t.queued, End: trace.Now()}
	if t.retried {
		ev.Flags |= trace.FlagRetried
	}
	if t.err != nil {
		ev.Flags |= trace.FlagErr
	}
	trace.Record(ev)
}
