//go:build linux

package proc

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/decorun/decorun/internal/jobenv"
)

// Binding: when the ranks a launcher starts on a host are no more than the
// CPUs it may use there, each rank is bound to a share of them of its own
// (Share), as mpirun binds ranks to cores by default. A rank that waits
// for a peer polls shared memory; unbound, the kernel may run two such
// ranks on one CPU while another CPU idles (each then polls away its time
// slice before the peer it waits for runs) and moves them between CPUs,
// whose caches are then cold: on the 2-core VM this was measured on, with
// other processes running, 8-byte Reduce, Barrier and Allreduce calls
// between two ranks took 0.4-1.5 µs bound and 10-65 µs unbound.

// Allowed returns the CPUs the calling thread may run on, ascending.
func Allowed() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// Cores returns the CPUs the calling thread may run on (Allowed) grouped
// by core (CoresOf), read once per launch: Binding deals them out.
func Cores() ([][]int, error) {
	cpus, err := Allowed()
	if err != nil {
		return nil, err
	}
	return CoresOf(cpus), nil
}

// Share returns the CPUs of the local-th (from 0) of size ranks that share
// cpus, as Deal does with their cores (CoresOf).
func Share(cpus []int, local, size int) []int {
	return Deal(CoresOf(cpus), local, size)
}

// Deal returns the CPUs of the local-th (from 0) of size ranks that share
// the cores (each a list of CPUs, the hardware threads of one core): when
// the ranks are no more than the cores, consecutive runs of len/size
// whole cores, the first len%size ranks taking one more, so that two
// ranks never share a core; when they are more, the same runs of CPUs,
// each core's threads next to each other. It returns nil when the ranks
// outnumber the CPUs or local is not one of them: those ranks run unbound.
func Deal(cores [][]int, local, size int) []int {
	var cpus []int
	for _, c := range cores {
		cpus = append(cpus, c...)
	}
	if size <= 0 || size > len(cpus) || local < 0 || local >= size {
		return nil
	}
	if size <= len(cores) {
		a, b := run(len(cores), local, size)
		var out []int
		for _, c := range cores[a:b] {
			out = append(out, c...)
		}
		slices.Sort(out)
		return out
	}
	a, b := run(len(cpus), local, size)
	out := slices.Clone(cpus[a:b])
	slices.Sort(out)
	return out
}

// run is the local-th of size consecutive runs that split n items, the
// first n%size one longer.
func run(n, local, size int) (start, end int) {
	k, extra := n/size, n%size
	start = local*k + min(local, extra)
	end = start + k
	if local < extra {
		end++
	}
	return start, end
}

// CoresOf groups cpus by the core they are hardware threads of (sysfs's
// thread_siblings_list; each CPU its own core where that cannot be read),
// cores in the order of their first CPU.
func CoresOf(cpus []int) [][]int {
	var cores [][]int
	at := map[string]int{}
	for _, c := range cpus {
		b, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", c))
		key := strings.TrimSpace(string(b))
		if err != nil || key == "" {
			key = "cpu" + strconv.Itoa(c)
		}
		if i, ok := at[key]; ok {
			cores[i] = append(cores[i], c)
			continue
		}
		at[key] = len(cores)
		cores = append(cores, []int{c})
	}
	return cores
}

// BindError is StartOn's error when the kernel refused the binding: the
// process was not started.
type BindError struct {
	CPUs []int
	Err  error
}

func (e *BindError) Error() string {
	return fmt.Sprintf("cannot bind to CPUs %s: %v", jobenv.FormatRanks(e.CPUs), e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }

// StartOn is Start with the process bound to cpus (unbound when cpus is
// empty): the process, and every thread it makes, may run on those CPUs
// only. The binding is the starting thread's while it forks, so it holds
// from the program's first instruction (a Go program sizes GOMAXPROCS by
// it), and the thread gets its own mask back before StartOn returns.
func StartOn(cmd *exec.Cmd, cpus []int) (*Proc, error) {
	if len(cpus) == 0 {
		return Start(cmd)
	}
	var set unix.CPUSet
	for _, c := range cpus {
		if c < 0 || c >= len(set)*64 {
			return nil, &BindError{CPUs: cpus, Err: fmt.Errorf("no CPU %d", c)}
		}
		set.Set(c)
	}
	// The thread must stay this goroutine's until its mask is back, and
	// must not exit (the process's parent-death signal is tied to it):
	// unlock it, never leave it locked.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return nil, &BindError{CPUs: cpus, Err: err}
	}
	p, err := Start(cmd)
	// The mask this thread had a moment ago; were it refused, the thread
	// would stay bound, which slows the launcher and nothing else.
	_ = unix.SchedSetaffinity(0, &old)
	return p, err
}

// Binding returns the CPUs to bind the local-th of size ranks of a host
// to, of the cores allowed there (Cores; nil: unbound, as Deal), and what that
// adds to the rank's environment env: DECORUN_CPUS, and GOMAXPROCS of at
// least 2 unless env sets it. A Go program sizes GOMAXPROCS by its CPUs;
// with one, a rank's goroutine that sleeps in a system call (shared
// memory's pump waits on a futex) holds the only P until the runtime's
// monitor takes it back, and the rank's main goroutine waits meanwhile:
// a two-rank 8-byte ping-pong had a p99 of 125-139 µs (mean 17-31) with
// one, 18-33 µs (mean 1-2) with two, the medians alike.
func Binding(cores [][]int, local, size int, env []string) ([]int, []string) {
	cpus := Deal(cores, local, size)
	if cpus == nil {
		return nil, nil
	}
	add := []string{jobenv.EnvCPUs + "=" + jobenv.FormatRanks(cpus)}
	if !hasEnv(env, "GOMAXPROCS") {
		add = append(add, "GOMAXPROCS="+strconv.Itoa(max(2, len(cpus))))
	}
	return cpus, add
}

// hasEnv reports whether env sets name.
func hasEnv(env []string, name string) bool {
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); ok && k == name {
			return true
		}
	}
	return false
}
