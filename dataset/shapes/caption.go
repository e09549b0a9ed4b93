package shapes

import (
	"strings"
)

// Captions are built from the scene, never from the pixels, and state only
// what is true: a noun phrase names existing objects (with a number that
// matches how many objects share the stated attributes), a relation is stated
// only where Relations says it holds, a position only where Object.Position
// says so, and a background colour only for a named background. Templates may
// leave attributes out (size, colour, background), so some captions are less
// specific than others.

var numberWords = []string{"zero", "one", "two", "three", "four", "five"}

// lexicon fixes one synonym per concept for the length of a caption.
type lexicon struct {
	r      *rng
	shapes map[Shape]noun
	colors map[Color]string
	sizes  map[Size]string
}

func newLexicon(r *rng) *lexicon {
	return &lexicon{r: r, shapes: map[Shape]noun{}, colors: map[Color]string{}, sizes: map[Size]string{}}
}

// choose returns the canonical word most of the time and a synonym otherwise.
func choose[T any](r *rng, words []T) T {
	if len(words) == 1 || r.chance(0.6) {
		return words[0]
	}
	return words[1+r.intn(len(words)-1)]
}

func (l *lexicon) shape(s Shape) noun {
	if w, ok := l.shapes[s]; ok {
		return w
	}
	w := choose(l.r, shapeNouns[s])
	l.shapes[s] = w
	return w
}

func (l *lexicon) color(c Color) string {
	if w, ok := l.colors[c]; ok {
		return w
	}
	w := choose(l.r, colorWords[c])
	l.colors[c] = w
	return w
}

func (l *lexicon) size(s Size) string {
	if w, ok := l.sizes[s]; ok {
		return w
	}
	w := choose(l.r, sizeWords[s])
	l.sizes[s] = w
	return w
}

// detail says which attributes a noun phrase states besides the shape.
type detail struct{ size, color bool }

// group is the set of objects that look the same at a given detail.
type group struct {
	o Object // representative
	n int
}

// groupObjects merges objects that agree on the stated attributes, in order of first appearance.
func groupObjects(objs []Object, d detail) []group {
	var gs []group
next:
	for _, o := range objs {
		for i := range gs {
			g := gs[i].o
			if g.Shape == o.Shape && (!d.color || g.Color == o.Color) && (!d.size || g.Size == o.Size) {
				gs[i].n++
				continue next
			}
		}
		gs = append(gs, group{o: o, n: 1})
	}
	return gs
}

func article(next string) string {
	if next != "" && strings.ContainsRune("aeiou", rune(next[0])) {
		return "an"
	}
	return "a"
}

// adjNoun is the phrase without a count: "small red circle(s)".
func (l *lexicon) adjNoun(o Object, n int, d detail) string {
	var w []string
	if d.size {
		w = append(w, l.size(o.Size))
	}
	if d.color {
		w = append(w, l.color(o.Color))
	}
	if n == 1 {
		w = append(w, l.shape(o.Shape).one)
	} else {
		w = append(w, l.shape(o.Shape).many)
	}
	return strings.Join(w, " ")
}

// np is a counted noun phrase: "a small red circle", "two green stars".
func (l *lexicon) np(g group, d detail) string {
	s := l.adjNoun(g.o, g.n, d)
	if g.n == 1 {
		return article(s) + " " + s
	}
	return numberWords[g.n] + " " + s
}

func (l *lexicon) join(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	case 2:
		return items[0] + " and " + items[1]
	}
	sep := " and "
	if l.r.chance(0.3) {
		sep = ", and "
	}
	return strings.Join(items[:len(items)-1], ", ") + sep + items[len(items)-1]
}

func (l *lexicon) list(objs []Object, d detail) string {
	var items []string
	for _, g := range groupObjects(objs, d) {
		items = append(items, l.np(g, d))
	}
	return l.join(items)
}

// pickDetail draws how specific a caption is; sizes are always stated when
// a size change tells the scene from its twin.
func pickDetail(r *rng, sc *scene) detail {
	if r.chance(0.5) || sc.reveal == "size" {
		return detail{size: true, color: true}
	}
	return detail{color: true}
}

type template int

const (
	tPrefix template = iota
	tThere
	tCount
	tRelation
	tPosition
	tBackground
	tBare
	tNoColor
	numTemplates
)

var prefixes = []string{
	"a photo of", "an image of", "an image showing", "a picture of", "a picture with",
	"a drawing of", "a rendering of", "a simple illustration of", "an illustration of",
}

// relPair is an ordered pair of objects with a relation that holds.
type relPair struct {
	a, b int
	rel  Relation
}

// relationPairs lists the relations between objects that can be told apart
// (a relation between two identical-looking objects says nothing).
func relationPairs(objs []Object) []relPair {
	var out []relPair
	for i := range objs {
		for j := range objs {
			a, b := objs[i], objs[j]
			if i == j || a.Shape == b.Shape && a.Color == b.Color && a.Size == b.Size {
				continue
			}
			for _, rel := range Relations(objs[i], objs[j]) {
				out = append(out, relPair{i, j, rel})
			}
		}
	}
	return out
}

