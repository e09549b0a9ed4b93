package shapes

import (
	"image"
	"image/color"
	"math"
	"sort"
)

// Rendering is integer arithmetic apart from a few correctly rounded IEEE
// operations (one division or one square root per span end), so the pixels
// are the same on every platform. A pixel of the image is 2·S units wide
// (S = Config.Supersample); sample (sx, sy) sits at unit (2sx+1, 2sy+1), so
// there are S×S samples per pixel, and a pixel's value is the background
// and the object colour mixed by the share of its samples inside the shape.

// unitPolys are the polygon shapes at radius unitR, centred on the origin
// (y pointing down), scaled so every vertex lies within the unit circle.
const unitR = 1 << 12

type ipt struct{ x, y int64 }

var unitPolys [numShapes][]ipt

func init() {
	regular := func(n int, phase float64, radii ...float64) [][2]float64 {
		var p [][2]float64
		for i := 0; i < n*len(radii); i++ {
			a := phase + 2*math.Pi*float64(i)/float64(n*len(radii))
			r := radii[i%len(radii)]
			p = append(p, [2]float64{r * math.Cos(a), r * math.Sin(a)})
		}
		return p
	}
	up := -math.Pi / 2
	var heart [][2]float64
	for i := 0; i < 72; i++ {
		t := 2 * math.Pi * float64(i) / 72
		s := math.Sin(t)
		heart = append(heart, [2]float64{16 * s * s * s, -(13*math.Cos(t) - 5*math.Cos(2*t) - 2*math.Cos(3*t) - math.Cos(4*t))})
	}
	polys := map[Shape][][2]float64{
		Triangle: regular(3, up, 1),
		Star:     regular(5, up, 1, 0.46),
		Diamond:  {{0, -1}, {0.7, 0}, {0, 1}, {-0.7, 0}},
		Hexagon:  regular(6, up, 1),
		Heart:    heart,
	}
	for s, p := range polys {
		// Centre on the bounding box, then scale to the unit circle.
		minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
		for _, v := range p {
			minX, maxX = math.Min(minX, v[0]), math.Max(maxX, v[0])
			minY, maxY = math.Min(minY, v[1]), math.Max(maxY, v[1])
		}
		cx, cy := (minX+maxX)/2, (minY+maxY)/2
		far := 0.0
		for _, v := range p {
			far = math.Max(far, math.Hypot(v[0]-cx, v[1]-cy))
		}
		for _, v := range p {
			unitPolys[s] = append(unitPolys[s], ipt{int64(math.Round((v[0] - cx) / far * unitR)), int64(math.Round((v[1] - cy) / far * unitR))})
		}
	}
}

// span is a half-open interval [a, b) of units on one sample row.
type span struct{ a, b float64 }

// rasterizer holds per-worker scratch space.
type rasterizer struct {
	cov   []uint16
	xs    []float64
	spans []span
	poly  []ipt
}

// shapeSpans returns the inside intervals of object o (centre cx, cy and
// radius r in units) on the sample row at unit height y, sorted and disjoint.
func (z *rasterizer) shapeSpans(shape Shape, cx, cy, r, y int64) []span {
	z.spans = z.spans[:0]
	dy := y - cy
	circle := func(cx, r int64) (span, bool) {
		if dy*dy >= r*r {
			return span{}, false
		}
		w := math.Sqrt(float64(r*r - dy*dy))
		return span{float64(cx) - w, float64(cx) + w}, true
	}
	rect := func(hw, hh int64) {
		if dy >= -hh && dy < hh {
			z.spans = append(z.spans, span{float64(cx - hw), float64(cx + hw)})
		}
	}
	switch shape {
	case Circle:
		if s, ok := circle(cx, r); ok {
			z.spans = append(z.spans, s)
		}
	case Square:
		h := r * 72 / 100
		rect(h, h)
	case Cross:
		long, thick := r*95/100, r*32/100
		if dy >= -thick && dy < thick {
			rect(long, thick)
		} else {
			rect(thick, long)
		}
	case Ring:
		o, ok := circle(cx, r)
		if !ok {
			break
		}
		if in, ok := circle(cx, r*56/100); ok {
			z.spans = append(z.spans, span{o.a, in.a}, span{in.b, o.b})
		} else {
			z.spans = append(z.spans, o)
		}
	case Crescent:
		o, ok := circle(cx, r)
		if !ok {
			break
		}
		in, ok := circle(cx+r*42/100, r*80/100)
		switch {
		case !ok || in.a >= o.b:
			z.spans = append(z.spans, o)
		default:
			if in.a > o.a {
				z.spans = append(z.spans, span{o.a, in.a})
			}
			if in.b < o.b {
				z.spans = append(z.spans, span{in.b, o.b})
			}
		}
	default:
		// Even–odd fill of the scaled polygon.
		z.poly = z.poly[:0]
		for _, v := range unitPolys[shape] {
			z.poly = append(z.poly, ipt{cx + v.x*r/unitR, cy + v.y*r/unitR})
		}
		z.xs = z.xs[:0]
		for i, p := range z.poly {
			q := z.poly[(i+1)%len(z.poly)]
			if (p.y <= y) != (q.y <= y) {
				z.xs = append(z.xs, float64(p.x)+float64((y-p.y)*(q.x-p.x))/float64(q.y-p.y))
			}
		}
		sort.Float64s(z.xs)
		for i := 0; i+1 < len(z.xs); i += 2 {
			z.spans = append(z.spans, span{z.xs[i], z.xs[i+1]})
		}
	}
	return z.spans
}

