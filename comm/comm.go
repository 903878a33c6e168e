package comm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/decorun/decorun/internal/agree"
	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/match"
	"github.com/decorun/decorun/internal/shm"
	"github.com/decorun/decorun/internal/trace"
	"github.com/decorun/decorun/internal/transport"
)

// Wildcards for Recv, Irecv and Probe.
const (
	AnySource = match.AnySource
	AnyTag    = match.AnyTag
)

// ProcNull is the rank of no process (MPI_PROC_NULL), for the neighbour
// that a rank at the edge of a grid does not have. A send to it (Send,
// Isend, SendValue, Sendrecv) completes at once and sends nothing; a
// receive from it (Recv, RecvInto, Irecv, RecvValue, Sendrecv) completes
// at once with an empty message, Status{Source: ProcNull, Tag: AnyTag,
// Size: 0}, leaving the buffer untouched (RecvValue gives the zero
// value); Probe and Iprobe report that message at once. So the boundary
// ranks of a stencil need no special case:
//
//	left, right := r-1, r+1 // ProcNull past the edges
//	if r == 0 {
//		left = comm.ProcNull
//	}
//	if r == c.Size()-1 {
//		right = comm.ProcNull
//	}
//	halo, _, err := c.Sendrecv(ctx, edge, right, 0, left, 0)
const ProcNull = -2

// nullStatus is the Status of a receive from ProcNull.
var nullStatus = Status{Source: ProcNull, Tag: AnyTag}

// MaxTag is the largest tag a message may carry.
const MaxTag = math.MaxInt32

// Errors returned by communicator calls. Test for them with errors.Is.
var (
	// ErrClosed: the communicator was closed.
	ErrClosed = errors.New("comm: communicator closed")
	// ErrTruncate: a message was larger than the receive buffer.
	ErrTruncate = errors.New("comm: message truncated")
	// ErrType: a typed receive got a message of another type.
	ErrType = errors.New("comm: type mismatch")
	// ErrLost: the connection to the job's server was lost or NATS dropped
	// a message; the job cannot go on.
	ErrLost = transport.ErrLost
	// ErrRankLost: the peer rank died and the job goes on without it (a job
	// started with decorun --keep-going). Sends to it and receives from it
	// fail with an error wrapping ErrRankLost; messages it sent before it
	// died can still be received.
	ErrRankLost = errors.New("comm: rank lost")
	// ErrPeerClosed: the peer rank closed its communicator, so a send to it
	// or a receive from it (once its earlier messages are received) can
	// never complete.
	ErrPeerClosed = errors.New("comm: peer closed")
	// ErrMismatch: the ranks of a communicator made different collective
	// calls on it (one called Split while another called Dup, say); the
	// error is a *MismatchError. Package collectives' mismatch errors wrap
	// it too.
	ErrMismatch = errors.New("comm: mismatched collective calls")
)

// Status describes a received or probed message.
type Status struct {
	Source int // sender's rank
	Tag    int
	Size   int // payload bytes
	typ    string
}

// Type is the Go type the sender gave the message ("" for raw bytes).
func (s Status) Type() string { return s.typ }

// String formats s as "Status{Source: 3, Tag: 7, Size: 64, Type: int}"
// (Type only for typed messages; ProcNull and AnyTag by name), for %v and
// %+v alike.
func (s Status) String() string {
	src := strconv.Itoa(s.Source)
	if s.Source == ProcNull {
		src = "ProcNull"
	}
	tag := strconv.Itoa(s.Tag)
	if s.Tag == AnyTag {
		tag = "AnyTag"
	}
	if s.typ == "" {
		return fmt.Sprintf("Status{Source: %s, Tag: %s, Size: %d}", src, tag, s.Size)
	}
	return fmt.Sprintf("Status{Source: %s, Tag: %s, Size: %d, Type: %s}", src, tag, s.Size, s.typ)
}

// Comm is a communicator: a group of ranks that exchange messages. All
// methods are safe for concurrent use.
type Comm struct {
	e      *engine
	id     uint64 // context id; 0 is the world
	rank   int
	size   int
	job    jobenv.Job
	nats   *transport.NATS // nil in a singleton
	link   transport.Link  // the data path: nats, or Muxes over nats, shared memory and TCP
	host   string
	once   sync.Once
	closed error

	// reg is this rank's file of c's shared-memory region for collectives
	// (nil: none), regOK whether every rank of c has one and shares this
	// host (host.go).
	reg         *shm.Region
	regOK       bool
	regionsMade bool // Split: every new member made its file
	// hreg is this rank's file of the region of c's ranks on this host,
	// when c spans hosts (hostgroup.go); hregOK: every one of them made
	// its file. hier is c's HostGroups, made at the first call.
	hreg     *shm.Region
	hregOK   bool
	hostMade bool // Split: every new member on this host made its file
	hierOnce sync.Once
	hier     *HostGroups

	shadow     atomic.Pointer[Comm] // Shadow(), made once
	agreeCache agree.Cache          // c's collective state (internal/agree)
	grp        *group               // nil: the world
	topo       *cart                // a Cartesian grid (CartCreate), or nil
	graph      *distGraph           // a distributed graph (DistGraphCreateAdjacent), or nil
	derived    bool
	closedFlag *atomic.Bool // derived communicators only
	// inter: c is an Intercomm's Remote view (spawn.go); noColl: c is its
	// Shadow, on which every call fails with ErrInterCollective.
	inter, noColl bool
	nderived      atomic.Uint64

	// settle is nil, or what Close waits for before it closes link:
	// TCP peers still dialing this rank (see tcpPath.settle).
	settle func(ctx context.Context, departed func(int) bool) error
}

