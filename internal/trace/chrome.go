package trace

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// File is a trace in the trace-event JSON object format (Chrome's
// chrome://tracing and ui.perfetto.dev open it).
type File struct {
	TraceEvents     []JSONEvent `json:"traceEvents"`
	DisplayTimeUnit string      `json:"displayTimeUnit"`
	OtherData       Meta        `json:"otherData"`
}

// JSONEvent is one trace event. Ts and Dur are microseconds.
type JSONEvent struct {
	Name string         `json:"name"`
	Cat  string         `json:"cat,omitempty"`
	Ph   string         `json:"ph"`
	Pid  int            `json:"pid"`
	Tid  int            `json:"tid"`
	Ts   float64        `json:"ts"`
	Dur  *float64       `json:"dur,omitempty"`
	ID   uint64         `json:"id,omitempty"`
	BP   string         `json:"bp,omitempty"`
	S    string         `json:"s,omitempty"`
	Args map[string]any `json:"args,omitempty"`
}

// Meta is the file's otherData: how it was made and how clocks were aligned.
type Meta struct {
	Tool    string     `json:"tool"`
	Start   string     `json:"start"` // wall-clock time of ts 0 (RFC 3339, launcher's clock)
	Clock   string     `json:"clock"`
	Ranks   []RankMeta `json:"ranks"`
	Missing []int      `json:"missing_ranks,omitempty"` // ranks whose recording did not reach the launcher
	Size    int        `json:"size"`
}

// RankMeta describes one rank's recording.
type RankMeta struct {
	Rank     int    `json:"rank"`
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	OffsetNs int64  `json:"clock_offset_ns"` // added to the rank's clock to get the launcher's
	RTTNs    int64  `json:"clock_rtt_ns"`    // round trip the offset was measured with (0: not measured)
	Events   int    `json:"events"`
	Dropped  int64  `json:"dropped"` // events lost because the rank's buffer was full
	Reason   string `json:"flushed_on"`
}

// Track ids within a rank's process: a kind's lanes count up from its base.
const (
	tidComm  = 1
	tidColl  = 100
	tidTask  = 200
	tidJob   = 300
	tidQueue = 400
)

func trackOf(k Kind) (tid int, name string) {
	switch k {
	case KindSend, KindRecv, KindCall:
		return tidComm, "comm"
	case KindColl:
		return tidColl, "collectives"
	case KindTask:
		return tidTask, "deco tasks"
	case KindTaskLife:
		return tidQueue, "deco queue"
	}
	return tidJob, "job"
}

// us converts nanoseconds to the file's microseconds.
func us(ns int64) float64 { return float64(ns) / 1e3 }