// caption renders one template for a scene.
func caption(t template, sc *scene, r *rng) string {
	l := newLexicon(r)
	objs := sc.objects
	switch t {
	case tPrefix:
		return prefixes[r.intn(len(prefixes))] + " " + l.list(objs, pickDetail(r, sc))
	case tThere:
		d := pickDetail(r, sc)
		gs := groupObjects(objs, d)
		verb := "there is"
		if gs[0].n > 1 {
			verb = "there are"
		}
		return verb + " " + l.list(objs, d) + []string{"", " in the image", " in the picture"}[r.intn(3)]
	case tCount:
		d := pickDetail(r, sc)
		if len(objs) == 1 {
			switch r.intn(3) {
			case 0:
				return "a single " + l.adjNoun(objs[0], 1, d)
			case 1:
				return "one object: " + l.list(objs, d)
			}
			return "only one shape, " + l.list(objs, d)
		}
		return []string{"", "an image with "}[r.intn(2)] + numberWords[len(objs)] + " " +
			[]string{"objects", "shapes"}[r.intn(2)] + ": " + l.list(objs, d)
	case tRelation:
		pairs := relationPairs(objs)
		p := pairs[r.intn(len(pairs))]
		d := pickDetail(r, sc)
		if oa, ob := objs[p.a], objs[p.b]; oa.Shape == ob.Shape && oa.Color == ob.Color {
			d.size = true // they differ only in size
		}
		a := l.np(group{o: objs[p.a], n: 1}, d)
		b := l.np(group{o: objs[p.b], n: 1}, d)
		s := a + " " + choose(r, relationWords[p.rel]) + " " + b
		if r.chance(0.3) {
			s = prefixes[r.intn(len(prefixes))] + " " + s
		}
		// With a twin, every object is mentioned (the changed one may not be in the pair).
		if len(objs) > 2 && (r.chance(0.5) || sc.reveal != "") {
			var rest []Object
			for k, o := range objs {
				if k != p.a && k != p.b {
					rest = append(rest, o)
				}
			}
			s += ", and " + l.list(rest, d)
		}
		return s
	case tPosition:
		d := pickDetail(r, sc)
		var items []string
		for _, o := range objs {
			items = append(items, l.np(group{o: o, n: 1}, d)+" "+choose(r, positionPhrases(o.Position)))
		}
		s := l.join(items)
		if r.chance(0.3) {
			s = prefixes[r.intn(len(prefixes))] + " " + s
		}
		return s
	case tBackground:
		d := pickDetail(r, sc)
		var bg string
		style := choose(r, styleWords[sc.bg.Style])
		switch {
		case sc.bg.Named && r.chance(0.5):
			bg = l.color(sc.bg.Color)
		case sc.bg.Named:
			bg = style + " " + l.color(sc.bg.Color)
		default:
			bg = style
		}
		if r.chance(0.3) {
			return article(bg) + " " + bg + " background with " + l.list(objs, d)
		}
		return l.list(objs, d) + " " + []string{"on", "against"}[r.intn(2)] + " " + article(bg) + " " + bg + " background"
	case tBare:
		return l.list(objs, pickDetail(r, sc))
	case tNoColor:
		d := detail{size: r.chance(0.7) || sc.reveal == "size"}
		return prefixes[r.intn(len(prefixes))] + " " + l.list(objs, d)
	}
	panic("shapes: unknown template")
}

// captions draws cfg.CaptionsPerImage captions, each from a different
// template while there are templates left. In a hard-negative pair only
// templates that can state the difference are used: no colourless lists for
// a colour change, and only per-object positions for a swap.
func captions(cfg *Config, sc *scene, r *rng) []string {
	var ts []template
	hasRel := len(relationPairs(sc.objects)) > 0
	for t := template(0); t < numTemplates; t++ {
		switch {
		case t == tRelation && !hasRel,
			t == tNoColor && sc.reveal == "color",
			t != tPosition && sc.reveal == "swap":
			continue
		}
		ts = append(ts, t)
	}
	r.shuffle(len(ts), func(i, j int) { ts[i], ts[j] = ts[j], ts[i] })
	if sc.builtRel && hasRel {
		for i, t := range ts {
			if t == tRelation {
				ts[0], ts[i] = ts[i], ts[0]
			}
		}
	}
	out := make([]string, 0, cfg.CaptionsPerImage)
	seen := map[string]bool{}
	for k := 0; len(out) < cfg.CaptionsPerImage; k++ {
		t := ts[k%len(ts)]
		s := caption(t, sc, r)
		for try := 0; seen[s] && try < 20; try++ {
			s = caption(t, sc, r)
		}
		for try := 0; seen[s] && try < 50; try++ {
			s = caption(ts[r.intn(len(ts))], sc, r)
		}
		if seen[s] && k > 10*cfg.CaptionsPerImage {
			out = append(out, s) // a tiny scene may not have enough distinct phrasings
			continue
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
