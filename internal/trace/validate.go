package trace

import (
	"errors"
	"fmt"
)

// Validate checks f against the trace-event format as viewers read it:
// known phases; every process named; every B has its E and every async b
// its e; complete (X) events have a duration and nest properly within their
// track; timestamps never go back within a track; every flow id has one
// start (s) and one finish (f). (The order of a flow's ends is not checked:
// flows may cross hosts, whose clocks agree only to within the measured
// round trip.) It returns the problems found (up to 20), joined.
func Validate(f *File) error {
	var errs []error
	bad := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	named := map[int]bool{}
	used := map[int]bool{}
	type track struct{ pid, tid int }
	last := map[track]float64{}
	open := map[track][]float64{} // X ends, B starts
	bstack := map[track][]string{}
	async := map[uint64]string{}
	flows := map[uint64][2]int{}
	for i, e := range f.TraceEvents {
		k := track{e.Pid, e.Tid}
		if e.Ph == "M" {
			if e.Name == "process_name" {
				if n, _ := e.Args["name"].(string); n == "" {
					bad("event %d: process_name of pid %d has no name", i, e.Pid)
				}
				named[e.Pid] = true
			}
			continue
		}
		used[e.Pid] = true
		if e.Ts < last[k] {
			bad("event %d (%s %q): ts %.3f before %.3f on pid %d tid %d", i, e.Ph, e.Name, e.Ts, last[k], e.Pid, e.Tid)
		}
		last[k] = e.Ts
		switch e.Ph {
		case "X":
			if e.Dur == nil || *e.Dur < 0 {
				bad("event %d (%q): X without a duration", i, e.Name)
				continue
			}
			st := open[k]
			for len(st) > 0 && st[len(st)-1] <= e.Ts {
				st = st[:len(st)-1]
			}
			end := e.Ts + *e.Dur
			if len(st) > 0 && st[len(st)-1] < end-1e-3 {
				bad("event %d (%q on pid %d tid %d): [%.3f, %.3f] overlaps its enclosing slice ending at %.3f", i, e.Name, e.Pid, e.Tid, e.Ts, end, st[len(st)-1])
			}
			open[k] = append(st, end)
		case "B":
			bstack[k] = append(bstack[k], e.Name)
		case "E":
			st := bstack[k]
			if len(st) == 0 {
				bad("event %d: E without B on pid %d tid %d", i, e.Pid, e.Tid)
				continue
			}
			bstack[k] = st[:len(st)-1]
		case "b":
			if _, dup := async[e.ID]; dup {
				bad("event %d: async id %d begins twice", i, e.ID)
			}
			async[e.ID] = e.Name
		case "e":
			if _, ok := async[e.ID]; !ok {
				bad("event %d: async end of id %d without its begin", i, e.ID)
			}
			delete(async, e.ID)
		case "s", "f":
			n := flows[e.ID]
			if e.Ph == "s" {
				n[0]++
			} else {
				n[1]++
			}
			flows[e.ID] = n
		case "i", "I":
		default:
			bad("event %d: unknown phase %q", i, e.Ph)
		}
	}
	for k, st := range bstack {
		if len(st) > 0 {
			bad("pid %d tid %d: %d B events without their E (%q)", k.pid, k.tid, len(st), st[0])
		}
	}
	for id := range async {
		bad("async id %d begins and never ends", id)
	}
	for id, n := range flows {
		if n != [2]int{1, 1} {
			bad("flow %d has %d starts and %d finishes, want 1 and 1", id, n[0], n[1])
		}
	}
	for pid := range used {
		if !named[pid] {
			bad("pid %d has events but no process_name", pid)
		}
	}
	return errors.Join(errs...)
}
