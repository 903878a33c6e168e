package launcher

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/proc"
	"github.com/decorun/decorun/internal/shm"
	"github.com/nats-io/nats.go"
	"golang.org/x/term"
)

// drainTimeout bounds how long output is still read once every rank has
// exited: only a descendant that left its rank's process group can keep a
// pipe open that long.
const drainTimeout = 500 * time.Millisecond

// rank is the launcher's view of one rank. Its fields are owned by the
// event loop (job.loop), except p, which is safe for concurrent use.
type rank struct {
	n      int    // index in job.ranks
	w      *world // its world: the job's own (k 0) or a spawn's
	wr     int    // its rank there
	p      process
	done   bool        // reaped; status is valid
	status proc.Status // how it ended
	joined bool        // sent OpJoin
	fin    bool        // sent OpFin
}

type exitEvent struct {
	rank int
	st   proc.Status
	err  error
}

// job is one running job. run is called once.
type job struct {
	cfg    Config
	path   string // the executable
	built  bool   // path was built from a Go package
	srv    *jobServer
	id     string
	prefix string
	env    []string
	marker string  // prefix of the launcher's own ordering markers on the control subject
	cores  [][]int // the cores this launcher may run on, which its ranks share (binding)

	sub   *nats.Subscription
	ctl   chan *nats.Msg // control messages, read by the loop only
	exits chan exitEvent // one per started rank

	ranks  []*rank           // started ranks, by index: the job's own ranks first, then each spawn's
	worlds []*world          // the job's world, then one per spawn
	byCtl  map[string]*world // by control subject
	inters []*interJob       // the spawns' intercommunicators
	steps  []startStep       // the launch, taken in order by the loop
	next   int               // index of the next step

	outMux, errMux *proc.Mux      // shared destinations of the ranks' lines
	out, errw      io.Writer      // the launcher's own lines, through outMux and errMux
	wg             sync.WaitGroup // waiters and output copiers
	readers        []*os.File     // read ends of the output pipes

	remotes       []*remoteHost
	remotesMu     sync.Mutex // remotes grows while heartbeats arrive
	hbSub         *nats.Subscription
	remoteURL     string // the server's URL as remote ranks reach it
	remoteFiles   map[string]*os.File
	remoteSinks   map[string]chan []byte // remote ranks' output, by "world.rank.fd"
	remoteFilesMu sync.Mutex             // guards remoteFiles and remoteSinks
	sinks         sync.WaitGroup         // the writers of remoteSinks
	place         []int                  // host index of every rank (nil: all local)

	stdinW    *os.File      // write end of rank 0's stdin pipe when Stdin is copied
	stdinDone chan struct{} // closed when the stdin copier ends

	// Loop state.
	live     int        // started ranks not yet reaped
	pending  int        // ordering markers published and not yet seen
	stopping bool       // the job is being stopped: later exits are not failures
	failure  *ExitError // what ended the job, if it failed
	ctxErr   error      // ctx ended the job
	graceC   <-chan time.Time

	tr *tracer // decorun --trace or --report (trace.go); nil: off
}

func newJob(cfg Config, path string, srv *jobServer) (*job, error) {
	id := randomHex(8)
	j := &job{
		cfg: cfg, path: path, srv: srv, id: id,
		built:  path != cfg.Program && isGoPackage(cfg.Program),
		prefix: jobenv.DefaultPrefix(id),
		marker: "decorun-marker " + randomHex(8) + " ",
		ctl:    make(chan *nats.Msg, 4*cfg.NP+4096), // spawned ranks' messages come here too
		exits:  make(chan exitEvent, cfg.NP),
	}
	if !cfg.NoBind {
		j.cores, _ = proc.Cores() // none known: ranks run unbound
	}
	var err error
	j.sub, err = srv.nc.ChanSubscribe(jobenv.CtlSubject(j.prefix), j.ctl)
	if err == nil {
		err = srv.nc.Flush() // the server has the subscription before any rank exists
	}
	if err != nil {
		return nil, &ExitError{Code: 1, Rank: -1, Msg: "cannot subscribe to the job's control subject: " + err.Error(), Err: err}
	}
	if err := j.startTrace(); err != nil {
		j.sub.Unsubscribe()
		return nil, &ExitError{Code: 1, Rank: -1, Msg: err.Error(), Err: err}
	}
	j.env = j.environ()
	j.outMux, j.errMux = destinations(cfg.Stdout, cfg.Stderr)
	j.out, j.errw = j.outMux.Source(nil), j.errMux.Source(nil)
	return j, nil
}

