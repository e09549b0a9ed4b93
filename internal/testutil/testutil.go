// Package testutil holds the test helpers that several packages' tests
// share (model-level ones: it imports clip, so the tests of tensor, ops and
// nn keep their own numerical harnesses). Plain comparisons and error
// checks use github.com/stretchr/testify; what is here has no testify
// equivalent.
package testutil

import (
	"math"
	"slices"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/tensor"
)

// RandomizeParams gives every vector parameter of m random values (layer
// norm gains around 1, biases and embeddings shifted by noise), seeded: the
// default initialisation leaves biases 0 and gains 1, which would hide bias
// and layer-norm bugs in an engine.
func RandomizeParams(m *clip.Model, seed uint64) {
	rng := tensor.NewRNG(seed)
	for _, p := range m.Params() {
		v := p.Value
		switch {
		case len(v.Shape) == 1 && len(v.Data) > 0 && v.Data[0] == 1: // layer norm gain
			for i := range v.Data {
				v.Data[i] = 1 + 0.1*float32(rng.NormFloat64())
			}
		case len(v.Shape) == 1:
			for i := range v.Data {
				v.Data[i] += 0.02 * float32(rng.NormFloat64())
			}
		}
	}
}

// MaxRelErr returns max|got-want| / max|want| (+Inf when the lengths
// differ or a value of got is NaN).
func MaxRelErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		num = math.Max(num, d)
		den = math.Max(den, math.Abs(float64(want[i])))
	}
	return num / den
}

// MaxRelErrRows is MaxRelErr over rows (such as a batch's embeddings):
// the largest difference over the largest reference value of all rows;
// +Inf when the numbers of rows or a row's lengths differ, or a value of
// got is NaN.
func MaxRelErrRows(got, want [][]float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range got {
		if len(got[i]) != len(want[i]) {
			return math.Inf(1)
		}
		for j := range got[i] {
			d := math.Abs(float64(got[i][j]) - float64(want[i][j]))
			if math.IsNaN(d) {
				return math.Inf(1)
			}
			num = math.Max(num, d)
			den = math.Max(den, math.Abs(float64(want[i][j])))
		}
	}
	return num / den
}

// Snapshot copies the values of ps (to compare them later with SameBits).
func Snapshot(ps []*nn.Param) [][]float32 {
	s := make([][]float32, 0, len(ps))
	for _, p := range ps {
		s = append(s, slices.Clone(p.Value.Data))
	}
	return s
}

// SameBits reports whether a and b have the same shape and bit-identical
// values (NaNs compare by their bits; -0 differs from +0).
func SameBits(a, b [][]float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				return false
			}
		}
	}
	return true
}

// MustTensor wraps data (not copied) in a tensor of shape; it panics when
// the shape does not hold len(data) values.
func MustTensor(data []float32, shape ...int) *tensor.Tensor {
	t, err := tensor.FromData(data, shape...)
	if err != nil {
		panic(err)
	}
	return t
}

// Cosine returns the cosine similarity of a and b (in float64).
func Cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}