// Merge builds one trace from the ranks' dumps of a job of size ranks;
// missing lists the ranks without one.
func Merge(dumps []*Dump, size int, missing []int) *File {
	f := &File{DisplayTimeUnit: "ns"}
	// Every time on the launcher's clock, relative to the earliest.
	abs := func(d *Dump, t int64) int64 { return d.Epoch + t + d.Offset }
	var t0 int64
	first := true
	for _, d := range dumps {
		if t := abs(d, 0); first || t < t0 {
			t0, first = t, false
		}
	}
	ts := func(d *Dump, t int64) float64 { return us(abs(d, t) - t0) }
	f.OtherData = Meta{Tool: "decorun", Size: size, Missing: missing,
		Start: time.Unix(0, t0).UTC().Format(time.RFC3339Nano),
		Clock: "every rank's events are on the launcher's clock: rank time + clock_offset_ns, measured at start-up as the launcher's clock minus the midpoint of the request with the shortest round trip (error at most clock_rtt_ns/2); clock_rtt_ns 0: not measured, the rank's clock as is"}
	type sendAt struct {
		pid, tid int
		ts       float64
	}
	sends := map[[2]uint64]sendAt{}
	type recvAt struct {
		pid, tid int
		ts       float64
		src      int
		id       uint64
	}
	var recvs []recvAt
	var async uint64
	for _, d := range dumps {
		f.OtherData.Ranks = append(f.OtherData.Ranks, RankMeta{Rank: d.Rank, Host: d.Host, PID: d.PID, OffsetNs: d.Offset,
			RTTNs: d.RTT, Events: len(d.Events), Dropped: d.Dropped, Reason: d.Reason})
		pid := d.Rank
		name := fmt.Sprintf("rank %d", d.Rank)
		if d.Host != "" {
			name += " (" + d.Host + ")"
		}
		f.TraceEvents = append(f.TraceEvents,
			JSONEvent{Name: "process_name", Ph: "M", Pid: pid, Args: map[string]any{"name": name}},
			JSONEvent{Name: "process_sort_index", Ph: "M", Pid: pid, Args: map[string]any{"sort_index": d.Rank}})
		evs := slices.Clone(d.Events)
		slices.SortStableFunc(evs, func(a, b Event) int {
			if c := cmp.Compare(a.Start, b.Start); c != 0 {
				return c
			}
			return cmp.Compare(b.End, a.End) // the enclosing call first
		})
		lanes := map[int][][]int64{} // track base -> lanes -> stack of open ends
		named := map[int]bool{}
		for _, ev := range evs {
			base, tname := trackOf(ev.Kind)
			if ev.End < ev.Start {
				ev.End = ev.Start
			}
			args := argsOf(d, ev)
			switch ev.Kind {
			case KindTaskLife:
				async++
				if !named[base] {
					named[base] = true
					f.TraceEvents = append(f.TraceEvents, threadName(pid, base, tname))
				}
				f.TraceEvents = append(f.TraceEvents,
					JSONEvent{Name: ev.Name, Cat: "deco", Ph: "b", Pid: pid, Tid: base, Ts: ts(d, ev.Start), ID: async, Args: args},
					JSONEvent{Name: ev.Name, Cat: "deco", Ph: "e", Pid: pid, Tid: base, Ts: ts(d, ev.End), ID: async})
				continue
			case KindJob:
				if !named[base] {
					named[base] = true
					f.TraceEvents = append(f.TraceEvents, threadName(pid, base, tname))
				}
				if ev.End == ev.Start {
					f.TraceEvents = append(f.TraceEvents, JSONEvent{Name: ev.Name, Cat: "job", Ph: "i", S: "p", Pid: pid, Tid: base,
						Ts: ts(d, ev.Start), Args: args})
					continue
				}
			}
			ls := lanes[base]
			lane := -1
			for i := range ls {
				st := ls[i]
				for len(st) > 0 && st[len(st)-1] <= ev.Start {
					st = st[:len(st)-1]
				}
				ls[i] = st
				if lane < 0 && (len(st) == 0 || st[len(st)-1] >= ev.End) {
					lane = i
				}
			}
			if lane < 0 {
				lane = len(ls)
				ls = append(ls, nil)
			}
			ls[lane] = append(ls[lane], ev.End)
			lanes[base] = ls
			tid := base + lane
			if !named[tid] {
				named[tid] = true
				n := tname
				if lane > 0 {
					n = fmt.Sprintf("%s %d", tname, lane+1)
				}
				f.TraceEvents = append(f.TraceEvents, threadName(pid, tid, n))
			}
			start, dur := ts(d, ev.Start), us(ev.End-ev.Start)
			f.TraceEvents = append(f.TraceEvents, JSONEvent{Name: ev.Name, Cat: catOf(ev.Kind), Ph: "X", Pid: pid, Tid: tid,
				Ts: start, Dur: &dur, Args: args})
			// An arrow leaves a send where it starts and reaches a
			// receive where it ends, just inside each slice (flow
			// events bind to the slice that encloses them).
			in := min(int64(1), (ev.End-ev.Start)/2)
			switch {
			case ev.Kind == KindSend && ev.ID != 0:
				sends[[2]uint64{uint64(d.Rank), ev.ID}] = sendAt{pid, tid, ts(d, ev.Start+in)}
			case ev.Kind == KindRecv && ev.ID != 0 && ev.Peer >= 0:
				recvs = append(recvs, recvAt{pid, tid, ts(d, ev.End-in), int(ev.Peer), ev.ID})
			}
		}
	}
	var flow uint64
	for _, r := range recvs {
		s, ok := sends[[2]uint64{uint64(r.src), r.id}]
		if !ok {
			continue // its sender's recording is missing or full
		}
		flow++
		f.TraceEvents = append(f.TraceEvents,
			JSONEvent{Name: "message", Cat: "msg", Ph: "s", Pid: s.pid, Tid: s.tid, Ts: s.ts, ID: flow},
			JSONEvent{Name: "message", Cat: "msg", Ph: "f", BP: "e", Pid: r.pid, Tid: r.tid, Ts: r.ts, ID: flow})
	}
	// Metadata first, then each track's events in time order (an
	// enclosing slice before those it encloses).
	slices.SortStableFunc(f.TraceEvents, func(a, b JSONEvent) int {
		if (a.Ph == "M") != (b.Ph == "M") {
			if a.Ph == "M" {
				return -1
			}
			return 1
		}
		if a.Ph == "M" {
			return 0
		}
		if c := cmp.Compare(a.Pid, b.Pid); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Tid, b.Tid); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Ts, b.Ts); c != 0 {
			return c
		}
		return cmp.Compare(durOf(b), durOf(a))
	})
	return f
}

