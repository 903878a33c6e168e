package shm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config describes one rank's shared-memory link.
type Config struct {
	// Dir holds the segments; DefaultDir ("/dev/shm") when empty.
	Dir string
	// ID is the job id. NameKey makes the segments' names (see Name) and
	// AuthKey their headers' tags: two keys derived apart from a secret
	// that only the job's ranks know, so that nobody else can predict a
	// name or make a header that passes; comm derives both from the job's
	// DECORUN_JOB_KEY.
	ID               string
	NameKey, AuthKey []byte
	// Rank and Size place this rank in the job.
	Rank, Size int
	// Peers are the ranks that may be on this host: each gets a ring in
	// this rank's segment, and Connect tries to open theirs. Self and
	// ranks out of range are ignored.
	Peers []int
	// RingSize is the data size of each ring, a power of two of at least
	// 4 KiB. Zero means 1 MiB.
	RingSize int
	// MaxFrame is the largest frame accepted; zero means 64 MiB.
	MaxFrame int
	// Spin is how long the pump polls before it sleeps on its doorbell;
	// between polls it yields to its process's goroutines and, after its
	// first 10 µs, to other processes (sched_yield), so spinning ranks on
	// a host with fewer cores than ranks let the others run. Zero: it sleeps as soon as it finds
	// nothing to do.
	Spin time.Duration
	// Crowded says the host has more ranks than cores: the spinning pump
	// then yields to other processes from its first idle round, not only
	// after 10 µs (see spinAlone).
	Crowded bool
	// OnView, when set, receives the frames that lie whole in their ring
	// as a view into the ring (or, for one that wraps around the ring's
	// end, into a scratch buffer the pump reuses), valid only until OnView
	// returns (the caller copies what it keeps), instead of a fresh copy
	// for onFrame. Frames larger than what the ring held still go to
	// onFrame.
	// Calls to both are sequential and in order per sender.
	OnView func(frame []byte)
}

// ErrClosed is returned by Send on a closed Link.
var ErrClosed = errors.New("shm: link closed")

// While it spins, the pump yields to its own process's goroutines
// (runtime.Gosched) every round, and to other processes (sched_yield)
// every round once it has spun for spinAlone. On the 2-core test VM under
// load sched_yield took 2 µs a call and often handed the core to another
// job for longer, while a frame that arrived waited: with a yield every
// round the 8-byte latency's median was 12-20 µs in most runs, with a
// yield every 8th round 11-13 µs, and with none in the first 10 µs
// 1.6-1.8 µs in most runs (8 runs each, alternating, load 8-11), while an
// 8-rank Allreduce on the 2 cores (where spinning ranks must let the
// others run) took about as long as with a yield every 8th round
// (1.24-1.52 against 1.13-1.63 ms at 8 B, three runs each). Under other
// jobs' load the median is bimodal: a later series (load 5-6, with the 5 µs
// receive spin of comm) gave 0.62-0.64 µs in 5 of 8 runs and 14-42 µs in
// the others, where a yield every round gave 2.1-11.4 µs throughout and
// a yield every 8th round 1.8-11.1 µs; a yield only after one that ran
// something else (over 1 µs) behaved like a yield every round.
const spinAlone = 10 * time.Microsecond

// pollWait bounds each sleep of the pump while frames wait for room in a
// peer's ring, so that it notices a dead peer; idleWait bounds the others.
//
// A pump asleep is a goroutine in a blocking system call that holds its P.
// The Go runtime's monitor (sysmon) takes that P back once the call has
// lasted 10 ms and then polls from 20 µs upwards, about 60 wake-ups before
// it backs off to 10 ms again: a bound of 50 ms on every sleep made that
// 1,200 wake-ups a second per rank, which cost a CPU-bound task 10% of its
// speed on 2 cores (examples/fib, perf stat: 9,300 against 2,000 context
// switches for the same job over NATS). Idle sleeps are long for that.
const (
	pollWait = 50 * time.Millisecond
	idleWait = 2 * time.Second
)

// asideWait is how long the pump stands aside after a caller's Drive
// ended with its wait over (see Drive): the caller is likely to wait again
// at once (a ping-pong, a collective's next step), and a pump that spun
// meanwhile would be a second spinning thread in the rank. After it the pump
// polls again itself, so frames that arrive while no caller drives wait at
// most about this long (plus the kernel's timer slack) to be delivered.
const asideWait = 200 * time.Microsecond

