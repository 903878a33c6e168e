package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Result is one measurement: one benchmark at one size. Fields that do not
// apply to the benchmark are zero and left out of the JSON form.
type Result struct {
	Bench string `json:"bench"`
	Ranks int    `json:"ranks"`
	// Transport is the job's data path: auto (shared memory between the
	// ranks of one host, TCP between hosts), nats, shm or tcp.
	Transport string `json:"transport,omitempty"`
	// TCPPlain: the job ran with decorun --tcp-encrypt=false (direct TCP
	// frames not encrypted).
	TCPPlain bool `json:"tcp_plain,omitempty"`
	Size     *int `json:"size,omitempty"` // bytes; nil for startup and tasks
	Iters    int  `json:"iters,omitempty"`
	Warmup   int  `json:"warmup,omitempty"`
	Window   int  `json:"window,omitempty"`

	// latency, one-way µs
	MedianUS float64 `json:"median_us,omitempty"`
	P99US    float64 `json:"p99_us,omitempty"`
	MinUS    float64 `json:"min_us,omitempty"`
	AvgUS    float64 `json:"avg_us,omitempty"` // also collectives: mean over ranks
	MaxUS    float64 `json:"max_us,omitempty"` // collectives: max over ranks

	// bw, bibw
	MBps float64 `json:"mbps,omitempty"` // 10^6 bytes per second

	// iallreduce: max over ranks of each rank's mean µs of Iallreduce +
	// Wait alone (pure), of the compute phase and of Iallreduce, compute
	// and Wait (total); overlap = 100·(1 − (total − compute)/pure), 0..100
	PureUS     float64  `json:"pure_us,omitempty"`
	ComputeUS  float64  `json:"compute_us,omitempty"`
	TotalUS    float64  `json:"total_us,omitempty"`
	OverlapPct *float64 `json:"overlap_pct,omitempty"`

	// tasks: no-op deco calls per second, over blocks of Calls calls
	Calls          int     `json:"calls,omitempty"`
	CallsPerSec    float64 `json:"calls_per_s,omitempty"` // median over blocks
	MinCallsPerSec float64 `json:"min_calls_per_s,omitempty"`
	MaxCallsPerSec float64 `json:"max_calls_per_s,omitempty"`
	USPerCall      float64 `json:"us_per_call,omitempty"` // 10^6 / calls_per_s

	// startup, ms
	MedianMS float64 `json:"median_ms,omitempty"`
	MinMS    float64 `json:"min_ms,omitempty"`
	MaxMS    float64 `json:"max_ms,omitempty"`

	// baseline (raw nats.go)
	RawMedianUS float64 `json:"raw_median_us,omitempty"`
	RawP99US    float64 `json:"raw_p99_us,omitempty"`
	RawMBps     float64 `json:"raw_mbps,omitempty"`
	RawMsgs     int     `json:"raw_msgs,omitempty"` // NATS messages per payload in the baseline
	Ratio       float64 `json:"ratio,omitempty"`    // decorun / raw: latency > 1 is slower, bandwidth < 1 is slower; tasks: calls_per_s / DECO's

	// Unavailable says why a benchmark could not run (then no figures).
	Unavailable string `json:"unavailable,omitempty"`
}

// Printer writes results as a table (one header per benchmark) or as JSON
// lines. It is safe for concurrent use.
type Printer struct {
	W    io.Writer
	JSON bool
	// Baseline adds the raw NATS columns to point-to-point tables.
	Baseline bool

	mu   sync.Mutex
	last string
}

// Print writes r.
func (p *Printer) Print(r Result) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.JSON {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.W, "%s\n", b)
		return err
	}
	var b strings.Builder
	if r.Bench != p.last {
		if p.last != "" {
			b.WriteString("\n")
		}
		p.header(&b, r)
		p.last = r.Bench
	}
	p.row(&b, r)
	_, err := io.WriteString(p.W, b.String())
	return err
}

