package shapes

import (
	"fmt"
	"image/color"
)

// Shape is the kind of an object. The order is fixed: Config.Shapes keeps the
// first N entries of AllShapes.
type Shape int

const (
	Circle Shape = iota
	Square
	Triangle
	Star
	Cross
	Ring
	Diamond
	Heart
	Hexagon
	Crescent
	numShapes
)

// AllShapes lists every shape in vocabulary order.
var AllShapes = []Shape{Circle, Square, Triangle, Star, Cross, Ring, Diamond, Heart, Hexagon, Crescent}

// noun holds a singular and a plural form.
type noun struct{ one, many string }

// shapeNouns: the first entry is the canonical name; the others are synonyms
// used in captions. Every synonym names exactly one shape.
var shapeNouns = [numShapes][]noun{
	Circle:   {{"circle", "circles"}, {"disk", "disks"}},
	Square:   {{"square", "squares"}, {"block", "blocks"}},
	Triangle: {{"triangle", "triangles"}},
	Star:     {{"star", "stars"}},
	Cross:    {{"cross", "crosses"}, {"plus sign", "plus signs"}},
	Ring:     {{"ring", "rings"}, {"donut", "donuts"}},
	Diamond:  {{"diamond", "diamonds"}, {"rhombus", "rhombuses"}},
	Heart:    {{"heart", "hearts"}},
	Hexagon:  {{"hexagon", "hexagons"}},
	Crescent: {{"crescent", "crescents"}, {"crescent moon", "crescent moons"}},
}

func (s Shape) String() string {
	if s < 0 || s >= numShapes {
		return fmt.Sprintf("Shape(%d)", int(s))
	}
	return shapeNouns[s][0].one
}

// Synonyms returns the singular and plural nouns captions may use for s.
func (s Shape) Synonyms() (singular, plural []string) {
	for _, n := range shapeNouns[s] {
		singular = append(singular, n.one)
		plural = append(plural, n.many)
	}
	return
}

// Color is a named colour. The order is fixed: Config.Colors keeps the first N
// entries of AllColors.
type Color int

const (
	Red Color = iota
	Green
	Blue
	Yellow
	Purple
	Orange
	White
	Black
	Pink
	Cyan
	Brown
	Gray
	numColors
)

// AllColors lists every colour in vocabulary order.
var AllColors = []Color{Red, Green, Blue, Yellow, Purple, Orange, White, Black, Pink, Cyan, Brown, Gray}

var colorWords = [numColors][]string{
	Red:    {"red"},
	Green:  {"green"},
	Blue:   {"blue"},
	Yellow: {"yellow"},
	Purple: {"purple", "violet"},
	Orange: {"orange"},
	White:  {"white"},
	Black:  {"black"},
	Pink:   {"pink"},
	Cyan:   {"cyan", "turquoise"},
	Brown:  {"brown"},
	Gray:   {"gray", "grey"},
}

// colorRGB are the base values; objects jitter around them by a few levels.
// The closest pair (orange, yellow) is 81 apart in RGB distance.
var colorRGB = [numColors]color.RGBA{
	Red:    {215, 35, 35, 255},
	Green:  {40, 160, 60, 255},
	Blue:   {35, 75, 210, 255},
	Yellow: {240, 215, 30, 255},
	Purple: {130, 55, 185, 255},
	Orange: {245, 135, 20, 255},
	White:  {245, 245, 245, 255},
	Black:  {20, 20, 20, 255},
	Pink:   {245, 130, 190, 255},
	Cyan:   {40, 200, 215, 255},
	Brown:  {125, 75, 35, 255},
	Gray:   {128, 128, 128, 255},
}

func (c Color) String() string {
	if c < 0 || c >= numColors {
		return fmt.Sprintf("Color(%d)", int(c))
	}
	return colorWords[c][0]
}

// Synonyms returns the words captions may use for c.
func (c Color) Synonyms() []string { return colorWords[c] }

// RGB returns the base colour value.
func (c Color) RGB() color.RGBA { return colorRGB[c] }

// Size is small or large.
type Size int

const (
	Small Size = iota
	Large
	numSizes
)

var sizeWords = [numSizes][]string{
	Small: {"small", "little", "tiny"},
	Large: {"large", "big"},
}

func (s Size) String() string {
	if s < 0 || s >= numSizes {
		return fmt.Sprintf("Size(%d)", int(s))
	}
	return sizeWords[s][0]
}

// Synonyms returns the words captions may use for s.
func (s Size) Synonyms() []string { return sizeWords[s] }

// Position is the coarse place of an object's centre in a 3×3 grid.
type Position struct {
	H int // -1 left, 0 centre, +1 right
	V int // -1 top, 0 middle, +1 bottom
}

func (p Position) String() string {
	h := [3]string{"left", "", "right"}[p.H+1]
	v := [3]string{"top", "", "bottom"}[p.V+1]
	switch {
	case h == "" && v == "":
		return "center"
	case v == "":
		return h
	case h == "":
		return v
	}
	return v + " " + h
}

// positionPhrases gives the caption phrases for a position.
func positionPhrases(p Position) []string {
	h := [3]string{"left", "", "right"}[p.H+1]
	v := [3]string{"top", "", "bottom"}[p.V+1]
	switch {
	case h == "" && v == "":
		return []string{"in the center", "in the middle"}
	case v == "":
		return []string{"on the " + h, "on the " + h + " side"}
	case h == "":
		return []string{"at the " + v, "near the " + v}
	}
	return []string{"in the " + v + " " + h + " corner", "in the " + v + " " + h, "at the " + v + " " + h}
}

// Relation is a spatial relation from object A to object B ("A left of B").
type Relation int

const (
	LeftOf Relation = iota
	RightOf
	Above
	Below
	NextTo
	numRelations
)

var relationWords = [numRelations][]string{
	LeftOf:  {"left of", "to the left of", "on the left of"},
	RightOf: {"right of", "to the right of", "on the right of"},
	Above:   {"above", "over"},
	Below:   {"below", "under", "beneath"},
	NextTo:  {"next to", "beside"},
}

func (r Relation) String() string {
	if r < 0 || r >= numRelations {
		return fmt.Sprintf("Relation(%d)", int(r))
	}
	return relationWords[r][0]
}

// Synonyms returns the phrases captions may use for r.
func (r Relation) Synonyms() []string { return relationWords[r] }

// BackgroundStyle is how the background is painted.
type BackgroundStyle int

const (
	Plain BackgroundStyle = iota
	Noise
	Gradient
	Stripes
	Checker
	numStyles
)

var styleWords = [numStyles][]string{
	Plain:    {"plain", "solid"},
	Noise:    {"noisy", "speckled"},
	Gradient: {"gradient", "shaded"},
	Stripes:  {"striped"},
	Checker:  {"checkered", "checkerboard"},
}

func (s BackgroundStyle) String() string {
	if s < 0 || s >= numStyles {
		return fmt.Sprintf("BackgroundStyle(%d)", int(s))
	}
	return styleWords[s][0]
}

// Synonyms returns the adjectives captions may use for s.
func (s BackgroundStyle) Synonyms() []string { return styleWords[s] }
