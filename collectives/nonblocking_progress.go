package collectives

import (
	"sync"
	"time"

	"github.com/decorun/decorun/comm"
)

// Progress of nonblocking calls. Each communicator with nonblocking calls
// not known to be complete has an engine: the calls in the order they
// started, and at most one progress goroutine, which completes them one
// after another in that order (their order among the communicator's
// collective calls) and ends when none is left. Calls whose caller
// finishes them (Wait, Test, a later call) leave the queue when the
// goroutine or the engine's timer next looks.

// job is a started call as its engine sees it.
type job interface {
	progress() // completes the call; returns once it is complete
	done() bool
	// due: the progress goroutine is to complete the call (set once it
	// is, or a call after it is).
	due() bool
	setDue()
}

type engine struct {
	c       *comm.Comm
	jobs    []job // not known complete, in start order
	running bool  // the progress goroutine runs
	armed   bool  // the timer is set
	timer   *time.Timer
}

var (
	enginesMu sync.Mutex
	// engines has an entry exactly while its communicator has a
	// progress goroutine running or its timer set.
	engines = map[*comm.Comm]*engine{}
)

// prune drops the complete calls at the head of the queue. enginesMu held.
func (e *engine) prune() {
	i := 0
	for i < len(e.jobs) && e.jobs[i].done() {
		i++
	}
	if i > 0 {
		n := copy(e.jobs, e.jobs[i:])
		clear(e.jobs[n:])
		e.jobs = e.jobs[:n]
	}
}

// enqueue adds a started call to c's engine. now: the progress goroutine
// is to complete it (and the calls before it) at once; otherwise it does
// once progressDelay has passed, if the call is not complete by then.
func enqueue(c *comm.Comm, j job, now bool) {
	enginesMu.Lock()
	e := engines[c]
	if e == nil {
		e = &engine{c: c}
		engines[c] = e
	}
	e.prune()
	e.jobs = append(e.jobs, j)
	if now {
		e.allDue()
		e.run()
	} else {
		e.arm()
	}
	enginesMu.Unlock()
}

// allDue makes every queued call due. enginesMu held.
func (e *engine) allDue() {
	for _, j := range e.jobs {
		j.setDue()
	}
}

// run starts the progress goroutine unless it runs. enginesMu held.
func (e *engine) run() {
	if !e.running {
		e.running = true
		go e.work()
	}
}

// arm sets the timer unless it is set. enginesMu held.
func (e *engine) arm() {
	if e.armed {
		return
	}
	e.armed = true
	if e.timer == nil {
		e.timer = time.AfterFunc(progressDelay, e.fire)
	} else {
		e.timer.Reset(progressDelay)
	}
}

// fire makes the calls still not complete due and starts the progress
// goroutine for them.
func (e *engine) fire() {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	e.armed = false
	e.prune()
	switch {
	case len(e.jobs) > 0:
		e.allDue()
		e.run()
	case !e.running:
		delete(engines, e.c)
	}
}

// work is the progress goroutine: it completes the engine's due calls in
// order and ends once none is left (the timer makes the others due).
func (e *engine) work() {
	for {
		enginesMu.Lock()
		e.prune()
		if len(e.jobs) == 0 || !e.jobs[0].due() {
			e.running = false
			switch {
			case len(e.jobs) > 0:
				e.arm()
			case !e.armed:
				delete(engines, e.c)
			}
			enginesMu.Unlock()
			return
		}
		j := e.jobs[0]
		enginesMu.Unlock()
		j.progress()
	}
}

// atHead reports whether j is the first call on c not known complete.
func atHead(c *comm.Comm, j job) bool {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	e := engines[c]
	if e == nil {
		return false
	}
	e.prune()
	return len(e.jobs) > 0 && e.jobs[0] == j
}

// workers is the number of communicators with a progress goroutine
// running or about to start (tests).
func workers() int {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	return len(engines)
}