// Link.drive's fields: 21 bits of drivers, 21 of active drivers, 22 of
// the count of Drives that ended with their wait over (compared only for
// change, so its wrapping is harmless).
const (
	oneDriver  = 1
	oneActive  = 1 << 21
	oneDrive   = 1 << 42
	fieldMask  = 1<<21 - 1
	activeOf   = 21
	drivesFrom = 42
)

func drivers(w uint64) uint64 { return w & fieldMask }
func active(w uint64) uint64  { return w >> activeOf & fieldMask }
func drives(w uint64) uint64  { return w >> drivesFrom }

// epoch makes mono a monotonic clock reading.
var epoch = time.Now()

func mono() int64 { return int64(time.Since(epoch)) }

// Link moves frames to and from the ranks on this host that share memory
// with this one. It is safe for concurrent use.
type Link struct {
	cfg     Config
	nonce   []byte // in own's header, announced over NATS
	path    string
	own     *segment
	readers []*inbound
	outs    atomic.Pointer[[]*outbound] // by rank; set once by Connect
	expect  uint64                      // peers expected to map own
	onFrame func([]byte)
	onFatal func(error)
	scratch []byte // the readers' Scratch: wrapped frames lent to OnView

	// tok is held by whoever polls the rings (the pump or a caller in
	// Drive): readers, scratch and the callbacks are theirs alone. It is
	// only ever taken with TryLock, and a Drive hands the rings back (a
	// futex wake) after it has let go of it: a holder descheduled there
	// kept the pump spinning on TryLock.
	tok sync.Mutex
	// drive counts, in one word so that a Drive costs two atomic
	// operations: the callers in Drive until they no longer touch the
	// mapping (Close waits for 0), those of them that still poll (the
	// pump stands aside while any do), and the Drives that ended with
	// their wait over (see driveWord). handed is that last count when a
	// Drive last ended without (the caller went to sleep and handed the
	// rings back). The pump notes when it first saw the count change
	// (seenDrives, seenAt: the pump's own) and stands aside for asideWait
	// from then: a Drive reads no clock.
	drive      atomic.Uint64
	handed     atomic.Uint64
	seenDrives uint64
	seenAt     int64

	unlinked  atomic.Bool
	connected atomic.Bool // Connect was called (see Close)
	closed    atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup // the pump
}

type inbound struct {
	src    int
	rd     Reader
	broken bool
}

type outbound struct {
	dst     int
	seg     *segment    // dst's segment
	pending atomic.Bool // w has queued bytes
	mu      sync.Mutex  // guards w, dead, closed
	w       Writer
	dead    bool
	closed  bool
}

// Open creates this rank's segment (after removing stale segments of dead
// processes) and starts the pump, which delivers every frame that arrives,
// whole and in order per sender, to onFrame (which owns the slice; calls
// are sequential). onFatal is called once if a ring turns out corrupt.
func Open(cfg Config, onFrame func([]byte), onFatal func(error)) (*Link, error) {
	if cfg.Dir == "" {
		cfg.Dir = DefaultDir
	}
	if cfg.RingSize == 0 {
		cfg.RingSize = 1 << 20
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = 64 << 20
	}
	switch {
	case cfg.Size < 1 || cfg.Rank < 0 || cfg.Rank >= cfg.Size:
		return nil, fmt.Errorf("shm: rank %d out of range for a job of %d ranks", cfg.Rank, cfg.Size)
	case cfg.RingSize < 4096 || cfg.RingSize&(cfg.RingSize-1) != 0 || cfg.RingSize > 1<<30:
		return nil, fmt.Errorf("shm: ring size %d is not a power of two between 4 KiB and 1 GiB", cfg.RingSize)
	case cfg.MaxFrame < 0 || cfg.MaxFrame > 1<<31-1:
		return nil, fmt.Errorf("shm: max frame %d out of range", cfg.MaxFrame)
	}
	var peers []int
	for _, p := range cfg.Peers {
		if p >= 0 && p < cfg.Size && p != cfg.Rank && !slices.Contains(peers, p) {
			peers = append(peers, p)
		}
	}
	slices.Sort(peers)
	cfg.Peers = peers
	SweepStale(cfg.Dir)
	l := &Link{cfg: cfg, nonce: make([]byte, nonceLen), onFrame: onFrame, onFatal: onFatal,
		path: filepath.Join(cfg.Dir, Name(cfg.ID, cfg.NameKey, cfg.Rank)), expect: uint64(len(peers))}
	rand.Read(l.nonce) // never fails (crypto/rand)
	own, err := create(l.path, cfg.AuthKey, l.nonce, cfg.Rank, cfg.Size, peers, cfg.RingSize)
	if err != nil {
		return nil, err
	}
	l.own = own
	for _, p := range peers {
		r, err := own.ring(p)
		if err != nil || r == nil {
			own.unmap()
			os.Remove(l.path)
			return nil, fmt.Errorf("shm: own segment has no ring for rank %d: %v", p, err)
		}
		l.readers = append(l.readers, &inbound{src: p, rd: Reader{R: r, Max: cfg.MaxFrame, Scratch: &l.scratch}})
	}
	empty := make([]*outbound, cfg.Size)
	l.outs.Store(&empty)
	l.wg.Add(1)
	go l.pump()
	return l, nil
}

