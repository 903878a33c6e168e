package agree

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/decorun/decorun/internal/shm"
)

// Host is what the agreement needs to know about a communicator to run
// its collective calls through a shared-memory region (package comm
// provides it, through HostOf).
type Host struct {
	// Region is this rank's file of the communicator's region, made by
	// package comm when the communicator was made (which owns it), or nil.
	// Eligible says that every rank of the communicator made its file and
	// shares this host, so that each can attach to every other's: a fact
	// every rank of the communicator computes alike, from what they all
	// exchanged when the communicator was made.
	Region   *shm.Region
	Eligible bool
	// Rank and Size place this rank in the communicator; World maps its
	// ranks to world ranks.
	Rank, Size int
	World      []int
	// Crowded: more ranks than cores on this host.
	Crowded bool
	// Alive reports an error once rank r of the communicator can no
	// longer take part (it died, or it or this rank closed).
	Alive func(r int) error
}

// HostOf returns the Host of a communicator; package comm sets it.
var HostOf func(c any) Host

// Refuse, set by package comm, returns why no collective call may run on
// c (an intercommunicator's point-to-point view), or nil; Check returns
// its error before anything moves.
var Refuse func(c any) error

// Region states of a communicator.
const (
	regUntried = iota // no call yet: the first call decides
	regActive         // every call posts in the region
	regOff            // calls go by messages
	regBroken         // this rank could not attach: every call fails
)

var (
	errClosed = errors.New("agree: communicator closed")
	errOff    = errors.New("agree: no region") // the communicator's calls go by messages
)

// state is one communicator's collective state on this rank.
type state struct {
	seq atomic.Uint64 // calls begun

	mu     sync.Mutex
	turn   uint64        // the seq whose turn it is to use the region (calls before it are done with it)
	turnCh chan struct{} // closed when turn moves
	reg    int           // regUntried...
	slot   atomic.Int64  // g's slot once reg is regActive (it stays so), else 0: Slot without the lock
	g      *shm.Region
	broken error
	step   uint64 // the region's last step posted
	// abandoned: calls whose ctx ended while they waited for their turn.
	abandoned map[uint64]bool
	// finishers: for calls that posted ahead and hold the turn, what
	// finishes them (SetFinisher); a call waiting for its turn runs the
	// one of the call that holds it.
	finishers map[uint64]Finisher
	waiting   int // calls waiting for turnCh
	// users counts the region's users: calls that hold the turn (hold to
	// Done) and AwaitPosts waits (unuse ends each); release
	// waits on idle until none does. Under mu, which both take anyway.
	users  int
	idle   *sync.Cond
	closed bool
}

func newState() *state {
	return &state{turn: 1, turnCh: make(chan struct{}), abandoned: map[uint64]bool{}, finishers: map[uint64]Finisher{}}
}

// Call is one collective call on a communicator: its tag, its place in
// the order of the communicator's calls, and, once Check ran through the
// region, the step of its post.
type Call struct {
	Tag  int
	Seq  uint64
	st   *state
	comm any

	g     *shm.Region // the region, when the call posted in it
	step  uint64
	holds bool // the call holds the turn
	// stream: Check returns once every rank's header is readable; the
	// caller waits for the payload bytes it reads (WaitData).
	stream bool
	ahead  bool  // PostAhead posted the call: Check only waits and reads
	err    error // the post failed
}

// Release ends c's use of its region: the communicator is closing. Its
// owner closes the region first (shm.Region.Close), which ends the calls
// waiting in it, and unmaps it once Release has returned.
func Release[T any](c *T) {
	if v, ok := states.Load(weak.Make(c)); ok {
		v.(*state).release()
	}
}

func (st *state) release() {
	st.mu.Lock()
	st.closed = true
	for st.users > 0 { // the region's owner closed it first, ending their waits
		if st.idle == nil {
			st.idle = sync.NewCond(&st.mu)
		}
		st.idle.Wait()
	}
	st.mu.Unlock()
}

