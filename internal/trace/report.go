package trace

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Report is the end-of-job summary of decorun --report (mpiP's, in
// spirit). Times are nanoseconds.
type Report struct {
	Size    int          `json:"size"`
	Missing []int        `json:"missing_ranks,omitempty"`
	Ranks   []RankReport `json:"ranks"`
	Sites   []SiteReport `json:"sites"` // by time, longest first
	Sizes   []SizeBucket `json:"message_sizes"`
	// Collectives: time in collective calls across ranks.
	CollMaxNs     int64       `json:"coll_max_ns"`
	CollMeanNs    int64       `json:"coll_mean_ns"`
	CollMaxRank   int         `json:"coll_max_rank"`
	CollImbalance float64     `json:"coll_imbalance"` // max/mean; 0 without collectives
	Tasks         *TaskReport `json:"tasks,omitempty"`
}

// RankReport is one rank's line.
type RankReport struct {
	Rank      int    `json:"rank"`
	Host      string `json:"host"`
	WallNs    int64  `json:"wall_ns"`    // Init to the last event (Close)
	CommNs    int64  `json:"comm_ns"`    // in comm calls and collectives (their union), deco's own messages excepted
	DecoNs    int64  `json:"deco_ns"`    // in deco's own messages (rank 0 waiting for results, workers for tasks)
	OutsideNs int64  `json:"outside_ns"` // WallNs - CommNs
	CollNs    int64  `json:"coll_ns"`    // in collectives
	Sends     int    `json:"sends"`      // messages sent (collectives' own included)
	Recvs     int    `json:"recvs"`      // messages received
	BytesSent int64  `json:"bytes_sent"`
	Dropped   int64  `json:"dropped"`
}

// SiteReport is the time spent in communication called from one line of
// the program, over all ranks.
type SiteReport struct {
	Site   string `json:"site"` // file:line
	Call   string `json:"call"`
	Count  int    `json:"count"`
	TimeNs int64  `json:"time_ns"`
	Bytes  int64  `json:"bytes"`
	Ranks  int    `json:"ranks"` // how many ranks called it
}

// SizeBucket counts messages sent of Lo <= size < Hi bytes (Hi 0: no bound).
type SizeBucket struct {
	Lo    int64 `json:"lo"`
	Hi    int64 `json:"hi"`
	Count int   `json:"count"`
}

// TaskReport summarises deco's tasks.
type TaskReport struct {
	PerRank []int `json:"per_rank"` // tasks run on each rank
	Total   int   `json:"total"`
	Retried int   `json:"retried"`
	P50Ns   int64 `json:"p50_ns"`
	P90Ns   int64 `json:"p90_ns"`
	P99Ns   int64 `json:"p99_ns"`
	MaxNs   int64 `json:"max_ns"`
}

var bucketEdges = []int64{64, 1 << 10, 16 << 10, 256 << 10, 4 << 20}

// Summarize computes the report from the ranks' dumps.
func Summarize(dumps []*Dump, size int, missing []int) *Report {
	r := &Report{Size: size, Missing: missing}
	lo := int64(0)
	for _, e := range bucketEdges {
		r.Sizes = append(r.Sizes, SizeBucket{Lo: lo, Hi: e})
		lo = e
	}
	r.Sizes = append(r.Sizes, SizeBucket{Lo: lo})
	type siteKey struct{ site, call string }
	sites := map[siteKey]*SiteReport{}
	siteRanks := map[siteKey]map[int]bool{}
	var taskNs []int64
	var tasks TaskReport
	tasks.PerRank = make([]int, size)
	var collSum int64
	for _, d := range dumps {
		rr := RankReport{Rank: d.Rank, Host: d.Host, Dropped: d.Dropped}
		var comm, coll, deco [][2]int64
		for _, ev := range d.Events {
			rr.WallNs = max(rr.WallNs, ev.End)
			switch ev.Kind {
			case KindSend, KindRecv, KindCall, KindColl:
				if ev.Site > 0 && int(ev.Site) < len(d.Sites) && d.Sites[ev.Site] == SiteDeco {
					deco = append(deco, [2]int64{ev.Start, ev.End})
					break
				}
				comm = append(comm, [2]int64{ev.Start, ev.End})
				if ev.Kind == KindColl {
					coll = append(coll, [2]int64{ev.Start, ev.End})
				}
				if ev.Site > 0 && int(ev.Site) < len(d.Sites) && !strings.HasPrefix(d.Sites[ev.Site], "(") {
					k := siteKey{d.Sites[ev.Site], ev.Name}
					s := sites[k]
					if s == nil {
						s = &SiteReport{Site: k.site, Call: k.call}
						sites[k], siteRanks[k] = s, map[int]bool{}
					}
					s.Count++
					s.TimeNs += ev.End - ev.Start
					s.Bytes += ev.Bytes
					siteRanks[k][d.Rank] = true
				}
			case KindTask:
				if d.Rank < size {
					tasks.PerRank[d.Rank]++
				}
				tasks.Total++
				taskNs = append(taskNs, ev.End-ev.Start)
			case KindTaskLife:
				if ev.Flags&FlagRetried != 0 {
					tasks.Retried++
				}
			}
			switch ev.Kind {
			case KindSend:
				rr.Sends++
				rr.BytesSent += ev.Bytes
				for i := range r.Sizes {
					if ev.Bytes >= r.Sizes[i].Lo && (r.Sizes[i].Hi == 0 || ev.Bytes < r.Sizes[i].Hi) {
						r.Sizes[i].Count++
						break
					}
				}
			case KindRecv:
				rr.Recvs++
			}
		}
		rr.CommNs, rr.CollNs, rr.DecoNs = union(comm), union(coll), union(deco)
		rr.OutsideNs = rr.WallNs - rr.CommNs
		collSum += rr.CollNs
		if rr.CollNs > r.CollMaxNs {
			r.CollMaxNs, r.CollMaxRank = rr.CollNs, rr.Rank
		}
		r.Ranks = append(r.Ranks, rr)
	}
	if len(dumps) > 0 && collSum > 0 {
		r.CollMeanNs = collSum / int64(len(dumps))
		r.CollImbalance = float64(r.CollMaxNs) / float64(r.CollMeanNs)
	}
	for k, s := range sites {
		s.Ranks = len(siteRanks[k])
		r.Sites = append(r.Sites, *s)
	}
	slices.SortFunc(r.Sites, func(a, b SiteReport) int {
		if c := cmp.Compare(b.TimeNs, a.TimeNs); c != 0 {
			return c
		}
		return cmp.Compare(a.Site+a.Call, b.Site+b.Call)
	})
	if tasks.Total > 0 {
		slices.Sort(taskNs)
		pct := func(p int) int64 { return taskNs[min(len(taskNs)-1, (len(taskNs)*p+99)/100-1)] }
		tasks.P50Ns, tasks.P90Ns, tasks.P99Ns, tasks.MaxNs = pct(50), pct(90), pct(99), taskNs[len(taskNs)-1]
		r.Tasks = &tasks
	}
	return r
}

// union is the total length of the union of the intervals.
func union(iv [][2]int64) int64 {
	slices.SortFunc(iv, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var total, end int64
	start := int64(-1)
	for _, x := range iv {
		switch {
		case start < 0:
			start, end = x[0], x[1]
		case x[0] > end:
			total += end - start
			start, end = x[0], x[1]
		default:
			end = max(end, x[1])
		}
	}
	if start >= 0 {
		total += end - start
	}
	return total
}

// JSON encodes r for --report-json.
func (r *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("trace: encoding the report: %w", err)
	}
	return append(b, '\n'), nil
}

func dur(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	}
}