// Path is the file name of this rank's segment (unlinked once every peer
// has mapped it).
func (l *Link) Path() string { return l.path }

// MaxFrame is the largest frame Send accepts.
func (l *Link) MaxFrame() int { return l.cfg.MaxFrame }

// Send copies frame towards rank dst, which Connect reported reachable. It
// never blocks: what does not fit in dst's ring is queued for the pump.
// Frames to a rank whose process is gone are dropped.
func (l *Link) Send(dst int, frame []byte) error {
	_, err := l.SendV(dst, frame, nil)
	return err
}

// SendV is Send of the frame head followed by body, which it copies into
// the ring without joining them first. It reports true: the frame was
// taken (or dropped, for a dead peer), as by Send.
func (l *Link) SendV(dst int, head, body []byte) (bool, error) {
	outs := *l.outs.Load()
	if dst < 0 || dst >= len(outs) || outs[dst] == nil {
		return true, fmt.Errorf("shm: rank %d is not reachable through shared memory", dst)
	}
	if len(head)+len(body) > l.cfg.MaxFrame {
		return true, fmt.Errorf("shm: frame of %d bytes above the limit of %d", len(head)+len(body), l.cfg.MaxFrame)
	}
	o := outs[dst]
	o.mu.Lock()
	defer o.mu.Unlock()
	if !l.ready(o) {
		if o.closed {
			return true, ErrClosed
		}
		return true, nil
	}
	if !o.w.Write2(head, body) {
		l.queued(o)
	}
	o.seg.wake()
	return true, nil
}

// ready reports whether frames to o can be written (false: o is closed, or
// its receiver gone, whose frames are dropped). o.mu held.
func (l *Link) ready(o *outbound) bool {
	switch {
	case o.closed, o.dead:
		return false
	case o.seg.closed.Load() != 0: // dst closed its link: nobody will read
		o.dead = true
		o.w.Drop()
		o.pending.Store(false)
		return false
	}
	return true
}

// queued records that frames to o wait for room. o.mu held.
func (l *Link) queued(o *outbound) {
	o.w.R.SetWaiting()
	o.w.Drain() // room made before the flag was seen
	q := o.w.Queued() > 0
	if !o.pending.Swap(q) && q && l.own.sleep.Load() != 0 {
		// The pump may sleep for idleWait; with frames queued it must
		// sleep at most pollWait, to notice if dst dies.
		l.own.bell.Add(1)
		futexWake(l.own.bell)
	}
}

// Flush returns once every frame sent so far is in its ring (or its
// receiver is gone), or ctx ends.
func (l *Link) Flush(ctx context.Context) error {
	d := 50 * time.Microsecond
	for {
		n := 0
		for _, o := range *l.outs.Load() {
			if o != nil && o.pending.Load() && o.seg.closed.Load() == 0 {
				n++
			}
		}
		if n == 0 || l.closed.Load() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("shm: rank %d: %d peers have not made room for its last frames: %w", l.cfg.Rank, n, ctx.Err())
		case <-time.After(d):
		}
		d = min(2*d, 5*time.Millisecond)
	}
}

// Close stops the pump, unmaps every segment and removes this rank's. It
// is idempotent and returns once the pump has exited.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		l.own.closed.Store(1) // writers drop what they would queue for us
		l.closed.Store(true)
		l.own.bell.Add(1)
		futexWake(l.own.bell)
		l.wg.Wait()
		for drivers(l.drive.Load()) > 0 { // a caller in Drive sees closed within a poll
			runtime.Gosched()
		}
		for _, o := range *l.outs.Load() {
			if o != nil {
				o.mu.Lock()
				o.closed = true
				o.seg.unmap()
				o.mu.Unlock()
			}
		}
		// A peer that has not mapped the segment yet (a rank slow to
		// leave the start-up barrier while this one already finished) still
		// needs the name: leave it, for the launcher to remove when the job
		// ends. A rank that closes before Connect gave up during start-up
		// (its job failed), and nobody will need the name: remove it, so
		// that jobs without a launcher (comm.Connect) leave nothing behind.
		if l.own.opened.Load() >= l.expect || !l.connected.Load() {
			l.unlink()
		}
		l.own.unmap()
	})
	return nil
}