// acquire waits for the call's turn to use the region.
func (cl *Call) acquire(ctx context.Context) error {
	st := cl.st
	for {
		st.mu.Lock()
		if st.closed {
			st.mu.Unlock()
			return errClosed
		}
		if st.reg == regOff {
			// The first call sent the communicator's calls by messages,
			// which take no turns: a call that waited for its turn while
			// the first decided (a nonblocking call still running, then a
			// later call) must not wait for calls that will never hold it.
			st.mu.Unlock()
			return errOff
		}
		if st.turn == cl.Seq {
			cl.hold()
			st.mu.Unlock()
			return nil
		}
		if st.turn > cl.Seq { // cannot happen: a call takes its turn once
			st.mu.Unlock()
			return fmt.Errorf("agree: call %d after its turn (%d)", cl.Seq, st.turn)
		}
		if f := st.finishers[st.turn]; f != nil {
			// The call that holds the turn posted ahead and nobody
			// finishes it yet (a nonblocking call not waited for): this
			// call does, as MPI's progress rule asks of a library.
			delete(st.finishers, st.turn)
			st.mu.Unlock()
			f.FinishAhead()
			continue
		}
		ch := st.turnCh
		st.waiting++
		st.mu.Unlock()
		select {
		case <-ch:
			st.mu.Lock()
			st.waiting--
			st.mu.Unlock()
		case <-ctx.Done():
			// The call gives up its turn: when the turn comes, the call
			// before it passes it on, consuming the step the call would
			// have posted (the other ranks made the call, and count it).
			st.mu.Lock()
			st.waiting--
			st.abandoned[cl.Seq] = true
			if st.turn == cl.Seq {
				st.advance()
			}
			st.mu.Unlock()
			return ctx.Err()
		}
	}
}

// hold makes the call the region's user whose turn it is (Done ends it).
// st.mu held.
func (cl *Call) hold() {
	cl.holds = true
	cl.st.users++
}

// unuse ends a use of the region (a call's hold, or AwaitPosts), letting
// release go on once none is left. mu held.
func (st *state) unuse() {
	if st.users--; st.users == 0 && st.idle != nil {
		st.idle.Broadcast()
	}
}

// advance passes the turn over the calls that gave it up, each consuming
// its step, and wakes the calls waiting for it. mu held.
func (st *state) advance() {
	for len(st.abandoned) > 0 && st.abandoned[st.turn] {
		delete(st.abandoned, st.turn)
		if st.reg == regActive {
			st.step++
			st.g.Ack(st.step)
		}
		st.turn++
	}
	if st.waiting > 0 {
		close(st.turnCh)
		st.turnCh = make(chan struct{})
	}
}

// Done ends the call's use of the region: it acknowledges its step (the
// payloads read through Data are no longer valid) and lets the next call
// on the communicator take its turn. Every call that ran Check must call
// it, once; more calls do nothing.
func (cl *Call) Done() {
	if !cl.holds {
		return
	}
	cl.holds = false
	st := cl.st
	if cl.g != nil && cl.step != 0 {
		cl.g.Ack(cl.step)
	}
	st.mu.Lock()
	if len(st.finishers) > 0 {
		delete(st.finishers, cl.Seq)
	}
	st.turn = cl.Seq + 1
	st.advance()
	st.unuse()
	st.mu.Unlock()
}

// Slot is the largest payload a call can post in the communicator's
// region, 0 when the communicator has none (yet).
func (cl *Call) Slot() int { return int(cl.st.slot.Load()) }

// Stream lets Check return, when the call goes through the region, as
// soon as every rank's header can be read, before every payload is whole
// (a large post is written in pieces: shm.Region's streaming): the
// caller must then read a payload's bytes only after WaitData says they
// are there. Call it before Check.
func (cl *Call) Stream() { cl.stream = true }

// WaitData waits, for a call in stream mode (Stream), until the first n
// bytes of rank r's payload can be read; otherwise it returns at once.
func (cl *Call) WaitData(ctx context.Context, r, n int) error {
	if !cl.stream || cl.g == nil || cl.step == 0 {
		return nil
	}
	return cl.g.WaitAvail(ctx, r, cl.step, n)
}

// Region reports whether the call posted in a region: then Data reads the
// payloads of the others.
func (cl *Call) Region() bool { return cl.g != nil && cl.step != 0 }

// Region is the region the call posted in (Region() true), and Step its
// step, for calls that go on within it (a second phase: shm.Region.Mark).
func (cl *Call) RegionOf() (*shm.Region, uint64) { return cl.g, cl.step }

// Data is rank r's payload of the call's post (a view into shared memory,
// valid until Done).
func (cl *Call) Data(r int) []byte { return cl.g.Data(r, cl.step) }

// Check runs the agreement step of the call on rank r of p: with a region,
// this rank posts h and its payload (when it fits the slot: FData says
// whether it did) and reads every rank's header; otherwise Run's exchange
// of headers over messages. The first call on a communicator runs Run and
// decides whether the communicator gets a region. The caller must call
// Done once it has read what it needs (also after an error).
func (cl *Call) Check(ctx context.Context, p, r int, h Header, payload [][]byte, exchange Exchange) (Summary, error) {
	var sum Summary
	err := cl.CheckInto(ctx, p, r, h, payload, exchange, &sum)
	return sum, err
}

