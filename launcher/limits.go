package launcher

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// What one rank on this host costs, as measured on Linux with a rank that
// does nothing (sleep): the figures [checkCapacity] holds -n against.
const (
	// fdsPerRank: the rank's pidfd and, unless OutputDir, the read ends of
	// its stdout and stderr pipes; fdsPerConn: the embedded server's end of
	// a rank's connection; fdsPerHost: an agent's pidfd and stdio pipes.
	fdsPerRankOutput = 3
	fdsPerRankDir    = 1
	fdsPerConn       = 1
	fdsPerHost       = 4
	fdsSpare         = 64 // the server, the launcher's own files, a rank being started
	// tasksPerRank: the rank's process and the launcher thread that waits
	// for it.
	tasksPerRank = 2
	tasksSpare   = 64
	// memPerRank: what the host's available memory drops by per rank:
	// the process, its kernel structures, the launcher's waiter thread,
	// output buffers and goroutines. A Go program takes several MiB more.
	memPerRank = 320 << 10
)

// limit is one limit of this host and how many ranks fit under it.
type limit struct {
	room int    // ranks that fit
	what string // the limit, for the user
}

// checkCapacity returns a usage error when this host cannot run the ranks
// cfg places on it, naming every limit that starting them would hit: open
// files, processes (RLIMIT_NPROC, a pids cgroup, kernel.pid_max,
// kernel.threads-max, the Go runtime's thread limit) and memory. Limits of
// other hosts are theirs to enforce: a rank that cannot start there fails
// the job.
func checkCapacity(cfg *Config, place []int) error {
	local, conns, hosts := cfg.NP, 0, map[string]bool{}
	if place != nil {
		local = 0
		for _, h := range place {
			if name := cfg.Hosts[h].Name; isLocal(name) {
				local++
			} else {
				hosts[name] = true
			}
		}
	}
	if cfg.NATS.URL == "" {
		conns = cfg.NP // every rank connects to the embedded server
	}
	lims := hostLimits(cfg.OutputDir != "", conns-local, len(hosts))
	var hit []string
	for _, l := range lims {
		if l.room < local {
			hit = append(hit, l.what+fmt.Sprintf(": room for %d", max(l.room, 0)))
		}
	}
	if len(hit) == 0 {
		return nil
	}
	what := fmt.Sprintf("-n %d is more ranks than this host can run", cfg.NP)
	if local != cfg.NP {
		what = fmt.Sprintf("-n %d places %d ranks on this host, more than it can run", cfg.NP, local)
	}
	return usageError("%s: %s; ask for fewer ranks, spread them over hosts (-H, --hostfile) or raise the limit",
		what, strings.Join(hit, "; "))
}

// hostLimits lists the limits of this host, fewest ranks first, for a job
// whose ranks here cost what is said above, plus remoteConns connections
// of ranks on other hosts to the embedded server and remoteHosts agents.
func hostLimits(outputDir bool, remoteConns, remoteHosts int) []limit {
	var lims []limit
	add := func(room int, format string, args ...any) {
		lims = append(lims, limit{room, fmt.Sprintf(format, args...)})
	}

	// Open files.
	perRank := fdsPerRankOutput + fdsPerConn
	if outputDir {
		perRank = fdsPerRankDir + fdsPerConn
	}
	var nofile syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile) == nil && nofile.Cur != rlimInfinity {
		open := countDir("/proc/self/fd")
		free := clamp(nofile.Cur) - open - fdsSpare - remoteConns*fdsPerConn - remoteHosts*fdsPerHost
		add(free/perRank, "open files: decorun keeps %d per rank open and RLIMIT_NOFILE (ulimit -n) is %d", perRank, nofile.Cur)
	}

	// Processes and threads.
	tasks := threadsInUse()
	if v, ok := readInt("/proc/sys/kernel/pid_max"); ok && tasks > 0 {
		add((v-tasks-tasksSpare)/tasksPerRank, "processes: each rank takes %d process ids (the rank and a decorun thread), kernel.pid_max is %d and %d are in use", tasksPerRank, v, tasks)
	}
	if v, ok := readInt("/proc/sys/kernel/threads-max"); ok && tasks > 0 {
		add((v-tasks-tasksSpare)/tasksPerRank, "processes: each rank takes %d tasks (the rank and a decorun thread), kernel.threads-max is %d and %d are in use", tasksPerRank, v, tasks)
	}
	if max, cur, ok := cgroupLimit("pids", "pids.max", "pids.current", "pids.max", "pids.current"); ok {
		add((max-cur-tasksSpare)/tasksPerRank, "processes: each rank takes %d tasks (the rank and a decorun thread), the pids cgroup allows %d and %d are in use", tasksPerRank, max, cur)
	}
	if !nprocExempt() {
		var nproc syscall.Rlimit
		if syscall.Getrlimit(rlimitNPROC, &nproc) == nil && nproc.Cur != rlimInfinity {
			mine := userTasks(os.Getuid())
			add((clamp(nproc.Cur)-mine-tasksSpare)/tasksPerRank, "processes: each rank takes %d tasks (the rank and a decorun thread), RLIMIT_NPROC (ulimit -u) is %d and this user has %d", tasksPerRank, nproc.Cur, mine)
		}
	}
	// The Go runtime ends decorun when it has more threads than this.
	maxThreads := debug.SetMaxThreads(math.MaxInt32)
	debug.SetMaxThreads(maxThreads)
	if own, ok := statusField("/proc/self/status", "Threads:"); ok {
		add(maxThreads-own-tasksSpare, "threads: decorun waits for each rank in a thread of its own and the Go runtime allows it %d (runtime/debug.SetMaxThreads)", maxThreads)
	}

	// Memory.
	if avail, ok := statusField("/proc/meminfo", "MemAvailable:"); ok {
		add(avail*1024/memPerRank, "memory: each rank takes at least %d KiB and %d MiB are available", memPerRank>>10, avail>>10)
	}
	if max, cur, ok := cgroupLimit("memory", "memory.max", "memory.current", "memory.limit_in_bytes", "memory.usage_in_bytes"); ok {
		add((max-cur)/memPerRank, "memory: each rank takes at least %d KiB and the memory cgroup has %d MiB left", memPerRank>>10, (max-cur)>>20)
	}
	slices.SortStableFunc(lims, func(a, b limit) int { return a.room - b.room })
	return lims
}