// drawObject paints o over img.
func (z *rasterizer) drawObject(img *image.RGBA, o Object, ss int) {
	size := img.Rect.Dx()
	u := float64(2 * ss * size)
	cx, cy := int64(math.Round(o.X*u)), int64(math.Round(o.Y*u))
	r := int64(math.Round(o.R * u))
	unitsPerPx := int64(2 * ss)
	px0, px1 := max(0, int((cx-r)/unitsPerPx)-1), min(size-1, int((cx+r)/unitsPerPx)+1)
	py0, py1 := max(0, int((cy-r)/unitsPerPx)-1), min(size-1, int((cy+r)/unitsPerPx)+1)
	w, h := px1-px0+1, py1-py0+1
	if cap(z.cov) < w*h {
		z.cov = make([]uint16, w*h)
	}
	cov := z.cov[:w*h]
	clear(cov)
	sLo, sHi := px0*ss, (px1+1)*ss // sample column range
	for sy := py0 * ss; sy < (py1+1)*ss; sy++ {
		row := cov[(sy/ss-py0)*w:][:w]
		for _, s := range z.shapeSpans(o.Shape, cx, cy, r, int64(2*sy+1)) {
			// Samples with centre 2sx+1 in [a, b).
			s0 := max(sLo, int(math.Ceil((s.a-1)/2)))
			s1 := min(sHi, int(math.Ceil((s.b-1)/2)))
			if s1 <= s0 {
				continue
			}
			p0, p1 := s0/ss, (s1-1)/ss
			if p0 == p1 {
				row[p0-px0] += uint16(s1 - s0)
				continue
			}
			row[p0-px0] += uint16((p0+1)*ss - s0)
			row[p1-px0] += uint16(s1 - p1*ss)
			for p := p0 + 1; p < p1; p++ {
				row[p-px0] += uint16(ss)
			}
		}
	}
	n := ss * ss
	fr, fg, fb := int(o.RGB.R), int(o.RGB.G), int(o.RGB.B)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			k := int(cov[y*w+x])
			if k == 0 {
				continue
			}
			i := img.PixOffset(px0+x, py0+y)
			p := img.Pix[i : i+3 : i+3]
			p[0] = uint8((int(p[0])*(n-k) + fr*k + n/2) / n)
			p[1] = uint8((int(p[1])*(n-k) + fg*k + n/2) / n)
			p[2] = uint8((int(p[2])*(n-k) + fb*k + n/2) / n)
		}
	}
}

// drawBackground fills img with bg.
func drawBackground(img *image.RGBA, bg Background, bgNoise float64) {
	size := img.Rect.Dx()
	c0, c1 := bg.RGB[0], bg.RGB[1]
	nr := newRNG(bg.NoiseSeed)
	amp := int(math.Round(bgNoise * 255))
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			c := c0
			switch bg.Style {
			case Gradient:
				var t, d int
				switch bg.Orient {
				case 0:
					t, d = x, size-1
				case 1:
					t, d = y, size-1
				case 2:
					t, d = x+y, 2*(size-1)
				default:
					t, d = x+size-1-y, 2*(size-1)
				}
				mix := func(a, b uint8) uint8 { return uint8((int(a)*(d-t) + int(b)*t + d/2) / d) }
				c = color.RGBA{mix(c0.R, c1.R), mix(c0.G, c1.G), mix(c0.B, c1.B), 255}
			case Stripes, Checker:
				var k int
				if bg.Style == Stripes {
					half := bg.Period / 2
					switch bg.Orient {
					case 0:
						k = (x + bg.Phase) / half
					case 1:
						k = (y + bg.Phase) / half
					case 2:
						k = (x + y + bg.Phase) / half
					default:
						k = (x + size - y + bg.Phase) / half
					}
				} else {
					k = (x+bg.Phase)/bg.Period + (y+bg.Phase/2)/bg.Period
				}
				if k%2 == 1 {
					c = c1
				}
			}
			i := img.PixOffset(x, y)
			p := img.Pix[i : i+4 : i+4]
			if bg.Style == Noise && amp > 0 {
				// Luminance noise of amplitude amp plus a third of it per channel.
				v := nr.next()
				ca := amp/3 + 1
				l := int(scale16(v, uint64(2*amp+1))) - amp
				p[0] = clamp8(int(c.R) + l + int(scale16(v>>16, uint64(2*ca+1))) - ca)
				p[1] = clamp8(int(c.G) + l + int(scale16(v>>32, uint64(2*ca+1))) - ca)
				p[2] = clamp8(int(c.B) + l + int(scale16(v>>48, uint64(2*ca+1))) - ca)
			} else {
				p[0], p[1], p[2] = c.R, c.G, c.B
			}
			p[3] = 255
		}
	}
}

// scale16 maps the low 16 bits of v to [0, m) (m <= 65536).
func scale16(v, m uint64) uint64 { return (v & 0xffff) * m >> 16 }

// addNoise adds uniform noise in [-amp, amp] to every channel.
func addNoise(img *image.RGBA, r *rng, amp int) {
	if amp <= 0 {
		return
	}
	m := uint64(2*amp + 1)
	pix := img.Pix
	for i := 0; i+3 < len(pix); i += 4 {
		v := r.next()
		pix[i] = clamp8(int(pix[i]) + int(scale16(v, m)) - amp)
		pix[i+1] = clamp8(int(pix[i+1]) + int(scale16(v>>16, m)) - amp)
		pix[i+2] = clamp8(int(pix[i+2]) + int(scale16(v>>32, m)) - amp)
	}
}

// render draws a scene.
func (z *rasterizer) render(cfg *Config, sc *scene, noise *rng) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, cfg.ImageSize, cfg.ImageSize))
	drawBackground(img, sc.bg, cfg.BackgroundNoise)
	for _, o := range sc.objects {
		z.drawObject(img, o, cfg.Supersample)
	}
	addNoise(img, noise, int(math.Round(cfg.Noise*255)))
	return img
}
