package benchplot

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/decorun/decorun/cmd/decorun/internal/bench"
)

// Series is one line per benchmark in the plots: a name for the legend and
// the results it draws.
type Series struct {
	Name    string
	Results []bench.Result
}

// ErrNoData is returned for a reference file that holds no measurement.
var ErrNoData = errors.New("no measurements")

// ReadRef reads a reference series from a file named by arg, which is FILE
// or LABEL=FILE; the legend shows LABEL, or FILE's base name without its
// extension. The file is either the text output of osu_like (its latency,
// bw, coll and iallreduce modes, alone or concatenated) or the output of
// decorun bench --json; see [ParseRef].
func ReadRef(arg string) (Series, error) {
	label, path, ok := strings.Cut(arg, "=")
	if _, err := os.Stat(arg); err == nil || !ok || label == "" || path == "" {
		label, path = "", arg // a file whose name has a "=" in it
	}
	if label == "" {
		label = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	f, err := os.Open(path)
	if err != nil {
		return Series{}, err // a *PathError, which names the file
	}
	defer f.Close()
	res, err := ParseRef(path, f)
	if err != nil {
		return Series{}, err
	}
	return Series{Name: label, Results: res}, nil
}

// ParseRef reads measurements from r, a file called name (for errors).
// Blank lines and lines starting with # are skipped. The other lines are
// all of one format: either osu_like's
//
//	latency size=8 iters=1000 median_us=0.42 avg_us=0.43 min_us=0.33 p99_us=0.73
//	bw size=1024 window=64 iters=100 MBps=947.5
//	coll op=Allreduce n=2 size=8 iters=1000 max_us=0.74 avg_us=0.70 min_us=0.66 b2b_max_us=0.64
//	iallreduce n=2 size=8 iters=1000 pure_us=5.94 compute_us=34.58 total_us=36.45 overlap_pct=68.5
//
// or decorun bench --json's, one JSON object per line. osu_like's records
// become [bench.Result]s with the same meaning: a coll line's op, in lower
// case, is the benchmark name, and latency and bw lines are between two
// ranks. An error names the file and line.
func ParseRef(name string, r io.Reader) ([]bench.Result, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []bench.Result
	format := ""
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		f := "osu_like"
		if text[0] == '{' {
			f = "decorun bench --json"
		}
		if format == "" {
			format = f
		} else if f != format {
			return nil, fmt.Errorf("%s:%d: a %s line in a file of %s lines", name, line, f, format)
		}
		var res bench.Result
		var err error
		if text[0] == '{' {
			res, err = parseJSON(text)
		} else {
			res, err = parseOSU(text)
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w (want osu_like output or decorun bench --json lines)", name, ErrNoData)
	}
	return out, nil
}

func parseJSON(text string) (bench.Result, error) {
	var r bench.Result
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		return r, fmt.Errorf("not a decorun bench --json line: %w", err)
	}
	if r.Bench == "" {
		return r, errors.New(`decorun bench --json line without "bench"`)
	}
	return r, nil
}

// osuKeys lists, per osu_like record, the keys it must have.
var osuKeys = map[string][]string{
	"latency":    {"size", "iters", "median_us", "avg_us", "min_us", "p99_us"},
	"bw":         {"size", "window", "iters", "MBps"},
	"coll":       {"op", "n", "size", "iters", "max_us", "avg_us", "min_us"},
	"iallreduce": {"n", "size", "iters", "pure_us", "compute_us", "total_us", "overlap_pct"},
}

func parseOSU(text string) (bench.Result, error) {
	fields := strings.Fields(text)
	kind := fields[0]
	keys, ok := osuKeys[kind]
	if !ok {
		return bench.Result{}, fmt.Errorf("unknown line %q (want osu_like's latency, bw, coll or iallreduce lines, or decorun bench --json lines)", abbrev(text))
	}
	kv := map[string]string{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return bench.Result{}, fmt.Errorf("%s line: %q is not key=value", kind, f)
		}
		kv[k] = v
	}
	num := map[string]float64{}
	for _, k := range keys {
		v, ok := kv[k]
		if !ok {
			return bench.Result{}, fmt.Errorf("%s line has no %s", kind, k)
		}
		if k == "op" {
			continue
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || x < 0 {
			return bench.Result{}, fmt.Errorf("%s line: %s=%q is not a number >= 0", kind, k, v)
		}
		num[k] = x
	}
	size := int(num["size"])
	r := bench.Result{Bench: kind, Ranks: int(num["n"]), Size: &size, Iters: int(num["iters"])}
	switch kind {
	case "latency":
		r.Bench, r.Ranks = bench.Latency, 2
		r.MedianUS, r.AvgUS, r.MinUS, r.P99US = num["median_us"], num["avg_us"], num["min_us"], num["p99_us"]
	case "bw":
		r.Bench, r.Ranks, r.Window, r.MBps = bench.BW, 2, int(num["window"]), num["MBps"]
	case "coll":
		r.Bench = strings.ToLower(kv["op"])
		if r.Bench == "" {
			return bench.Result{}, errors.New("coll line: op is empty")
		}
		r.MaxUS, r.AvgUS, r.MinUS = num["max_us"], num["avg_us"], num["min_us"]
	case "iallreduce":
		ov := num["overlap_pct"]
		r.Bench, r.PureUS, r.ComputeUS, r.TotalUS, r.OverlapPct = bench.Iallreduce, num["pure_us"], num["compute_us"], num["total_us"], &ov
	}
	return r, nil
}

func abbrev(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
