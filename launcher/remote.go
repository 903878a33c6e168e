package launcher

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/decorun/decorun/internal/agent"
	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/proc"
)

// DefaultLaunchAgent starts `decorun agent` on a remote host.
const DefaultLaunchAgent = "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new {host}"

// process is what the job loop needs of a rank: a local process or a
// rank an agent runs on another host.
type process interface {
	Pid() int
	Signal(sig syscall.Signal) bool
	Poll() (proc.Status, bool)
}

// where says where a rank runs: "pid 1234", or "pid 1234 on host h2".
func where(p process) string {
	if r, ok := p.(*remoteRank); ok {
		return fmt.Sprintf("pid %d on host %s", r.Pid(), r.h.name)
	}
	return fmt.Sprintf("pid %d", p.Pid())
}

// remoteHost is one agent and the ranks it runs.
type remoteHost struct {
	j      *job
	w      *world // the world of its ranks
	name   string
	agent  *proc.Proc
	send   chan agent.Msg // to the agent's stdin, by the writer goroutine
	done   chan struct{}  // closed at teardown
	ranks  map[int]*remoteRank
	mu     sync.Mutex
	lastHB time.Time // of the agent's last heartbeat through NATS
	seen   bool      // one has arrived
}

// firstHeartbeat bounds how long an agent may take to send its first
// heartbeat (an ssh connection being set up).
const firstHeartbeat = 30 * time.Second

// heartbeat records a heartbeat from the agent of host.
func (j *job) heartbeat(host string) {
	j.remotesMu.Lock()
	defer j.remotesMu.Unlock()
	for _, h := range j.remotes {
		if jobenv.HeartbeatSubject(j.prefix, h.name) == host {
			h.mu.Lock()
			h.lastHB, h.seen = time.Now(), true
			h.mu.Unlock()
		}
	}
}

type remoteRank struct {
	h      *remoteHost
	n      int // rank in h.w
	slot   int // index in job.ranks
	mu     sync.Mutex
	pid    int
	st     proc.Status
	exited bool
}

func (r *remoteRank) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pid
}

// Signal asks the agent to signal the rank; it never blocks.
func (r *remoteRank) Signal(sig syscall.Signal) bool {
	select {
	case r.h.send <- agent.Msg{Op: "sig", Rank: r.n, Signal: int(sig)}:
		return true
	default:
		return false
	}
}

func (r *remoteRank) Poll() (proc.Status, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st, r.exited
}

// finish records how the rank ended and tells the job loop, once.
func (r *remoteRank) finish(st proc.Status, err error) {
	r.mu.Lock()
	if r.exited {
		r.mu.Unlock()
		return
	}
	r.exited, r.st = true, st
	r.mu.Unlock()
	r.h.j.exits <- exitEvent{rank: r.slot, st: st, err: err}
}

// agentCommand is the launch agent template with {host} replaced, followed
// by decorun AgentArg. The template is split into words as a POSIX shell
// would, without expansions: blanks separate words, 'single quotes' and
// "double quotes" group them, and a backslash escapes the next character
// (in double quotes only \, ", $ and `).
func agentCommand(template, host, decorun string) ([]string, error) {
	f, err := splitWords(template)
	if err != nil {
		return nil, usageError("--launch-agent %q: %v", template, err)
	}
	if len(f) == 0 {
		return nil, usageError("--launch-agent is empty")
	}
	hasHost := false
	for i, w := range f {
		if strings.Contains(w, "{host}") {
			hasHost = true
			f[i] = strings.ReplaceAll(w, "{host}", host)
		}
	}
	if !hasHost {
		f = append(f, host) // like ssh: the host comes last
	}
	return append(f, decorun, AgentArg), nil
}

// splitWords splits s into words as described at agentCommand.
func splitWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
			continue
		case c == '\\':
			if i+1 == len(s) {
				return nil, errors.New("a backslash ends it")
			}
			i++
			w.WriteByte(s[i])
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("the single quote at byte %d is not closed", i)
			}
			w.WriteString(s[i+1 : i+1+end])
			i += 1 + end
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && strings.IndexByte("\\\"$`", s[j+1]) >= 0 {
					j++
				}
				w.WriteByte(s[j])
			}
			if j == len(s) {
				return nil, fmt.Errorf("the double quote at byte %d is not closed", i)
			}
			i = j
		default:
			w.WriteByte(c)
		}
		inWord = true
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// AgentArg is the first argument that makes decorun an agent (package
// internal/agent) instead of a launcher.
const AgentArg = "__agent"

