package trace

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Kind says what an Event is and which track it goes on.
type Kind uint8

// Event kinds.
const (
	KindSend     Kind = iota + 1 // a send (Send, Isend, SendValue, ...): Peer is the destination; ID the message
	KindRecv                     // a completed receive (Recv, RecvInto, Wait of Irecv, ...): Peer the source; ID the message
	KindCall                     // another comm call (Probe, Irecv's post, Wait of Isend, Sendrecv, ...)
	KindColl                     // a collective call: Name the op, Detail the algorithm, Bytes the value's size
	KindTask                     // a deco task that ran on this rank: Name the function
	KindTaskLife                 // rank 0: a task from queued (Start) to settled (End); Peer the rank it ran on
	KindJob                      // a job event: Name says which (start-up, lost, abort, signal, close)
	kindMax
)

func (k Kind) String() string {
	switch k {
	case KindSend:
		return "send"
	case KindRecv:
		return "recv"
	case KindCall:
		return "call"
	case KindColl:
		return "collective"
	case KindTask:
		return "task"
	case KindTaskLife:
		return "tasklife"
	case KindJob:
		return "job"
	}
	return "kind?"
}

// Flags of an Event.
const (
	FlagErr     uint8 = 1 // the call failed
	FlagRetried uint8 = 2 // KindTaskLife: the task ran again after its worker was lost
)

// Event is one recorded call. Times are nanoseconds on this process's
// monotonic clock since Start.
type Event struct {
	Kind   Kind
	Flags  uint8
	Peer   int32 // world rank of the peer, or -1
	Tag    int32
	Start  int64
	End    int64
	Bytes  int64
	Comm   uint64 // communicator context id
	ID     uint64 // message id (KindSend, KindRecv)
	Name   string // the call, op, function or job event
	Detail string // algorithm, how a rank was lost, ...
	Site   int32  // index into Dump.Sites (0: none); set by Snapshot
}

// slot is one place in the buffer: ok is set once ev is written.
type slot struct {
	ev Event
	ok atomic.Bool
}

// maxDepth is how many program counters a call site keeps.
const maxDepth = 16

// DefaultEvents is the buffer size when DECORUN_TRACE_EVENTS is not set.
const DefaultEvents = 1 << 16

// recorder is the process's buffer.
type recorder struct {
	slots   []slot
	pcs     [][maxDepth]uintptr // nil: no call sites
	next    atomic.Int64
	dropped atomic.Int64
	epoch   time.Time
}

var (
	on  atomic.Bool
	rec *recorder // set before on is stored true, never changed after
	mu  sync.Mutex
)

// On reports whether this process records. It is the hooks' one check.
func On() bool { return on.Load() }

// Start makes this process record into a buffer of n events (DefaultEvents
// when n <= 0), with call sites when sites is set. It returns false, doing
// nothing, if the process records already.
func Start(n int, sites bool) bool {
	mu.Lock()
	defer mu.Unlock()
	if rec != nil {
		return false
	}
	if n <= 0 {
		n = DefaultEvents
	}
	r := &recorder{slots: make([]slot, n), epoch: time.Now()}
	if sites {
		r.pcs = make([][maxDepth]uintptr, n)
	}
	// Touch every page now, so that the first events do not pay for
	// faulting the buffer in.
	for i := 0; i < n; i += max(1, 4096/int(unsafe.Sizeof(slot{}))) {
		r.slots[i].ok.Store(false)
	}
	for i := 0; i < len(r.pcs); i += 4096 / int(unsafe.Sizeof(r.pcs[0])) {
		r.pcs[i][0] = 0
	}
	rec = r
	on.Store(true)
	return true
}

// reset forgets the buffer (tests only; nothing may record meanwhile).
func reset() {
	mu.Lock()
	defer mu.Unlock()
	on.Store(false)
	rec = nil
}

