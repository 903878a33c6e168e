// Package agent is decorun's helper on a remote host (like Open MPI's
// orted): the launcher starts `decorun agent` there through the launch agent
// (ssh, or any command template such as `ip netns exec {host}`), and the
// agent starts that host's ranks, forwards their output and exit statuses,
// and forwards signals to them.
//
// The protocol is newline-delimited JSON. On the agent's stdin the launcher
// first sends a Spec, then Msgs: "sig" (signal a rank, or all with Rank -1).
// On its stdout the agent sends Msgs: "started", "out" (one whole output
// line), and "exit" (after every line of that rank). The job secret travels
// on stdin, never on a command line.
//
// Liveness never depends on the output stream, which may stall for any time
// (decorun's own stdout read slowly, a congested ssh connection) or may be a
// local pipe (ip netns exec) while the host's network is gone: the agent and
// the launcher publish heartbeats on the job's NATS server
// (jobenv.HeartbeatSubject) every HeartbeatInterval, from goroutines that
// never touch the stream, and each gives the other up after
// HeartbeatTimeout.
//
// Output is paused, never dropped, while the launcher is alive: one
// goroutine writes the stream, and once OutputBudget bytes wait for it the
// ranks' next writes block until it has caught up.
//
// Guarantees: the agent kills every rank it started (SIGKILL to each
// process group) when its stdin ends or when the launcher's heartbeats stop
// for HeartbeatTimeout (a cut link or a dead launcher host), within
// HeartbeatTimeout plus HeartbeatInterval/5 of the last heartbeat however
// much the ranks print, and exits at most giveUpFlush later (dropping the
// output the stream has not taken by then); each rank
// also has a parent-death signal, so no rank outlives its agent. Costs: one
// JSON line per output line, up to OutputBudget bytes (plus a line) held per
// host, and two small heartbeats per HeartbeatInterval.
package agent

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/proc"
	"github.com/decorun/decorun/internal/shm"
	"github.com/decorun/decorun/internal/transport"
	"github.com/nats-io/nats.go"
)

// Heartbeats: each side sends one every HeartbeatInterval and gives the
// other up after HeartbeatTimeout of silence.
const (
	HeartbeatInterval = 500 * time.Millisecond
	HeartbeatTimeout  = 3 * time.Second
)

// Spec tells an agent what to run.
type Spec struct {
	Host    string     `json:"host"`
	Program string     `json:"program"`
	Args    []string   `json:"args"`
	Dir     string     `json:"dir"`
	Env     []string   `json:"env"` // added to the agent's own environment
	Ranks   []RankSpec `json:"ranks"`
	// Beat is the subject prefix of the job's heartbeats, when it is not
	// the DECORUN_PREFIX of Env (the ranks of a spawn have a world, and
	// so a prefix, of their own).
	Beat string `json:"beat,omitempty"`
	// Bind: bind each rank to its share of the host's CPUs when the
	// host's ranks are no more than them (decorun --bind-to core; set
	// for a job's own ranks, not a spawn's).
	Bind bool `json:"bind,omitempty"`
}

// RankSpec is one rank to start.
type RankSpec struct {
	Rank      int `json:"rank"`
	LocalRank int `json:"local_rank"`
	LocalSize int `json:"local_size"`
}

// Msg is one protocol message.
type Msg struct {
	Op     string `json:"op"` // started, out, exit (agent to launcher); sig (launcher to agent)
	Rank   int    `json:"rank"`
	Pid    int    `json:"pid,omitempty"`
	FD     int    `json:"fd,omitempty"`
	Data   []byte `json:"data,omitempty"`
	Code   int    `json:"code,omitempty"`
	Signal int    `json:"signal,omitempty"`
	Err    string `json:"err,omitempty"`
}

// Encoder writes Msgs, one per line, safe for concurrent use.
type Encoder struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{enc: json.NewEncoder(w)} }

