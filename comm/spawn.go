package comm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/decorun/decorun/internal/agree"
	"github.com/decorun/decorun/internal/jobenv"
)

// Errors of Spawn and intercommunicators. Test for them with errors.Is.
var (
	// ErrNoLauncher: Spawn was called in a job that no decorun launcher
	// runs (a singleton, comm.Connect, or join mode under Slurm or
	// Kubernetes): there is nobody to start the new ranks.
	ErrNoLauncher = errors.New("comm: Spawn needs the decorun launcher (run the job with decorun)")
	// ErrSpawn: the launcher refused a Spawn (the program cannot be
	// executed, the ranks cannot be placed, the job is being stopped);
	// the error says why and names the program.
	ErrSpawn = errors.New("comm: Spawn refused")
	// ErrNotInter: a method of *Intercomm was called on nil (what Parent
	// returns in a program that was not spawned) or on a zero Intercomm.
	ErrNotInter = errors.New("comm: not an intercommunicator")
	// ErrInterCollective: a collective call (package collectives, Split,
	// Dup) on an Intercomm's Remote view, which is for point-to-point
	// calls only; Merge the Intercomm first.
	ErrInterCollective = errors.New("comm: no collective calls on an intercommunicator's Remote view (Merge it first)")
)

// SpawnOptions are Spawn's optional settings; nil means the defaults.
type SpawnOptions struct {
	// Root is the rank of c that asks the launcher (MPI's root); default
	// 0. Every rank must pass the same.
	Root int
}

// Intercomm is an intercommunicator (MPI's): two groups of ranks, the
// local group this rank is in and the remote group, such as the ranks
// that called Spawn and the ranks it started. Point-to-point calls on it
// name ranks of the remote group; Merge makes one communicator of both
// groups for collectives. All methods are safe for concurrent use. A nil
// *Intercomm (Parent in a program that was not spawned) fails every call
// with ErrNotInter.
type Intercomm struct {
	w      *Comm // the world of the intercommunicator's job: both groups
	view   *Comm // ranks = the remote group's
	local  int   // first rank of the local group in w
	lsize  int
	remote int // first rank of the remote group in w
	rsize  int
	spawn  int // the spawn's number K
	once   sync.Once
	err    error
}

// Spawn starts n ranks of prog with args (MPI_Comm_spawn) and returns an
// intercommunicator whose remote group is the new ranks, in their rank
// order. It is a collective call over c: every rank of c calls it with
// the same prog, args, n and root; when they differ, or a rank makes
// another collective call, every rank's call fails with a *MismatchError.
// The decorun launcher that runs the job starts the new ranks as it
// started the job's (same hosts, launch agent, transport, -x exports and
// server); they form a world of their own, of size n, and get their
// intercommunicator from Parent. Spawn returns once every new rank has
// called Init. A program the launcher cannot execute fails Spawn on every
// rank with an error wrapping ErrSpawn that names it, and no rank is
// started; n < 1 is an error on every rank; in a job no decorun launcher
// runs, Spawn fails with ErrNoLauncher. See "Spawn and
// intercommunicators" in the package doc.
func Spawn(ctx context.Context, c *Comm, prog string, args []string, n int, opts *SpawnOptions) (*Intercomm, error) {
	if err := c.alive("Spawn"); err != nil {
		return nil, err
	}
	root := 0
	if opts != nil {
		root = opts.Root
	}
	h := agree.Header{agree.FOp: int64(agree.Spawn), agree.FType: spawnHash(prog, args), agree.FRoot: int64(root), agree.FLen: int64(n)}
	sum, err := c.agreeHeader(ctx, agree.Spawn, h)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		field int
		what  string
	}{{agree.FLen, "n=%d"}, {agree.FRoot, "root %d"}, {agree.FType, "program and arguments #%x"}} {
		if s := sum[f.field]; sum.Mismatch(f.field) {
			return nil, &MismatchError{Op: "Spawn", RankA: int(s.MinRank), CallA: "Spawn with " + fmt.Sprintf(f.what, s.Min),
				RankB: int(s.MaxRank), CallB: "Spawn with " + fmt.Sprintf(f.what, s.Max)}
		}
	}
	// The same on every rank from here on: every rank returns the same error.
	switch {
	case n < 1:
		return nil, fmt.Errorf("comm: rank %d: Spawn of %q: n must be at least 1, got %d", c.rank, prog, n)
	case prog == "":
		return nil, fmt.Errorf("comm: rank %d: Spawn: no program given", c.rank)
	case root < 0 || root >= c.size:
		return nil, fmt.Errorf("comm: rank %d: Spawn of %q: root %d out of range [0, %d)", c.rank, prog, root, c.size)
	case c.e.nats == nil || c.job.Joined != "decorun":
		how := map[string]string{"": "something other than decorun", "connect": "comm.Connect"}[c.job.Joined]
		switch {
		case c.e.nats == nil:
			how = "no one: a singleton, run without decorun"
		case how == "":
			how = c.job.Joined
		}
		return nil, fmt.Errorf("comm: rank %d: Spawn of %q (this job was started by %s): %w", c.rank, prog, how, ErrNoLauncher)
	}
	nd := c.nderived.Add(1) // after the agreement: every rank counts the same calls
	x := c.derive(mix(c.id, saltSpawn, nd))
	var members []int // nil: the world's
	if c.grp != nil {
		members = c.grp.world
	}
	c.e.addColl(x.id, members) // a rank lost meanwhile fails the exchange on every rank
	defer c.e.dropColl(x.id)
	var body []byte
	if c.rank == root {
		body = c.ask(ctx, prog, args, n)
		for r := range c.size {
			if r != root {
				if err := x.Send(ctx, r, 0, body); err != nil {
					return nil, fmt.Errorf("comm: Spawn of %q: %w", prog, err)
				}
			}
		}
	} else if body, _, err = x.Recv(ctx, root, 0); err != nil {
		return nil, fmt.Errorf("comm: Spawn of %q: %w", prog, err)
	}
	var rep jobenv.SpawnReply
	if err := json.Unmarshal(body, &rep); err != nil {
		return nil, fmt.Errorf("comm: rank %d: Spawn of %q: bad answer from decorun %q: %w", c.rank, prog, body, err)
	}
	if rep.Err != "" {
		return nil, fmt.Errorf("%w: %s", ErrSpawn, rep.Err)
	}
	if len(rep.Hosts) != c.size+n {
		return nil, fmt.Errorf("comm: rank %d: Spawn of %q: decorun placed %d ranks, want %d", c.rank, prog, len(rep.Hosts), c.size+n)
	}
	j := c.job
	j.Rank, j.Size, j.ID, j.Prefix, j.Spawn, j.Parent, j.Joined = c.rank, c.size+n, rep.ID, rep.Prefix, 0, nil, "spawn"
	j.HostRanks = nil
	for i, h := range rep.Hosts {
		if h == rep.Hosts[c.rank] {
			j.HostRanks = append(j.HostRanks, i)
		}
	}
	ctx, stop := c.e.watchSpawn(ctx, rep.K) // a new rank lost before all joined ends the wait
	defer stop()
	return interConnect(ctx, c.e, j, 0, c.size, c.size, n, rep.K)
}

