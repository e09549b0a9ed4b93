package grid

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot/vg/draw"

	"github.com/mopeclip/mopeclip/internal/chart"
	"github.com/mopeclip/mopeclip/mope"
)

// PlotBase is the plots' file name without extension (story.png,
// story.svg).
const PlotBase = "story"

// methodColor gives each method one colour in every panel.
var methodColor = map[string]color.Color{
	"mope": chart.Palette[1], "magnitude": chart.Palette[0], "taylor": chart.Palette[2], "unimodal": chart.Palette[3],
	"random": chart.Palette[6], MethodScratch: chart.Palette[8],
}

// orderGlyph gives each pruning order one marker shape.
var orderGlyph = map[mope.Order]draw.GlyphDrawer{
	mope.OrderWidthDepth: draw.CircleGlyph{}, mope.OrderDepthWidth: draw.BoxGlyph{}, mope.OrderWidth: draw.TriangleGlyph{},
}

// WritePlots writes base.png and base.svg: mean R@1 against GFLOPs per
// image (log scale), one panel per tower scope and FLOPs reduction, the
// teacher's cost as a dashed line and its recall in each panel's title;
// colours are the importance methods, shapes the pruning orders (legend on
// the right).
func WritePlots(base string, rows []*Row) error {
	return figure(rows).Save(base)
}

// figure is the grid's plot (WritePlots saves it).
func figure(rows []*Row) *chart.Figure {
	var teacher *Row
	var keys []setting
	groups := map[setting][]*Row{}
	for _, r := range rows {
		if r.Method == MethodTeacher {
			teacher = r
			continue
		}
		if groups[r.setting()] == nil {
			keys = append(keys, r.setting())
		}
		groups[r.setting()] = append(groups[r.setting()], r)
	}
	f := &chart.Figure{Title: "Mean R@1 against GFLOPs per image, shapes world", Cols: 2}
	for _, k := range keys {
		f.Panels = append(f.Panels, panel(k, groups[k], teacher))
	}
	f.Cols = min(2, len(f.Panels))
	f.Legend = legend(rows, teacher != nil)
	return f
}

// setting of a row (the teacher's is its own).
func (r *Row) setting() setting { return setting{r.Towers, r.Target} }

// panel plots one setting's rows. The y axis spans the rows' recall (from
// 0), so the differences stay visible where every model is far below the
// teacher; the teacher's recall is in the title and its cost is the dashed
// vertical line (the x axis keeps it in view).
func panel(k setting, rows []*Row, teacher *Row) chart.Panel {
	what := "both towers pruned"
	if k.towers == TowersVision {
		what = "vision tower pruned"
	}
	p := chart.Panel{Title: fmt.Sprintf("%s, %g× fewer FLOPs", what, 1/k.target), XLabel: "GFLOPs per image (log scale)",
		YLabel: "mean R@1 (%)", LogX: true, ZeroY: true}
	hi := 0.0
	for _, r := range rows {
		hi = max(hi, r.R1)
		p.Series = append(p.Series, chart.Series{Name: r.Name, X: []float64{r.GFLOPsI}, Y: []float64{r.R1},
			Color: methodColor[r.Method], Glyph: glyphOf(r)})
	}
	if teacher != nil {
		p.Title += fmt.Sprintf("; teacher %.1f", teacher.R1)
		p.Series = append(p.Series, chart.Series{Name: "teacher", X: []float64{teacher.GFLOPsI, teacher.GFLOPsI}, Y: []float64{0, max(hi, 1)},
			Color: color.Black, Line: true, Dashed: true})
	}
	return p
}

func glyphOf(r *Row) draw.GlyphDrawer {
	if r.Method == MethodScratch {
		return draw.CrossGlyph{}
	}
	if g := orderGlyph[r.Order]; g != nil {
		return g
	}
	return draw.RingGlyph{}
}

// legend lists the methods and orders present in rows.
func legend(rows []*Row, teacher bool) []chart.Series {
	var l []chart.Series
	seen := map[string]bool{}
	for _, m := range append(append([]string{}, metricNames()...), MethodScratch) {
		for _, r := range rows {
			if r.Method == m && !seen[m] {
				seen[m] = true
				g := draw.GlyphDrawer(draw.CircleGlyph{})
				if m == MethodScratch {
					g = draw.CrossGlyph{}
				}
				l = append(l, chart.Series{Name: m, Color: methodColor[m], Glyph: g})
			}
		}
	}
	for _, o := range []mope.Order{mope.OrderWidthDepth, mope.OrderDepthWidth, mope.OrderWidth} {
		for _, r := range rows {
			if r.Order == o && r.Method != MethodScratch && !seen["order "+string(o)] {
				seen["order "+string(o)] = true
				l = append(l, chart.Series{Name: "order " + string(o), Color: color.Black, Glyph: orderGlyph[o]})
			}
		}
	}
	if teacher {
		l = append(l, chart.Series{Name: "teacher's GFLOPs", Color: color.Black, Line: true, Dashed: true})
	}
	return l
}

func metricNames() []string {
	var s []string
	for _, m := range mope.Metrics {
		s = append(s, string(m))
	}
	return s
}