var (
	initMu   sync.Mutex
	initDone bool
)

// Init joins the job that decorun started, reading the environment it set,
// and returns the world communicator. Without decorun it returns a world of
// one rank. Init blocks until every rank of the job has joined, or ctx ends.
// It may be called once per process. In a program started by Spawn it also
// joins the intercommunicator with the spawning ranks (see Parent), and
// returns once they have joined it too.
func Init(ctx context.Context) (*Comm, error) {
	initMu.Lock()
	defer initMu.Unlock()
	if initDone {
		return nil, errors.New("comm: Init called twice in one process")
	}
	job, ok, err := jobenv.FromEnv()
	if err != nil {
		return nil, fmt.Errorf("comm: %w", err)
	}
	if !ok {
		job = jobenv.Job{Rank: 0, Size: 1, LocalRank: 0, LocalSize: 1}
	}
	if err := startTrace(); err != nil {
		return nil, err
	}
	t0 := trace.Now()
	c, err := connect(ctx, job)
	if err != nil {
		return nil, err
	}
	if job.Parent != nil { // started by Spawn: the intercommunicator too (spawn.go)
		if err := joinParent(ctx, c, job); err != nil {
			c.Close()
			return nil, err
		}
	}
	c.joinedTrace(ctx, t0)
	initDone = true
	return c, nil
}

// connect builds the world communicator of job; tests use it to run several
// ranks in one process.
func connect(ctx context.Context, job jobenv.Job) (*Comm, error) {
	if job.Transport == "" {
		job.Transport = DefaultTransport // named, for the start-up barrier's check that every rank agrees
	}
	c := &Comm{rank: job.Rank, size: job.Size, job: job}
	c.host, _ = os.Hostname()
	if job.URL == "" {
		if job.Size != 1 {
			return nil, fmt.Errorf("comm: a job of %d ranks needs %s", job.Size, jobenv.EnvURL)
		}
		c.e = newEngine(0, 1, nil)
		return c, nil
	}
	var e *engine
	ready := make(chan struct{})
	// live is e once ready is closed: the links' frame callbacks load it
	// rather than receive from the closed channel (which takes its lock)
	// per frame.
	var live atomic.Pointer[engine]
	onFrame := func(f []byte) {
		if le := live.Load(); le != nil {
			le.onFrame(f)
		} else if <-ready; e != nil {
			e.onFrame(f)
		}
	}
	onView := func(f []byte) {
		if le := live.Load(); le != nil {
			le.onView(f)
		} else if <-ready; e != nil {
			e.onView(f)
		}
	}
	onFatal := func(err error) {
		if <-ready; e != nil {
			e.fatal(fmt.Errorf("comm: rank %d: %w", job.Rank, err))
		}
	}
	onMulticast := func(f []byte) {
		if <-ready; e != nil {
			e.onMulticast(f)
		}
	}
	// An intercommunicator's job (spawn.go): a rank lost before every
	// rank joined ends the wait at the start-up barrier.
	lostEarly := func(error) {}
	if job.Joined == "spawn" {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		lostEarly = cancel
	}
	onEvent := func(ev jobenv.Ctl) {
		switch <-ready; {
		case e != nil && ev.Op == jobenv.OpLost:
			lostEarly(fmt.Errorf("rank %d of the intercommunicator's job died before every rank joined (%s): %w", ev.Rank, ev.Msg, ErrRankLost))
			e.peerLost(ev.Rank, ev.Msg)
		case e != nil && ev.Op == jobenv.OpSpawnLost:
			e.spawnLost(ev.Code, fmt.Errorf("rank %d of spawn %d died (%s): %w", ev.Rank, ev.Code, ev.Msg, ErrRankLost))
		}
	}
	wr := &hostRegions{}
	t, link, start, settle, drv, spin, shl, err := dial(ctx, job, wr, onFrame, onView, onFatal, onEvent)
	if err != nil {
		close(ready)
		return nil, fmt.Errorf("comm: %w", err)
	}
	// Before the start-up barrier, like the inbox: every rank listens for
	// multicasts before any rank can send one.
	if err := t.SubscribeMulticast(onMulticast); err != nil {
		close(ready)
		link.Close()
		return nil, fmt.Errorf("comm: %w", err)
	}
	e = newEngine(job.Rank, job.Size, link)
	e.drv, e.spin, e.shl, e.crowded = drv, spin, shl, shl != nil && drv == nil
	if tl := tcpLink(link); tl != nil && len(job.HostRanks) > 0 && !crowded(job, len(job.HostRanks)-1) {
		e.tdrv, e.spin = tl, max(spin, tcpSpin) // see engine.drive
	}
	live.Store(e)
	close(ready)
	c.e, c.nats, c.link, c.settle = e, t, link, settle
	e.nats = t
	if err := t.Ctl(ctx, jobenv.Ctl{Op: jobenv.OpJoin, Rank: job.Rank}, false); err != nil {
		link.Close()
		return nil, fmt.Errorf("comm: rank %d join: %w", job.Rank, err)
	}
	if err := start(); err != nil { // the start-up barrier, then the direct paths
		wr.drop()
		link.Close()
		if cause := context.Cause(ctx); errors.Is(cause, ErrRankLost) {
			err = cause
		}
		return nil, fmt.Errorf("comm: %w", err)
	}
	e.placeTCP(link)
	e.host = wr.host
	e.hosts = t.Hosts()
	if wr.worldOK {
		c.reg, c.regOK = wr.world, true
	} else {
		c.adoptHost(wr.world, wr.hostOK)
	}
	return c, nil
}

