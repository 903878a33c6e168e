package bench

import (
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// Benchmark names, in the order "all" runs them.
const (
	Latency   = "latency"
	BW        = "bw"
	BiBW      = "bibw"
	Barrier   = "barrier"
	Bcast     = "bcast"
	Allreduce = "allreduce"
	Reduce    = "reduce"
	Gather    = "gather"
	Scatter   = "scatter"
	Alltoall  = "alltoall"
	Tasks     = "tasks"
	StartupB  = "startup"
	All       = "all"
)

// Names lists every benchmark in the order All runs them.
var Names = []string{Latency, BW, BiBW, Barrier, Bcast, Reduce, Allreduce, Gather, Scatter, Alltoall, Iallreduce, Tasks, StartupB}

// Window is the number of messages in flight in the bandwidth tests (OSU's
// default).
const Window = 64

// MaxSize is the largest message size Config accepts.
const MaxSize = 256 << 20

// Default size sweeps.
const (
	P2PMax     = 4 << 20 // point to point: 0 B to 4 MiB
	CollMin    = 8       // collectives: 8 B to 1 MiB
	CollMax    = 1 << 20 //
	smallLimit = 8192    // sizes up to this use the "small" iteration counts
)

// Config selects what Run measures. It travels to the ranks as JSON.
type Config struct {
	// Benchmarks to run, from Names, in order.
	Benchmarks []string `json:"benchmarks"`
	// Sizes in bytes; nil means the default sweep of each benchmark
	// (point to point 0 B to 4 MiB, collectives 8 B to 1 MiB, powers of two).
	Sizes []int `json:"sizes,omitempty"`
	// Iters is the number of timed iterations per size (for startup: runs;
	// for tasks: blocks of TaskCalls calls);
	// zero means OSU-like defaults that depend on the size.
	Iters int `json:"iters,omitempty"`
	// Warmup, when set, is the number of untimed iterations before them;
	// nil means the default (Iters/10 when Iters is set).
	Warmup *int `json:"warmup,omitempty"`
	// Baseline also measures raw nats.go for the point-to-point tests.
	Baseline bool `json:"baseline,omitempty"`
	// Transport is the job's data path (auto, nats, shm or tcp), for the
	// results; the bench command passes it to the launcher.
	Transport string `json:"transport,omitempty"`
	// TCPPlain: the job runs with decorun --tcp-encrypt=false, for the
	// results; the bench command passes it to the launcher.
	TCPPlain bool `json:"tcp_plain,omitempty"`
	// JSON prints one JSON object per measurement instead of a table.
	JSON bool `json:"json,omitempty"`
	// CPUProfile and MemProfile, when set, make each rank write a pprof CPU
	// or heap profile to the given path with ".rankR" appended.
	CPUProfile string `json:"cpuprofile,omitempty"`
	MemProfile string `json:"memprofile,omitempty"`
}

// Parse expands the benchmark names of a command line ("all" means every
// one) and checks them.
func Parse(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("no benchmark named (one or more of %s, or all)", strings.Join(Names, ", "))
	}
	var out []string
	for _, n := range names {
		for _, n := range strings.Split(n, ",") {
			switch {
			case n == All:
				for _, m := range Names {
					if !slices.Contains(out, m) {
						out = append(out, m)
					}
				}
			case slices.Contains(Names, n):
				if !slices.Contains(out, n) {
					out = append(out, n)
				}
			default:
				return nil, fmt.Errorf("unknown benchmark %q (want %s, or all)", n, strings.Join(Names, ", "))
			}
		}
	}
	return out, nil
}

// ParseSizes parses a size list: comma-separated sizes ("8", "64K", "1M",
// "1MiB"; K, M and G are powers of 1024) and ranges "MIN:MAX", which stand
// for MIN (when 0) and every power of two from MIN up to MAX. The result
// is sorted, without duplicates.
func ParseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if lo, hi, ok := strings.Cut(f, ":"); ok {
			a, err := parseSize(lo)
			if err != nil {
				return nil, err
			}
			b, err := parseSize(hi)
			if err != nil {
				return nil, err
			}
			if a > b {
				return nil, fmt.Errorf("size range %q: %d > %d", f, a, b)
			}
			out = append(out, PowersOfTwo(a, b)...)
			continue
		}
		n, err := parseSize(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func parseSize(s string) (int, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "IB"), "B")
	mul := 1
	switch {
	case strings.HasSuffix(t, "K"):
		mul, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mul, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mul, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 0, 8, 64K, 4M)", s)
	}
	if n > MaxSize/mul {
		return 0, fmt.Errorf("size %q is above the limit of %d MiB", s, MaxSize>>20)
	}
	return n * mul, nil
}

// PowersOfTwo returns lo if it is 0, then every power of two in [lo, hi].
func PowersOfTwo(lo, hi int) []int {
	var out []int
	if lo == 0 {
		out = append(out, 0)
		lo = 1
	}
	p := 1 << bits.Len(uint(lo-1)) // smallest power of two >= lo
	for ; p <= hi; p *= 2 {
		out = append(out, p)
	}
	return out
}

// sizes returns the sizes benchmark b sweeps.
func (cfg *Config) sizes(b string) []int {
	var s []int
	switch {
	case cfg.Sizes != nil:
		s = slices.Clone(cfg.Sizes)
	case b == Latency:
		s = PowersOfTwo(0, P2PMax)
	case b == BW || b == BiBW:
		s = PowersOfTwo(1, P2PMax)
	case b == Iallreduce:
		s = slices.Clone(iallreduceSizes)
	default:
		s = PowersOfTwo(CollMin, CollMax)
	}
	switch b {
	case BW, BiBW: // a window of empty messages has no bandwidth
		s = slices.DeleteFunc(s, func(n int) bool { return n == 0 })
	case Allreduce, Reduce, Iallreduce: // float64 elements
		s = slices.DeleteFunc(s, func(n int) bool { return n < 8 })
	case Barrier:
		s = []int{0}
	}
	return s
}

// Iterations returns the warm-up and timed iteration counts of benchmark b
// at size n under cfg.
func (cfg *Config) Iterations(b string, n int) (warmup, iters int) {
	small := n <= smallLimit
	switch b {
	case Latency:
		warmup, iters = pick(small, 100, 1000, 10, 100)
	case BW, BiBW:
		warmup, iters = pick(small, 10, 100, 2, 20)
	case StartupB:
		warmup, iters = 1, 10
	case Tasks: // blocks of TaskCalls calls
		warmup, iters = 1, 10
	case Iallreduce:
		warmup, iters = iallreduceIters(n)
	default:
		warmup, iters = pick(small, 100, 1000, 10, 100)
	}
	if cfg.Iters > 0 {
		iters = cfg.Iters
		warmup = iters / 10
	}
	if cfg.Warmup != nil {
		warmup = max(*cfg.Warmup, 0)
	}
	return warmup, iters
}

func pick(small bool, sw, si, lw, li int) (int, int) {
	if small {
		return sw, si
	}
	return lw, li
}