// Now is the time for an Event: nanoseconds since Start (at least 1, so
// that 0 can mean "not taken"). Only meaningful when On.
func Now() int64 {
	if !on.Load() {
		return 0
	}
	return int64(time.Since(rec.epoch)) + 1
}

// Epoch is the wall-clock time of Start (zero before).
func Epoch() time.Time {
	if !on.Load() {
		return time.Time{}
	}
	return rec.epoch
}

// Record stores ev if the process records and its buffer has room. It
// never blocks and never allocates; safe for concurrent use.
func Record(ev Event) {
	if !on.Load() {
		return
	}
	r := rec
	i := r.next.Add(1) - 1
	if i >= int64(len(r.slots)) {
		r.dropped.Add(1)
		return
	}
	if r.pcs != nil && ev.Kind <= KindColl { // comm and collectives: the report's call sites
		runtime.Callers(2, r.pcs[i][:])
	}
	s := &r.slots[i]
	s.ev = ev
	s.ok.Store(true)
}

// Snapshot returns a copy of the events recorded so far (complete ones,
// in the order they claimed their slots), with call sites resolved into
// sites (sites[0] is ""), and the number of events dropped for want of room.
func Snapshot() (evs []Event, sites []string, dropped int64) {
	if !on.Load() {
		return nil, nil, 0
	}
	r := rec
	n := min(r.next.Load(), int64(len(r.slots)))
	evs = make([]Event, 0, n)
	sites = []string{""}
	index := map[string]int32{}
	for i := range n {
		s := &r.slots[i]
		if !s.ok.Load() {
			continue // claimed, still being written
		}
		ev := s.ev
		if r.pcs != nil {
			if site := userSite(r.pcs[i][:], ev.Kind == KindColl); site != "" {
				k, ok := index[site]
				if !ok {
					k = int32(len(sites))
					index[site] = k
					sites = append(sites, site)
				}
				ev.Site = k
			}
		}
		evs = append(evs, ev)
	}
	return evs, sites, r.dropped.Load()
}

// Sites of calls that decorun's own packages made.
const (
	SiteCollectives = "(collectives)" // a message of a collective call
	SiteDeco        = "(deco)"        // a message of deco's scheduler
)

// ownPrefix marks the functions of decorun's own packages, which a call
// site skips to reach the user's code.
const ownPrefix = "github.com/decorun/decorun/"

// userSite is "file:line" of the first frame of pcs outside decorun's
// packages (examples, test programs and _test.go files count as the
// user's) and the runtime; "" when there is none. Unless coll (the event
// is a collective's own), a frame inside package collectives or deco
// before any user frame makes the site SiteCollectives or SiteDeco: a send
// inside a collective is the collective's, and is accounted there; deco's
// messages are its scheduler's.
func userSite(pcs []uintptr, coll bool) string {
	n := 0
	for n < len(pcs) && pcs[n] != 0 {
		n++
	}
	if n == 0 {
		return ""
	}
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		fn := f.Function
		switch {
		case !coll && strings.HasPrefix(fn, ownPrefix+"collectives."):
			return SiteCollectives
		case strings.HasPrefix(fn, ownPrefix+"deco."):
			return SiteDeco
		case strings.HasPrefix(fn, ownPrefix+"examples/"), strings.HasPrefix(fn, ownPrefix+"cluster_test/"),
			strings.HasSuffix(f.File, "_test.go"):
			return shortFile(f.File) + ":" + itoa(f.Line)
		case strings.HasPrefix(fn, ownPrefix), strings.HasPrefix(fn, "runtime."), fn == "":
		default:
			return shortFile(f.File) + ":" + itoa(f.Line)
		}
		if !more {
			return ""
		}
	}
}

// shortFile keeps the last two elements of a path ("pi/main.go").
func shortFile(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return p
	}
	if j := strings.LastIndexByte(p[:i], '/'); j >= 0 {
		return p[j+1:]
	}
	return p
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
