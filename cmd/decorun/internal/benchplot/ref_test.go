package benchplot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/decorun/decorun/cmd/decorun/internal/bench"
)

// find returns the result of benchmark b at size n (and ranks, when not 0).
func find(t *testing.T, rs []bench.Result, b string, n int) bench.Result {
	t.Helper()
	for _, r := range rs {
		if r.Bench == b && r.Size != nil && *r.Size == n {
			return r
		}
	}
	t.Fatalf("no %s result at size %d in %d results", b, n, len(rs))
	return bench.Result{}
}

// TestParseRefOSULike reads the output of a real run of osu_like under Open
// MPI 4.1 (mpirun -n 2 ./osu_like latency, bw, coll, iallreduce,
// concatenated).
func TestParseRefOSULike(t *testing.T) {
	s, err := ReadRef("testdata/osu_like-n2.txt")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "osu_like-n2" {
		t.Errorf("name %q; want the file's base name osu_like-n2", s.Name)
	}
	count := map[string]int{}
	for _, r := range s.Results {
		count[r.Bench]++
	}
	want := map[string]int{"latency": 8, "bw": 4, "barrier": 1, "bcast": 3, "allreduce": 3, "gather": 3, "scatter": 3, "iallreduce": 3}
	for b, n := range want {
		if count[b] != n {
			t.Errorf("%d %s results; want %d (all: %v)", count[b], b, n, count)
		}
	}
	if len(count) != len(want) {
		t.Errorf("benchmarks %v; want %v", count, want)
	}
	lat := find(t, s.Results, bench.Latency, 8)
	if lat.MedianUS != 0.42 || lat.AvgUS != 34.21 || lat.MinUS != 0.33 || lat.P99US != 0.73 || lat.Iters != 1000 || lat.Ranks != 2 {
		t.Errorf("latency 8: %+v; want median 0.42, avg 34.21, min 0.33, p99 0.73, 1000 iters, 2 ranks", lat)
	}
	bw := find(t, s.Results, bench.BW, 1<<20)
	if bw.MBps != 2024.0 || bw.Window != 64 || bw.Iters != 20 {
		t.Errorf("bw 1M: %+v; want 2024.0 MB/s, window 64, 20 iters", bw)
	}
	ar := find(t, s.Results, bench.Allreduce, 65536)
	if ar.MaxUS != 205.30 || ar.AvgUS != 175.25 || ar.MinUS != 145.20 || ar.Ranks != 2 || ar.Iters != 200 {
		t.Errorf("allreduce 64K: %+v; want max 205.30, avg 175.25, min 145.20, 2 ranks, 200 iters", ar)
	}
	ia := find(t, s.Results, bench.Iallreduce, 8)
	if ia.PureUS != 5.94 || ia.TotalUS != 36.45 || ia.OverlapPct == nil || *ia.OverlapPct != 68.5 {
		t.Errorf("iallreduce 8: %+v; want pure 5.94, total 36.45, overlap 68.5", ia)
	}
	if b := find(t, s.Results, bench.Barrier, 0); b.AvgUS != 0.53 {
		t.Errorf("barrier: %+v; want avg 0.53", b)
	}
}

// TestParseRefDecorunJSON reads the output of a real decorun bench --json
// run, and takes a label before "=".
func TestParseRefDecorunJSON(t *testing.T) {
	s, err := ReadRef("before=testdata/decorun-n2.json")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "before" {
		t.Errorf("name %q; want before", s.Name)
	}
	if len(s.Results) != 15 {
		t.Errorf("%d results; want 15", len(s.Results))
	}
	if r := find(t, s.Results, bench.BW, 65536); r.MBps != 2010.7230791651648 || r.Transport != "auto" {
		t.Errorf("bw 64K: %+v; want 2010.72... MB/s over auto", r)
	}
	if r := s.Results[len(s.Results)-1]; r.Bench != bench.StartupB || r.MedianMS != 262.056513 {
		t.Errorf("last: %+v; want startup, median 262.056513 ms", r)
	}
}

func TestParseRefErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"junk", "# header\nhello world\n", `junk:2: unknown line "hello world"`},
		{"missing", "latency size=8 iters=10 median_us=1 avg_us=1 min_us=1\n", "missing:1: latency line has no p99_us"},
		{"nan", "\nbw size=8 window=64 iters=x MBps=1\n", `nan:2: bw line: iters="x" is not a number`},
		{"kv", "coll op=Bcast n=2 size=8 iters=1 max_us=1 avg_us=1 min_us=1 oops\n", `kv:1: coll line: "oops" is not key=value`},
		{"mixed", "bw size=8 window=64 iters=1 MBps=1\n{\"bench\":\"bw\"}\n", "mixed:2: a decorun bench --json line in a file of osu_like lines"},
		{"json", "{\"bench\":\"bw\",\"size\":\"big\"}\n", "json:1: not a decorun bench --json line"},
		{"nobench", "{\"ranks\":2}\n", `nobench:1: decorun bench --json line without "bench"`},
		{"empty", "# only a header\n\n", "empty: no measurements"},
	} {
		_, err := ParseRef(tc.name, strings.NewReader(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v; want %q", tc.name, err, tc.want)
		}
	}
	_, err := ParseRef("empty", strings.NewReader(""))
	if !errors.Is(err, ErrNoData) {
		t.Errorf("empty file: %v; want ErrNoData", err)
	}
	missing := filepath.Join(t.TempDir(), "nope.txt")
	if _, err := ReadRef(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v; want a not-exist error naming %s", err, missing)
	}
}