// CheckInto is Check with the summary written into *sum (a small call
// through the region copies no summary).
func (cl *Call) CheckInto(ctx context.Context, p, r int, h Header, payload [][]byte, exchange Exchange, sum *Summary) (err error) {
	st := cl.st
	if Refuse != nil {
		if err := Refuse(cl.comm); err != nil {
			return err
		}
	}
	if cl.ahead {
		return cl.finish(ctx, p, sum)
	}
	h[FData] = -1
	if p == 1 {
		*sum, err = Run(ctx, p, r, h, exchange)
		return err
	}
	if ok, err := hierCheck(ctx, cl, h, sum); ok { // the communicator spans hosts (hier.go)
		return err
	}
	st.mu.Lock()
	reg := st.reg
	if reg == regActive && !st.closed && st.turn == cl.Seq {
		// The common case, under one lock: the region is on and it is
		// this call's turn (what acquire and the checks below find).
		cl.hold()
		st.mu.Unlock()
		return cl.post(ctx, p, h, payload, sum)
	}
	st.mu.Unlock()
	if reg == regOff {
		*sum, err = Run(ctx, p, r, h, exchange)
		return err
	}
	if err := cl.acquire(ctx); err == errClosed || err == errOff {
		*sum, err = Run(ctx, p, r, h, exchange) // errClosed: fails as the communicator's messages do
		return err
	} else if err != nil {
		return err
	}
	st.mu.Lock()
	reg, broken, closed := st.reg, st.broken, st.closed
	st.mu.Unlock()
	switch {
	case closed, reg == regOff:
		*sum, err = Run(ctx, p, r, h, exchange)
		return err
	case reg == regBroken:
		return broken
	case reg == regUntried:
		return cl.first(ctx, p, r, h, payload, exchange, sum)
	}
	return cl.post(ctx, p, h, payload, sum)
}

// first is the first call on a communicator: it attaches to the region
// when the communicator is eligible for one, and otherwise sends this and
// every later call by messages. Every rank decides alike (see Host).
func (cl *Call) first(ctx context.Context, p, r int, h Header, payload [][]byte, exchange Exchange, sum *Summary) (err error) {
	st := cl.st
	var host Host
	if HostOf != nil {
		host = HostOf(cl.comm)
	}
	st.mu.Lock()
	if host.Region == nil || !host.Eligible || host.Size != p || host.Rank != r {
		st.reg = regOff
		st.mu.Unlock()
		*sum, err = Run(ctx, p, r, h, exchange)
		return err
	}
	g := host.Region
	if err := g.Attach(shm.Members{World: host.World, Me: r, Crowded: host.Crowded, Alive: host.Alive}); err != nil {
		g.Fail()
		st.g, st.reg, st.broken = g, regBroken, fmt.Errorf("agree: %w", err)
		st.mu.Unlock()
		return st.broken
	}
	st.g, st.reg = g, regActive
	st.slot.Store(int64(g.Slot()))
	st.mu.Unlock()
	return cl.post(ctx, p, h, payload, sum)
}

// PostAhead posts the call in the region now, if it can without waiting:
// the communicator's calls go through its region, it is this call's turn,
// and the step's line is free. Check then only waits for the others'
// posts and reads them (h and payload must be what Check would get). A
// nonblocking call posts so in its caller, and completes in the
// background or in its Wait.
func (cl *Call) PostAhead(ctx context.Context, p int, h Header, payload [][]byte) bool {
	st := cl.st
	if p == 1 || cl.holds || cl.ahead || ctx.Err() != nil {
		return false
	}
	st.mu.Lock()
	if st.reg != regActive || st.closed || st.turn != cl.Seq || !st.g.CanPost(st.step+1) {
		st.mu.Unlock()
		return false
	}
	cl.hold()
	st.mu.Unlock()
	_ = cl.put(ctx, h, payload) // its error (ctx ended meanwhile) is Check's
	cl.ahead = true
	return true
}

// Finisher finishes a call that PostAhead posted: FinishAhead runs its
// Check and Done, at most once whoever calls it.
type Finisher interface{ FinishAhead() }

// SetFinisher records, for a call that PostAhead posted, what finishes it:
// a later call on the communicator that waits for its turn runs it.
func (cl *Call) SetFinisher(f Finisher) {
	st := cl.st
	st.mu.Lock()
	if cl.holds {
		st.finishers[cl.Seq] = f
	}
	st.mu.Unlock()
}

