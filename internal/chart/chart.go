// Package chart draws the project's figures (the demo's grid, training
// curves) with gonum.org/v1/plot: a title, panels in a grid, and an
// optional legend column beside them, written as PNG and SVG.
package chart

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"sync"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/mopeclip/mopeclip/internal/atomicfile"
)

// Series is one set of points of a panel; non-finite points are not drawn.
type Series struct {
	Name  string
	X, Y  []float64
	Color color.Color
	// Glyph marks each point (nil: none); Line joins the points.
	Glyph  draw.GlyphDrawer
	Line   bool
	Dashed bool
}

// Panel is one plot of a figure.
type Panel struct {
	Title, XLabel, YLabel string
	// LogX puts the x axis on a log scale with 1-2-5 ticks.
	LogX   bool
	Series []Series
	// Legend draws the series' names inside the panel, top right, or
	// bottom right with LegendBottom (where rising curves leave room).
	Legend, LegendBottom bool
	// ZeroY starts the y axis at 0 (or below), e.g. for recall.
	ZeroY bool
}

// Figure is a titled grid of panels with an optional legend column.
type Figure struct {
	Title  string
	Panels []Panel
	// Cols is the number of panels per row (default: all in one row).
	Cols int
	// PanelW and PanelH are a panel's size (default 4.2 × 3.2 inches).
	PanelW, PanelH vg.Length
	// Legend entries are drawn in a column right of the panels.
	Legend []Series
}

// Palette is a colour-blind-safe set of distinct colours (Okabe–Ito).
var Palette = []color.Color{
	color.RGBA{0, 114, 178, 255},   // blue
	color.RGBA{213, 94, 0, 255},    // vermillion
	color.RGBA{0, 158, 115, 255},   // bluish green
	color.RGBA{204, 121, 167, 255}, // reddish purple
	color.RGBA{230, 159, 0, 255},   // orange
	color.RGBA{86, 180, 233, 255},  // sky blue
	color.RGBA{120, 120, 120, 255}, // grey
	color.RGBA{0, 0, 0, 255},       // black
	color.RGBA{140, 86, 75, 255},   // brown
}

// sansOnce switches gonum/plot's default font to Liberation Sans.
var sansOnce sync.Once

func useSans() {
	sansOnce.Do(func() { plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"} })
}

// legendW is the width of the legend column.
const legendW = 2.2 * vg.Inch

// Save writes base.png and base.svg.
func (f *Figure) Save(base string) error {
	plots, err := f.plots()
	if err != nil {
		return err
	}
	w, h := f.size()
	png := vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(110))}
	svg := vgsvg.New(w, h)
	for _, out := range []struct {
		c     vg.CanvasWriterTo
		path  string
		isSVG bool
	}{{png, base + ".png", false}, {svg, base + ".svg", true}} {
		f.draw(draw.New(out.c), plots)
		var b bytes.Buffer
		if _, err := out.c.WriteTo(&b); err != nil {
			return fmt.Errorf("chart: %s: %w", out.path, err)
		}
		data := b.Bytes()
		if out.isSVG {
			data = sansFallback(data)
		}
		if err := atomicfile.WriteFile(out.path, data); err != nil {
			return err
		}
	}
	return nil
}

// WriteSVG writes the figure as SVG to w (tests, previews).
func (f *Figure) WriteSVG(w io.Writer) error {
	plots, err := f.plots()
	if err != nil {
		return err
	}
	fw, fh := f.size()
	c := vgsvg.New(fw, fh)
	f.draw(draw.New(c), plots)
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return err
	}
	_, err = w.Write(sansFallback(b.Bytes()))
	return err
}