// rlimInfinity is RLIM_INFINITY as a uint64.
const rlimInfinity = ^uint64(0)

// rlimitNPROC is RLIMIT_NPROC, which package syscall does not name.
const rlimitNPROC = 6

// nprocExempt reports whether RLIMIT_NPROC does not apply to this process:
// the kernel ignores it for a real user id of 0 and for CAP_SYS_ADMIN or
// CAP_SYS_RESOURCE.
func nprocExempt() bool {
	if os.Getuid() == 0 {
		return true
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			const capSysAdmin, capSysResource = 21, 24
			return err == nil && caps&(1<<capSysAdmin|1<<capSysResource) != 0
		}
	}
	return false
}

// threadsInUse is the number of tasks (threads) on the host, from
// /proc/loadavg; 0 if unknown.
func threadsInUse() int {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return 0
	}
	_, total, _ := strings.Cut(f[3], "/")
	n, _ := strconv.Atoi(total)
	return n
}

// userTasks counts the threads of the processes of user uid.
func userTasks(uid int) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		fi, err := os.Stat("/proc/" + e.Name())
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != uid {
			continue
		}
		if t, ok := statusField("/proc/"+e.Name()+"/status", "Threads:"); ok {
			n += t
		}
	}
	return n
}

// cgroupLimit reads the limit and usage of this process's cgroup for
// controller (v2 files, else v1 files), taking the tightest over the
// cgroup and its ancestors that are visible. ok is false when no level has
// a limit.
func cgroupLimit(controller, maxV2, curV2, maxV1, curV1 string) (limit, used int, ok bool) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, 0, false
	}
	best := math.MaxInt
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		var dir, maxF, curF string
		switch {
		case f[0] == "0" && f[1] == "":
			dir, maxF, curF = "/sys/fs/cgroup", maxV2, curV2
		case slices.Contains(strings.Split(f[1], ","), controller):
			dir, maxF, curF = "/sys/fs/cgroup/"+controller, maxV1, curV1
		default:
			continue
		}
		for p := filepath.Join(dir, f[2]); ; p = filepath.Dir(p) {
			m, okM := readInt(filepath.Join(p, maxF))
			c, okC := readInt(filepath.Join(p, curF))
			if okM && okC && m < 1<<60 && m-c < best {
				best, limit, used, ok = m-c, m, c, true
			}
			if len(p) <= len(dir) {
				break
			}
		}
	}
	return limit, used, ok
}

// readInt reads a file holding one integer ("max" and the like: not ok).
func readInt(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return int(n), err == nil
}

// statusField reads the first number after key in a file of "Key: N"
// lines such as /proc/self/status or /proc/meminfo.
func statusField(path, key string) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			fs := strings.Fields(v)
			if len(fs) == 0 {
				return 0, false
			}
			n, err := strconv.Atoi(fs[0])
			return n, err == nil
		}
	}
	return 0, false
}

// countDir counts the entries of dir.
func countDir(dir string) int {
	ents, _ := os.ReadDir(dir)
	return len(ents)
}

func clamp(v uint64) int {
	if v > math.MaxInt32*1024 {
		return math.MaxInt32 * 1024
	}
	return int(v)
}