// watchSpawn returns ctx, cancelled with the error of the first rank of
// spawn k that the launcher reports lost (at once if one was), until stop.
func (e *engine) watchSpawn(ctx context.Context, k int) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.spawnGone[k]; err != nil {
		cancel(err)
		return ctx, func() {}
	}
	if e.spawnWait == nil {
		e.spawnWait = map[int][]context.CancelCauseFunc{}
	}
	i := len(e.spawnWait[k])
	e.spawnWait[k] = append(e.spawnWait[k], cancel)
	return ctx, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if w := e.spawnWait[k]; i < len(w) {
			w[i] = nil
		}
		cancel(nil)
	}
}

// spawnLost records that a rank of spawn k died (jobenv.OpSpawnLost) and
// ends the Spawn calls waiting for it.
func (e *engine) spawnLost(k int, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.spawnGone == nil {
		e.spawnGone = map[int]error{}
	}
	if e.spawnGone[k] == nil {
		e.spawnGone[k] = err
	}
	for _, cancel := range e.spawnWait[k] {
		if cancel != nil {
			cancel(err)
		}
	}
	delete(e.spawnWait, k)
}

// ask sends the Spawn request to the launcher and returns its answer as
// JSON (a SpawnReply; failures to ask become its Err).
func (c *Comm) ask(ctx context.Context, prog string, args []string, n int) []byte {
	group := make([]int, c.size)
	for r := range group {
		group[r] = c.toWorld(r)
	}
	req := jobenv.Ctl{Op: jobenv.OpSpawn, Rank: c.toWorld(c.rank),
		Spawn: &jobenv.SpawnRequest{Program: prog, Args: args, N: n, Group: group}}
	body, err := c.e.nats.Ask(ctx, req)
	if err != nil {
		b, _ := json.Marshal(jobenv.SpawnReply{Err: fmt.Sprintf("cannot spawn %q: asking decorun: %v", prog, err)})
		return b
	}
	return body
}

// spawnHash is the agreement's digest of Spawn's program and arguments.
func spawnHash(prog string, args []string) int64 {
	h := fnv.New64a()
	h.Write([]byte(prog))
	for _, a := range args {
		h.Write([]byte{0})
		h.Write([]byte(a))
	}
	return int64(h.Sum64() >> 1)
}