// sansFallback lets SVG viewers without Liberation Sans (the embedded font
// of the PNG) fall back to a metric-compatible sans-serif font rather than
// their default serif one.
func sansFallback(svg []byte) []byte {
	return bytes.ReplaceAll(svg, []byte("font-family:Liberation Sans;"), []byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"))
}

func (f *Figure) cols() int {
	if f.Cols > 0 {
		return min(f.Cols, max(len(f.Panels), 1))
	}
	return max(len(f.Panels), 1)
}

func (f *Figure) size() (w, h vg.Length) {
	pw, ph := f.PanelW, f.PanelH
	if pw == 0 {
		pw = 4.2 * vg.Inch
	}
	if ph == 0 {
		ph = 3.2 * vg.Inch
	}
	cols := f.cols()
	rows := (len(f.Panels) + cols - 1) / cols
	w = pw * vg.Length(cols)
	if len(f.Legend) > 0 {
		w += legendW
	}
	return w, ph*vg.Length(max(rows, 1)) + titleH
}

const titleH = 0.45 * vg.Inch

func (f *Figure) plots() ([]*plot.Plot, error) {
	useSans()
	var ps []*plot.Plot
	for _, p := range f.Panels {
		pl, err := p.plot()
		if err != nil {
			return nil, fmt.Errorf("chart: panel %q: %w", p.Title, err)
		}
		ps = append(ps, pl)
	}
	return ps, nil
}

// draw lays the figure out on dc: title on top, the panels in rows, the
// legend column on the right.
func (f *Figure) draw(dc draw.Canvas, plots []*plot.Plot) {
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	title := plot.New().Title.TextStyle
	title.Font.Size = 13
	title.XAlign, title.YAlign = draw.XCenter, draw.YCenter
	r := dc.Rectangle
	dc.FillText(title, vg.Point{X: (r.Min.X + r.Max.X) / 2, Y: r.Max.Y - titleH/2}, f.Title)
	body := draw.Crop(dc, 0, 0, 0, -titleH)
	if len(f.Legend) > 0 {
		f.drawLegend(draw.Crop(body, body.Size().X-legendW, 0, 0, 0))
		body = draw.Crop(body, 0, -legendW, 0, 0)
	}
	cols := f.cols()
	rows := (len(plots) + cols - 1) / cols
	if rows == 0 {
		return
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 2, PadY: vg.Millimeter * 2,
		PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: vg.Millimeter}
	for i, p := range plots {
		p.Draw(tiles.At(body, i%cols, i/cols))
	}
}

func (f *Figure) drawLegend(c draw.Canvas) {
	l := plot.NewLegend()
	l.TextStyle.Font.Size = 11
	l.Top, l.Left = true, true
	l.Padding = 2 * vg.Millimeter
	for _, s := range f.Legend {
		l.Add(s.Name, thumbs(s)...)
	}
	l.Draw(draw.Crop(c, 2*vg.Millimeter, 0, 0, -0.35*vg.Inch))
}

// thumbs are the legend thumbnails of s: its glyph and/or line.
func thumbs(s Series) []plot.Thumbnailer {
	var t []plot.Thumbnailer
	if s.Line {
		l, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}})
		l.LineStyle = lineStyle(s)
		t = append(t, l)
	}
	if s.Glyph != nil {
		sc, _ := plotter.NewScatter(plotter.XYs{{X: 0, Y: 0}})
		sc.GlyphStyle = glyphStyle(s)
		t = append(t, sc)
	}
	return t
}

func lineStyle(s Series) draw.LineStyle {
	ls := draw.LineStyle{Color: s.Color, Width: vg.Points(1.6)}
	if s.Dashed {
		ls.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	}
	return ls
}

func glyphStyle(s Series) draw.GlyphStyle {
	return draw.GlyphStyle{Color: s.Color, Radius: vg.Points(4), Shape: s.Glyph}
}

