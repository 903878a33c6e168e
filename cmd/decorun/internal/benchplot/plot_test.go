package benchplot

import (
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/decorun/decorun/cmd/decorun/internal/bench"
)

// svgText returns the text of every <text> element of the SVG file, and
// fails if the file is not well-formed XML with an <svg> root.
func svgText(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	var texts []string
	depth, root, inText := 0, "", false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", path, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				root = tok.Name.Local
			}
			depth++
			inText = tok.Name.Local == "text"
			if inText {
				texts = append(texts, "")
			}
		case xml.EndElement:
			depth--
			inText = false
		case xml.CharData:
			if inText {
				texts[len(texts)-1] += string(tok)
			}
		}
	}
	if root != "svg" || depth != 0 {
		t.Fatalf("%s: root element %q, depth %d at the end; want a closed <svg>", path, root, depth)
	}
	return texts
}

func run(t *testing.T) Series {
	t.Helper()
	s, err := ReadRef("decorun auto=testdata/decorun-n2.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ompi(t *testing.T) Series {
	t.Helper()
	s, err := ReadRef("Open MPI=testdata/osu_like-n2.txt")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWriteSVG(t *testing.T) {
	cur := run(t)
	size := 8
	cur.Results = append(cur.Results, bench.Result{Bench: bench.Latency, Ranks: 2, Size: &size, MedianUS: 10, RawMedianUS: 20})
	path := filepath.Join(t.TempDir(), "perf.svg")
	if err := Write(path, []Series{cur, ompi(t)}); err != nil {
		t.Fatal(err)
	}
	texts := svgText(t, path)
	all := "\n" + strings.Join(texts, "\n") + "\n"
	for _, want := range []string{
		"latency: ping-pong, one-way, median", "bw: window of 64 messages, then an ack",
		"allreduce: time per op, mean over ranks", "gather: time per op, mean over ranks",
		"message size (bytes)", "µs", "MB/s (10^6 B/s)",
		"decorun auto", "Open MPI", "decorun auto, 2 ranks", "Open MPI, 2 ranks", "decorun auto: raw nats.go",
		"0", "64K", "1M",
	} {
		if !strings.Contains(all, "\n"+want+"\n") {
			t.Errorf("no text %q in the SVG; texts: %q", want, texts)
		}
	}
	// Only what this run measured is drawn: Open MPI's bcast and scatter are not.
	for _, not := range []string{"bcast: time per op, mean over ranks", "scatter: time per op, mean over ranks", "bibw: both ranks send a window at once"} {
		if strings.Contains(all, "\n"+not+"\n") {
			t.Errorf("text %q in the SVG, for a benchmark this run did not measure", not)
		}
	}
}

func TestWritePNG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "perf.PNG")
	if err := Write(path, []Series{run(t), ompi(t)}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s does not decode as PNG: %v", path, err)
	}
	// latency, bw, allreduce, gather: 2 by 2 panels of 6 by 4 inches at 96 dpi.
	if b := img.Bounds(); b.Dx() != 2*6*DPI || b.Dy() != 2*4*DPI {
		t.Errorf("PNG is %dx%d pixels; want %dx%d", b.Dx(), b.Dy(), 2*6*DPI, 2*4*DPI)
	}
	// One panel alone is one panel wide.
	one := Series{Name: "one", Results: []bench.Result{find(t, run(t).Results, bench.Latency, 8)}}
	if err := Write(path, []Series{one}); err != nil {
		t.Fatal(err)
	}
	f2, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	cfg, err := png.DecodeConfig(f2)
	if err != nil || cfg.Width != 6*DPI || cfg.Height != 4*DPI {
		t.Errorf("one panel: %dx%d, %v; want %dx%d", cfg.Width, cfg.Height, err, 6*DPI, 4*DPI)
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "p.jpg"), `unknown extension ".jpg" (want .svg or .png)`},
		{filepath.Join(dir, "p"), "has no extension (want .svg or .png)"},
	} {
		if err := Write(tc.path, []Series{run(t)}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Write(%s): %v; want %q", tc.path, err, tc.want)
		}
		if _, err := os.Stat(tc.path); err == nil {
			t.Errorf("Write(%s) created the file", tc.path)
		}
	}
	startup := Series{Name: "s", Results: []bench.Result{{Bench: bench.StartupB, Ranks: 2, MedianMS: 100}}}
	if err := Write(filepath.Join(dir, "p.svg"), []Series{startup}); err == nil || !strings.Contains(err.Error(), "nothing to plot: no results of latency, bw") {
		t.Errorf("startup only: %v; want nothing to plot", err)
	}
	if err := Write(filepath.Join(dir, "no", "such", "dir.svg"), []Series{run(t)}); err == nil || !strings.Contains(err.Error(), "dir.svg") {
		t.Errorf("unwritable path: %v; want an error naming the file", err)
	}
}
