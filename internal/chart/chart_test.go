package chart

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg/draw"
)

func TestLogTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   string
	}{
		{0.004, 0.04, "0.005 0.01 0.02"},
		{0.0136, 0.0336, "0.015 0.02 0.03"},
		{0.8, 120, "1 2 5 10 20 50 100"},
		{0.0150, 0.0152, "0.015 0.015"}, // narrower than any tick pair: the ends
		{0, 1, ""},
		{2, 1, ""},
	} {
		var labels []string
		for _, tk := range (LogTicks{}).Ticks(c.lo, c.hi) {
			if tk.Label != "" {
				labels = append(labels, tk.Label)
			}
		}
		if got := strings.Join(labels, " "); got != c.want {
			t.Errorf("[%g, %g]: %q, want %q", c.lo, c.hi, got, c.want)
		}
	}
}

func TestSave(t *testing.T) {
	f := &Figure{Title: "a figure", Cols: 2,
		Panels: []Panel{
			{Title: "log", XLabel: "x", YLabel: "y", LogX: true, ZeroY: true,
				Series: []Series{{Name: "pts", X: []float64{0.01, 0.02}, Y: []float64{3, 4}, Color: Palette[0], Glyph: draw.CircleGlyph{}}}},
			{Title: "lines", Legend: true, LegendBottom: true,
				Series: []Series{{Name: "up", X: []float64{1, 2, 3}, Y: []float64{1, 2, 3}, Color: Palette[1], Line: true, Dashed: true}}},
			{Title: "empty"},
		},
		Legend: []Series{{Name: "side entry", Color: Palette[2], Glyph: draw.BoxGlyph{}}}}
	base := filepath.Join(t.TempDir(), "fig")
	if err := f.Save(base); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(base + ".png")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if sz := img.Bounds().Size(); sz.X < 600 || sz.Y < 500 || sz.X < sz.Y {
		t.Errorf("png %v", sz)
	}
	svg, err := os.ReadFile(base + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{">a figure<", ">side entry<", ">up<", ">0.01<", ">empty<", "Arial,Helvetica,sans-serif;"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("svg lacks %s", want)
		}
	}
}

func TestBadInput(t *testing.T) {
	for name, p := range map[string]Panel{
		"lengths":  {Series: []Series{{Name: "s", X: []float64{1, 2}, Y: []float64{1}, Line: true}}},
		"log of 0": {LogX: true, Series: []Series{{Name: "s", X: []float64{0, 2}, Y: []float64{1, 2}, Line: true}}},
	} {
		var b bytes.Buffer
		if err := (&Figure{Panels: []Panel{p}}).WriteSVG(&b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestNonFinite: a diverged loss (NaN, Inf) leaves its points out and
// still draws the rest.
func TestNonFinite(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	p := Panel{Series: []Series{{Name: "s", X: []float64{1, 2, 3}, Y: []float64{1, nan, inf}, Line: true},
		{Name: "all bad", X: []float64{1}, Y: []float64{nan}, Line: true}}}
	var b bytes.Buffer
	if err := (&Figure{Panels: []Panel{p}}).WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
}
