package benchplot

import (
	"cmp"
	"errors"
	"fmt"
	"image/color"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/decorun/decorun/cmd/decorun/internal/bench"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// The size of one panel, the number of panels side by side, and the
// resolution of PNG files: a PNG of n panels is
// min(n, Cols)·PanelWidth by ⌈n/Cols⌉·PanelHeight points, at DPI pixels per
// inch (72 points).
const (
	PanelWidth  = 6 * vg.Inch
	PanelHeight = 4 * vg.Inch
	Cols        = 2
	DPI         = 96
)

// zeroX is where size 0 is drawn on the logarithmic size axis, labelled 0.
const zeroX = 0.5

// A panel draws one benchmark: y against message size.
type panel struct {
	bench, title, ylabel string
	y, raw               func(bench.Result) float64 // raw: the baseline figure, or nil
	collective           bool
}

// panels lists what can be drawn, in the order drawn. Barrier has no size,
// iallreduce's figure is an overlap, tasks and startup have no size: they
// are not drawn.
var panels = func() []panel {
	ps := []panel{
		{bench: bench.Latency, title: "latency: ping-pong, one-way, median", ylabel: "µs",
			y: func(r bench.Result) float64 { return r.MedianUS }, raw: func(r bench.Result) float64 { return r.RawMedianUS }},
		{bench: bench.BW, title: "bw: window of 64 messages, then an ack", ylabel: "MB/s (10^6 B/s)",
			y: func(r bench.Result) float64 { return r.MBps }, raw: func(r bench.Result) float64 { return r.RawMBps }},
		{bench: bench.BiBW, title: "bibw: both ranks send a window at once", ylabel: "MB/s (10^6 B/s), both ways",
			y: func(r bench.Result) float64 { return r.MBps }, raw: func(r bench.Result) float64 { return r.RawMBps }},
	}
	for _, b := range []string{bench.Bcast, bench.Reduce, bench.Allreduce, bench.Gather, bench.Scatter, bench.Alltoall} {
		ps = append(ps, panel{bench: b, title: b + ": time per op, mean over ranks", ylabel: "µs", collective: true,
			y: func(r bench.Result) float64 { return r.AvgUS }})
	}
	return ps
}()

// Plottable reports whether Write draws a panel for benchmark b.
func Plottable(b string) bool {
	return slices.ContainsFunc(panels, func(p panel) bool { return p.bench == b })
}

// CheckPath checks that path names a format Write can write: .svg or .png.
func CheckPath(path string) error {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".svg", ".png":
		return nil
	case "":
		return fmt.Errorf("%q has no extension (want .svg or .png)", path)
	default:
		return fmt.Errorf("%q: unknown extension %q (want .svg or .png)", path, ext)
	}
}

