// Package agent is decorun's helper on a remote host (like Open MPI's
// orted): the launcher starts `decorun agent` there through the launch agent
// (ssh, or any command template such as `ip netns exec {host}`), and the
// agent starts that host's ranks, forwards their output and exit statuses,
// and forwards signals to them.
//
// The protocol is newline-delimited JSON. On the agent's stdin the launcher
// first sends a Spec, then Msgs: "sig" (signal a rank, or all with Rank -1)
// heartbeats. On its stdout the agent sends Msgs: "started", "out" (one
// whole output line), "exit", and "hb". The job secret travels on stdin,
// never on a command line.
//
// Liveness does not rely on stdin, which may be a local pipe (ip netns
// exec) while the host's network is gone: the agent and the launcher publish
// heartbeats on the job's NATS server (jobenv.HeartbeatSubject) every
// HeartbeatInterval, and each gives the other up after HeartbeatTimeout.
//
// Guarantees: the agent kills every rank it started (SIGKILL to each
// process group) when its stdin ends or when the launcher's heartbeats stop
// for HeartbeatTimeout (a cut link or a dead launcher host), and each rank
// also has a parent-death signal, so no rank outlives its agent. Costs: one
// JSON line per output line and two small heartbeats per HeartbeatInterval.
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
}

// RankSpec is one rank to start.
type RankSpec struct {
	Rank      int `json:"rank"`
	LocalRank int `json:"local_rank"`
	LocalSize int `json:"local_size"`
}

// Msg is one protocol message.
type Msg struct {
	Op     string `json:"op"` // started, out, exit, hb, sig
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

// lineSink turns each whole line CopyLines writes into an "out" message.
type lineSink struct {
	enc      *Encoder
	rank, fd int
}

func (s lineSink) Write(p []byte) (int, error) {
	s.enc.Send(Msg{Op: "out", Rank: s.rank, FD: s.fd, Data: p})
	return len(p), nil // a launcher that is gone is noticed on stdin
}

// Run is `decorun agent`: it reads a Spec from in, runs the ranks and
// returns when they have all exited (0), or when the launcher is gone
// (after killing them; 1).
func Run(in io.Reader, out io.Writer, errw io.Writer) int {
	signal.Ignore(syscall.SIGPIPE) // a vanished launcher shows up as write errors, not death
	dec := json.NewDecoder(bufio.NewReader(in))
	var spec Spec
	if err := dec.Decode(&spec); err != nil {
		fmt.Fprintf(errw, "decorun agent: reading the job spec: %v\n", err)
		return 2
	}
	enc := NewEncoder(out)
	a := &agentState{spec: spec, enc: enc, procs: map[int]*proc.Proc{}}

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
		nc, err = nats.Connect(job.URL, append(auth, nats.Name("decorun agent "+spec.Host), nats.NoReconnect(),
			nats.Timeout(10*time.Second))...)
	}
	if err != nil {
		why := jobenv.Redact(fmt.Sprintf("the agent on %s cannot reach the job's server at %s: %v", spec.Host, job.URL, err))
		for _, rs := range spec.Ranks {
			enc.Send(Msg{Op: "exit", Rank: rs.Rank, Code: 1, Err: why})
		}
		return 1
	}
	defer nc.Close()
	var last sync.Mutex
	lastHB := time.Now()
	hbSub, err := nc.Subscribe(jobenv.HeartbeatSubject(job.Prefix, "launcher"), func(*nats.Msg) {
		last.Lock()
		lastHB = time.Now()
		last.Unlock()
	})
	if err != nil {
		fmt.Fprintf(errw, "decorun agent on %s: %v\n", spec.Host, err)
		return 1
	}
	defer hbSub.Unsubscribe()
	myHB := jobenv.HeartbeatSubject(job.Prefix, spec.Host)
	nc.Publish(myHB, nil)

	var wg sync.WaitGroup
	exits := make(chan struct{}, len(spec.Ranks))
	for _, rs := range spec.Ranks {
		p, copiers, err := a.start(rs)
		if err != nil {
			enc.Send(Msg{Op: "exit", Rank: rs.Rank, Code: 127, Err: err.Error()})
			exits <- struct{}{}
			continue
		}
		enc.Send(Msg{Op: "started", Rank: rs.Rank, Pid: p.Pid()})
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
			enc.Send(m)
		})
	}

	// Launcher messages.
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
	tick := time.NewTicker(HeartbeatInterval)
	defer tick.Stop()
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
			if left == 0 {
				break
			}
			a.kill(why)
			wg.Wait()
			fmt.Fprintf(errw, "decorun agent on %s: %s; killed its ranks\n", spec.Host, why)
			return 1
		case <-tick.C:
			enc.Send(Msg{Op: "hb"})
			nc.Publish(myHB, nil)
			last.Lock()
			silent := time.Since(lastHB)
			last.Unlock()
			if silent > HeartbeatTimeout {
				why := fmt.Sprintf("no heartbeat from the launcher for %v", silent.Round(100*time.Millisecond))
				a.kill(why)
				wg.Wait()
				fmt.Fprintf(errw, "decorun agent on %s: %s; killed its ranks\n", spec.Host, why)
				return 1
			}
		}
	}
	wg.Wait()
	return 0
}

type agentState struct {
	spec   Spec
	enc    *Encoder
	mu     sync.Mutex
	procs  map[int]*proc.Proc
	reason string // why the agent killed its ranks
}

// kill kills every rank, recording why for their exit messages.
func (a *agentState) kill(why string) {
	a.mu.Lock()
	a.reason = fmt.Sprintf("host %s lost the launcher (%s); its ranks were killed", a.spec.Host, why)
	a.mu.Unlock()
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
		sink := lineSink{enc: a.enc, rank: rs.Rank, fd: fd}
		defer func() {
			go func() { // ends at the rank's EOF
				defer close(done)
				defer r.Close()
				proc.CopyLines(sink, r, nil, 1<<20)
			}()
		}()
	}
	cmd.Stdout, cmd.Stderr = closeAfter[0], closeAfter[1]
	p, err := proc.Start(cmd)
	for _, f := range closeAfter {
		f.Close()
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
