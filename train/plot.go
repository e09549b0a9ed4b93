package train

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/mopeclip/mopeclip/internal/atomicfile"
)

// PlotCurve draws the curve as a PNG line chart: the training loss on the
// left panel, the validation metrics (columns val_*, in percent) on the
// right, against the step. title is printed on top.
func PlotCurve(c *Curve, path, title string) error {
	const W, H = 960, 400
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	text(img, 12, 8, 2, strings.ToUpper(title), color.Black)
	lx, ly := c.Series("loss")
	panel(img, image.Rect(50, 40, W/2-20, H-40), "TRAINING LOSS", []series{{"LOSS", lx, ly, palette[0]}}, false)
	var vs []series
	cols := c.Columns()
	sort.Strings(cols)
	k := 0
	for _, col := range cols {
		if !strings.HasPrefix(col, "val_") {
			continue
		}
		x, y := c.Series(col)
		vs = append(vs, series{strings.ToUpper(strings.TrimPrefix(col, "val_")), x, y, palette[(k+1)%len(palette)]})
		k++
	}
	panel(img, image.Rect(W/2+50, 40, W-20, H-40), "VALIDATION RECALL %", vs, true)
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b.Bytes())
}

type series struct {
	name string
	x, y []float64
	c    color.RGBA
}

var palette = []color.RGBA{{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}}

func panel(img *image.RGBA, r image.Rectangle, title string, ss []series, pct bool) {
	grey := color.RGBA{200, 200, 200, 255}
	text(img, r.Min.X, r.Min.Y-14, 2, title, color.Black)
	x0, x1, y0, y1 := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for i := range s.x {
			if math.IsNaN(s.y[i]) || math.IsInf(s.y[i], 0) {
				continue
			}
			x0, x1 = min(x0, s.x[i]), max(x1, s.x[i])
			y0, y1 = min(y0, s.y[i]), max(y1, s.y[i])
		}
	}
	if math.IsInf(x0, 0) {
		x0, x1, y0, y1 = 0, 1, 0, 1
	}
	x0 = 0
	if pct {
		y0, y1 = 0, 100
	} else {
		y0 = 0
		y1 = niceCeil(y1)
	}
	if x1 <= x0 {
		x1 = x0 + 1
	}
	if y1 <= y0 {
		y1 = y0 + 1
	}
	px := func(x float64) int { return r.Min.X + int(math.Round((x-x0)/(x1-x0)*float64(r.Dx()))) }
	py := func(y float64) int { return r.Max.Y - int(math.Round((y-y0)/(y1-y0)*float64(r.Dy()))) }
	for i := 0; i <= 4; i++ {
		y := y0 + (y1-y0)*float64(i)/4
		line(img, r.Min.X, py(y), r.Max.X, py(y), grey)
		text(img, r.Min.X-44, py(y)-5, 2, fmtTick(y), color.Black)
		x := x0 + (x1-x0)*float64(i)/4
		line(img, px(x), r.Min.Y, px(x), r.Max.Y, grey)
		text(img, px(x)-12, r.Max.Y+6, 2, fmtTick(x), color.Black)
	}
	text(img, r.Max.X-40, r.Max.Y+20, 2, "STEP", color.Black)
	line(img, r.Min.X, r.Max.Y, r.Max.X, r.Max.Y, color.RGBA{0, 0, 0, 255})
	line(img, r.Min.X, r.Min.Y, r.Min.X, r.Max.Y, color.RGBA{0, 0, 0, 255})
	for k, s := range ss {
		for i := 1; i < len(s.x); i++ {
			for d := 0; d < 2; d++ {
				line(img, px(s.x[i-1]), py(s.y[i-1])+d, px(s.x[i]), py(s.y[i])+d, s.c)
			}
		}
		if len(s.x) == 1 {
			fill(img, px(s.x[0])-2, py(s.y[0])-2, 5, 5, s.c)
		}
		lx, lyy := r.Min.X+10+(k%3)*110, r.Min.Y+8+(k/3)*14
		fill(img, lx, lyy+2, 14, 4, s.c)
		text(img, lx+18, lyy, 2, s.name, color.Black)
	}
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else if e2 <= dx {
			e += dx
			y0 += sy
		} else {
			e += dy
			x0 += sx
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

func fill(img *image.RGBA, x, y, w, h int, c color.RGBA) {
	draw.Draw(img, image.Rect(x, y, x+w, y+h), &image.Uniform{c}, image.Point{}, draw.Src)
}

// text draws s with a 3×5 pixel font scaled by scale.
func text(img *image.RGBA, x, y, scale int, s string, c color.Color) {
	cc := color.RGBAModel.Convert(c).(color.RGBA)
	for _, r := range s {
		g, ok := glyphs[r]
		if ok {
			for row := 0; row < 5; row++ {
				for col := 0; col < 3; col++ {
					if g[row]&(4>>col) != 0 {
						fill(img, x+col*scale, y+row*scale, scale, scale, cc)
					}
				}
			}
		}
		x += 4 * scale
	}
}

// glyphs is a 3×5 font: each row's bits, 4 = left column.
var glyphs = map[rune][5]uint8{
	'0': {7, 5, 5, 5, 7}, '1': {2, 6, 2, 2, 7}, '2': {7, 1, 7, 4, 7}, '3': {7, 1, 7, 1, 7}, '4': {5, 5, 7, 1, 1},
	'5': {7, 4, 7, 1, 7}, '6': {7, 4, 7, 5, 7}, '7': {7, 1, 1, 1, 1}, '8': {7, 5, 7, 5, 7}, '9': {7, 5, 7, 1, 7},
	'.': {0, 0, 0, 0, 2}, '-': {0, 0, 7, 0, 0}, '%': {5, 1, 2, 4, 5}, '@': {7, 5, 7, 4, 7}, '/': {1, 1, 2, 4, 4},
	'_': {0, 0, 0, 0, 7}, '(': {2, 4, 4, 4, 2}, ')': {2, 1, 1, 1, 2}, ':': {0, 2, 0, 2, 0}, '×': {0, 5, 2, 5, 0},
	'A': {2, 5, 7, 5, 5}, 'B': {6, 5, 6, 5, 6}, 'C': {7, 4, 4, 4, 7}, 'D': {6, 5, 5, 5, 6}, 'E': {7, 4, 6, 4, 7},
	'F': {7, 4, 6, 4, 4}, 'G': {7, 4, 5, 5, 7}, 'H': {5, 5, 7, 5, 5}, 'I': {7, 2, 2, 2, 7}, 'J': {1, 1, 1, 5, 7},
	'K': {5, 5, 6, 5, 5}, 'L': {4, 4, 4, 4, 7}, 'M': {5, 7, 7, 5, 5}, 'N': {6, 5, 5, 5, 5}, 'O': {7, 5, 5, 5, 7},
	'P': {7, 5, 7, 4, 4}, 'Q': {7, 5, 5, 7, 1}, 'R': {7, 5, 6, 5, 5}, 'S': {7, 4, 7, 1, 7}, 'T': {7, 2, 2, 2, 2},
	'U': {5, 5, 5, 5, 7}, 'V': {5, 5, 5, 5, 2}, 'W': {5, 5, 7, 7, 5}, 'X': {5, 5, 2, 5, 5}, 'Y': {5, 5, 2, 2, 2},
	'Z': {7, 1, 2, 4, 7},
}
