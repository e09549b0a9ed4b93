package shapes

import (
	"image/color"
	"math"
)

// Object is one shape in an image. Coordinates are fractions of the image
// size, measured from the top-left corner.
type Object struct {
	Shape Shape
	Color Color
	Size  Size
	// X, Y is the centre of the object's bounding circle.
	X, Y float64
	// R is the radius of the bounding circle; the shape lies inside it.
	R float64
	// RGB is the colour actually painted: the base colour with a small jitter.
	RGB color.RGBA
	// Position is the coarse place of the centre (3×3 grid).
	Position Position
}

// Background describes how the background is painted.
type Background struct {
	Style BackgroundStyle
	// Named reports that the background has a single nameable colour, Color.
	Named bool
	Color Color
	// RGB are the colours used (the second only for gradient, stripes, checker).
	RGB [2]color.RGBA
	// Pattern parameters: orientation 0..3 (vertical, horizontal, diagonal,
	// anti-diagonal), period or cell size in pixels, and phase.
	Orient, Period, Phase int
	// NoiseSeed seeds the background's own pixel noise.
	NoiseSeed uint64
}

// Geometry thresholds, as fractions of the image size.
const (
	posLow, posHigh = 0.4, 0.6 // position grid boundaries
	posDeadBand     = 0.035    // centres this close to a boundary are not used
	edgeMargin      = 0.02     // gap between an object and the image border
	objectGap       = 0.03     // gap between two objects' bounding circles
	relMinDist      = 0.15     // minimum centre offset for a directional relation
	relDominance    = 0.5      // the cross-axis offset may be at most this share
	nextToGap       = 0.12     // largest gap between circles for "next to"
	minContrast     = 110.0    // RGB distance between an object colour and the background colours
)

var radiusRange = [numSizes][2]float64{Small: {0.085, 0.11}, Large: {0.16, 0.19}}

// positionOf maps a centre to the 3×3 grid.
func positionOf(x, y float64) Position {
	cell := func(v float64) int {
		switch {
		case v < posLow:
			return -1
		case v > posHigh:
			return 1
		}
		return 0
	}
	return Position{H: cell(x), V: cell(y)}
}

// Relations returns the spatial relations that hold from a to b, read as
// "a <relation> b": LeftOf when a's centre is at least 0.15 to the left of
// b's and the vertical offset is at most half the horizontal one (likewise
// RightOf, Above, Below), and NextTo when a horizontal relation holds and the
// gap between the two bounding circles is at most 0.12 of the image.
func Relations(a, b Object) []Relation {
	dx, dy := b.X-a.X, b.Y-a.Y
	var out []Relation
	if math.Abs(dx) >= relMinDist && math.Abs(dy) <= relDominance*math.Abs(dx) {
		if dx > 0 {
			out = append(out, LeftOf)
		} else {
			out = append(out, RightOf)
		}
		if math.Abs(dx)-a.R-b.R <= nextToGap {
			out = append(out, NextTo)
		}
	}
	if math.Abs(dy) >= relMinDist && math.Abs(dx) <= relDominance*math.Abs(dy) {
		if dy > 0 {
			out = append(out, Above)
		} else {
			out = append(out, Below)
		}
	}
	return out
}

func hasRelation(a, b Object, r Relation) bool {
	for _, x := range Relations(a, b) {
		if x == r {
			return true
		}
	}
	return false
}

func rgbDist(a, b color.RGBA) float64 {
	dr, dg, db := float64(a.R)-float64(b.R), float64(a.G)-float64(b.G), float64(a.B)-float64(b.B)
	return math.Sqrt(float64(dr*dr) + float64(dg*dg) + float64(db*db))
}

func clamp8(v int) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

func jitter(r *rng, c color.RGBA, amp int) color.RGBA {
	j := func(v uint8) uint8 { return clamp8(int(v) + r.intn(2*amp+1) - amp) }
	return color.RGBA{j(c.R), j(c.G), j(c.B), 255}
}

// tint mutes a base colour towards a light or dark grey.
func tint(c color.RGBA, grey int) color.RGBA {
	m := func(v uint8) uint8 { return uint8((int(v) + 2*grey) / 3) }
	return color.RGBA{m(c.R), m(c.G), m(c.B), 255}
}

// scene is an example's content before rendering.
type scene struct {
	objects []Object
	bg      Background
	// builtRel: the scene was built around an explicit relation, so at
	// least one caption states a relation.
	builtRel bool
	twinOf   int
	change   string
	// reveal is the change between this scene and its hard-negative twin
	// (either one of the pair), which every caption must state.
	reveal string
}