func (p *Printer) header(b *strings.Builder, r Result) {
	raw := p.Baseline && (r.Bench == Latency || r.Bench == BW || r.Bench == BiBW)
	switch r.Bench {
	case Latency:
		fmt.Fprintf(b, "# latency: ping-pong rank 0 <-> rank 1 (Send, RecvInto), one-way = round trip / 2, µs; %d ranks\n", r.Ranks)
		fmt.Fprintf(b, "%-10s %10s %10s %10s %10s %7s", "# size", "median", "p99", "min", "avg", "iters")
		if raw {
			fmt.Fprintf(b, " | %10s %10s %7s", "raw median", "raw p99", "ratio")
		}
	case BW, BiBW:
		what := "rank 0 sends a window of %d Isends, rank 1 acks"
		if r.Bench == BiBW {
			what = "both ranks send a window of %d Isends at once, aggregate"
		}
		fmt.Fprintf(b, "# %s: "+what+"; MB/s (10^6 B/s); %d ranks\n", r.Bench, r.Window, r.Ranks)
		fmt.Fprintf(b, "%-10s %10s %7s", "# size", "MB/s", "iters")
		if raw {
			fmt.Fprintf(b, " | %10s %7s", "raw MB/s", "ratio")
		}
	case Tasks:
		fmt.Fprintf(b, "# tasks: no-op deco calls (Concurrent + Assign) in synchronized blocks of %d, run on all %d ranks; calls/s per block; ratio = median / DECO's %d calls/s\n", r.Calls, r.Ranks, DECOCallsPerSec)
		fmt.Fprintf(b, "%-10s %10s %10s %10s %10s %7s %7s", "# ranks", "calls/s", "min", "max", "µs/call", "blocks", "ratio")
	case Iallreduce:
		fmt.Fprintf(b, "# iallreduce overlap, OSU style: pure = Iallreduce+Wait alone; then Iallreduce, compute for pure, Wait (total);\n")
		fmt.Fprintf(b, "#   overlap%% = 100*(1 - (total - compute)/pure); max over %d ranks of each rank's mean µs\n", r.Ranks)
		fmt.Fprintf(b, "%-10s %10s %10s %10s %9s %7s", "# size", "pure", "compute", "total", "overlap%", "iters")
	case StartupB:
		fmt.Fprintf(b, "# startup: wall time of decorun -n N of a program that joins and closes, start to exit, ms\n")
		fmt.Fprintf(b, "%-10s %10s %10s %10s %7s", "# ranks", "median", "min", "max", "runs")
	default:
		if r.Unavailable != "" {
			fmt.Fprintf(b, "# %s", r.Bench)
			break
		}
		fmt.Fprintf(b, "# %s: each op timed alone, untimed barrier between; mean µs per op of each rank, max/avg/min over %d ranks\n", r.Bench, r.Ranks)
		fmt.Fprintf(b, "%-10s %10s %10s %10s %7s", "# size", "max", "avg", "min", "iters")
	}
	b.WriteString("\n")
	if r.Transport != "" && r.Unavailable == "" {
		fmt.Fprintf(b, "#   transport: %s\n", r.Transport)
	}
	if r.TCPPlain && r.Unavailable == "" {
		b.WriteString("#   direct TCP frames not encrypted (--tcp-encrypt=false)\n")
	}
	if raw {
		b.WriteString("#   raw: bare nats.go, same two processes and server; ratio = decorun / raw; (xN): payload split into N NATS messages (max_payload)\n")
		if r.Bench != Latency {
			b.WriteString("#   raw stream: the receiver acks every 16 MiB of a window (bare NATS has no flow control; more overflows the server's per-client buffer)\n")
		}
	}
}

func (p *Printer) row(b *strings.Builder, r Result) {
	size := 0
	if r.Size != nil {
		size = *r.Size
	}
	switch {
	case r.Unavailable != "":
		fmt.Fprintf(b, "  not available yet: %s\n", r.Unavailable)
		return
	case r.Bench == Latency:
		fmt.Fprintf(b, "%-10s %10.2f %10.2f %10.2f %10.2f %7d", FormatSize(size), r.MedianUS, r.P99US, r.MinUS, r.AvgUS, r.Iters)
		if r.RawMedianUS > 0 {
			fmt.Fprintf(b, " | %10.2f %10.2f %7.2f%s", r.RawMedianUS, r.RawP99US, r.Ratio, chunks(r.RawMsgs))
		}
	case r.Bench == BW || r.Bench == BiBW:
		fmt.Fprintf(b, "%-10s %10.1f %7d", FormatSize(size), r.MBps, r.Iters)
		if r.RawMBps > 0 {
			fmt.Fprintf(b, " | %10.1f %7.2f%s", r.RawMBps, r.Ratio, chunks(r.RawMsgs))
		}
	case r.Bench == Tasks:
		fmt.Fprintf(b, "%-10d %10.0f %10.0f %10.0f %10.2f %7d %7.2f", r.Ranks, r.CallsPerSec, r.MinCallsPerSec, r.MaxCallsPerSec, r.USPerCall, r.Iters, r.Ratio)
	case r.Bench == Iallreduce:
		ov := 0.0
		if r.OverlapPct != nil {
			ov = *r.OverlapPct
		}
		fmt.Fprintf(b, "%-10s %10.2f %10.2f %10.2f %9.1f %7d", FormatSize(size), r.PureUS, r.ComputeUS, r.TotalUS, ov, r.Iters)
	case r.Bench == StartupB:
		fmt.Fprintf(b, "%-10d %10.1f %10.1f %10.1f %7d", r.Ranks, r.MedianMS, r.MinMS, r.MaxMS, r.Iters)
	default:
		fmt.Fprintf(b, "%-10s %10.2f %10.2f %10.2f %7d", FormatSize(size), r.MaxUS, r.AvgUS, r.MinUS, r.Iters)
	}
	b.WriteString("\n")
}

func chunks(n int) string {
	if n > 1 {
		return fmt.Sprintf(" (x%d)", n)
	}
	return ""
}

// FormatSize writes n bytes the way ParseSizes reads them: 512, 64K, 4M.
func FormatSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprint(n)
}
