package shapes

import "testing"

// TestMiss classifies hand-made pairs of examples, one per kind, and
// counts the misses of a made-up ranking.
func TestMiss(t *testing.T) {
	obj := func(s Shape, c Color, size Size) Object { return Object{Shape: s, Color: c, Size: size} }
	base := Example{Index: 0, TwinOf: -1, Objects: []Object{obj(Circle, Red, Small), obj(Star, Blue, Large)}}
	twin := Example{Index: 1, TwinOf: 0, Objects: []Object{obj(Square, Red, Small), obj(Star, Blue, Large)}}
	placed := Example{Index: 2, TwinOf: -1, Objects: []Object{obj(Star, Blue, Small), obj(Circle, Red, Large)}}
	shape := Example{Index: 3, TwinOf: -1, Objects: []Object{obj(Cross, Blue, Small), obj(Ring, Red, Small)}}
	other := Example{Index: 4, TwinOf: -1, Objects: []Object{obj(Circle, Red, Small)}}
	recolour := Example{Index: 5, TwinOf: -1, Objects: []Object{obj(Circle, Green, Small), obj(Star, Blue, Large)}}
	for _, c := range []struct {
		name      string
		got, want *Example
		kind      MissKind
	}{
		{"twin", &twin, &base, MissTwin},
		{"twin, other way", &base, &twin, MissTwin},
		{"same objects elsewhere", &placed, &base, MissPlacement},
		{"same colours, other shapes", &shape, &base, MissShape},
		{"fewer objects", &other, &base, MissOther},
		{"another colour", &recolour, &base, MissOther},
	} {
		if k := Miss(c.got, c.want); k != c.kind {
			t.Errorf("%s: %s, want %s", c.name, k, c.kind)
		}
	}
	exs := []Example{base, twin, placed, shape, other, recolour}
	// Captions 0–5 belong to images 0–5; the ranking hits 0, 2 and 5 and
	// misses 1 (→ 0: twin), 3 (→ 0: shape) and 4 (→ 1: other).
	counts := Misses(exs, []int{0, 1, 2, 3, 4, 5}, []int{0, 0, 2, 0, 1, 5})
	want := map[MissKind]int{MissTwin: 1, MissShape: 1, MissOther: 1}
	for _, k := range MissKinds {
		if counts[k] != want[k] {
			t.Errorf("%s: %d misses, want %d (%v)", k, counts[k], want[k], counts)
		}
	}
	if s := FormatMisses(counts); s != "twin 1, placement 0, shape 1, other 1" {
		t.Errorf("FormatMisses: %q", s)
	}
}