// sampleBackground draws a background with enough object colours that contrast with it.
func sampleBackground(cfg *Config, r *rng) (Background, []Color) {
	for {
		bg := Background{Style: cfg.Backgrounds[r.intn(len(cfg.Backgrounds))], NoiseSeed: r.next()}
		grey := 225
		if r.chance(0.35) {
			grey = 50
		}
		switch bg.Style {
		case Plain, Noise:
			if r.chance(cfg.NamedBackgroundProb) {
				bg.Named = true
				bg.Color = AllColors[r.intn(cfg.Colors)]
				bg.RGB[0] = jitter(r, colorRGB[bg.Color], 6)
			} else {
				bg.RGB[0] = tint(colorRGB[r.intn(int(numColors))], grey)
			}
			bg.RGB[1] = bg.RGB[0]
		default:
			a := r.intn(int(numColors))
			b := (a + 1 + r.intn(int(numColors)-1)) % int(numColors)
			bg.RGB[0] = tint(colorRGB[a], grey)
			bg.RGB[1] = tint(colorRGB[b], grey+[2]int{-30, 30}[boolInt(grey < 128)])
			bg.Orient = r.intn(4)
			bg.Phase = r.intn(64)
			if bg.Style == Stripes {
				bg.Period = 2 * (3 + r.intn(5)) * cfg.ImageSize / 64
			} else {
				bg.Period = (5 + r.intn(8)) * cfg.ImageSize / 64
			}
			if bg.Period < 2 {
				bg.Period = 2
			}
		}
		ok := contrastingColors(cfg, bg)
		if len(ok) >= 3 || (len(ok) >= 1 && cfg.Colors < 5) {
			return bg, ok
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fits reports whether o lies inside the image and away from others (except skip).
func fits(o Object, others []Object, skip int) bool {
	lo, hi := o.R+edgeMargin, 1-o.R-edgeMargin
	if o.X < lo || o.X > hi || o.Y < lo || o.Y > hi {
		return false
	}
	for i, p := range others {
		if i == skip {
			continue
		}
		// The conversions forbid FMA fusion, so the test is the same on every platform.
		dx, dy, d := o.X-p.X, o.Y-p.Y, o.R+p.R+objectGap
		if float64(dx*dx)+float64(dy*dy) < float64(d*d) {
			return false
		}
	}
	return true
}

func inDeadBand(v float64) bool {
	return math.Abs(v-posLow) < posDeadBand || math.Abs(v-posHigh) < posDeadBand
}

// place draws a centre for o that fits among others and satisfies ok.
func place(r *rng, o *Object, others []Object, ok func(Object) bool) bool {
	lo, hi := o.R+edgeMargin, 1-o.R-edgeMargin
	for try := 0; try < 200; try++ {
		o.X, o.Y = r.rangeF(lo, hi), r.rangeF(lo, hi)
		if inDeadBand(o.X) || inDeadBand(o.Y) || !fits(*o, others, -1) {
			continue
		}
		if ok != nil && !ok(*o) {
			continue
		}
		o.Position = positionOf(o.X, o.Y)
		return true
	}
	return false
}

func newObject(r *rng, shape Shape, col Color, size Size) Object {
	rr := radiusRange[size]
	return Object{Shape: shape, Color: col, Size: size, R: r.rangeF(rr[0], rr[1]), RGB: jitter(r, colorRGB[col], 10)}
}

// sampleScene draws the scene of one example, ignoring hard-negative twinning.
func sampleScene(cfg *Config, split uint64, index int) scene {
	r := newRNG(cfg.Seed, split, uint64(index), 1)
	bg, colors := sampleBackground(cfg, r)
	n := cfg.MinObjects + r.intn(cfg.MaxObjects-cfg.MinObjects+1)
	sc := scene{bg: bg, twinOf: -1}
	var specs []Object
	for i := 0; i < n; i++ {
		if i > 0 && r.chance(cfg.DuplicateProb) {
			p := specs[i-1]
			specs = append(specs, newObject(r, p.Shape, p.Color, p.Size))
			continue
		}
		specs = append(specs, newObject(r, AllShapes[r.intn(cfg.Shapes)], colors[r.intn(len(colors))], Size(r.intn(2))))
	}
	wantRel := n >= 2 && r.chance(cfg.RelationProb)
	rel := Relation(r.intn(int(numRelations)))
	// Lay the objects out; when one does not fit, start over, shrinking
	// large objects from the fifth attempt on. After ten attempts the
	// objects that could not be placed are dropped.
	var best []Object
	for attempt := 0; attempt < 10; attempt++ {
		var objs []Object
		for i := range specs {
			o := specs[i]
			if attempt >= 5 && o.Size == Large {
				o.Size, o.R = Small, radiusRange[Small][1]
			}
			var ok func(Object) bool
			if wantRel && i == 1 {
				a := objs[0]
				ok = func(b Object) bool { return hasRelation(a, b, rel) }
			}
			if place(r, &o, objs, ok) {
				objs = append(objs, o)
			} else if i < 2 {
				break // the first two carry the relation: keep the order
			}
		}
		if len(objs) > len(best) {
			best = objs
		}
		if len(objs) == len(specs) {
			break
		}
	}
	sc.objects = best
	sc.builtRel = wantRel && len(best) >= 2
	return sc
}

// sceneFor returns the scene of example index of a split, hard negatives
// included. Both examples of a twin pair record the change in reveal, so
// that all their captions state the attribute that tells them apart.
func sceneFor(cfg *Config, split uint64, index int) scene {
	if index%2 == 1 {
		base := sampleScene(cfg, split, index-1)
		if sc, ok := twin(cfg, split, index, base); ok {
			sc.twinOf = index - 1
			sc.reveal = sc.change
			return sc
		}
		return sampleScene(cfg, split, index)
	}
	sc := sampleScene(cfg, split, index)
	if t, ok := twin(cfg, split, index+1, sc); ok {
		sc.reveal = t.change
	}
	return sc
}

// twin decides whether the odd example index is a hard negative of base
// (the example before it) and, if so, returns its scene.
func twin(cfg *Config, split uint64, index int, base scene) (scene, bool) {
	if cfg.HardNegativeProb <= 0 {
		return scene{}, false
	}
	r := newRNG(cfg.Seed, split, uint64(index), 2)
	if !r.chance(cfg.HardNegativeProb) {
		return scene{}, false
	}
	return mutate(cfg, r, base)
}

// mutate changes exactly one attribute of base: an object's colour, shape or
// size, or the places of two different-looking objects.
func mutate(cfg *Config, r *rng, base scene) (scene, bool) {
	sc := base
	sc.objects = append([]Object(nil), base.objects...)
	kinds := []string{"color", "shape", "size", "swap"}
	r.shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	colors := contrastingColors(cfg, base.bg)
	for _, kind := range kinds {
		i := r.intn(len(sc.objects))
		o := sc.objects[i]
		switch kind {
		case "color":
			var cand []Color
			for _, c := range colors {
				if c != o.Color {
					cand = append(cand, c)
				}
			}
			if len(cand) == 0 {
				continue
			}
			o.Color = cand[r.intn(len(cand))]
			o.RGB = jitter(r, colorRGB[o.Color], 10)
		case "shape":
			if cfg.Shapes < 2 {
				continue
			}
			o.Shape = AllShapes[(int(o.Shape)+1+r.intn(cfg.Shapes-1))%cfg.Shapes]
		case "size":
			o.Size = 1 - o.Size
			rr := radiusRange[o.Size]
			o.R = r.rangeF(rr[0], rr[1])
			if !fits(o, sc.objects, i) || !sameRelations(sc.objects, i, o) {
				continue
			}
		case "swap":
			j := -1
			for k, p := range sc.objects {
				// Swap two objects that look different and sit in different
				// grid cells, so that position captions tell the twins apart.
				if k != i && (p.Shape != o.Shape || p.Color != o.Color) && p.Position != o.Position {
					j = k
					break
				}
			}
			if j < 0 {
				continue
			}
			a, b := sc.objects[i], sc.objects[j]
			a.X, a.Y, b.X, b.Y = b.X, b.Y, a.X, a.Y
			a.Position, b.Position = b.Position, a.Position
			trial := append([]Object(nil), sc.objects...)
			trial[i], trial[j] = a, b
			if !fits(a, trial, i) || !fits(b, trial, j) {
				continue
			}
			sc.objects = trial
			sc.change = kind
			return sc, true
		}
		sc.objects[i] = o
		sc.change = kind
		return sc, true
	}
	return base, false
}

// sameRelations reports whether replacing object i by o keeps every pairwise relation.
func sameRelations(objs []Object, i int, o Object) bool {
	for k, p := range objs {
		if k == i {
			continue
		}
		if !sameRel(Relations(objs[i], p), Relations(o, p)) || !sameRel(Relations(p, objs[i]), Relations(p, o)) {
			return false
		}
	}
	return true
}

func sameRel(a, b []Relation) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// contrastingColors lists the vocabulary colours an object may have on bg.
func contrastingColors(cfg *Config, bg Background) []Color {
	var ok []Color
	for _, c := range AllColors[:cfg.Colors] {
		if bg.Named && c == bg.Color {
			continue
		}
		if rgbDist(colorRGB[c], bg.RGB[0]) >= minContrast && rgbDist(colorRGB[c], bg.RGB[1]) >= minContrast {
			ok = append(ok, c)
		}
	}
	return ok
}
