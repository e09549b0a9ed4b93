package train

import (
	"fmt"
	"sort"
	"strings"

	"gonum.org/v1/plot/vg/draw"

	"github.com/mopeclip/mopeclip/internal/chart"
)

// PlotCurve draws the curve (internal/chart, gonum/plot) into path (a PNG,
// such as curve.png) and the same figure as SVG beside it (curve.svg):
// the training loss on the left panel and the validation metrics (columns
// val_*, recall in percent) on the right, against the step. title is
// printed on top.
func PlotCurve(c *Curve, path, title string) error {
	base, ok := strings.CutSuffix(path, ".png")
	if !ok {
		return fmt.Errorf("train: plot %s: want a .png path", path)
	}
	return curveFigure(c, title).Save(base)
}

// curveFigure is the figure PlotCurve draws.
func curveFigure(c *Curve, title string) *chart.Figure {
	lx, ly := c.Series("loss")
	f := &chart.Figure{Title: title, Panels: []chart.Panel{{Title: "training loss", XLabel: "step", YLabel: "loss (mean since the last point)",
		Series: []chart.Series{{Name: "loss", X: lx, Y: ly, Color: chart.Palette[0], Line: true}}}}}
	var cols []string
	for _, col := range c.Columns() {
		if name, ok := strings.CutPrefix(col, "val_"); ok {
			cols = append(cols, name)
		}
	}
	// Mean recalls first, then text→image and image→text retrieval.
	sort.SliceStable(cols, func(i, j int) bool { return metricRank(cols[i]) < metricRank(cols[j]) })
	var val []chart.Series
	for _, name := range cols {
		x, y := c.Series("val_" + name)
		s := chart.Series{Name: metricLabel(name), X: x, Y: y, Color: chart.Palette[(len(val)+1)%len(chart.Palette)], Line: true}
		if len(x) < 12 {
			s.Glyph = draw.CircleGlyph{}
		}
		val = append(val, s)
	}
	if len(val) > 0 {
		f.Panels = append(f.Panels, chart.Panel{Title: "validation", XLabel: "step", YLabel: "recall (%)", Series: val, Legend: true, LegendBottom: true, ZeroY: true})
	}
	return f
}

// metricRank orders validation columns: r*, tr*, ir*, the rest.
func metricRank(name string) int {
	for i, p := range []string{"r", "tr", "ir"} {
		if rest, ok := strings.CutPrefix(name, p); ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			return i
		}
	}
	return 3
}

// metricLabel names a validation column for the legend: r1 → "mean R@1",
// tr5 → "TR@5", ir10 → "IR@10"; others as they are.
func metricLabel(name string) string {
	switch metricRank(name) {
	case 0:
		return "mean R@" + name[1:]
	case 1:
		return "TR@" + name[2:]
	case 2:
		return "IR@" + name[2:]
	}
	return name
}