// Rank is this process's rank in c, from 0 to Size()-1.
func (c *Comm) Rank() int { return c.rank }

// Size is the number of ranks in c.
func (c *Comm) Size() int { return c.size }

// JobID is the id decorun gave the job ("" in a singleton).
func (c *Comm) JobID() string { return c.job.ID }

// LocalRank is this rank's index among the job's ranks on this host.
func (c *Comm) LocalRank() int { return c.job.LocalRank }

// LocalSize is the number of the job's ranks on this host.
func (c *Comm) LocalSize() int { return c.job.LocalSize }

// Lost returns a channel that delivers the world rank of every peer that
// died while the job goes on (decorun --keep-going), once each, starting
// with those already lost. Each call returns a channel of its own, so that
// several watchers (a task scheduler, the user's code) each see every loss.
func (c *Comm) Lost() <-chan int { return c.e.watchLost() }

// ProcessorName is the name of the host this rank runs on.
func (c *Comm) ProcessorName() string { return c.host }

// Close ends the communicator. On the world communicator it is
// MPI_Finalize: calls blocked on any communicator of this process and all
// later calls fail with ErrClosed, messages this rank sent have left it when
// Close returns, and decorun learns that the rank finished properly. On a
// communicator from Split or Dup it frees only that communicator: receives
// blocked on it fail with ErrClosed. Close is idempotent; it returns the
// first close's error.
func (c *Comm) Close() error {
	if c.derived {
		if c.closedFlag.CompareAndSwap(false, true) {
			c.closeHier()
			c.releaseRegion()
			c.e.cancelComm(c.id, c.Shadow().id)
		}
		return nil
	}
	c.once.Do(func() {
		c.endTrace()
		var errs []error
		for _, close := range c.e.takeOwned() { // intercommunicators first: their peers learn it
			if err := close(); err != nil {
				errs = append(errs, err)
			}
		}
		c.closeHier()
		c.releaseRegion()
		c.e.close()
		if c.nats == nil {
			c.closed = errors.Join(errs...)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Over NATS alone the Fin request doubles as a flush: the server
		// handles a connection's messages in order, so its answer (or its
		// "no responders" when no launcher listens) means the server has
		// every frame this rank published before it. Another link (shared
		// memory) is flushed first.
		if c.link != transport.Link(c.nats) {
			if err := c.link.Flush(ctx); err != nil {
				errs = append(errs, fmt.Errorf("comm: rank %d close: flush: %w", c.rank, err))
			}
		}
		if c.settle != nil {
			if err := c.settle(ctx, c.e.isDeparted); err != nil {
				errs = append(errs, fmt.Errorf("comm: rank %d close: %w", c.rank, err))
			}
		}
		if err := c.nats.Ctl(ctx, jobenv.Ctl{Op: jobenv.OpFin, Rank: c.rank}, true); err != nil {
			errs = append(errs, fmt.Errorf("comm: rank %d close: telling decorun: %w", c.rank, err))
		}
		c.link.Close()
		c.closed = errors.Join(errs...)
	})
	return c.closed
}

// Abort ends the whole job with exit code code (MPI_Abort): decorun stops
// every rank and exits with code. It does not return.
func (c *Comm) Abort(code int) {
	c.flushTrace(fmt.Sprintf("abort(%d)", code))
	if c.nats != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.nats.Ctl(ctx, jobenv.Ctl{Op: jobenv.OpAbort, Rank: c.rank, Code: code}, true)
		cancel()
	}
	os.Exit(code)
}

func (c *Comm) checkPeer(op string, r int, wildcard bool) error {
	if err := c.alive(op); err != nil {
		return err
	}
	if wildcard && r == AnySource {
		return nil
	}
	if r < 0 || r >= c.size {
		return fmt.Errorf("comm: %s: rank %d out of range [0, %d)", op, r, c.size)
	}
	return nil
}

func (c *Comm) checkTag(op string, tag int, wildcard bool) error {
	if wildcard && tag == AnyTag {
		return nil
	}
	if tag < 0 || tag > MaxTag {
		return fmt.Errorf("comm: %s: tag %d out of range [0, %d]", op, tag, MaxTag)
	}
	return nil
}
