package agent

import (
	"encoding/json"
	"errors"
	"io"
	"sync"
)

// OutputBudget bounds the bytes of the ranks' output an agent holds for
// the launcher (plus one line, which may be up to 1 MiB): past it, the
// ranks' output pauses (their writes block) until the launcher has read
// more.
const OutputBudget = 1 << 20

// errAborted is what puts return once the outbox was aborted.
var errAborted = errors.New("agent: output abandoned: the launcher is gone")

// outbox is the agent's stdout: messages queued in order and written by
// one goroutine (run), so that nothing but the ranks' output ever waits for
// the stream. Output lines wait while OutputBudget bytes are queued; other
// messages (started, exit) never wait, and there are at most two per rank.
type outbox struct {
	w     io.Writer
	limit int
	ready chan struct{} // one token: something was queued, or the state changed
	done  chan struct{} // closed when run returns

	mu     sync.Mutex
	q      [][]byte      // encoded messages, in order
	n      int           // bytes queued or being written
	room   chan struct{} // closed (and replaced) when bytes were written
	closed bool          // no more messages: run returns once q is written
	err    error         // a write failed, or abort: messages are dropped
}

func newOutbox(w io.Writer, limit int) *outbox {
	return &outbox{w: w, limit: limit, ready: make(chan struct{}, 1), done: make(chan struct{}),
		room: make(chan struct{})}
}

// put queues m. With wait, it first waits while the queue is over its
// budget (never while it is empty). It returns an error once the stream has
// failed or was abandoned; m is then dropped.
func (o *outbox) put(m Msg, wait bool) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	o.mu.Lock()
	for wait && o.err == nil && o.n > 0 && o.n+len(b) > o.limit {
		room := o.room
		o.mu.Unlock()
		<-room
		o.mu.Lock()
	}
	if o.err == nil && o.closed {
		o.err = errors.New("agent: output already closed")
	}
	if err := o.err; err != nil {
		o.mu.Unlock()
		return err
	}
	o.q = append(o.q, b)
	o.n += len(b)
	o.mu.Unlock()
	o.wake()
	return nil
}

func (o *outbox) wake() {
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// stop ends the outbox with err (nil: close once everything queued is
// written; else drop what is queued and fail later puts).
func (o *outbox) stop(err error) {
	o.mu.Lock()
	o.closed = true
	if err != nil && o.err == nil {
		o.err = err
		for _, b := range o.q {
			o.n -= len(b)
		}
		o.q = nil
		close(o.room) // wakes waiting puts, which fail
		o.room = make(chan struct{})
	}
	o.mu.Unlock()
	o.wake()
}

// close lets run return once everything queued is written.
func (o *outbox) close() { o.stop(nil) }

// abort drops what is queued and fails every put from now on, waking the
// puts that wait for room. A write in progress is not interrupted: run may
// stay blocked in it (a stream whose other end is unreachable).
func (o *outbox) abort() { o.stop(errAborted) }

// run writes queued messages in batches until close (once the queue is
// empty), abort, or a failed write.
func (o *outbox) run() {
	defer close(o.done)
	var buf []byte
	for {
		o.mu.Lock()
		for len(o.q) == 0 || o.err != nil {
			if o.err != nil || o.closed {
				o.mu.Unlock()
				return
			}
			o.mu.Unlock()
			<-o.ready
			o.mu.Lock()
		}
		batch := o.q
		o.q = nil
		o.mu.Unlock()
		buf = buf[:0]
		for _, b := range batch {
			buf = append(buf, b...)
		}
		_, err := o.w.Write(buf)
		o.mu.Lock()
		o.n -= len(buf)
		if err != nil && o.err == nil {
			o.err = err
		}
		close(o.room)
		o.room = make(chan struct{})
		o.mu.Unlock()
		if cap(buf) > 4*o.limit {
			buf = nil
		}
	}
}