// interConnect joins the intercommunicator's job j (this rank is j.Rank)
// and returns the Intercomm whose local group is ranks [local,
// local+lsize) of it and remote group [remote, remote+rsize); owner is the
// engine of this process's world, which closes it at the end.
func interConnect(ctx context.Context, owner *engine, j jobenv.Job, local, lsize, remote, rsize, k int) (*Intercomm, error) {
	j.LocalRank, j.LocalSize = max(slices.Index(j.HostRanks, j.Rank), 0), max(len(j.HostRanks), 1)
	w, err := connect(ctx, j)
	if err != nil {
		return nil, fmt.Errorf("comm: rank %d: joining the intercommunicator of spawn %d: %w", j.Rank-local, k, err)
	}
	ic := newIntercomm(w, local, lsize, remote, rsize, k)
	owner.own(ic.Close)
	return ic, nil
}

// newIntercomm makes the Intercomm over w, the world of both groups.
func newIntercomm(w *Comm, local, lsize, remote, rsize, k int) *Intercomm {
	ic := &Intercomm{w: w, local: local, lsize: lsize, remote: remote, rsize: rsize, spawn: k}
	g := &group{world: make([]int, rsize), byWorld: make(map[int]int, rsize)}
	for i := range rsize {
		g.world[i], g.byWorld[remote+i] = remote+i, i
	}
	v := w.derive(mix(w.id, saltInter))
	v.grp, v.rank, v.size, v.inter = g, w.rank-local, rsize, true
	ic.view = v
	return ic
}

// refuseColl is agree.Refuse: no collective call on an Intercomm's
// Remote view, even one of one rank, where nothing would be exchanged.
func refuseColl(c any) error {
	if cc, ok := c.(*Comm); ok && (cc.inter || cc.noColl) {
		return fmt.Errorf("comm: rank %d: %w", cc.rank, ErrInterCollective)
	}
	return nil
}

// own registers close to be called when this process's world closes.
func (e *engine) own(close func() error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.owned = append(e.owned, close)
}

// takeOwned returns what own registered, once.
func (e *engine) takeOwned() []func() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.owned
	e.owned = nil
	return o
}

var (
	parentMu sync.Mutex
	parent   *Intercomm
	parentOK atomic.Bool
)

// Parent returns the intercommunicator to the ranks that spawned this
// program (MPI_Comm_get_parent): its remote group is the group that
// called Spawn, its local group this program's world. It is nil when the
// program was not started by Spawn, or before Init returned; every method
// of a nil *Intercomm fails with ErrNotInter.
func Parent() *Intercomm {
	if !parentOK.Load() {
		return nil
	}
	parentMu.Lock()
	defer parentMu.Unlock()
	return parent
}

// joinParent connects a spawned rank's intercommunicator, from Init,
// after its world c.
func joinParent(ctx context.Context, c *Comm, job jobenv.Job) error {
	par := *job.Parent
	j := job
	j.Rank, j.Size, j.ID, j.Prefix, j.HostRanks, j.Spawn, j.Parent, j.Joined = par.Rank, par.Size, par.ID, par.Prefix, par.HostRanks, 0, nil, "spawn"
	p := par.Size - job.Size
	ic, err := interConnect(ctx, c.e, j, p, job.Size, 0, p, job.Spawn)
	if err != nil {
		return err
	}
	parentMu.Lock()
	parent = ic
	parentMu.Unlock()
	parentOK.Store(true)
	return nil
}

func (ic *Intercomm) ok(op string) error {
	if ic == nil || ic.w == nil {
		return fmt.Errorf("%w: %s on a nil *Intercomm (Parent is nil in a program that Spawn did not start)", ErrNotInter, op)
	}
	return nil
}

// Rank is this rank's rank in the local group.
func (ic *Intercomm) Rank() int {
	if ic == nil || ic.w == nil {
		return -1
	}
	return ic.w.rank - ic.local
}

// LocalSize is the number of ranks of the local group (0 for nil).
func (ic *Intercomm) LocalSize() int {
	if ic == nil {
		return 0
	}
	return ic.lsize
}

// RemoteSize is the number of ranks of the remote group, the ranks that
// point-to-point calls on ic name (0 for nil).
func (ic *Intercomm) RemoteSize() int {
	if ic == nil {
		return 0
	}
	return ic.rsize
}

// Spawned is the spawn's number K (1, 2, ... per job), as in the output
// tags "[sK.R]" of the spawned ranks (0 for nil).
func (ic *Intercomm) Spawned() int {
	if ic == nil {
		return 0
	}
	return ic.spawn
}