// startHost starts the agent for host and the given ranks of w (rank ->
// local rank), registering them with the job.
func (j *job) startHost(w *world, host string, ranks []int) *ExitError {
	argv, err := agentCommand(j.cfg.LaunchAgent, host, j.cfg.AgentPath)
	if err != nil {
		return err.(*ExitError)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return &ExitError{Code: 1, Rank: ranks[0], Msg: fmt.Sprintf("host %s: %v", host, err), Err: err}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return &ExitError{Code: 1, Rank: ranks[0], Msg: fmt.Sprintf("host %s: %v", host, err), Err: err}
	}
	cmd.Stderr = j.errw
	p, err := proc.Start(cmd)
	if err != nil {
		return &ExitError{Code: ExitNotFound, Rank: ranks[0], Msg: fmt.Sprintf("host %s: cannot start the launch agent %q: %v", host, argv[0], err), Err: err}
	}
	h := &remoteHost{j: j, w: w, name: host, agent: p, send: make(chan agent.Msg, 256), done: make(chan struct{}),
		ranks: map[int]*remoteRank{}, lastHB: time.Now()}
	j.remotesMu.Lock()
	j.remotes = append(j.remotes, h)
	first := len(j.remotes) == 1
	j.remotesMu.Unlock()
	if first {
		j.warnClearText()
		j.wg.Go(func() { j.beat(h.done) }) // teardown closes every host's done
	}
	wd, _ := os.Getwd()
	spec := agent.Spec{Host: host, Program: w.path, Args: w.args, Dir: wd, Beat: j.prefix, Bind: !j.cfg.NoBind && w.k == 0,
		Env: append(j.remoteEnv(w), jobenv.EnvHostRanks+"="+jobenv.FormatRanks(w.hostRanks(ranks[0])))}
	spec.Env = append(spec.Env, j.parentEnv(w, ranks[0])...) // the same for every rank of the host
	for i, n := range ranks {
		spec.Ranks = append(spec.Ranks, agent.RankSpec{Rank: n, LocalRank: i, LocalSize: len(ranks)})
		rr := &remoteRank{h: h, n: n, slot: w.slots[n]}
		h.ranks[n] = rr
		j.ranks[rr.slot] = &rank{n: rr.slot, w: w, wr: n, p: rr}
		j.live++
	}
	enc := agent.NewEncoder(stdin)
	if err := enc.Send(spec); err != nil {
		p.Signal(syscall.SIGKILL)
	}
	j.wg.Go(func() { h.write(enc, stdin) })
	j.wg.Go(h.watch)
	j.wg.Go(func() { h.read(stdout) })
	return nil
}

// remoteEnv is what remote ranks get on top of their host's environment:
// the -x exports and the job's variables (not the launcher's whole
// environment, as with mpirun).
func (j *job) remoteEnv(w *world) []string {
	var env []string
	for _, e := range j.cfg.Env {
		if strings.Contains(e, "=") {
			env = append(env, e)
		} else if v, ok := os.LookupEnv(e); ok {
			env = append(env, e+"="+v)
		}
	}
	info := j.srv.info
	info.ID, info.Prefix, info.Transport = w.id, w.prefix, j.cfg.Transport
	info.TCPPlain = j.cfg.TCPPlain
	if j.remoteURL != "" {
		info.URL = j.remoteURL
	}
	if w.k == 0 { // only the job's own world is traced
		env = append(env, j.traceEnv()...)
	}
	env = append(env, ttyEnv(j.cfg.Stderr)...)
	return append(append(env, info.Environ()...), jobenv.EnvSize+"="+fmt.Sprint(w.n))
}

// write feeds the agent's stdin with queued messages until teardown, then
// closes it. It may block on a stalled stream: liveness is watch's.
func (h *remoteHost) write(enc *agent.Encoder, stdin io.Closer) {
	defer stdin.Close()
	for {
		select {
		case m := <-h.send:
			enc.Send(m)
		case <-h.done:
			return
		}
	}
}

// watch gives the host up when its agent's heartbeats (through the job's
// server, never through the agent's streams, which may stall behind output
// for any time) stop for agent.HeartbeatTimeout. It ends at teardown.
func (h *remoteHost) watch() {
	tick := time.NewTicker(agent.HeartbeatInterval / 5)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			h.mu.Lock()
			silent, limit := time.Since(h.lastHB), agent.HeartbeatTimeout
			if !h.seen {
				limit = firstHeartbeat // the launch agent (ssh) may take a while to connect
			}
			h.mu.Unlock()
			if silent > limit {
				h.lost(fmt.Errorf("host %s stopped responding (no heartbeat for %v)", h.name, silent.Round(100*time.Millisecond)))
				return
			}
		case <-h.done:
			return
		}
	}
}

// beat publishes the launcher's heartbeats for every agent of the job until
// done is closed (at teardown).
func (j *job) beat(done <-chan struct{}) {
	subject := jobenv.HeartbeatSubject(j.prefix, "launcher")
	j.srv.nc.Publish(subject, nil)
	tick := time.NewTicker(agent.HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			j.srv.nc.Publish(subject, nil)
		case <-done:
			return
		}
	}
}

