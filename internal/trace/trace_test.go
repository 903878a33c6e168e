package trace

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// TestRecordMergeValidate records events on many goroutines at once, ships
// them through the chunked collector, and checks the merged trace.
func TestRecordMergeValidate(t *testing.T) {
	reset()
	defer reset()
	if !Start(1000, true) {
		t.Fatal("Start = false on a fresh process")
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				t0 := Now()
				Record(Event{Kind: KindSend, Peer: int32(g % 2), Tag: 1, Start: t0, End: Now(), Bytes: int64(i), ID: uint64(g*1000 + i + 1), Name: "Send"})
			}
		})
	}
	wg.Wait()
	evs, sites, dropped := Snapshot()
	if len(evs) != 800 || dropped != 0 {
		t.Fatalf("Snapshot: %d events, %d dropped; want 800, 0", len(evs), dropped)
	}
	if len(sites) < 2 || !strings.Contains(sites[1], "trace_test.go:") {
		t.Errorf("sites = %q; want this file's line", sites)
	}
	// Rank 0 sent; rank 1 "received" every message sent to it.
	d0 := Take(0, 2, "h0", 0, 0, "close")
	var recv []Event
	for _, ev := range d0.Events {
		if ev.Peer == 1 {
			recv = append(recv, Event{Kind: KindRecv, Peer: 0, Start: ev.Start + 10, End: ev.End + 20, ID: ev.ID, Name: "Recv"})
		}
	}
	d1 := &Dump{Rank: 1, Size: 2, Host: "h1", Epoch: d0.Epoch, Offset: 5, RTT: 100, Events: recv, Reason: "close"}
	c := NewCollector(2)
	for _, d := range []*Dump{d0, d1} {
		enc, err := d.Encode()
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range Chunks(d.Rank, enc, 1000) {
			if err := c.Add(ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	ds, missing, errs := c.Dumps()
	if len(ds) != 2 || len(missing) != 0 || len(errs) != 0 {
		t.Fatalf("Dumps: %d dumps, missing %v, errors %v", len(ds), missing, errs)
	}
	f := Merge(ds, 2, nil)
	if err := Validate(f); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	flows := 0
	for _, e := range f.TraceEvents {
		if e.Ph == "s" {
			flows++
		}
	}
	if flows != len(recv) {
		t.Errorf("%d flows; want %d (one per received message)", flows, len(recv))
	}
	page, err := HTML(f, "test <trace>")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte("test &lt;trace&gt;")) || bytes.Contains(page, []byte(dataMark)) {
		t.Errorf("HTML page lacks the escaped title or still has the data mark")
	}
	r := Summarize(ds, 2, nil)
	if r.Ranks[0].Sends != 800 || r.Ranks[1].Recvs != len(recv) {
		t.Errorf("report: rank 0 sends %d, rank 1 recvs %d; want 800, %d", r.Ranks[0].Sends, r.Ranks[1].Recvs, len(recv))
	}
}

// TestValidateCatches checks that Validate finds what viewers choke on.
func TestValidateCatches(t *testing.T) {
	d := func(v float64) *float64 { return &v }
	f := &File{TraceEvents: []JSONEvent{
		{Name: "process_name", Ph: "M", Pid: 0, Args: map[string]any{"name": "rank 0"}},
		{Name: "a", Ph: "X", Pid: 0, Tid: 1, Ts: 10, Dur: d(10)},
		{Name: "b", Ph: "X", Pid: 0, Tid: 1, Ts: 15, Dur: d(10)}, // overlaps a without nesting
		{Name: "c", Ph: "X", Pid: 0, Tid: 2, Ts: 5, Dur: d(1)},
		{Name: "d", Ph: "X", Pid: 0, Tid: 2, Ts: 4, Dur: d(1)}, // goes back in time
		{Name: "B", Ph: "B", Pid: 0, Tid: 3, Ts: 1},            // no E
		{Name: "m", Ph: "s", Pid: 0, Tid: 1, Ts: 11, ID: 7},    // no f
		{Name: "x", Ph: "X", Pid: 1, Tid: 1, Ts: 1, Dur: d(1)}, // pid 1 unnamed
	}}
	err := Validate(f)
	if err == nil {
		t.Fatal("Validate = nil; want errors")
	}
	for _, want := range []string{"overlaps", "before", "B events without their E", "flow 7", "pid 1 has events but no process_name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
}

// TestDroppedWhenFull checks that a full buffer counts what it drops.
func TestDroppedWhenFull(t *testing.T) {
	reset()
	defer reset()
	Start(10, false)
	for range 25 {
		Record(Event{Kind: KindCall, Name: "Probe"})
	}
	evs, _, dropped := Snapshot()
	if len(evs) != 10 || dropped != 15 {
		t.Errorf("%d events, %d dropped; want 10, 15", len(evs), dropped)
	}
}

// BenchmarkRecord is the cost of one event with tracing on: two clock
// reads and the record (sites off), as a comm hook pays it.
func BenchmarkRecord(b *testing.B) {
	reset()
	defer reset()
	Start(b.N+1, false)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := Now()
		Record(Event{Kind: KindSend, Peer: 1, Tag: 2, Start: t0, End: Now(), Bytes: 8, ID: 1, Name: "Send"})
	}
}

// BenchmarkRecordSites is BenchmarkRecord with call sites (--report).
func BenchmarkRecordSites(b *testing.B) {
	reset()
	defer reset()
	Start(b.N+1, true)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := Now()
		Record(Event{Kind: KindSend, Peer: 1, Tag: 2, Start: t0, End: Now(), Bytes: 8, ID: 1, Name: "Send"})
	}
}

// BenchmarkOff is a hook with tracing off.
func BenchmarkOff(b *testing.B) {
	reset()
	b.ReportAllocs()
	for range b.N {
		if On() {
			Record(Event{Kind: KindSend, Start: Now()})
		}
	}
}