func size(n int64) string {
	switch {
	case n == 0:
		return "0"
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// TopSites is how many call sites the text report lists.
const TopSites = 10

// Write prints r as text.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "decorun report: %d ranks\n", r.Size)
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "  no recording from ranks %v (they died before they could send it)\n", r.Missing)
	}
	fmt.Fprintf(&b, "\n%-28s %10s %10s %6s %10s %10s %7s %7s", "rank", "wall", "comm", "comm%", "outside", "coll", "sends", "recvs")
	if r.Tasks != nil {
		fmt.Fprintf(&b, " %10s", "deco msgs")
	}
	b.WriteString("\n")
	for _, rr := range r.Ranks {
		pct := 0.0
		if rr.WallNs > 0 {
			pct = 100 * float64(rr.CommNs) / float64(rr.WallNs)
		}
		name := fmt.Sprintf("%d (%s)", rr.Rank, rr.Host)
		fmt.Fprintf(&b, "%-28s %10s %10s %5.1f%% %10s %10s %7d %7d", name, dur(rr.WallNs), dur(rr.CommNs), pct,
			dur(rr.OutsideNs), dur(rr.CollNs), rr.Sends, rr.Recvs)
		if r.Tasks != nil {
			fmt.Fprintf(&b, " %10s", dur(rr.DecoNs))
		}
		b.WriteString("\n")
		if rr.Dropped > 0 {
			fmt.Fprintf(&b, "  rank %d's buffer was full: %d events not recorded (raise DECORUN_TRACE_EVENTS)\n", rr.Rank, rr.Dropped)
		}
	}
	fmt.Fprintf(&b, "\ntop call sites by time in communication (all ranks)\n")
	if len(r.Sites) == 0 {
		fmt.Fprintf(&b, "  none\n")
	} else {
		fmt.Fprintf(&b, "  %-32s %-18s %7s %6s %10s %12s\n", "site", "call", "count", "ranks", "time", "bytes")
	}
	for i, s := range r.Sites {
		if i == TopSites {
			fmt.Fprintf(&b, "  ... and %d more (--report-json lists all)\n", len(r.Sites)-i)
			break
		}
		fmt.Fprintf(&b, "  %-32s %-18s %7d %6d %10s %12d\n", s.Site, s.Call, s.Count, s.Ranks, dur(s.TimeNs), s.Bytes)
	}
	fmt.Fprintf(&b, "\nmessage sizes (messages sent, all ranks)\n")
	for _, s := range r.Sizes {
		hi := "+"
		if s.Hi != 0 {
			hi = " - <" + size(s.Hi)
		}
		fmt.Fprintf(&b, "  %-18s %8d\n", size(s.Lo)+hi, s.Count)
	}
	if r.CollMaxNs > 0 {
		fmt.Fprintf(&b, "\ncollectives: time per rank max %s (rank %d), mean %s, imbalance max/mean %.2f\n",
			dur(r.CollMaxNs), r.CollMaxRank, dur(r.CollMeanNs), r.CollImbalance)
	} else {
		fmt.Fprintf(&b, "\ncollectives: none\n")
	}
	if t := r.Tasks; t != nil {
		fmt.Fprintf(&b, "\ndeco: %d tasks (%d rerun after a lost rank); per rank:", t.Total, t.Retried)
		for i, n := range t.PerRank {
			fmt.Fprintf(&b, " %d:%d", i, n)
		}
		fmt.Fprintf(&b, "\n  task time p50 %s, p90 %s, p99 %s, max %s\n", dur(t.P50Ns), dur(t.P90Ns), dur(t.P99Ns), dur(t.MaxNs))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