// Send writes m.
func (e *Encoder) Send(m any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.enc.Encode(m)
}

// lineSink turns each whole line CopyLines writes into an "out" message,
// waiting while the outbox is over its budget.
type lineSink struct {
	out      *outbox
	rank, fd int
}

func (s lineSink) Write(p []byte) (int, error) {
	if err := s.out.put(Msg{Op: "out", Rank: s.rank, FD: s.fd, Data: p}, true); err != nil {
		return 0, err // CopyLines then reads on and discards, so the rank never blocks
	}
	return len(p), nil
}

// drainTimeout bounds how long the output of killed ranks is still read:
// only a descendant that left its rank's process group keeps a pipe open.
const drainTimeout = 500 * time.Millisecond

// Run is `decorun agent`: it reads a Spec from in, runs the ranks and
// returns when they have all exited and their output is delivered (0), or
// when the launcher is gone: its stdin ended, or its heartbeats stopped for
// HeartbeatTimeout, however much the ranks print and however slowly out is
// read. It then kills the ranks and returns 1 without waiting for out,
// which may be a stream whose other end is unreachable: one goroutine may
// stay blocked writing to it, so the caller should exit the process.
func Run(in io.Reader, out io.Writer, errw io.Writer) int {
	signal.Ignore(syscall.SIGPIPE) // a vanished launcher shows up as write errors, not death
	dec := json.NewDecoder(bufio.NewReader(in))
	var spec Spec
	if err := dec.Decode(&spec); err != nil {
		fmt.Fprintf(errw, "decorun agent: reading the job spec: %v\n", err)
		return 2
	}
	ob := newOutbox(out, OutputBudget)
	go ob.run() // ends at close or abort, unless blocked writing to an unreachable launcher
	a := &agentState{spec: spec, out: ob, procs: map[int]*proc.Proc{}}
	if spec.Bind {
		a.cores, _ = proc.Cores() // none known: ranks run unbound
	}

	// The launcher is gone when its stdin ends (the launcher closes it
	// once it has every exit) or when its heartbeats stop (watch).
	gone := make(chan string, 2)
	go func() { // ends when in does: the launcher closes it, or dies
		for {
			var m Msg
			if err := dec.Decode(&m); err != nil {
				if errors.Is(err, io.EOF) {
					gone <- "the launcher closed the connection"
				} else {
					gone <- "lost the launcher: " + err.Error()
				}
				return
			}
			switch m.Op {
			case "sig":
				a.signal(m.Rank, syscall.Signal(m.Signal))
			}
		}
	}()

	// Heartbeats travel over the network, through the job's server, so
	// that a cut link is noticed even when stdin is a local pipe.
	job := jobenv.FromList(spec.Env)
	// This host's shared-memory segments (internal/shm): what dead
	// processes left, and this job's when it ends, as the launcher does on
	// its host.
	shm.SweepStale("")
	defer shm.RemoveJob("", job.ID)
	auth, err := transport.Auth(job)
	var nc *nats.Conn
	if err == nil {
		// A write stuck longer than HeartbeatTimeout (a cut link) fails,
		// so that neither heartbeats nor Close wait on it for long.
		nc, err = nats.Connect(job.URL, append(auth, nats.Name("decorun agent "+spec.Host), nats.NoReconnect(),
			nats.Timeout(10*time.Second), nats.FlusherTimeout(HeartbeatTimeout))...)
	}
	if err != nil {
		why := jobenv.Redact(fmt.Sprintf("the agent on %s cannot reach the job's server at %s: %v", spec.Host, job.URL, err))
		for _, rs := range spec.Ranks {
			ob.put(Msg{Op: "exit", Rank: rs.Rank, Code: 1, Err: why}, false)
		}
		ob.close()
		select { // the launcher gives a host without heartbeats up after firstHeartbeat
		case <-ob.done:
		case <-gone:
		case <-time.After(30 * time.Second):
		}
		return 1
	}
	defer nc.Close()
	stopWatch := make(chan struct{})
	beat := job.Prefix
	if spec.Beat != "" {
		beat = spec.Beat
	}
	watched, err := watch(nc, beat, spec.Host, gone, stopWatch)
	if err != nil {
		fmt.Fprintf(errw, "decorun agent on %s: %v\n", spec.Host, err)
		return 1
	}
	defer func() { close(stopWatch); <-watched }()

	var wg sync.WaitGroup
	exits := make(chan struct{}, len(spec.Ranks))
	for _, rs := range spec.Ranks {
		select {
		case why := <-gone:
			return a.giveUp(why, &wg, errw)
		default:
		}
		p, copiers, err := a.start(rs)
		if err != nil {
			ob.put(Msg{Op: "exit", Rank: rs.Rank, Code: 127, Err: err.Error()}, false)
			exits <- struct{}{}
			continue
		}
		ob.put(Msg{Op: "started", Rank: rs.Rank, Pid: p.Pid()}, false)
		wg.Go(func() {
			st, err := p.Wait()
			for _, c := range copiers {
				<-c
			}
			m := Msg{Op: "exit", Rank: rs.Rank, Code: st.Code, Signal: int(st.Signal)}
			if err != nil {
				m.Code, m.Err = 1, err.Error()
			}
			if why := a.why(); why != "" {
				m.Err = why
			}
			exits <- struct{}{} // counted before the launcher can see the exit and hang up
			ob.put(m, false)
		})
	}

	for left := len(spec.Ranks); left > 0; {
		select {
		case <-exits:
			left--
		case why := <-gone:
			// The launcher closes the connection once it has every rank's
			// exit: exits not yet counted here are no reason to complain.
			for len(exits) > 0 {
				<-exits
				left--
			}
			if left > 0 {
				return a.giveUp(why, &wg, errw)
			}
		}
	}
	wg.Wait()
	// Every exit is queued: deliver what is, unless the launcher goes first.
	ob.close()
	select {
	case <-ob.done:
	case <-gone:
	}
	return 0
}