// Ready reports, for a call that PostAhead posted, whether every rank has
// posted its step, and the least and largest payload length among the
// posts (-1: a rank's payload did not fit its slot). It never waits, and
// it reads only what PostAhead set, so it may run while another goroutine
// finishes the call.
func (cl *Call) Ready() (ok bool, minData, maxData int64) {
	if !cl.ahead || cl.err != nil {
		return false, 0, 0
	}
	g, s := cl.g, cl.step
	for q := range g.Members() {
		if !g.Posted(q, s) {
			return false, 0, 0
		}
		d := headOf(g, q, s)[FData]
		if q == 0 || d < minData {
			minData = d
		}
		if q == 0 || d > maxData {
			maxData = d
		}
	}
	return true, minData, maxData
}

// AwaitPosts waits, for a call that PostAhead posted, until every rank has
// posted its step or stop() holds (checked whenever the wait wakes). It
// returns at once when the call did not post, and with an error when ctx
// ends or a member left or died; Check then returns the call's error.
// Another goroutine may finish the call meanwhile (stop then holds): the
// wait counts as a user of the region, so that the communicator's Close
// (Release) does not unmap the region while it is still in it.
func (cl *Call) AwaitPosts(ctx context.Context, stop func() bool) error {
	if !cl.ahead || cl.err != nil {
		return nil
	}
	st := cl.st
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return errClosed
	}
	st.users++
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		st.unuse()
		st.mu.Unlock()
	}()
	g, s := cl.g, cl.step
	return g.Await(ctx, func() bool {
		if stop() {
			return true
		}
		for q := range g.Members() {
			if !g.Posted(q, s) {
				return false
			}
		}
		return true
	})
}

// Crowded reports whether this rank's host has more ranks than cores, as
// the communicator's region recorded it when this rank attached (false
// before its first call, or without a region).
func (cl *Call) Crowded() bool {
	st := cl.st
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.reg == regActive && st.g.Crowded()
}

// Ahead reports whether PostAhead posted the call.
func (cl *Call) Ahead() bool { return cl.ahead }

// post is a call through the region: one step in which every rank posts
// its header and payload and reads every other's header.
func (cl *Call) post(ctx context.Context, p int, h Header, payload [][]byte, sum *Summary) error {
	if err := cl.put(ctx, h, payload); err != nil {
		return err
	}
	return cl.finish(ctx, p, sum)
}

// put takes the call's step and posts h and the payload (when it fits the
// slot) in it. The caller holds the turn.
func (cl *Call) put(ctx context.Context, h Header, payload [][]byte) error {
	st := cl.st
	g := st.g
	n := 0
	for _, b := range payload {
		n += len(b)
	}
	if payload != nil && n <= g.Slot() {
		h[FData] = int64(n)
	} else {
		h[FData] = -1
		payload = nil
	}
	st.step++
	s := st.step
	cl.g, cl.step = g, s
	if err := ctx.Err(); err != nil {
		cl.err = err
		return err // as a message would fail; Done consumes the step
	}
	w := pack(&h)
	if err := g.Post(ctx, s, w[:], payload...); err != nil {
		cl.err = err
		return err
	}
	return nil
}

// finish waits until every rank has posted the call's step (in stream
// mode, until every header can be read) and writes the summary of their
// headers into *sum. Ranks whose posted words and payload length equal
// rank 0's, as in every call whose ranks agree, change nothing in it.
func (cl *Call) finish(ctx context.Context, p int, sum *Summary) error {
	if cl.err != nil {
		return cl.err
	}
	g, s := cl.g, cl.step
	var err error
	if cl.stream {
		err = g.WaitHeads(ctx, s)
	} else {
		err = g.WaitAll(ctx, s)
	}
	if err != nil {
		return err
	}
	if s == 1 { // every member has attached: the names can go
		g.Unlink()
	}
	w0, n0 := wordsOf(g, 0, s)
	h0 := unpack(&w0, n0)
	for i := range sum {
		sum[i] = Field{Min: h0[i], Max: h0[i]}
	}
	for q := 1; q < p; q++ {
		w, n := wordsOf(g, q, s)
		mergeWords(sum, q, &w, n, &w0, n0)
	}
	return nil
}

// wordsOf is member q's posted header words of step s and its payload
// length.
func wordsOf(g *shm.Region, q int, s uint64) (w [packWords]int64, n int) {
	for i := range w {
		w[i] = g.Head(q, s, i)
	}
	return w, len(g.Data(q, s))
}

// headOf is member q's header of step s (which it has posted).
func headOf(g *shm.Region, q int, s uint64) Header {
	w, n := wordsOf(g, q, s)
	return unpack(&w, n)
}