// Remote is ic's point-to-point view as a *Comm: its ranks are the remote
// group's (Size is RemoteSize, Rank this rank's rank in the local group),
// so that the typed calls work on ic too:
//
//	err := comm.SendValue(ctx, ic.Remote(), 0, tag, result)
//
// Collective calls on it (package collectives, Split, Dup) fail with
// ErrInterCollective; Merge ic for those. Remote is nil for a nil ic.
func (ic *Intercomm) Remote() *Comm {
	if ic == nil {
		return nil
	}
	return ic.view
}

// Send sends data to rank dst of the remote group, as Comm.Send.
func (ic *Intercomm) Send(ctx context.Context, dst, tag int, data []byte) error {
	if err := ic.ok("Send"); err != nil {
		return err
	}
	return ic.view.Send(ctx, dst, tag, data)
}

// Recv receives a message from rank src of the remote group (or
// AnySource: any of them), as Comm.Recv; Status.Source is a rank of the
// remote group.
func (ic *Intercomm) Recv(ctx context.Context, src, tag int) ([]byte, Status, error) {
	if err := ic.ok("Recv"); err != nil {
		return nil, Status{}, err
	}
	return ic.view.Recv(ctx, src, tag)
}

// RecvInto receives into buf from rank src of the remote group, as
// Comm.RecvInto.
func (ic *Intercomm) RecvInto(ctx context.Context, buf []byte, src, tag int) (Status, error) {
	if err := ic.ok("RecvInto"); err != nil {
		return Status{}, err
	}
	return ic.view.RecvInto(ctx, buf, src, tag)
}

// Isend starts sending data to rank dst of the remote group, as
// Comm.Isend.
func (ic *Intercomm) Isend(dst, tag int, data []byte) (*Request, error) {
	if err := ic.ok("Isend"); err != nil {
		return nil, err
	}
	return ic.view.Isend(dst, tag, data)
}

// Irecv posts a receive from rank src of the remote group, as
// Comm.Irecv.
func (ic *Intercomm) Irecv(src, tag int) (*Request, error) {
	if err := ic.ok("Irecv"); err != nil {
		return nil, err
	}
	return ic.view.Irecv(src, tag)
}

// Probe waits for a message from rank src of the remote group, as
// Comm.Probe.
func (ic *Intercomm) Probe(ctx context.Context, src, tag int) (Status, error) {
	if err := ic.ok("Probe"); err != nil {
		return Status{}, err
	}
	return ic.view.Probe(ctx, src, tag)
}

// Lost returns a channel that delivers the rank in the remote group of
// every remote rank that died while the job goes on (decorun
// --keep-going), once each, as Comm.Lost does for a world.
func (ic *Intercomm) Lost() <-chan int {
	if ic == nil || ic.w == nil {
		return nil
	}
	return ic.w.e.watchLostAs(func(r int) (int, bool) {
		return r - ic.remote, r >= ic.remote && r < ic.remote+ic.rsize
	})
}

// Merge makes one communicator of both groups (MPI_Intercomm_merge): a
// collective call over both, which every rank of both groups makes. The
// group whose ranks pass high=false comes first, each group in its own
// order; when both pass the same, the spawning group comes first. Every
// rank of a group must pass the same high. The result is an ordinary
// communicator (collectives, Split, Dup); its Lost delivers ranks in
// the order of Merge(ctx, false) (spawning group first). Close it when
// done; closing ic does not close it, but ends its traffic.
func (ic *Intercomm) Merge(ctx context.Context, high bool) (*Comm, error) {
	if err := ic.ok("Merge"); err != nil {
		return nil, err
	}
	w := ic.w
	if err := w.alive("Merge"); err != nil {
		return nil, err
	}
	if _, err := w.agree(ctx, agree.Merge, 0, false); err != nil {
		return nil, err
	}
	key := w.rank
	if high {
		key += w.size
	}
	nc, err := w.splitAgreed(ctx, 0, key)
	if err != nil {
		return nil, fmt.Errorf("comm: rank %d: Merge: %w", ic.Rank(), err)
	}
	return nc, nil
}

// Close ends this rank's part of the intercommunicator: the remote ranks'
// calls naming this rank fail with ErrPeerClosed, as when a rank closes
// its world. Closing the world closes every Intercomm of the process
// first. Close is idempotent.
func (ic *Intercomm) Close() error {
	if err := ic.ok("Close"); err != nil {
		return err
	}
	ic.once.Do(func() {
		ic.view.Close()
		ic.err = ic.w.Close()
	})
	return ic.err
}

// String describes ic for %v: "Intercomm{spawn 1, rank 0 of 2, remote 4}".
func (ic *Intercomm) String() string {
	if ic == nil {
		return "Intercomm(nil)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Intercomm{spawn %d, rank %d of %d, remote %d}", ic.spawn, ic.Rank(), ic.lsize, ic.rsize)
	return b.String()
}