// Write draws one panel per benchmark of series[0] (the run being plotted)
// that has sizes, each with a line per series (and per rank count, for
// collectives; and raw nats.go's, when the run measured a baseline), tiled
// Cols panels wide, and writes it to path as SVG or PNG by its extension.
func Write(path string, series []Series) error {
	if err := CheckPath(path); err != nil {
		return err
	}
	if len(series) == 0 {
		return errors.New("no results to plot")
	}
	var plots []*plot.Plot
	colors := map[string]int{} // line style -> colour index, the same in every panel
	for _, pn := range panels {
		if !slices.ContainsFunc(series[0].Results, func(r bench.Result) bool { return r.Bench == pn.bench && r.Size != nil }) {
			continue
		}
		if p := draw1(pn, series, colors); p != nil {
			plots = append(plots, p)
		}
	}
	if len(plots) == 0 {
		return fmt.Errorf("nothing to plot: no results of %s", strings.Join(plottable(), ", "))
	}
	cols := min(len(plots), Cols)
	rows := (len(plots) + cols - 1) / cols
	w, h := vg.Length(cols)*PanelWidth, vg.Length(rows)*PanelHeight
	var c interface {
		vg.CanvasSizer
		vg.CanvasWriterTo
	}
	if strings.EqualFold(filepath.Ext(path), ".png") {
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(DPI))}
	} else {
		c = vgsvg.New(w, h)
	}
	dc := draw.New(c)
	dc.FillPolygon(color.White, []vg.Point{{X: 0, Y: 0}, {X: w, Y: 0}, {X: w, Y: h}, {X: 0, Y: h}})
	pad := vg.Points(10)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: 2 * pad, PadY: 2 * pad, PadTop: pad, PadBottom: pad, PadLeft: pad, PadRight: pad}
	for i, p := range plots {
		p.Draw(tiles.At(dc, i%cols, i/cols))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

func plottable() []string {
	var out []string
	for _, p := range panels {
		out = append(out, p.bench)
	}
	return out
}

// line is the points of one legend entry in a panel.
type line struct {
	label string
	style string // lines of one series share a colour
	dash  int    // 0: solid
	xys   plotter.XYs
}

// draw1 draws panel pn, or returns nil if no series has a point in it.
func draw1(pn panel, series []Series, colors map[string]int) *plot.Plot {
	var lines []line
	for _, s := range series {
		groups := map[int][]bench.Result{} // by rank count, for collectives
		for _, r := range s.Results {
			if r.Bench == pn.bench && r.Size != nil && r.Unavailable == "" {
				k := 0
				if pn.collective {
					k = r.Ranks
				}
				groups[k] = append(groups[k], r)
			}
		}
		for g, k := range slices.Sorted(maps.Keys(groups)) {
			rs := groups[k]
			slices.SortStableFunc(rs, func(a, b bench.Result) int { return cmp.Compare(*a.Size, *b.Size) })
			label := s.Name
			if pn.collective && k > 0 {
				label = fmt.Sprintf("%s, %d ranks", s.Name, k)
			}
			lines = append(lines, line{label: label, style: s.Name, dash: g, xys: points(rs, pn.y)})
			if pn.raw != nil {
				lines = append(lines, line{label: s.Name + ": raw nats.go", style: s.Name + ": raw", dash: 1, xys: points(rs, pn.raw)})
			}
		}
	}
	lines = slices.DeleteFunc(lines, func(l line) bool { return len(l.xys) == 0 })
	if len(lines) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = pn.title
	p.X.Label.Text = "message size (bytes)"
	p.Y.Label.Text = pn.ylabel
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker = plot.TickerFunc(sizeTicks)
	p.Y.Tick.Marker = plot.TickerFunc(valueTicks)
	p.Add(plotter.NewGrid())
	// Every figure is low at small sizes and grows with size: the top left
	// corner is where the lines are not.
	p.Legend.Top, p.Legend.Left = true, true
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, l := range lines {
		i, ok := colors[l.style]
		if !ok {
			i = len(colors)
			colors[l.style] = i
		}
		ln, sc, err := plotter.NewLinePoints(l.xys)
		if err != nil { // only for NaN or infinite points, which points leaves out
			continue
		}
		ln.Color, sc.Color, sc.Shape = plotutil.Color(i), plotutil.Color(i), plotutil.Shape(i)
		ln.Width = vg.Points(1.5)
		if l.dash > 0 {
			ln.Dashes = plotutil.Dashes(l.dash)
		}
		p.Add(ln, sc)
		p.Legend.Add(l.label, ln, sc)
		for _, xy := range l.xys {
			xmin, xmax, ymin, ymax = min(xmin, xy.X), max(xmax, xy.X), min(ymin, xy.Y), max(ymax, xy.Y)
		}
	}
	// Room around the points (above them, for the legend), and a range
	// even for a single point (a log scale needs min < max).
	p.X.Min, p.X.Max = xmin/1.5, xmax*1.5
	p.Y.Min, p.Y.Max = ymin/2, ymax*6
	return p
}

// points returns the (size, y) points of rs with a positive finite y; size
// 0 goes at zeroX.
func points(rs []bench.Result, y func(bench.Result) float64) plotter.XYs {
	var xys plotter.XYs
	for _, r := range rs {
		v := y(r)
		if !(v > 0) || math.IsInf(v, 0) {
			continue
		}
		x := float64(*r.Size)
		if x == 0 {
			x = zeroX
		}
		xys = append(xys, plotter.XY{X: x, Y: v})
	}
	return xys
}

// sizeTicks marks every power of two between min and max, labelling at
// most about 8 of them as sizes (1, 16, 256, 4K, ...), and size 0.
func sizeTicks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	if lo <= zeroX && zeroX <= hi {
		ticks = append(ticks, plot.Tick{Value: zeroX, Label: "0"})
	}
	first, last := int(math.Ceil(math.Log2(max(lo, 1)))), int(math.Floor(math.Log2(hi)))
	step := 1
	for (last-first)/step >= 8 {
		step *= 2
	}
	for e := first; e <= last; e++ {
		t := plot.Tick{Value: math.Exp2(float64(e))}
		if e%step == 0 && (e > 0 || len(ticks) == 0) { // 1 is too close to 0 for both labels
			t.Label = bench.FormatSize(1 << e)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// valueTicks marks powers of ten between min and max, with 2 and 5 times
// them labelled too when the range spans under two decades.
func valueTicks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	few := math.Log10(hi/lo) < 2
	for e := int(math.Floor(math.Log10(lo))); e <= int(math.Ceil(math.Log10(hi))); e++ {
		for m := 1; m < 10; m++ {
			v := float64(m) * math.Pow10(e)
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || few && (m == 2 || m == 5) {
				t.Label = strconv.FormatFloat(v, 'g', 6, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
