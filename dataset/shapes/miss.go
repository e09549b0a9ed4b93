package shapes

import (
	"slices"
	"strconv"
	"strings"
)

// MissKind says how an image retrieved in place of a caption's own image
// relates to it (see Miss).
type MissKind string

// The kinds of retrieval miss, from the most to the least specific.
const (
	// MissTwin: one image is the other's hard-negative twin (TwinOf).
	MissTwin MissKind = "twin"
	// MissPlacement: the same objects (shape and colour, counted), placed
	// or sized differently.
	MissPlacement MissKind = "placement"
	// MissShape: as many objects in the same colours, other shapes.
	MissShape MissKind = "shape"
	// MissOther: anything else (other colours or another object count).
	MissOther MissKind = "other"
)

// MissKinds lists the kinds in order.
var MissKinds = []MissKind{MissTwin, MissPlacement, MissShape, MissOther}

// Miss classifies got, retrieved for a caption of want (two examples of
// one split, got != want): the first kind of MissKinds that holds.
func Miss(got, want *Example) MissKind {
	switch {
	case got.TwinOf == want.Index || want.TwinOf == got.Index:
		return MissTwin
	case slices.Equal(objectKeys(got, true), objectKeys(want, true)):
		return MissPlacement
	case slices.Equal(objectKeys(got, false), objectKeys(want, false)):
		return MissShape
	}
	return MissOther
}

// objectKeys returns the sorted colour (and shape) names of e's objects.
func objectKeys(e *Example, withShape bool) []string {
	k := make([]string, len(e.Objects))
	for i, o := range e.Objects {
		k[i] = o.Color.String()
		if withShape {
			k[i] += " " + o.Shape.String()
		}
	}
	slices.Sort(k)
	return k
}

// Misses classifies the top-1 misses of caption→image retrieval: for each
// caption c (of image captionImage[c]), top[c] is the image ranked first;
// the result counts the captions whose top image is another one, by kind.
// Indices are positions in exs.
func Misses(exs []Example, captionImage, top []int) map[MissKind]int {
	out := map[MissKind]int{}
	for c, i := range captionImage {
		if j := top[c]; j != i {
			out[Miss(&exs[j], &exs[i])]++
		}
	}
	return out
}

// FormatMisses formats counts as "twin 12, placement 3, …" in MissKinds
// order.
func FormatMisses(counts map[MissKind]int) string {
	parts := make([]string, len(MissKinds))
	for i, k := range MissKinds {
		parts[i] = string(k) + " " + strconv.Itoa(counts[k])
	}
	return strings.Join(parts, ", ")
}
