package testutil

import (
	"math"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMaxRelErr(t *testing.T) {
	assert.Equal(t, 0.0, MaxRelErr([]float32{1, -2}, []float32{1, -2}))
	assert.InDelta(t, 0.25, MaxRelErr([]float32{1, -1.5}, []float32{1, -2}), 1e-12)
	assert.True(t, math.IsInf(MaxRelErr([]float32{1}, []float32{1, 2}), 1))
	assert.True(t, math.IsInf(MaxRelErr([]float32{float32(math.NaN())}, []float32{1}), 1))
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
