package cluster_test

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// osuLike is the output of a real osu_like run under Open MPI (-n 2:
// latency, bw, coll and iallreduce modes).
const osuLike = "../cmd/decorun/internal/benchplot/testdata/osu_like-n2.txt"

// svgTexts returns the text of the <text> elements of an SVG file, and
// fails unless the file is well-formed XML under an <svg> root.
func svgTexts(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	var b strings.Builder
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
			if inText = tok.Name.Local == "text"; inText {
				b.WriteString("\n")
			}
		case xml.EndElement:
			depth--
			inText = false
		case xml.CharData:
			if inText {
				b.Write(tok)
			}
		}
	}
	if root != "svg" || depth != 0 {
		t.Fatalf("%s: root %q, depth %d at the end; want a closed <svg>", path, root, depth)
	}
	return b.String() + "\n"
}

// TestBenchPlot runs decorun bench twice with --plot: a PNG and JSON lines,
// then an SVG and a table with the first run and Open MPI's figures as
// references.
func TestBenchPlot(t *testing.T) {
	dir := t.TempDir()
	ref, err := filepath.Abs(osuLike)
	if err != nil {
		t.Fatal(err)
	}
	pngPath, svgPath, before := filepath.Join(dir, "perf.png"), filepath.Join(dir, "perf.svg"), filepath.Join(dir, "before.json")
	args := []string{"bench", "latency", "bw", "barrier", "allreduce", "gather", "--sizes", "0,8,1K", "--iters", "3", "--timeout", "60s"}

	p := start(t, append(args, "--json", "--plot", pngPath)...)
	if code := p.wait(90 * time.Second); code != 0 {
		t.Fatalf("decorun %q: exit %d; stderr:\n%s", args, code, p.errText())
	}
	var rows int
	for _, l := range strings.Split(strings.TrimSpace(p.out()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("--json --plot: line %q is not JSON: %v", l, err)
		}
		rows++
	}
	if rows != 3+2+1+2+3 { // latency 0, 8, 1K; bw 8, 1K; barrier; allreduce 8, 1K; gather 0, 8, 1K
		t.Errorf("--json --plot: %d lines; want 11:\n%s", rows, p.out())
	}
	if err := os.WriteFile(before, []byte(p.out()), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatalf("no plot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s does not decode as PNG: %v", pngPath, err)
	}
	// latency, bw, allreduce, gather (not barrier): 2 by 2 panels of 6 by 4 inches at 96 dpi.
	if b := img.Bounds(); b.Dx() != 1152 || b.Dy() != 768 {
		t.Errorf("PNG is %dx%d; want 1152x768", b.Dx(), b.Dy())
	}

	p = start(t, append(args, "--plot", svgPath, "--plot-ref", "Open MPI="+ref, "--plot-ref", before)...)
	if code := p.wait(90 * time.Second); code != 0 {
		t.Fatalf("decorun %q: exit %d; stderr:\n%s", args, code, p.errText())
	}
	for _, want := range []string{"# latency", "# bw", "# barrier", "# allreduce", "# gather", "\n1K "} {
		if !strings.Contains(p.out(), want) {
			t.Errorf("table lacks %q:\n%s", want, p.out())
		}
	}
	texts := svgTexts(t, svgPath)
	for _, want := range []string{
		"latency: ping-pong, one-way, median", "bw: window of 64 messages, then an ack",
		"allreduce: time per op, mean over ranks", "gather: time per op, mean over ranks",
		"message size (bytes)", "µs", "MB/s (10^6 B/s)",
		"decorun auto", "before", "Open MPI", "decorun auto, 2 ranks", "before, 2 ranks", "Open MPI, 2 ranks",
	} {
		if !strings.Contains(texts, "\n"+want+"\n") {
			t.Errorf("SVG has no text %q; texts:%s", want, texts)
		}
	}
}