func (l *Link) unlink() {
	if l.unlinked.CompareAndSwap(false, true) {
		os.Remove(l.path)
	}
}

// pump reads the inbound rings and drains queued writes, spinning briefly
// and then sleeping on the doorbell when there is nothing to do. While a
// caller drives the rings (Drive), and for asideWait after one last did, it
// stands aside: it sleeps without asking producers to ring for it.
func (l *Link) pump() {
	defer l.wg.Done()
	var idle time.Time // when the pump last found nothing to do; zero while busy
	var rounds int     // idle rounds since then
	var alone bool     // yield to other processes too (see spinAlone)
	for !l.closed.Load() {
		v := l.own.bell.Load() // before aside: a hand-back bumps it after
		// Poll first, even when standing aside: a doorbell that woke the
		// pump (a producer, or the hand-back) means work now.
		prog, polled := false, false
		if l.tok.TryLock() { // fails only while a caller drives
			prog, polled = l.poll(), true
			l.tok.Unlock()
		}
		if rem := l.aside(); rem > 0 || !polled {
			if !prog {
				futexWait(l.own.bell, v, max(rem, spinAlone))
			}
			// Whoever drove has spun: poll once more, then sleep if idle.
			idle, rounds = time.Now().Add(-l.cfg.Spin), 7
			continue
		}
		if prog {
			idle = time.Time{}
			continue
		}
		if l.cfg.Spin > 0 {
			// The clock is read every 8th idle round: a clock_gettime
			// costs tens of ns on a VM, 6 % of the CPU of an 8-rank
			// Allreduce on 2 cores when read every round.
			spinning := true
			if idle.IsZero() {
				idle, rounds, alone = time.Now(), 0, l.cfg.Crowded
			} else if rounds++; rounds%8 == 0 {
				spun := time.Since(idle)
				spinning, alone = spun < l.cfg.Spin, alone || spun >= spinAlone
			}
			if spinning {
				runtime.Gosched()
				if alone {
					syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
				}
				continue
			}
		}
		v = l.own.bell.Load()
		l.own.sleep.Store(1)
		// A producer stores head, then loads sleep; we stored sleep and
		// now load every head: one of us sees the other.
		if !l.tok.TryLock() {
			l.own.sleep.Store(0)
			continue
		}
		prog = l.poll()
		l.tok.Unlock()
		if prog || l.closed.Load() || l.aside() > 0 {
			l.own.sleep.Store(0)
			idle = time.Time{}
			continue
		}
		wait := idleWait
		if l.anyPending() {
			wait = pollWait
		}
		start := time.Now()
		futexWait(l.own.bell, v, wait)
		l.own.sleep.Store(0)
		if time.Since(start) >= wait {
			l.checkPeers()
		}
		idle = time.Time{}
	}
}

// aside says how much longer the pump stands aside: asideWait while a
// caller drives the rings, what is left of asideWait after the last Drive
// that ended with its wait over, else zero.
func (l *Link) aside() time.Duration {
	w := l.drive.Load()
	if active(w) > 0 {
		return asideWait
	}
	n := drives(w)
	if n == l.handed.Load() {
		return 0
	}
	now := mono()
	if n != l.seenDrives {
		l.seenDrives, l.seenAt = n, now
	}
	return asideWait - time.Duration(now-l.seenAt)
}

