package main

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/decorun/decorun/cmd/decorun/internal/bench"
)

func TestBenchArgs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"latency --json", "--json -- latency"},
		{"--json latency", "--json -- latency"},
		{"latency -n 4 bw --sizes 8,1K --baseline", "-n 4 --sizes 8,1K --baseline -- latency bw"},
		{"latency --iters=5", "--iters=5 -- latency"},
		{"--help", "--help --"},
		{"all -- -x", "-- all -x"},
	} {
		got := benchArgs(strings.Fields(tc.in))
		want := append([]string{"decorun bench"}, strings.Fields(tc.want)...)
		if !slices.Equal(got, want) {
			t.Errorf("benchArgs(%q) = %q; want %q", tc.in, got, want)
		}
	}
}

func TestBenchUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"bench"}, "no benchmark named"},
		{[]string{"bench", "pingpong"}, `unknown benchmark "pingpong"`},
		{[]string{"bench", "latency", "-n", "1"}, "need -n 2 or more"},
		{[]string{"bench", "latency", "--sizes", "1x"}, "--sizes: bad size"},
		{[]string{"bench", "latency", "--bogus"}, "flag provided but not defined"},
	} {
		code, _, stderr := exitCode(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("decorun %q: code %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.stderr)
		}
	}
	code, out, _ := exitCode(t, "bench", "--help")
	if code != 0 || !strings.Contains(out, "--baseline") || !strings.Contains(out, "startup") {
		t.Errorf("decorun bench --help: code %d, output %q", code, out)
	}
}

// TestBenchPlotUsage checks that bad --plot and --plot-ref arguments are
// refused before anything runs, naming the flag, the file and its line.
func TestBenchPlotUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("# osu_like\nlatency size=8 iters=10 median_us=1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.txt")
	plot := filepath.Join(dir, "p.svg")
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"bench", "latency", "--plot", filepath.Join(dir, "p.jpg")}, `--plot "` + dir + `/p.jpg": unknown extension ".jpg" (want .svg or .png)`},
		{[]string{"bench", "latency", "--plot", filepath.Join(dir, "p")}, "has no extension (want .svg or .png)"},
		{[]string{"bench", "latency", "--plot", filepath.Join(missing, "p.svg")}, "no directory " + missing + " to write it in"},
		{[]string{"bench", "latency", "--plot-ref", bad}, "--plot-ref needs --plot FILE"},
		{[]string{"bench", "startup", "barrier", "--plot", plot}, "--plot: nothing to draw for startup, barrier"},
		{[]string{"bench", "latency", "--plot", plot, "--plot-ref", bad}, "--plot-ref: " + bad + ":2: latency line has no avg_us"},
		{[]string{"bench", "latency", "--plot", plot, "--plot-ref", "MPI=" + missing}, "--plot-ref: open " + missing + ": no such file or directory"},
	} {
		code, _, stderr := exitCode(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("decorun %q: code %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.stderr)
		}
	}
	if _, err := os.Stat(plot); err == nil {
		t.Errorf("%s written by a refused command", plot)
	}
}

// TestResultTap checks that the tap keeps the JSON result lines however
// they are cut into writes, prints them as asked, and passes other lines
// through, an unfinished last one at flush.
func TestResultTap(t *testing.T) {
	var out strings.Builder
	tap := &resultTap{out: &out, p: &bench.Printer{W: &out, JSON: true}}
	in := `{"bench":"latency","ranks":2,"size":8,"iters":3,"median_us":1.5}` + "\nnot a result\n" +
		`{"bench":"bw","ranks":2,"size":8,"mbps":2}` + "\n{not json}\nlast"
	for i := 0; i < len(in); i += 7 {
		if _, err := tap.Write([]byte(in[i:min(i+7, len(in))])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tap.flush(); err != nil {
		t.Fatal(err)
	}
	if len(tap.results) != 2 || tap.results[0].Bench != "latency" || tap.results[0].MedianUS != 1.5 || tap.results[1].MBps != 2 {
		t.Errorf("results %+v; want latency (median 1.5) and bw (2 MB/s)", tap.results)
	}
	want := `{"bench":"latency","ranks":2,"size":8,"iters":3,"median_us":1.5}` + "\nnot a result\n" +
		`{"bench":"bw","ranks":2,"size":8,"mbps":2}` + "\n{not json}\nlast\n"
	if out.String() != want {
		t.Errorf("output %q; want %q", out.String(), want)
	}
}

// TestBenchPlotRefsOnly draws two saved results without running anything:
// a decorun --json run and Open MPI's osu_like output.
func TestBenchPlotRefsOnly(t *testing.T) {
	plot := filepath.Join(t.TempDir(), "cmp.svg")
	code, out, stderr := exitCode(t, "bench", "--plot", plot,
		"--plot-ref", "then=internal/benchplot/testdata/decorun-n2.json", "--plot-ref", "Open MPI=internal/benchplot/testdata/osu_like-n2.txt")
	if code != 0 || out != "" {
		t.Fatalf("code %d, stdout %q, stderr %q; want 0 and no output", code, out, stderr)
	}
	f, err := os.Open(plot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var texts []string
	d := xml.NewDecoder(f)
	inText := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", plot, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			inText = tok.Name.Local == "text"
		case xml.EndElement:
			inText = false
		case xml.CharData:
			if inText {
				texts = append(texts, string(tok))
			}
		}
	}
	// The first reference chooses the panels: latency, bw, allreduce and
	// gather, not Open MPI's bcast and scatter.
	for _, want := range []string{"then", "Open MPI", "then, 2 ranks", "Open MPI, 2 ranks", "latency: ping-pong, one-way, median",
		"allreduce: time per op, mean over ranks", "gather: time per op, mean over ranks"} {
		if !slices.Contains(texts, want) {
			t.Errorf("no text %q in the SVG: %q", want, texts)
		}
	}
	if slices.Contains(texts, "bcast: time per op, mean over ranks") {
		t.Errorf("a bcast panel, which the first reference does not have: %q", texts)
	}
}
