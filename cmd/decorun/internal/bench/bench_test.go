package bench

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want Summary
	}{
		{nil, Summary{}},
		{[]float64{5}, Summary{N: 1, Min: 5, Median: 5, P99: 5, Max: 5, Avg: 5}},
		{[]float64{4, 1, 3, 2}, Summary{N: 4, Min: 1, Median: 2.5, P99: 4, Max: 4, Avg: 2.5}},
		{[]float64{3, 1, 2}, Summary{N: 3, Min: 1, Median: 2, P99: 3, Max: 3, Avg: 2}},
	} {
		if got := Summarize(tc.xs); got != tc.want {
			t.Errorf("Summarize(%v) = %+v; want %+v", tc.xs, got, tc.want)
		}
	}
	xs := []float64{3, 1, 2}
	Summarize(xs)
	if !slices.Equal(xs, []float64{3, 1, 2}) {
		t.Errorf("Summarize changed its argument: %v", xs)
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	thousand := make([]float64, 1000)
	for i := range thousand {
		thousand[i] = float64(i + 1)
		if i < 100 {
			hundred[i] = float64(i + 1)
		}
	}
	for _, tc := range []struct {
		xs   []float64
		p    float64
		want float64
	}{
		{hundred, 99, 99},
		{hundred, 50, 50},
		{hundred, 100, 100},
		{hundred, 0.1, 1},
		{thousand, 99, 990},
		{[]float64{1, 2}, 99, 2},
		{[]float64{7}, 99, 7},
	} {
		if got := Percentile(tc.xs, tc.p); got != tc.want {
			t.Errorf("Percentile(%d samples, %v) = %v; want %v", len(tc.xs), tc.p, got, tc.want)
		}
	}
}

func TestPowersOfTwo(t *testing.T) {
	for _, tc := range []struct {
		lo, hi int
		want   []int
	}{
		{0, 4, []int{0, 1, 2, 4}},
		{1, 1, []int{1}},
		{3, 20, []int{4, 8, 16}},
		{8, 1 << 20, []int{8, 16, 32, 64, 128, 256, 512, 1 << 10, 2 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20}},
		{5, 7, nil},
		{0, 0, []int{0}},
	} {
		if got := PowersOfTwo(tc.lo, tc.hi); !slices.Equal(got, tc.want) {
			t.Errorf("PowersOfTwo(%d, %d) = %v; want %v", tc.lo, tc.hi, got, tc.want)
		}
	}
	if got := len(PowersOfTwo(0, P2PMax)); got != 24 {
		t.Errorf("the default point-to-point sweep has %d sizes; want 24 (0 B and 1 B to 4 MiB)", got)
	}
}