// Drive polls the rings on the calling goroutine, delivering frames as
// the pump does, until done reports true, d has passed since it started or
// last moved a frame, or the link is closed, and returns done's last
// answer. It is for a caller about to block until a frame
// arrives (comm's blocking receives and sends): meanwhile the pump stands
// aside, so a waiting rank has one spinning thread, the waiter, where the
// pump's spinning and the waiter's would be two, and a frame costs no
// wake-up of another thread on its way to the waiter. Every 64th poll the
// caller yields to its process's goroutines (runtime.Gosched: each one
// also wakes an idle thread of the runtime to look for work, a futex
// system call that a yield every 8th poll paid several times per
// message), and once it has spun for spinAlone to other processes too
// (sched_yield) every 8th. Ending
// with done true, Drive leaves the pump aside for asideWait more, for the
// caller's next wait; the last driver to end with done false (the caller
// goes to sleep) wakes the pump to take over at once.
func (l *Link) Drive(done func() bool, d time.Duration) bool {
	if done() {
		return true
	}
	if d <= 0 {
		return false
	}
	// Close waits for drivers to reach zero before it unmaps, and a
	// driver that counted itself in after Close set closed leaves at once.
	l.drive.Add(oneDriver + oneActive)
	// A drive's poll is a pass over every ring, so its clock is read more
	// often than a region wait's: from the 32nd round (a µs or so), every
	// 8th; it yields to other processes once it has spun for spinAlone.
	b := backoff{spin: spinAlone, yield: d, clockFrom: 32, clockEvery: 8, goschedEvery: 64, yieldEvery: 8}
	ok := false
	for !l.closed.Load() {
		if l.tok.TryLock() {
			prog := l.poll()
			l.tok.Unlock()
			if prog {
				b.progress() // d counts from the last frame moved
			}
		}
		if done() {
			ok = true
			break
		}
		if more, _ := b.next(); !more {
			break
		}
	}
	if ok {
		// One count up, the active driver down (the pump, seeing both at
		// once, stays aside), and this driver out: Close may unmap.
		l.drive.Add(oneDrive - oneActive - oneDriver)
		return true
	}
	l.handed.Store(drives(l.drive.Load()))
	if active(l.drive.Add(^uint64(oneActive-1))) == 0 && !l.closed.Load() {
		// The caller goes to sleep and nobody else drives: hand the
		// rings back to the pump now. (The bump follows active's
		// drop, so a pump that saw active > 0 has loaded the old
		// value and its futex wait returns at once.)
		l.own.bell.Add(1)
		futexWake(l.own.bell)
	}
	l.drive.Add(^uint64(oneDriver - 1)) // last: Close may unmap the doorbell once it is 0
	return false
}

// poll does one round of work and reports whether it did anything.
func (l *Link) poll() bool {
	prog := false
	outs := *l.outs.Load()
	for _, in := range l.readers {
		if in.broken {
			continue
		}
		t := in.rd.R.tail.Load()
		for range 64 { // then let the other rings have a turn
			var f []byte
			var view bool
			var err error
			if l.cfg.OnView != nil {
				f, view, err = in.rd.NextView()
			} else {
				f, err = in.rd.Next()
			}
			if err != nil {
				in.broken = true
				l.onFatal(fmt.Errorf("shm: rank %d: ring from rank %d: %w", l.cfg.Rank, in.src, err))
				break
			}
			if f == nil {
				break
			}
			if view {
				l.cfg.OnView(f)
				in.rd.Release()
			} else {
				l.onFrame(f)
			}
		}
		if in.rd.R.tail.Load() != t {
			prog = true
			if in.rd.R.TakeWaiting() {
				if o := outs[in.src]; o != nil {
					o.seg.bell.Add(1) // the producer may be between its checks: always bump
					futexWake(o.seg.bell)
				}
			}
		}
	}
	for _, o := range outs {
		if o == nil {
			continue
		}
		// While this side waits, it reads what the consumer has read, so
		// that its next send finds it known (see Ring.seen).
		o.w.R.SeeTail()
		if !o.pending.Load() {
			continue
		}
		o.mu.Lock()
		if !o.closed && !o.dead && o.w.Drain() {
			prog = true
			o.seg.wake()
		}
		if o.w.Queued() > 0 {
			o.w.R.SetWaiting()
			if o.w.Drain() {
				prog = true
				o.seg.wake()
			}
		}
		o.pending.Store(o.w.Queued() > 0)
		o.mu.Unlock()
	}
	if !l.unlinked.Load() && l.own.opened.Load() >= l.expect {
		l.unlink() // every peer has it mapped: the name is no longer needed
	}
	return prog
}

// anyPending reports whether frames wait for room in some peer's ring.
func (l *Link) anyPending() bool {
	for _, o := range *l.outs.Load() {
		if o != nil && o.pending.Load() {
			return true
		}
	}
	return false
}

// checkPeers drops what is queued for peers whose process is gone or
// whose link is closed.
func (l *Link) checkPeers() {
	for _, o := range *l.outs.Load() {
		if o == nil || !o.pending.Load() || o.seg.closed.Load() == 0 && alive(int(o.seg.u64(hdrPid))) {
			continue
		}
		o.mu.Lock()
		o.dead = true
		o.w.Drop()
		o.pending.Store(false)
		o.mu.Unlock()
	}
}

// Reaches reports whether frames to rank r go through shared memory (after
// Connect).
func (l *Link) Reaches(r int) bool {
	p := l.outs.Load()
	return p != nil && r >= 0 && r < len(*p) && (*p)[r] != nil
}

// Keys are the link's name and authentication keys (Config's).
func (l *Link) Keys() (id string, nameKey, authKey []byte) {
	return l.cfg.ID, l.cfg.NameKey, l.cfg.AuthKey
}
