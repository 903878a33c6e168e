package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/decorun/decorun/cmd/decorun/internal/bench"
	"github.com/decorun/decorun/cmd/decorun/internal/benchplot"
	"github.com/urfave/cli/v2"
)

// plotFlags are decorun bench's flags for --plot.
func plotFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "plot", Usage: "also draw latency, bandwidth and collective time against size into `FILE`.svg or FILE.png"},
		&cli.StringSliceFlag{Name: "plot-ref", Usage: "draw the figures in `[LABEL=]FILE` beside this run's: osu_like output or decorun bench --json lines; repeatable; with no BENCHMARK, draw these files alone"},
	}
}

// plotSetup checks the --plot flags before anything runs and reads the
// reference files; it returns nil series when there is nothing to plot.
func plotSetup(c *cli.Context, names []string) (path string, refs []benchplot.Series, err error) {
	path = c.String("plot")
	if path == "" {
		if c.IsSet("plot-ref") {
			return "", nil, &usageError{"bench: --plot-ref needs --plot FILE"}
		}
		return "", nil, nil
	}
	if err := benchplot.CheckPath(path); err != nil {
		return "", nil, &usageError{"bench: --plot " + err.Error()}
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return "", nil, &usageError{fmt.Sprintf("bench: --plot %q: no directory %s to write it in", path, filepath.Dir(path))}
	}
	if !slices.ContainsFunc(names, benchplot.Plottable) {
		return "", nil, &usageError{fmt.Sprintf("bench: --plot: nothing to draw for %s (it draws latency, bw, bibw and the collectives but barrier)", strings.Join(names, ", "))}
	}
	for _, ref := range c.StringSlice("plot-ref") {
		s, err := benchplot.ReadRef(ref)
		if err != nil {
			return "", nil, &usageError{"bench: --plot-ref: " + err.Error()}
		}
		refs = append(refs, s)
	}
	return path, refs, nil
}

// plotRefs is decorun bench --plot FILE --plot-ref A --plot-ref B... with
// no benchmark: it draws the reference files alone, the first one choosing
// the panels.
func plotRefs(c *cli.Context) error {
	path := c.String("plot")
	if err := benchplot.CheckPath(path); err != nil {
		return &usageError{"bench: --plot " + err.Error()}
	}
	var series []benchplot.Series
	for _, ref := range c.StringSlice("plot-ref") {
		s, err := benchplot.ReadRef(ref)
		if err != nil {
			return &usageError{"bench: --plot-ref: " + err.Error()}
		}
		series = append(series, s)
	}
	if err := benchplot.Write(path, series); err != nil {
		return fmt.Errorf("bench: --plot: %w", err)
	}
	return nil
}

// resultTap stands between the benchmark job and stdout when the results
// are to be plotted: the ranks then print JSON lines, which the tap keeps
// and prints as the user asked (table or JSON); other lines pass through.
type resultTap struct {
	mu      sync.Mutex
	out     io.Writer
	p       *bench.Printer
	buf     []byte
	results []bench.Result
}

func (t *resultTap) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := t.buf[:i+1]
		t.buf = t.buf[i+1:]
		if err := t.line(line); err != nil {
			return len(b), err
		}
	}
}

// flush passes on an unfinished last line.
func (t *resultTap) flush() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) == 0 {
		return nil
	}
	line := append(t.buf, '\n')
	t.buf = nil
	return t.line(line)
}

func (t *resultTap) line(l []byte) error {
	var r bench.Result
	if l[0] == '{' && json.Unmarshal(l, &r) == nil && r.Bench != "" {
		t.results = append(t.results, r)
		return t.p.Print(r)
	}
	_, err := t.out.Write(l)
	return err
}