// giveUp kills every rank because the launcher is gone (why), and returns
// Run's code once they are reaped. It tells the launcher how they ended if
// the stream still flows (a local pipe to a launcher that is alive but
// unreachable through the network), and drops what the stream has not taken
// after giveUpFlush.
func (a *agentState) giveUp(why string, wg *sync.WaitGroup, errw io.Writer) int {
	a.kill(why)
	fmt.Fprintf(errw, "decorun agent on %s: %s; killed its ranks\n", a.spec.Host, why)
	expired := time.After(giveUpFlush)
	reaped := make(chan struct{})
	go func() { wg.Wait(); close(reaped) }() // reaped, pipes read to the end or for drainTimeout
	select {
	case <-reaped:
		a.out.close()
		select {
		case <-a.out.done:
			return 1
		case <-expired:
		}
	case <-expired:
	}
	a.out.abort() // wakes the copiers waiting for room
	<-reaped
	return 1
}

// giveUpFlush bounds how long an agent that lost the launcher still tries
// to deliver its ranks' exits.
const giveUpFlush = time.Second

// watch publishes the agent's heartbeats on the job's server and reports on
// gone when the launcher's stop for HeartbeatTimeout. It runs apart from
// the output stream, which may be stalled for any time, until stop is
// closed; watched is closed when its goroutines have ended.
func watch(nc *nats.Conn, prefix, host string, gone chan<- string, stop <-chan struct{}) (watched chan struct{}, err error) {
	var mu sync.Mutex
	last := time.Now()
	sub, err := nc.Subscribe(jobenv.HeartbeatSubject(prefix, "launcher"), func(*nats.Msg) {
		mu.Lock()
		last = time.Now()
		mu.Unlock()
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to the launcher's heartbeats: %w", err)
	}
	mine := jobenv.HeartbeatSubject(prefix, host)
	nc.Publish(mine, nil)
	var wg sync.WaitGroup
	wg.Go(func() { // publishes; a connection that cannot send only delays this one
		t := time.NewTicker(HeartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				nc.Publish(mine, nil)
			case <-stop:
				return
			}
		}
	})
	wg.Go(func() { // checks
		defer sub.Unsubscribe()
		t := time.NewTicker(HeartbeatInterval / 5)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				mu.Lock()
				silent := time.Since(last)
				mu.Unlock()
				if silent > HeartbeatTimeout {
					gone <- fmt.Sprintf("no heartbeat from the launcher for %v", silent.Round(100*time.Millisecond))
					return
				}
			case <-stop:
				return
			}
		}
	})
	watched = make(chan struct{})
	go func() { wg.Wait(); close(watched) }()
	return watched, nil
}