func durOf(e JSONEvent) float64 {
	if e.Dur == nil {
		return -1
	}
	return *e.Dur
}

func threadName(pid, tid int, name string) JSONEvent {
	return JSONEvent{Name: "thread_name", Ph: "M", Pid: pid, Tid: tid, Args: map[string]any{"name": name}}
}

func catOf(k Kind) string {
	switch k {
	case KindColl:
		return "collective"
	case KindTask:
		return "deco"
	case KindJob:
		return "job"
	}
	return "comm"
}

func argsOf(d *Dump, ev Event) map[string]any {
	a := map[string]any{}
	switch ev.Kind {
	case KindSend, KindRecv, KindCall:
		if ev.Peer >= 0 {
			a["peer"] = ev.Peer
		} else if ev.Peer == -3 {
			a["peer"] = "all"
		}
		a["kind"], a["tag"], a["bytes"], a["comm"] = ev.Kind.String(), ev.Tag, ev.Bytes, ev.Comm
		if ev.ID != 0 {
			a["msg"] = ev.ID
		}
	case KindColl:
		a["bytes"], a["comm"] = ev.Bytes, ev.Comm
		if ev.Detail != "" {
			a["algorithm"] = ev.Detail
		}
	case KindTask:
		a["function"] = ev.Name
	case KindTaskLife:
		a["function"], a["ran_on"], a["retried"] = ev.Name, ev.Peer, ev.Flags&FlagRetried != 0
	case KindJob:
		if ev.Peer >= 0 {
			a["rank"] = ev.Peer
		}
	}
	if ev.Detail != "" && ev.Kind != KindColl {
		a["detail"] = ev.Detail
	}
	if ev.Flags&FlagErr != 0 {
		a["error"] = true
	}
	if ev.Site > 0 && int(ev.Site) < len(d.Sites) {
		a["site"] = d.Sites[ev.Site]
	}
	return a
}

// JSON encodes f.
func (f *File) JSON() ([]byte, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("trace: encoding the trace: %w", err)
	}
	return b, nil
}

// ParseFile reads a trace written by JSON.
func ParseFile(b []byte) (*File, error) {
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("trace: not a trace-event JSON file: %w", err)
	}
	return &f, nil
}
