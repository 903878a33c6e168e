package launcher

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/proc"
	"github.com/nats-io/nats.go"
)

// A job starts its ranks one step at a time from its event loop, which
// handles every exit, control message, signal and timer that is ready
// before it takes the next step: a signal or a failing rank stops the
// launch after at most the step under way.

// startStep is one step of the launch: a rank on this host, or the agent of
// another host with all the ranks placed there.
type startStep struct {
	rank  int        // rank on this host, when host is ""
	local int        // its local rank
	group *hostGroup // its host's ranks
	host  string     // another host
	ranks []int      // the ranks placed on host
}

// hostGroup is what the ranks placed on one host share.
type hostGroup struct {
	size  int    // DECORUN_LOCAL_SIZE
	ranks string // DECORUN_HOST_RANKS
}

// planStarts lists the steps that start every rank: ranks on this host
// first, in rank order, then one agent per other host. For a job with
// other hosts it subscribes to the agents' heartbeats first.
func (j *job) planStarts() *ExitError {
	if j.place == nil {
		g := &hostGroup{size: j.cfg.NP, ranks: "0"}
		if j.cfg.NP > 1 {
			g.ranks = "0-" + strconv.Itoa(j.cfg.NP-1) // jobenv.FormatRanks of 0..NP-1
		}
		j.steps = make([]startStep, j.cfg.NP)
		for n := range j.steps {
			j.steps[n] = startStep{rank: n, local: n, group: g}
		}
		return nil
	}
	// Agents' heartbeats: j.heartbeat reads j.remotes under remotesMu, as
	// startHost appends to it (agents start one per step of the loop, so an
	// agent may publish before the next one exists).
	hb, err := j.srv.nc.Subscribe(jobenv.HeartbeatWildcard(j.prefix), func(m *nats.Msg) { j.heartbeat(m.Subject) })
	if err != nil {
		return &ExitError{Code: 1, Rank: -1, Msg: "cannot subscribe to heartbeats: " + err.Error(), Err: err}
	}
	j.hbSub = hb
	byHost := map[int][]int{}
	var order []int
	for n, h := range j.place {
		if byHost[h] == nil {
			order = append(order, h)
		}
		byHost[h] = append(byHost[h], n)
	}
	var remote []startStep
	for _, h := range order {
		rs := byHost[h]
		name := j.cfg.Hosts[h].Name
		if !isLocal(name) {
			remote = append(remote, startStep{host: name, ranks: rs})
			continue
		}
		g := &hostGroup{size: len(rs), ranks: jobenv.FormatRanks(rs)}
		for i, n := range rs {
			j.steps = append(j.steps, startStep{rank: n, local: i, group: g})
		}
	}
	j.steps = append(j.steps, remote...)
	return nil
}

// starting reports whether steps of the launch remain and may be taken.
func (j *job) starting() bool { return !j.stopping && j.next < len(j.steps) }

// startNext takes the next step of the launch; a step that fails stops
// the job.
func (j *job) startNext() {
	st := j.steps[j.next]
	j.next++
	var err *ExitError
	if st.host == "" {
		err = j.startRank(st.rank, st.local, st.group)
	} else {
		err = j.startHost(st.host, st.ranks)
	}
	if err != nil {
		j.fail(err, syscall.SIGKILL)
	}
}