// destinations wraps stdout and stderr so that lines are written whole,
// sharing one Mux when both are the same writer.
func destinations(stdout, stderr io.Writer) (*proc.Mux, *proc.Mux) {
	o := proc.NewMux(stdout, lineHold)
	if same(stdout, stderr) {
		return o, o
	}
	return o, proc.NewMux(stderr, lineHold)
}

func same(a, b io.Writer) (eq bool) {
	defer func() {
		if recover() != nil { // not comparable
			eq = false
		}
	}()
	return a == b
}

// environ is the environment of every rank.
func (j *job) environ() []string {
	env := os.Environ()
	for _, e := range j.cfg.Env {
		if strings.Contains(e, "=") {
			env = append(env, e)
		} else if v, ok := os.LookupEnv(e); ok {
			env = append(env, e+"="+v)
		}
	}
	n := strconv.Itoa(j.cfg.NP)
	info := j.srv.info
	info.ID, info.Prefix, info.Transport = j.id, j.prefix, j.cfg.Transport
	info.TCPPlain = j.cfg.TCPPlain
	env = append(env, info.Environ()...)
	if j.srv.remoteURL != "" {
		// Ranks on other hosts dial this host's ranks where they reach
		// the server, not at 127.0.0.1 (this host's ranks' server URL).
		if u, err := url.Parse(j.srv.remoteURL); err == nil {
			env = append(env, jobenv.EnvTCPAddr+"="+u.Hostname())
		}
	}
	env = append(env, j.traceEnv()...)
	return append(append(env, ttyEnv(j.cfg.Stderr)...),
		jobenv.EnvSize+"="+n,
		jobenv.EnvLocalSize+"="+n,
	) // the rank variables are appended per rank; exec keeps the last duplicate
}

// ttyEnv tells the ranks whether their stderr lines end on a terminal
// (DECORUN_TTY=1), so that rank 0 can draw a progress bar there although
// its own stderr is a pipe to decorun.
func ttyEnv(stderr io.Writer) []string {
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return []string{jobenv.EnvTTY + "=1"}
	}
	return nil
}

