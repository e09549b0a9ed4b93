package grid

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strings"

	"github.com/mopeclip/mopeclip/internal/atomicfile"
	"github.com/mopeclip/mopeclip/mope"
)

// PlotBase is the plots' file name without extension (story.svg).
const PlotBase = "story"

// WritePlots writes base.svg: mean R@1 against image GFLOPs.
func WritePlots(base string, rows []*Row) error {
	return atomicfile.WriteFile(base+".svg", storySVG(rows))
}

// storySVG plots mean R@1 against image GFLOPs, one marker per model.
func storySVG(rows []*Row) []byte {
	const W, H, L, R, T, B = 900, 520, 70, 260, 40, 50
	maxX, maxY := 0.0, 0.0
	for _, r := range rows {
		maxX, maxY = math.Max(maxX, r.GFLOPsI), math.Max(maxY, r.R1)
	}
	maxX *= 1.1
	maxY = math.Max(10, math.Ceil(maxY/10)*10)
	px := func(x float64) float64 { return L + x/maxX*(W-L-R) }
	py := func(y float64) float64 { return H - B - y/maxY*(H-T-B) }
	colors := map[string]string{"teacher": "#000000", "mope": "#d62728", "magnitude": "#1f77b4", "taylor": "#2ca02c",
		"unimodal": "#9467bd", "random": "#7f7f7f", "scratch": "#ff7f0e"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15">mean R@1 (%%) vs image-tower GFLOPs — shapes test split</text>`+"\n", L)
	for i := 0; i <= 5; i++ {
		y := maxY * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n",
			L, W-R, py(y), py(y), L-6, py(y)+4, y)
		x := maxX * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle">%.4f</text>`+"\n",
			px(x), px(x), T, H-B, px(x), H-B+16, x)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">GFLOPs per image</text>`+"\n", (L+W-R)/2, H-12)
	sorted := append([]*Row(nil), rows...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].R1 > sorted[j].R1 })
	for i, r := range sorted {
		c := colors[r.Method]
		if c == "" {
			c = "#333"
		}
		shape := fmt.Sprintf(`<circle cx="%.1f" cy="%.1f" r="6" fill="%s"/>`, px(r.GFLOPsI), py(r.R1), c)
		switch r.Order {
		case mope.OrderDepthWidth:
			shape = fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="11" height="11" fill="%s"/>`, px(r.GFLOPsI)-5.5, py(r.R1)-5.5, c)
		case mope.OrderWidth:
			shape = fmt.Sprintf(`<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`, px(r.GFLOPsI), py(r.R1)-7, px(r.GFLOPsI)-6, py(r.R1)+5,
				px(r.GFLOPsI)+6, py(r.R1)+5, c)
		}
		b.WriteString(shape + "\n")
		ly := T + 14 + 16*i
		fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="5" fill="%s"/><text x="%d" y="%d">%s (%.1f)</text>`+"\n", W-R+15, ly-4, c, W-R+25, ly,
			html.EscapeString(r.Name), r.R1)
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}
