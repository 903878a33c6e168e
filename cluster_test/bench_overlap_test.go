package cluster_test

import (
	"strings"
	"testing"
	"time"
)

// TestBenchIallreduce runs decorun bench iallreduce (OSU's overlap
// measurement) and checks its rows: the three times, and an overlap
// percentage within 0..100; and that the table names its columns.
func TestBenchIallreduce(t *testing.T) {
	rows := benchJSON(t, "-n", "3", "iallreduce", "--sizes", "8,64K", "--iters", "3")
	checkRows(t, rows, "iallreduce", []float64{8, 64 << 10}, "pure_us", "compute_us", "total_us")
	for _, r := range rows {
		ov, ok := r["overlap_pct"].(float64)
		if !ok || ov < 0 || ov > 100 {
			t.Errorf("row %v: overlap_pct %v; want a number in 0..100", r, r["overlap_pct"])
		}
		if r["ranks"] != 3.0 {
			t.Errorf("row %v: ranks %v; want 3", r, r["ranks"])
		}
	}
	p := start(t, "bench", "iallreduce", "--sizes", "8", "--iters", "2")
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.errText())
	}
	out := p.out()
	for _, want := range []string{"# iallreduce overlap", "pure", "compute", "total", "overlap%", "\n8 "} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