func (j *job) run(ctx context.Context) error {
	defer j.sub.Unsubscribe()
	// Shared-memory segments: ranks unlink theirs once mapped; these sweeps
	// catch what a rank (or an earlier decorun) killed early left behind.
	shm.SweepStale("")
	defer shm.RemoveJob("", j.id)
	var timeout <-chan time.Time
	if j.cfg.Timeout > 0 {
		t := time.NewTimer(j.cfg.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	j.ranks = make([]*rank, j.cfg.NP)
	w0 := &world{id: j.id, prefix: j.prefix, n: j.cfg.NP, path: j.path, prog: j.cfg.Program, args: j.cfg.Args,
		built: j.built, place: j.place, env: j.env}
	for n := range j.cfg.NP {
		w0.slots = append(w0.slots, n)
	}
	j.worlds, j.byCtl = []*world{w0}, map[string]*world{jobenv.CtlSubject(j.prefix): w0}
	defer j.dropSpawns()
	if err := j.planStarts(w0); err != nil {
		j.fail(err, syscall.SIGKILL)
	}
	j.loop(ctx, timeout)
	j.teardown()
	terr := j.finishTrace()
	if j.failure != nil {
		if terr != nil {
			fmt.Fprintf(j.errw, "decorun: %v\n", terr)
		}
		return j.failure
	}
	if terr != nil && j.ctxErr == nil {
		return &ExitError{Code: 1, Rank: -1, Msg: terr.Error(), Err: terr}
	}
	return j.ctxErr
}

// loop starts the ranks and handles exits, control messages, signals and
// timers until every started rank is reaped. While ranks are being
// started, whatever event is ready is handled before the next start, so a
// signal, the timeout or a failing rank stops the launch at once.
func (j *job) loop(ctx context.Context, timeout <-chan time.Time) {
	done := ctx.Done()
	for {
		if j.starting() {
			if !j.step(ctx, &done, timeout, false) {
				j.startNext()
			}
			continue
		}
		if j.live == 0 && (j.stopping || j.pending == 0) {
			return
		}
		j.step(ctx, &done, timeout, true)
	}
}

// step handles one event: the next one to come when block is set, else
// one that is ready, reporting false when none is.
func (j *job) step(ctx context.Context, done *<-chan struct{}, timeout <-chan time.Time, block bool) bool {
	if !block {
		select {
		case ev := <-j.exits:
			j.exited(ev)
		case m := <-j.ctl:
			j.control(m)
		case s := <-j.cfg.Signals:
			j.signal(s)
		case <-timeout:
			j.timedOut()
		case <-j.graceC:
			j.graceOver()
		case <-*done:
			*done = nil
			j.cancelled(ctx)
		default:
			return false
		}
		return true
	}
	select {
	case ev := <-j.exits:
		j.exited(ev)
	case m := <-j.ctl:
		j.control(m)
	case s := <-j.cfg.Signals:
		j.signal(s)
	case <-timeout:
		j.timedOut()
	case <-j.graceC:
		j.graceOver()
	case <-*done:
		*done = nil
		j.cancelled(ctx)
	}
	return true
}

func (j *job) timedOut() {
	j.fail(&ExitError{Code: ExitTimeout, Rank: -1, Msg: fmt.Sprintf("job timed out after %v", j.cfg.Timeout)}, syscall.SIGTERM)
}

// graceOver kills what is left of a job being stopped.
func (j *job) graceOver() {
	j.graceC = nil
	j.signalAll(syscall.SIGKILL)
}

func (j *job) cancelled(ctx context.Context) {
	j.ctxErr = ctx.Err()
	j.fail(nil, syscall.SIGTERM)
}

// fail stops the job because of failure (nil: ctx ended it), unless it is
// already stopping: the ranks still running get sig, then SIGKILL after
// KillGrace.
func (j *job) fail(failure *ExitError, sig syscall.Signal) {
	if j.stopping {
		return
	}
	j.stopping = true
	j.failure = failure
	j.signalAll(sig)
	if sig != syscall.SIGKILL {
		j.graceC = time.After(j.cfg.KillGrace)
	}
}

func (j *job) signalAll(sig syscall.Signal) {
	for _, r := range j.ranks {
		if r != nil && !r.done {
			r.p.Signal(sig)
		}
	}
}

func (j *job) exited(ev exitEvent) {
	r := j.ranks[ev.rank]
	r.done, r.status = true, ev.st
	j.live--
	if j.stopping {
		return
	}
	switch {
	case ev.err != nil:
		j.fail(&ExitError{Code: 1, Rank: r.n, Msg: jobenv.Redact(fmt.Sprintf("%s (%s): %v", r.name(), where(r.p), ev.err)), Err: jobenv.RedactError(ev.err)}, syscall.SIGTERM)
	case ev.st.Failed() && j.cfg.KeepGoing && (!r.spawned() && r.n != 0 || r.spawned() && r.joined):
		j.lose(r)
	case ev.st.Failed():
		j.fail(j.lowestFailure(r), syscall.SIGTERM)
	case r.fin:
	default:
		// Exited 0 without OpFin: judge it once every control message
		// the server had before now has been seen (a late OpJoin).
		// (on its world's control subject, where its OpJoin went)
		if err := j.srv.nc.Publish(jobenv.CtlSubject(j.prefixOf(r)), []byte(j.marker+strconv.Itoa(r.n))); err == nil {
			j.pending++
		} else {
			j.judgeClean(r)
		}
	}
}

// lose reports that rank r failed while the job goes on (KeepGoing) and
// tells the other ranks.
func (j *job) lose(r *rank) {
	how := r.status.String()
	fmt.Fprintf(j.errw, "decorun: %s (%s) %s; the job goes on without it (--keep-going)\n", r.name(), where(r.p), how)
	// Its world's ranks, and those of every intercommunicator it is in,
	// learn it under the rank it has there; the ranks that asked for it
	// (a spawned rank) too, as they may still wait for it in Spawn.
	type event struct {
		subj string
		ev   jobenv.Ctl
	}
	evs := []event{{jobenv.EventSubject(j.prefixOf(r)), jobenv.Ctl{Op: jobenv.OpLost, Rank: r.worldRank(), Msg: how}}}
	for _, x := range j.inters {
		if i := slices.Index(x.members, r.n); i >= 0 {
			evs = append(evs, event{jobenv.EventSubject(x.prefix), jobenv.Ctl{Op: jobenv.OpLost, Rank: i, Msg: how}})
		}
	}
	if r.spawned() {
		evs = append(evs, event{jobenv.EventSubject(r.w.asker.prefix), jobenv.Ctl{Op: jobenv.OpSpawnLost, Rank: r.wr, Code: r.w.k, Msg: how}})
	}
	for _, e := range evs {
		if err := j.srv.nc.Publish(e.subj, e.ev.Encode()); err != nil {
			j.fail(&ExitError{Code: 1, Rank: r.n, Msg: fmt.Sprintf("%s failed and the other ranks could not be told: %v", r.name(), err), Err: err}, syscall.SIGTERM)
			return
		}
	}
	j.srv.nc.Flush()
}

// lowestFailure is the failure to report when rank r failed: the lowest
// rank among r and the ranks that have already died with a failure but are
// not reaped yet.
func (j *job) lowestFailure(r *rank) *ExitError {
	n, st := r.n, r.status
	for _, q := range j.ranks {
		if q == nil || q.done || q.n > n {
			continue
		}
		if qst, ok := q.p.Poll(); ok && qst.Failed() {
			n, st = q.n, qst
		}
	}
	return &ExitError{Code: st.ExitCode(), Rank: n,
		Msg: fmt.Sprintf("%s (%s) %v", j.ranks[n].name(), where(j.ranks[n].p), st)}
}

// judgeClean fails the job if r, which exited 0, joined but never closed
// its communicator.
func (j *job) judgeClean(r *rank) {
	if r.spawned() && !r.joined {
		// Its parents wait for it in comm.Spawn.
		j.fail(&ExitError{Code: 1, Rank: r.n,
			Msg: fmt.Sprintf("%s exited with code 0 without calling comm.Init; a program started by comm.Spawn must join its parents", r.name())}, syscall.SIGTERM)
		return
	}
	if r.joined && !r.fin {
		j.fail(&ExitError{Code: 1, Rank: r.n,
			Msg: fmt.Sprintf("%s exited with code 0 without closing its communicator (comm.Close)", r.name())}, syscall.SIGTERM)
	}
}

func (j *job) control(m *nats.Msg) {
	if s, ok := strings.CutPrefix(string(m.Data), j.marker); ok {
		j.pending--
		if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < len(j.ranks) && !j.stopping {
			j.judgeClean(j.ranks[n])
		}
		return
	}
	w := j.byCtl[m.Subject]
	c, err := jobenv.DecodeCtl(m.Data)
	if w == nil || err != nil || c.Rank < 0 || c.Rank >= w.n {
		return // not from a rank of this job's kind; nothing to act on
	}
	r := j.ranks[w.slots[c.Rank]] // nil until started
	switch c.Op {
	case jobenv.OpJoin:
		if r != nil {
			r.joined = true
		}
	case jobenv.OpFin:
		if r != nil {
			r.fin = true
		}
		m.Respond([]byte("ok"))
	case jobenv.OpAbort:
		m.Respond([]byte("ok"))
		code := c.Code
		if code <= 0 || code > 255 {
			code = 1
		}
		j.fail(&ExitError{Code: code, Rank: w.slots[c.Rank], Msg: fmt.Sprintf("%s called Abort(%d)", w.name(c.Rank), c.Code)}, syscall.SIGTERM)
	case jobenv.OpSpawn:
		m.Respond(j.spawn(w, c.Spawn))
	}
}

func (j *job) signal(s os.Signal) {
	sig, ok := s.(syscall.Signal)
	if !ok {
		return
	}
	switch {
	case sig != syscall.SIGINT && sig != syscall.SIGTERM:
		j.signalAll(sig)
	case j.stopping:
		j.signalAll(syscall.SIGKILL) // asked twice: no more grace
	default:
		j.fail(interrupted(sig), sig)
	}
}

// teardown waits for the output copiers and the stdin copier once every
// rank is reaped.
func (j *job) teardown() {
	if j.hbSub != nil {
		j.hbSub.Unsubscribe()
	}
	for _, h := range j.remotes {
		close(h.done)
	}
	defer func() {
		for _, f := range j.remoteFiles {
			f.Close()
		}
	}()
	if j.stdinW != nil {
		j.stdinW.Close() // unblocks a copier stuck writing to a rank 0 that never read
		select {
		case <-j.stdinDone:
		case <-time.After(j.cfg.KillGrace):
		}
	}
	stop := time.AfterFunc(drainTimeout, func() { // the copiers own the read deadlines
		for _, r := range j.readers {
			r.Close()
		}
	})
	defer stop.Stop()
	j.wg.Wait()
	j.remoteFilesMu.Lock()
	for _, c := range j.remoteSinks {
		close(c) // their readers of the agents are done
	}
	j.remoteFilesMu.Unlock()
	j.sinks.Wait()
}

// onlyReader hides everything but Read from io.Copy.
type onlyReader struct{ io.Reader }

// isTerminal reports whether f is a character device such as a terminal.
// Rank 0 is in its own process group, which the terminal would stop with
// SIGTTIN when it reads, so the launcher reads a terminal for it.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
