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
	w     *world     // the world the ranks are of
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

// planStarts adds the steps that start every rank of w: ranks on this
// host first, in rank order, then one agent per other host. For ranks on
// other hosts it subscribes to the agents' heartbeats first, once.
func (j *job) planStarts(w *world) *ExitError {
	if w.place == nil {
		g := &hostGroup{size: w.n, ranks: "0"}
		if w.n > 1 {
			g.ranks = "0-" + strconv.Itoa(w.n-1) // jobenv.FormatRanks of 0..n-1
		}
		for n := range w.n {
			j.steps = append(j.steps, startStep{w: w, rank: n, local: n, group: g})
		}
		return nil
	}
	if j.hbSub != nil {
		return j.planPlaced(w)
	}
	// Agents' heartbeats: j.heartbeat reads j.remotes under remotesMu, as
	// startHost appends to it (agents start one per step of the loop, so an
	// agent may publish before the next one exists).
	hb, err := j.srv.nc.Subscribe(jobenv.HeartbeatWildcard(j.prefix), func(m *nats.Msg) { j.heartbeat(m.Subject) })
	if err != nil {
		return &ExitError{Code: 1, Rank: -1, Msg: "cannot subscribe to heartbeats: " + err.Error(), Err: err}
	}
	j.hbSub = hb
	return j.planPlaced(w)
}

// planPlaced adds the steps for w's ranks placed on hosts.
func (j *job) planPlaced(w *world) *ExitError {
	byHost := map[int][]int{}
	var order []int
	for n, h := range w.place {
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
			remote = append(remote, startStep{w: w, host: name, ranks: rs})
			continue
		}
		g := &hostGroup{size: len(rs), ranks: jobenv.FormatRanks(rs)}
		for i, n := range rs {
			j.steps = append(j.steps, startStep{w: w, rank: n, local: i, group: g})
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
		err = j.startRank(st.w, st.rank, st.local, st.group)
	} else {
		err = j.startHost(st.w, st.host, st.ranks)
	}
	if err != nil {
		j.fail(err, syscall.SIGKILL)
	}
}

// startRank starts rank n of w, the local-th of the ranks of g on this
// host, and its waiter and output copiers.
func (j *job) startRank(w *world, n, local int, g *hostGroup) *ExitError {
	cmd := exec.Command(w.path, w.args...)
	if !w.built {
		cmd.Args[0] = w.prog // argv[0] as given, as a shell does
	}
	s := strconv.Itoa(n)
	cmd.Env = append(w.env[:len(w.env):len(w.env)], jobenv.EnvRank+"="+s, jobenv.EnvLocalRank+"="+strconv.Itoa(local),
		jobenv.EnvLocalSize+"="+strconv.Itoa(g.size), jobenv.EnvHostRanks+"="+g.ranks)
	cmd.Env = append(cmd.Env, j.parentEnv(w, n)...)
	var cpus []int
	if w.k == 0 && !j.cfg.NoBind { // a spawn's ranks would share their parents' CPUs
		var add []string
		cpus, add = proc.Binding(j.cores, local, g.size, cmd.Env)
		cmd.Env = append(cmd.Env, add...)
	}
	slot, name := w.slots[n], w.name(n)

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
		dir := w.outDir(j.cfg.OutputDir, n)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return &ExitError{Code: 1, Rank: slot, Msg: fmt.Sprintf("%s: cannot create output directory: %v", name, err), Err: err}
		}
		for _, name := range []string{"stdout", "stderr"} {
			f, err := os.Create(filepath.Join(dir, name))
			if err != nil {
				return &ExitError{Code: 1, Rank: slot, Msg: fmt.Sprintf("%s: cannot create output file: %v", name, err), Err: err}
			}
			closeAfterStart = append(closeAfterStart, f)
		}
		cmd.Stdout, cmd.Stderr = closeAfterStart[0], closeAfterStart[1]
	} else {
		var prefix []byte
		if j.cfg.TagOutput {
			prefix = []byte("[" + w.tag(n) + "] ")
		}
		for _, mux := range []*proc.Mux{j.outMux, j.errMux} {
			dst := mux.Source(prefix)
			r, w, err := os.Pipe()
			if err != nil {
				for _, c := range copiers {
					c.r.Close()
				}
				return &ExitError{Code: 1, Rank: slot, Msg: fmt.Sprintf("%s: cannot create output pipe: %v", name, err), Err: err}
			}
			closeAfterStart = append(closeAfterStart, w)
			copiers = append(copiers, copier{r, dst})
		}
		cmd.Stdout, cmd.Stderr = closeAfterStart[0], closeAfterStart[1]
	}

	var stdinSrc io.Reader
	if n == 0 && w.k == 0 && j.cfg.Stdin != nil {
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

	p, err := proc.StartOn(cmd, cpus)
	if err != nil {
		for _, c := range copiers {
			c.r.Close()
		}
		if j.stdinW != nil {
			j.stdinW.Close()
			j.stdinW = nil
		}
		if be := (*proc.BindError)(nil); errors.As(err, &be) {
			return &ExitError{Code: 1, Rank: slot,
				Msg: fmt.Sprintf("%s: %v (run with --bind-to none to leave ranks unbound)", name, err), Err: err}
		}
		if hint := exhausted(err); hint != "" {
			return &ExitError{Code: 1, Rank: slot,
				Msg: fmt.Sprintf("%s: cannot start %q: %v (%s)", name, w.prog, err, hint), Err: err}
		}
		return &ExitError{Code: ExitNotFound, Rank: slot,
			Msg: fmt.Sprintf("cannot execute %q: %v", w.prog, err), Err: err}
	}
	r := &rank{n: slot, w: w, wr: n, p: p}
	j.ranks[slot] = r
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
		j.exits <- exitEvent{rank: slot, st: st, err: err}
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
