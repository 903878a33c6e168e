package cluster_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// benchJSON runs decorun bench with args plus --json and returns its rows.
func benchJSON(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	p := start(t, append(append([]string{"bench"}, args...), "--json", "--timeout", "60s")...)
	if code := p.wait(90 * time.Second); code != 0 {
		t.Fatalf("decorun bench %q: exit %d; stderr:\n%s", args, code, p.errText())
	}
	var rows []map[string]any
	for _, l := range strings.Split(p.out(), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("decorun bench %q: line %q is not JSON: %v", args, l, err)
		}
		rows = append(rows, m)
	}
	return rows
}

// checkRows checks that rows are of bench, one per size in sizes (in
// order), and that each has the fields.
func checkRows(t *testing.T, rows []map[string]any, bench string, sizes []float64, fields ...string) {
	t.Helper()
	var got []map[string]any
	for _, r := range rows {
		if r["bench"] == bench {
			got = append(got, r)
		}
	}
	if len(got) != len(sizes) {
		t.Fatalf("%d %s rows; want %d: %v", len(got), bench, len(sizes), rows)
	}
	for i, r := range got {
		if sizes[i] >= 0 && r["size"] != sizes[i] {
			t.Errorf("%s row %d: size %v; want %v", bench, i, r["size"], sizes[i])
		}
		for _, f := range append([]string{"ranks", "iters"}, fields...) {
			if v, ok := r[f].(float64); !ok || v <= 0 {
				t.Errorf("%s row %v: field %q missing or not a positive number", bench, r, f)
			}
		}
	}
}

func TestBenchP2P(t *testing.T) {
	rows := benchJSON(t, "latency", "bw", "bibw", "--sizes", "0,8,1K", "--iters", "3", "--baseline", "--transport", "nats")
	for _, r := range rows {
		if r["transport"] != "nats" {
			t.Errorf("row %v: transport %v; want nats", r, r["transport"])
		}
	}
	checkRows(t, rows, "latency", []float64{0, 8, 1024}, "median_us", "p99_us", "min_us", "avg_us", "raw_median_us", "raw_p99_us", "ratio", "raw_msgs")
	checkRows(t, rows, "bw", []float64{8, 1024}, "mbps", "window", "raw_mbps", "ratio")
	checkRows(t, rows, "bibw", []float64{8, 1024}, "mbps", "raw_mbps", "ratio")
}

func TestBenchLarge(t *testing.T) {
	// Above max_payload: decorun's rendezvous path, and a split raw baseline.
	rows := benchJSON(t, "latency", "bw", "--sizes", "2M", "--iters", "1", "--warmup", "0", "--baseline")
	checkRows(t, rows, "latency", []float64{2 << 20}, "median_us", "raw_median_us")
	checkRows(t, rows, "bw", []float64{2 << 20}, "mbps", "raw_mbps")
	for _, r := range rows {
		if r["raw_msgs"] != 2.0 {
			t.Errorf("row %v: raw_msgs %v; want 2 (2 MiB in 1 MiB NATS messages)", r, r["raw_msgs"])
		}
	}
}

func TestBenchCollectives(t *testing.T) {
	rows := benchJSON(t, "-n", "3", "barrier", "bcast", "allreduce", "gather", "scatter", "alltoall", "tasks", "--sizes", "8,1K", "--iters", "2")
	checkRows(t, rows, "barrier", []float64{0}, "max_us", "avg_us", "min_us")
	for _, b := range []string{"bcast", "allreduce", "gather", "scatter", "alltoall"} {
		checkRows(t, rows, b, []float64{8, 1024}, "max_us", "avg_us", "min_us")
	}
	checkRows(t, rows, "tasks", []float64{-1}, "calls", "calls_per_s", "min_calls_per_s", "max_calls_per_s", "us_per_call", "ratio")
	for _, r := range rows {
		if r["ranks"] != 3.0 {
			t.Errorf("row %v: ranks %v; want 3", r, r["ranks"])
		}
	}
}

func TestBenchStartup(t *testing.T) {
	rows := benchJSON(t, "startup", "-n", "2", "--iters", "2", "--warmup", "0")
	if len(rows) != 1 {
		t.Fatalf("%d rows; want 1: %v", len(rows), rows)
	}
	checkRows(t, rows, "startup", []float64{-1}, "median_ms", "min_ms", "max_ms")
}

func TestBenchTable(t *testing.T) {
	p := start(t, "bench", "latency", "--sizes", "8", "--iters", "2", "--baseline")
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	out := p.out()
	for _, want := range []string{"# latency", "median", "p99", "raw median", "ratio", "\n8 "} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