type agentState struct {
	spec    Spec
	cores   [][]int // this host's cores, which its ranks share (Spec.Bind)
	out     *outbox
	mu      sync.Mutex
	procs   map[int]*proc.Proc
	readers []*os.File // read ends of the ranks' output pipes
	reason  string     // why the agent killed its ranks
}

// kill kills every rank, recording why for their exit messages, and stops
// reading their output after drainTimeout.
func (a *agentState) kill(why string) {
	a.mu.Lock()
	a.reason = fmt.Sprintf("host %s lost the launcher (%s); its ranks were killed", a.spec.Host, why)
	readers := a.readers
	a.mu.Unlock()
	time.AfterFunc(drainTimeout, func() { // the copiers own the read deadlines
		for _, r := range readers {
			r.Close()
		}
	})
	a.signal(-1, syscall.SIGKILL)
}

func (a *agentState) why() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reason
}

func (a *agentState) start(rs RankSpec) (*proc.Proc, []chan struct{}, error) {
	cmd := exec.Command(a.spec.Program, a.spec.Args...)
	cmd.Dir = a.spec.Dir
	cmd.Env = append(os.Environ(), a.spec.Env...)
	cmd.Env = append(cmd.Env,
		jobenv.EnvRank+"="+strconv.Itoa(rs.Rank),
		jobenv.EnvLocalRank+"="+strconv.Itoa(rs.LocalRank),
		jobenv.EnvLocalSize+"="+strconv.Itoa(rs.LocalSize))
	cpus, add := proc.Binding(a.cores, rs.LocalRank, rs.LocalSize, cmd.Env)
	cmd.Env = append(cmd.Env, add...)
	var copiers []chan struct{}
	var closeAfter []*os.File
	for fd := 1; fd <= 2; fd++ {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, nil, err
		}
		closeAfter = append(closeAfter, w)
		done := make(chan struct{})
		copiers = append(copiers, done)
		a.mu.Lock()
		a.readers = append(a.readers, r)
		a.mu.Unlock()
		sink := lineSink{out: a.out, rank: rs.Rank, fd: fd}
		defer func() {
			go func() { // ends at the rank's EOF
				defer close(done)
				defer r.Close()
				proc.CopyLines(sink, r, 1<<20, proc.IdleFlush)
			}()
		}()
	}
	cmd.Stdout, cmd.Stderr = closeAfter[0], closeAfter[1]
	p, err := proc.StartOn(cmd, cpus)
	for _, f := range closeAfter {
		f.Close()
	}
	if be := (*proc.BindError)(nil); errors.As(err, &be) {
		return nil, nil, fmt.Errorf("rank %d on %s: %w (run with --bind-to none to leave ranks unbound)", rs.Rank, a.spec.Host, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cannot execute %q on %s: %w", a.spec.Program, a.spec.Host, err)
	}
	a.mu.Lock()
	a.procs[rs.Rank] = p
	a.mu.Unlock()
	return p, copiers, nil
}

func (a *agentState) signal(rank int, sig syscall.Signal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for r, p := range a.procs {
		if rank < 0 || r == rank {
			p.Signal(sig)
		}
	}
}
