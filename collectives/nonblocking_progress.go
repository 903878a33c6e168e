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
// goroutine or the engine's timer next looks. The timer makes a call due
// progressDelay after it started, not sooner: one armed for an earlier
// call is set again for the later calls' own times when it fires.

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
	jobs    []entry // not known complete, in start order
	running bool    // the progress goroutine runs
	armed   bool    // the timer is set
	timer   *time.Timer
}

// entry is a queued call and when it is to be due (zero: at once).
type entry struct {
	j  job
	at time.Time
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
	for i < len(e.jobs) && e.jobs[i].j.done() {
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
	if now {
		e.jobs = append(e.jobs, entry{j: j})
		e.dueBy(len(e.jobs))
		e.run()
	} else {
		at := time.Now().Add(progressDelay)
		e.jobs = append(e.jobs, entry{j: j, at: at})
		e.arm(at)
	}
	enginesMu.Unlock()
}

// dueBy makes the first n queued calls due. enginesMu held.
func (e *engine) dueBy(n int) {
	for _, x := range e.jobs[:n] {
		x.j.setDue()
	}
}

// run starts the progress goroutine unless it runs. enginesMu held.
func (e *engine) run() {
	if !e.running {
		e.running = true
		go e.work()
	}
}

// arm sets the timer for time at unless it is set (for an earlier time:
// fire sets it again for the calls still not due). enginesMu held.
func (e *engine) arm(at time.Time) {
	if e.armed {
		return
	}
	e.armed = true
	d := max(time.Until(at), 0)
	if e.timer == nil {
		e.timer = time.AfterFunc(d, e.fire)
	} else {
		e.timer.Reset(d)
	}
}

// fire makes the calls still not complete that started progressDelay ago
// (and the calls before them) due, starts the progress goroutine for
// them, and sets the timer again for the others.
func (e *engine) fire() {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	e.armed = false
	e.prune()
	if len(e.jobs) == 0 {
		if !e.running {
			delete(engines, e.c)
		}
		return
	}
	now := time.Now()
	n := 0 // the calls due now: their times are in start order
	for n < len(e.jobs) && !e.jobs[n].at.After(now) {
		n++
	}
	if n > 0 {
		e.dueBy(n)
		e.run()
	}
	if n < len(e.jobs) {
		e.arm(e.jobs[n].at)
	}
}

// work is the progress goroutine: it completes the engine's due calls in
// order and ends once none is left (the timer makes the others due).
func (e *engine) work() {
	for {
		enginesMu.Lock()
		e.prune()
		if len(e.jobs) == 0 || !e.jobs[0].j.due() {
			e.running = false
			switch {
			case len(e.jobs) > 0:
				e.arm(e.jobs[0].at)
			case !e.armed:
				delete(engines, e.c)
			}
			enginesMu.Unlock()
			return
		}
		j := e.jobs[0].j
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
	return len(e.jobs) > 0 && e.jobs[0].j == j
}

// workers is the number of communicators with a progress goroutine
// running or about to start (tests).
func workers() int {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	return len(engines)
}
