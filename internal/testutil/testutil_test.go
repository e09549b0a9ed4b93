package testutil

import (
	"math"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMaxRelErr(t *testing.T) {
	assert.Equal(t, 0.0, MaxRelErr([]float32{1, -2}, []float32{1, -2}))
	assert.InDelta(t, 0.25, MaxRelErr([]float32{1, -1.5}, []float32{1, -2}), 1e-12)
	assert.True(t, math.IsInf(MaxRelErr([]float32{1}, []float32{1, 2}), 1))
	assert.True(t, math.IsInf(MaxRelErr([]float32{float32(math.NaN())}, []float32{1}), 1))
}

func TestMaxRelErrRows(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		name      string
		got, want [][]float32
		e         float64
	}{
		{"equal", [][]float32{{1, -2}, {3}}, [][]float32{{1, -2}, {3}}, 0},
		{"over all rows", [][]float32{{1, -2}, {3.5}}, [][]float32{{1, -2}, {4}}, 0.125},
		{"rows differ", [][]float32{{1}}, [][]float32{{1}, {2}}, math.Inf(1)},
		{"a row's length differs", [][]float32{{1, 2}, {3}}, [][]float32{{1}, {2, 3}}, math.Inf(1)},
		{"NaN", [][]float32{{1}, {nan}}, [][]float32{{1}, {2}}, math.Inf(1)},
	} {
		got := MaxRelErrRows(c.got, c.want)
		if math.IsInf(c.e, 1) {
			assert.True(t, math.IsInf(got, 1), "%s: %g", c.name, got)
			continue
		}
		assert.InDelta(t, c.e, got, 1e-12, c.name)
	}
}

func TestSameBits(t *testing.T) {
	nan := float32(math.NaN())
	negZero := float32(math.Copysign(0, -1))
	for _, c := range []struct {
		name string
		a, b [][]float32
		same bool
	}{
		{"equal", [][]float32{{1, 2}, {3}}, [][]float32{{1, 2}, {3}}, true},
		{"empty", nil, [][]float32{}, true},
		{"NaN is its bits", [][]float32{{nan}}, [][]float32{{nan}}, true},
		{"-0 is not +0", [][]float32{{negZero}}, [][]float32{{0}}, false},
		{"one ulp", [][]float32{{1}}, [][]float32{{math.Nextafter32(1, 2)}}, false},
		{"fewer rows", [][]float32{{1}}, [][]float32{{1}, {2}}, false},
		{"more rows", [][]float32{{1}, {2}}, [][]float32{{1}}, false},
		{"shorter row", [][]float32{{1}}, [][]float32{{1, 2}}, false},
		{"longer row", [][]float32{{1, 2}}, [][]float32{{1}}, false},
	} {
		assert.Equal(t, c.same, SameBits(c.a, c.b), c.name)
	}
}

func TestSnapshotCopies(t *testing.T) {
	p := &nn.Param{Name: "w", Value: MustTensor([]float32{1, 2, 3}, 3)}
	s := Snapshot([]*nn.Param{p})
	p.Value.Data[0] = 5
	assert.Equal(t, [][]float32{{1, 2, 3}}, s)
	assert.False(t, SameBits(s, Snapshot([]*nn.Param{p})))
}

func TestMustTensor(t *testing.T) {
	x := MustTensor([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	assert.Equal(t, []int{2, 3}, x.Shape)
	assert.Panics(t, func() { MustTensor([]float32{1, 2, 3}, 2, 2) })
}

func TestCosine(t *testing.T) {
	assert.InDelta(t, 1, Cosine([]float32{1, 2, 3}, []float32{2, 4, 6}), 1e-12)
	assert.InDelta(t, 0, Cosine([]float32{1, 0}, []float32{0, 5}), 1e-12)
	assert.InDelta(t, -1, Cosine([]float32{1, -1}, []float32{-3, 3}), 1e-12)
}

func TestRandomizeParams(t *testing.T) {
	cfg, err := clip.Preset("tiny")
	require.NoError(t, err)
	a, err := clip.New(cfg, 1)
	require.NoError(t, err)
	b, err := clip.New(cfg, 1)
	require.NoError(t, err)
	RandomizeParams(a, 7)
	RandomizeParams(b, 7)
	ln := a.Vision.PreLN
	assert.NotEqual(t, float32(1), ln.W.Value.Data[0], "layer norm gain left at 1")
	assert.NotEqual(t, float32(0), ln.B.Value.Data[0], "layer norm bias left at 0")
	for i, p := range a.Params() {
		require.Equal(t, p.Value.Data, b.Params()[i].Value.Data, "%s differs between two runs of one seed", p.Name)
	}
}