// startRank starts rank n, the local-th of the ranks of g on this host,
// and its waiter and output copiers.
func (j *job) startRank(n, local int, g *hostGroup) *ExitError {
	cmd := exec.Command(j.path, j.cfg.Args...)
	if !j.built {
		cmd.Args[0] = j.cfg.Program // argv[0] as given, as a shell does
	}
	s := strconv.Itoa(n)
	cmd.Env = append(j.env[:len(j.env):len(j.env)], jobenv.EnvRank+"="+s, jobenv.EnvLocalRank+"="+strconv.Itoa(local),
		jobenv.EnvLocalSize+"="+strconv.Itoa(g.size), jobenv.EnvHostRanks+"="+g.ranks)

	var closeAfterStart []*os.File
	defer func() {
		for _, f := range closeAfterStart {
			f.Close()
		}
	}()
	type copier struct {
		r   *os.File
		dst io.Writer
	}
	var copiers []copier
	if j.cfg.OutputDir != "" {
		dir := filepath.Join(j.cfg.OutputDir, "rank."+s)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return &ExitError{Code: 1, Rank: n, Msg: fmt.Sprintf("rank %d: cannot create output directory: %v", n, err), Err: err}
		}
		for _, name := range []string{"stdout", "stderr"} {
			f, err := os.Create(filepath.Join(dir, name))
			if err != nil {
				return &ExitError{Code: 1, Rank: n, Msg: fmt.Sprintf("rank %d: cannot create output file: %v", n, err), Err: err}
			}
			closeAfterStart = append(closeAfterStart, f)
		}
		cmd.Stdout, cmd.Stderr = closeAfterStart[0], closeAfterStart[1]
	} else {
		var prefix []byte
		if j.cfg.TagOutput {
			prefix = []byte("[" + s + "] ")
		}
		for _, mux := range []*proc.Mux{j.outMux, j.errMux} {
			dst := mux.Source(prefix)
			r, w, err := os.Pipe()
			if err != nil {
				for _, c := range copiers {
					c.r.Close()
				}
				return &ExitError{Code: 1, Rank: n, Msg: fmt.Sprintf("rank %d: cannot create output pipe: %v", n, err), Err: err}
			}
			closeAfterStart = append(closeAfterStart, w)
			copiers = append(copiers, copier{r, dst})
		}
		cmd.Stdout, cmd.Stderr = closeAfterStart[0], closeAfterStart[1]
	}

	var stdinSrc io.Reader
	if n == 0 && j.cfg.Stdin != nil {
		if f, ok := j.cfg.Stdin.(*os.File); ok && !isTerminal(f) {
			cmd.Stdin = f
		} else {
			r, w, err := os.Pipe()
			if err != nil {
				for _, c := range copiers {
					c.r.Close()
				}
				return &ExitError{Code: 1, Rank: n, Msg: fmt.Sprintf("rank %d: cannot create stdin pipe: %v", n, err), Err: err}
			}
			closeAfterStart = append(closeAfterStart, r)
			cmd.Stdin, j.stdinW, stdinSrc = r, w, j.cfg.Stdin
		}
	}

	p, err := proc.Start(cmd)
	if err != nil {
		for _, c := range copiers {
			c.r.Close()
		}
		if j.stdinW != nil {
			j.stdinW.Close()
			j.stdinW = nil
		}
		if hint := exhausted(err); hint != "" {
			return &ExitError{Code: 1, Rank: n,
				Msg: fmt.Sprintf("rank %d: cannot start %q: %v (%s)", n, j.cfg.Program, err, hint), Err: err}
		}
		return &ExitError{Code: ExitNotFound, Rank: n,
			Msg: fmt.Sprintf("cannot execute %q: %v", j.cfg.Program, err), Err: err}
	}
	r := &rank{n: n, p: p}
	j.ranks[n] = r
	j.live++

	for _, c := range copiers {
		j.readers = append(j.readers, c.r)
		j.wg.Go(func() {
			defer c.r.Close()
			proc.CopyLines(c.dst, c.r, MaxLine, proc.IdleFlush)
		})
	}
	if stdinSrc != nil {
		j.stdinDone = make(chan struct{})
		w := j.stdinW
		go func() { // not counted in wg: Stdin.Read may never return
			defer close(j.stdinDone)
			io.Copy(w, onlyReader{stdinSrc}) // plain reads: no splice that cannot be interrupted
			w.Close()
		}()
	}
	j.wg.Go(func() {
		st, err := p.Wait()
		j.exits <- exitEvent{rank: n, st: st, err: err}
	})
	return nil
}

// exhausted names the kind of limit behind a failure to start a process,
// or returns "" when err is not about a limit.
func exhausted(err error) string {
	switch {
	case errors.Is(err, syscall.EAGAIN):
		return "a limit on processes was reached: RLIMIT_NPROC (ulimit -u), a pids cgroup, kernel.pid_max or kernel.threads-max"
	case errors.Is(err, syscall.EMFILE):
		return "decorun reached its limit of open files, RLIMIT_NOFILE (ulimit -n)"
	case errors.Is(err, syscall.ENFILE):
		return "the system's limit of open files was reached (fs.file-max)"
	case errors.Is(err, syscall.ENOMEM):
		return "out of memory"
	}
	return ""
}