func TestParseSizes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  string
	}{
		{"8", []int{8}, ""},
		{"0,8,64K,1M", []int{0, 8, 64 << 10, 1 << 20}, ""},
		{"1MiB,4mb,2k", []int{2 << 10, 1 << 20, 4 << 20}, ""},
		{"0:8", []int{0, 1, 2, 4, 8}, ""},
		{"1K:4K,8,8", []int{8, 1 << 10, 2 << 10, 4 << 10}, ""},
		{"", nil, "bad size"},
		{"x", nil, "bad size"},
		{"-1", nil, "bad size"},
		{"8:4", nil, "8 > 4"},
		{"1G", nil, "above the limit"},
	} {
		got, err := ParseSizes(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSizes(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseSizes(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	got, err := Parse([]string{"bw", "latency,bw"})
	if err != nil || !slices.Equal(got, []string{BW, Latency}) {
		t.Errorf("Parse(bw latency,bw) = %v, %v", got, err)
	}
	got, err = Parse([]string{"latency", "all"})
	if err != nil || len(got) != len(Names) || got[0] != Latency {
		t.Errorf("Parse(latency all) = %v, %v; want every benchmark once", got, err)
	}
	if _, err := Parse(nil); err == nil {
		t.Error("Parse(nil): no error")
	}
	if _, err := Parse([]string{"pingpong"}); err == nil || !strings.Contains(err.Error(), `"pingpong"`) {
		t.Errorf("Parse(pingpong) error = %v", err)
	}
}

func TestSweep(t *testing.T) {
	var def Config
	for _, tc := range []struct {
		cfg   Config
		bench string
		first int
		last  int
		n     int
	}{
		{def, Latency, 0, 4 << 20, 24},
		{def, BW, 1, 4 << 20, 23},
		{def, Bcast, 8, 1 << 20, 18},
		{def, Barrier, 0, 0, 1},
		{Config{Sizes: []int{0, 4, 8, 16}}, BW, 4, 16, 3},
		{Config{Sizes: []int{0, 4, 8, 16}}, Allreduce, 8, 16, 2},
		{Config{Sizes: []int{0, 4, 8, 16}}, Latency, 0, 16, 4},
	} {
		s := tc.cfg.sizes(tc.bench)
		if len(s) != tc.n || s[0] != tc.first || s[len(s)-1] != tc.last {
			t.Errorf("sizes(%s) with %v = %v; want %d sizes from %d to %d", tc.bench, tc.cfg.Sizes, s, tc.n, tc.first, tc.last)
		}
	}
}

func TestIterations(t *testing.T) {
	zero := 0
	for _, tc := range []struct {
		cfg         Config
		bench       string
		n           int
		warm, iters int
	}{
		{Config{}, Latency, 8192, 100, 1000},
		{Config{}, Latency, 8193, 10, 100},
		{Config{}, BW, 8, 10, 100},
		{Config{}, BiBW, 1 << 20, 2, 20},
		{Config{}, Allreduce, 8, 100, 1000},
		{Config{}, Gather, 1 << 20, 10, 100},
		{Config{}, StartupB, 0, 1, 10},
		{Config{Iters: 50}, Latency, 8, 5, 50},
		{Config{Iters: 5}, BW, 1 << 20, 0, 5},
		{Config{Iters: 50, Warmup: &zero}, Latency, 8, 0, 50},
		{Config{Warmup: &zero}, Latency, 8, 0, 1000},
	} {
		w, i := tc.cfg.Iterations(tc.bench, tc.n)
		if w != tc.warm || i != tc.iters {
			t.Errorf("Iterations(%s, %d) with iters %d = %d, %d; want %d, %d", tc.bench, tc.n, tc.cfg.Iters, w, i, tc.warm, tc.iters)
		}
	}
}

func TestBatch(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{0, Window}, {1 << 10, Window}, {256 << 10, Window}, {1 << 20, 16}, {4 << 20, 4}, {64 << 20, 1}} {
		if got := batch(tc.n); got != tc.want {
			t.Errorf("batch(%d) = %d; want %d", tc.n, got, tc.want)
		}
	}
}

func TestPrinter(t *testing.T) {
	var b bytes.Buffer
	p := &Printer{W: &b, JSON: true}
	p.Print(Result{Bench: Latency, Ranks: 2, Size: ptr(0), Iters: 10, MedianUS: 1.5, P99US: 2, MinUS: 1, AvgUS: 1.6})
	p.Print(Result{Bench: Tasks, Ranks: 2, Unavailable: "no deco"})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("JSON output has %d lines; want 2:\n%s", len(lines), b.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	if m["size"] != 0.0 || m["median_us"] != 1.5 || m["bench"] != "latency" {
		t.Errorf("latency row = %v", m)
	}
	if _, ok := m["mbps"]; ok {
		t.Errorf("latency row has a bandwidth field: %v", m)
	}

	b.Reset()
	p = &Printer{W: &b, Baseline: true}
	p.Print(Result{Bench: Latency, Ranks: 2, Size: ptr(8), Iters: 10, MedianUS: 100, RawMedianUS: 90, Ratio: 100.0 / 90, RawMsgs: 1})
	p.Print(Result{Bench: Latency, Ranks: 2, Size: ptr(4 << 20), Iters: 10, MedianUS: 100, RawMedianUS: 90, Ratio: 1.11, RawMsgs: 4})
	p.Print(Result{Bench: BW, Ranks: 2, Size: ptr(64 << 10), Window: 64, Iters: 10, MBps: 400, RawMBps: 500, Ratio: 0.8})
	p.Print(Result{Bench: Tasks, Ranks: 3, Iters: 10, Calls: TaskCalls, CallsPerSec: 250000, MinCallsPerSec: 200000, MaxCallsPerSec: 300000, USPerCall: 4, Ratio: 9.82})
	p.Print(Result{Bench: Alltoall, Ranks: 2, Unavailable: "not built"})
	out := b.String()
	for _, want := range []string{"# latency", "raw median", "8 ", "1.11", "4M", "(x4)", "# bw", "64K", "0.80",
		"# tasks", "calls/s", "250000", "9.82", "not available yet: not built"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "# latency") != 1 {
		t.Errorf("latency header printed more than once:\n%s", out)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int]string{0: "0", 8: "8", 1000: "1000", 1024: "1K", 1536: "1536", 64 << 10: "64K", 4 << 20: "4M"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q; want %q", n, got, want)
		}
		if n > 0 {
			if back, err := ParseSizes(FormatSize(n)); err != nil || back[0] != n {
				t.Errorf("ParseSizes(FormatSize(%d)) = %v, %v", n, back, err)
			}
		}
	}
}
