package comm

// Tracing hooks (decorun --trace, --report): see package internal/trace.
// Every hook first takes trace.Now(), which is 0 when this process does not
// record; then nothing else happens.

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/trace"
)

// The process's tracing state, set by Init.
var (
	traceDest   string // trace.ToLauncher or a path prefix; "": off
	clockOffset int64  // launcher clock - this clock, ns
	clockRTT    int64  // the round trip it was measured with; 0: not measured
	flushOnce   sync.Once
	sigStop     func() // ends the signal watcher
)

// startTrace turns recording on when the environment asks for it (before
// the job is joined, so that the start-up barrier is recorded).
func startTrace() error {
	cfg, err := trace.FromEnv()
	if err != nil {
		return fmt.Errorf("comm: %w", err)
	}
	if cfg.Dest == "" {
		return nil
	}
	traceDest = cfg.Dest
	trace.Start(cfg.Events, cfg.Sites)
	return nil
}

// joinedTrace records the start-up (from t0), measures the clock offset to
// the launcher and watches for the signals that stop a job, so that the
// recording is shipped before the rank dies.
func (c *Comm) joinedTrace(ctx context.Context, t0 int64) {
	if t0 == 0 {
		return
	}
	// Only Init's world is traced: an intercommunicator's job (Spawn) or a
	// world of Connect numbers its ranks and messages apart.
	c.e.mu.Lock()
	c.e.traced = true
	c.e.mu.Unlock()
	trace.Record(trace.Event{Kind: trace.KindJob, Name: "start-up", Peer: -1, Start: t0, End: trace.Now(),
		Detail: fmt.Sprintf("%d ranks, joined by %s", c.size, c.job.Joined)})
	if c.nats != nil && traceDest == trace.ToLauncher {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		for range 5 {
			t1 := time.Now().UnixNano()
			reply, err := c.nats.Request(ctx, jobenv.ClockSubject(c.job.Prefix), nil)
			t2 := time.Now().UnixNano()
			if err != nil {
				break
			}
			if off, rtt, ok := trace.Offset(t1, t2, reply); ok && (clockRTT == 0 || rtt < clockRTT) {
				clockOffset, clockRTT = off, max(rtt, 1)
			}
		}
		cancel()
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case sig := <-ch:
			c.flushTrace("signal " + sig.String())
			// Die by the same signal, as the rank would have.
			signal.Reset(syscall.SIGTERM, syscall.SIGINT)
			if s, ok := sig.(syscall.Signal); ok {
				syscall.Kill(os.Getpid(), s)
			}
		case <-done:
		}
	})
	sigStop = func() {
		signal.Stop(ch)
		close(done)
		wg.Wait()
	}
}

// flushTrace ships this process's recording, once: to the launcher in
// chunks, or in join mode to the file DECORUN_TRACE.rank<N>.
func (c *Comm) flushTrace(reason string) {
	if !trace.On() {
		return
	}
	flushOnce.Do(func() {
		now := trace.Now()
		trace.Record(trace.Event{Kind: trace.KindJob, Name: reason, Peer: -1, Start: now, End: now})
		d := trace.Take(c.rank, c.size, c.host, clockOffset, clockRTT, reason)
		enc, err := d.Encode()
		if err != nil {
			fmt.Fprintf(os.Stderr, "comm: rank %d: %v\n", c.rank, err)
			return
		}
		if traceDest != trace.ToLauncher {
			path := fmt.Sprintf("%s.rank%d", traceDest, c.rank)
			if err := os.WriteFile(path, enc, 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "comm: rank %d: writing the trace: %v\n", c.rank, err)
			}
			return
		}
		if c.nats == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, ch := range trace.Chunks(c.rank, enc, c.nats.MaxFrame()-4096) {
			if _, err := c.nats.Request(ctx, jobenv.TraceSubject(c.job.Prefix), ch); err != nil {
				fmt.Fprintf(os.Stderr, "comm: rank %d: sending the trace to decorun: %v\n", c.rank, err)
				return
			}
		}
	})
}

// endTrace ships the recording at Close of Init's world and stops
// watching signals.
func (c *Comm) endTrace() {
	if !c.e.traced {
		return
	}
	c.flushTrace("close")
	if sigStop != nil {
		sigStop()
		sigStop = nil
	}
}

// now is trace.Now() for a call on a communicator of Init's world, and 0
// (not recorded) for others and when this process does not record.
// traced is set before Init returns and never changes after.
func (c *Comm) now() int64 {
	if !c.e.traced {
		return 0
	}
	return trace.Now()
}

// traceEv records a call of c that began at t0; peer is a world rank (or
// AnySource, -1).
func (c *Comm) traceEv(k trace.Kind, op string, t0 int64, peer, tag, n int, id uint64, err error) {
	ev := trace.Event{Kind: k, Name: op, Peer: int32(peer), Tag: int32(tag), Start: t0, End: trace.Now(),
		Bytes: int64(n), Comm: c.id, ID: id}
	if err != nil {
		ev.Kind, ev.Flags = trace.KindCall, trace.FlagErr
	}
	trace.Record(ev)
}

// traceRecv records receive r, which ended with err.
func (c *Comm) traceRecv(op string, t0 int64, src, tag int, r *rreq, err error) {
	if err != nil {
		c.traceEv(trace.KindRecv, op, t0, c.toWorld(src), tag, 0, 0, err)
		return
	}
	c.traceEv(trace.KindRecv, op, t0, r.st.Source, r.st.Tag, r.st.Size, r.msgID, nil)
}

// traceDone records the completion of receive request q, seen by op
// (Wait, Test, Waitany) which began at t0.
func (q *Request) traceDone(op string, t0 int64) {
	if t0 == 0 || !q.c.e.traced {
		return
	}
	q.c.traceRecv(op, t0, q.peer, q.st.Tag, q.r, q.err)
}

// traceLost records that world rank r was lost.
func traceLost(r int, how string) {
	if now := trace.Now(); now != 0 {
		trace.Record(trace.Event{Kind: trace.KindJob, Name: "rank lost", Peer: int32(r), Start: now, End: now, Detail: how})
	}
}
