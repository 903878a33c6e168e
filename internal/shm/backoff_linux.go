package shm

import (
	"runtime"
	"time"
)

// backoff is the one waiting strategy of this package's waits: a
// collectives region's (Region.await, for a step's posts, marks and
// acknowledgements) and a caller's that drives a link's rings (Link.Drive,
// for a point-to-point message). A wait polls its condition and, after
// each poll that found it false, calls next, which spends the round as
// the wait's phase asks:
//
//   - spin: no system call for spin (none at all on a host with more
//     ranks than cores), PAUSE between polls when relax is set, and
//     runtime.Gosched every goschedEvery rounds so that this process's
//     other goroutines run;
//   - yield: sched_yield every yieldEvery rounds, so that ranks that
//     outnumber the cores run, and runtime.Gosched every 8th round
//     (each one also wakes an idle runtime thread: a futex call, and a
//     thread spinning on a core the ranks need), until yield has passed
//     since the wait began;
//   - then next returns false, and the caller sleeps on a futex that the
//     other side rings only when it knows the waiter sleeps.
//
// The clock (55-86 ns a read on the VM this was measured on) is read
// from round clockFrom on, every clockEvery rounds: most waits end
// sooner. Each use sets the parameters to the cost of its poll: a region
// wait's poll is a few loads, a drive's a pass over every ring.
type backoff struct {
	spin, yield  time.Duration
	relax        bool
	clockFrom    int // a power of 2
	clockEvery   int // a power of 2, at most clockFrom
	goschedEvery int // a power of 2 (spinning)
	yieldEvery   int // a power of 2 (yielding)

	i        int
	start    time.Time // when the wait began (its first clock read), or last made progress
	now      time.Time // the last clock read (at a round where next returned tick)
	yielding bool
}

// next spends one idle round of a wait. It returns false once the wait
// should sleep, and tick when it read the clock this round (b.now), so
// that the caller may check what ends a wait (ctx, a peer's death)
// without a clock of its own.
func (b *backoff) next() (more, tick bool) {
	b.i++
	i := b.i
	if i == 1 && b.spin <= 0 {
		b.yielding = true // a crowded host: yield from the first round
	}
	if !b.yielding {
		if b.relax {
			cpuRelax()
		}
		if i&(b.goschedEvery-1) == 0 {
			runtime.Gosched()
		}
	} else {
		if i&7 == 0 {
			runtime.Gosched()
		}
		if i&(b.yieldEvery-1) == 0 {
			schedYield()
		}
	}
	if i < b.clockFrom || i&(b.clockEvery-1) != 0 {
		return true, false
	}
	b.now = time.Now()
	if b.start.IsZero() {
		b.start = b.now
	}
	spun := b.now.Sub(b.start)
	if !b.yielding && spun >= b.spin {
		b.yielding = true
		if b.clockEvery > 8 {
			b.clockEvery = 8
		}
	}
	return spun < b.yield, true
}

// progress restarts the wait's clock: a drive counts its time from the
// last frame it moved.
func (b *backoff) progress() {
	b.start, b.yielding = time.Time{}, b.spin <= 0
}