// lost ends every rank of the host that has not exited with err, and kills
// the launch agent (the host's own agent kills the ranks when it notices).
func (h *remoteHost) lost(err error) {
	for _, r := range h.ranks {
		r.finish(proc.Status{Code: 1}, err)
	}
	h.agent.Signal(syscall.SIGKILL)
}

// read handles the agent's messages until its stdout ends.
func (h *remoteHost) read(stdout io.Reader) {
	dec := json.NewDecoder(bufio.NewReaderSize(stdout, 1<<16))
	for {
		var m agent.Msg
		if err := dec.Decode(&m); err != nil {
			break
		}
		r := h.ranks[m.Rank]
		switch {
		case r == nil:
		case m.Op == "started":
			r.mu.Lock()
			r.pid = m.Pid
			r.mu.Unlock()
		case m.Op == "out":
			h.j.remoteOutput(h.w, m.Rank, m.FD, m.Data)
		case m.Op == "exit":
			var err error
			if m.Err != "" {
				err = errors.New(m.Err)
			}
			r.finish(proc.Status{Code: m.Code, Signal: syscall.Signal(m.Signal)}, err)
		}
	}
	st, _ := h.agent.Wait()
	why := fmt.Errorf("host %s: the launch agent ended (%v) before the rank did", h.name, st)
	for _, r := range h.ranks {
		r.finish(proc.Status{Code: 1}, why)
	}
}

// remoteOutput writes one piece of a remote rank's output (a line, or
// the start of one: see proc.CopyLines) where a local rank's would go.
func (j *job) remoteOutput(w *world, n, fd int, line []byte) {
	if j.cfg.OutputDir != "" {
		j.remoteFilesMu.Lock()
		defer j.remoteFilesMu.Unlock()
		key := fmt.Sprintf("%d.%d.%d", w.k, n, fd)
		f := j.remoteFiles[key]
		if f == nil {
			dir := w.outDir(j.cfg.OutputDir, n)
			os.MkdirAll(dir, 0o755)
			name := "stdout"
			if fd == 2 {
				name = "stderr"
			}
			var err error
			if f, err = os.Create(filepath.Join(dir, name)); err != nil {
				return
			}
			j.remoteFiles[key] = f
		}
		f.Write(line)
		return
	}
	j.remoteFilesMu.Lock()
	key := fmt.Sprintf("%d.%d.%d", w.k, n, fd)
	sink := j.remoteSinks[key]
	if sink == nil {
		mux := j.outMux
		if fd == 2 {
			mux = j.errMux
		}
		var prefix []byte
		if j.cfg.TagOutput {
			prefix = []byte("[" + w.tag(n) + "] ")
		}
		src := mux.Source(prefix)
		sink = make(chan []byte, 64)
		if j.remoteSinks == nil {
			j.remoteSinks = make(map[string]chan []byte)
		}
		j.remoteSinks[key] = sink
		// One writer per rank and stream: a rank whose line is open holds
		// the others' lines back (proc.Mux), and the ranks of one host
		// share a connection, so they must not wait in its reader.
		j.sinks.Go(func() {
			for line := range sink {
				src.Write(line)
			}
		})
	}
	j.remoteFilesMu.Unlock()
	sink <- line
}

// warnClearText warns, for a job with ranks on other hosts, when their
// traffic will cross the network unencrypted: an existing NATS server
// reached without TLS, or one whose TLS the ranks cannot know about (a
// nats:// URL without --nats-ca), so their direct TCP goes in clear text.
// The URL is not printed: it may hold a password.
func (j *job) warnClearText() {
	if j.srv.s != nil || j.srv.info.TLS() {
		return // the embedded server of a multi-host job, or a tls:// job: all encrypted
	}
	if _, err := j.srv.nc.TLSConnectionState(); err != nil {
		fmt.Fprintln(j.errw, "decorun: WARNING: this job has ranks on other hosts and its NATS connection (--nats-url) "+
			"does not use TLS: its messages cross the network in CLEAR TEXT, through NATS and over the ranks' direct TCP "+
			"connections; use a tls:// URL (with --nats-ca FILE if the server's certificate is not in the system's roots)")
		return
	}
	if j.cfg.Transport != jobenv.TransportNATS {
		fmt.Fprintln(j.errw, "decorun: WARNING: this job has ranks on other hosts and its --nats-url is not tls:// "+
			"(nor is --nats-ca or --nats-cert given): the server upgraded the connection to TLS, but the ranks' direct "+
			"TCP connections will carry data in CLEAR TEXT; write the URL as tls://... to encrypt them, or use --transport=nats")
	}
}