func (p *Panel) plot() (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = p.Title
	pl.Title.TextStyle.Font.Size = 12
	pl.X.Label.Text, pl.Y.Label.Text = p.XLabel, p.YLabel
	pl.X.Label.TextStyle.Font.Size, pl.Y.Label.TextStyle.Font.Size = 11, 11
	pl.X.Tick.Label.Font.Size, pl.Y.Tick.Label.Font.Size = 10, 10
	pl.Add(plotter.NewGrid())
	if p.Legend {
		pl.Legend.Top = !p.LegendBottom
		pl.Legend.TextStyle.Font.Size = 10
		pl.Legend.XOffs, pl.Legend.YOffs = -2*vg.Millimeter, 2*vg.Millimeter
		if pl.Legend.Top {
			pl.Legend.YOffs = -2 * vg.Millimeter
		}
	}
	for _, s := range p.Series {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("series %q: %d x values, %d y values", s.Name, len(s.X), len(s.Y))
		}
		// Non-finite points (a diverged loss) are left out.
		var xys plotter.XYs
		for i := range s.X {
			if finite(s.X[i]) && finite(s.Y[i]) {
				xys = append(xys, plotter.XY{X: s.X[i], Y: s.Y[i]})
			}
		}
		if len(xys) == 0 {
			continue
		}
		var th []plot.Thumbnailer
		if s.Line {
			l, err := plotter.NewLine(xys)
			if err != nil {
				return nil, fmt.Errorf("series %q: %w", s.Name, err)
			}
			l.LineStyle = lineStyle(s)
			pl.Add(l)
			th = append(th, l)
		}
		if s.Glyph != nil {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, fmt.Errorf("series %q: %w", s.Name, err)
			}
			sc.GlyphStyle = glyphStyle(s)
			pl.Add(sc)
			th = append(th, sc)
		}
		if p.Legend && s.Name != "" {
			pl.Legend.Add(s.Name, th...)
		}
	}
	if p.ZeroY {
		pl.Y.Min = min(pl.Y.Min, 0)
	}
	// Headroom keeps the glyphs at the top inside the panel.
	pl.Y.Max += 0.06 * (pl.Y.Max - pl.Y.Min)
	if p.LogX {
		if pl.X.Min <= 0 {
			return nil, fmt.Errorf("log x axis with x ≤ 0 (%g)", pl.X.Min)
		}
		// A margin of 10% on each side keeps the glyphs inside.
		pl.X.Min, pl.X.Max = pl.X.Min/1.1, pl.X.Max*1.1
		pl.X.Scale = plot.LogScale{}
		pl.X.Tick.Marker = LogTicks{}
	} else {
		pl.X.Tick.Marker = plainTicks{}
	}
	pl.Y.Tick.Marker = plainTicks{}
	return pl, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// plainTicks are gonum/plot's default ticks labelled without trailing
// zeros (25, not 25.00).
type plainTicks struct{}

// Ticks implements plot.Ticker.
func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(roundSig(ts[i].Value), 'f', -1, 64)
		}
	}
	return ts
}

// LogTicks marks a log axis at 1, 2 and 5 times the powers of ten, with
// plain decimal labels (0.005, 0.01, 0.02, …); on a range narrower than
// two such ticks it adds 1.5, 3 and 7 times the powers of ten.
type LogTicks struct{}

// Ticks implements plot.Ticker.
func (LogTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) {
		return nil
	}
	for _, mant := range [][]float64{{1, 2, 5}, {1, 1.5, 2, 3, 5, 7}} {
		var ts []plot.Tick
		for e := math.Floor(math.Log10(lo)) - 1; e <= math.Ceil(math.Log10(hi)); e++ {
			p := math.Pow(10, e)
			for _, m := range mant {
				v := m * p
				if v >= lo*(1-1e-9) && v <= hi*(1+1e-9) {
					ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(roundSig(v), 'f', -1, 64)})
				}
			}
		}
		if len(ts) >= 3 {
			return ts
		}
	}
	// Narrower still: the ends, labelled to 2 significant digits.
	return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 2, 64)}, {Value: hi, Label: strconv.FormatFloat(hi, 'g', 2, 64)}}
}

// roundSig drops the float noise of m×10^e (0.30000000000000004 → 0.3).
func roundSig(v float64) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 6, 64), 64)
	return f
}
