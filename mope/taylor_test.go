package mope

import (
	"math"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// calibLoss is the loss the taylor metric differentiates, written
// independently of taylorGrads: the sum over batches of batch images (each
// with its first caption; a last batch of one image is left out) of CLIP's
// InfoNCE loss, accumulated in float64.
func calibLoss(m *clip.Model, cal *Calib, batch int) float64 {
	first := map[int]int{}
	for j, i := range cal.CaptionImage {
		if _, ok := first[i]; !ok {
			first[i] = j
		}
	}
	var sum float64
	for lo := 0; lo+1 < cal.NImg; lo += batch {
		hi := min(cal.NImg, lo+batch)
		px := tensor.New(hi-lo, 3, cal.Size, cal.Size)
		cal.PixelsInto(px.Data, lo, hi)
		tb := &clip.TextBatch{B: hi - lo, T: cal.T}
		for i := lo; i < hi; i++ {
			j := first[i]
			tb.IDs = append(tb.IDs, cal.IDs[j*cal.T:(j+1)*cal.T]...)
			tb.EOTPos = append(tb.EOTPos, cal.EOTPos[j])
		}
		img := ops.L2Normalize(nil, m.EncodeImage(nil, ops.Const(px)))
		txt := ops.L2Normalize(nil, m.EncodeText(nil, tb))
		sum += float64(ops.InfoNCE(nil, img, txt, m.LogitScale.Var(nil)).Value.Data[0])
	}
	return sum
}

// moduleWeights returns pointers to the weights of a module (the same set
// the package comment lists: q/k/v rows and biases and out_proj columns of
// a head; fc1 rows and bias and fc2 columns of a group; every parameter of a
// layer), collected independently of moduleSum.
func moduleWeights(m *clip.Model, mod Module, groups int) []*float32 {
	_, enc := towerOf(m, mod.Tower)
	b := enc.Layers[mod.Layer]
	var ws []*float32
	span := func(p *nn.Param, rows [2]int, cols [2]int) {
		sh := p.Value.Shape
		in := 1
		if len(sh) == 2 {
			in = sh[1]
		}
		for r := rows[0]; r < rows[1]; r++ {
			for c := cols[0]; c < cols[1]; c++ {
				ws = append(ws, &p.Value.Data[r*in+c])
			}
		}
	}
	switch mod.Kind {
	case KindHead:
		a := b.SelfAttn
		r := [2]int{mod.Index * a.HeadDim, (mod.Index + 1) * a.HeadDim}
		for _, l := range []*nn.Linear{a.Q, a.K, a.V} {
			span(l.W, r, [2]int{0, l.In()})
			span(l.B, r, [2]int{0, 1})
		}
		span(a.Out.W, [2]int{0, a.Out.Out()}, r)
	case KindFFN:
		lo, hi := NeuronGroup(numNeurons(b), groups, mod.Index)
		f1, f2 := b.MLP.FC1, b.MLP.FC2
		span(f1.W, [2]int{lo, hi}, [2]int{0, f1.In()})
		span(f1.B, [2]int{lo, hi}, [2]int{0, 1})
		span(f2.W, [2]int{0, f2.Out()}, [2]int{lo, hi})
	case KindLayer:
		for _, p := range b.Params() {
			for i := range p.Value.Data {
				ws = append(ws, &p.Value.Data[i])
			}
		}
	}
	return ws
}

// TestTaylorFiniteDifference checks the taylor metric, |Σ w·∂L/∂w| over a
// module's weights, against d/dε L((1+ε)·w_module) at ε = 0 (which equals
// Σ w·∂L/∂w) by central differences with Richardson extrapolation.
func TestTaylorFiniteDifference(t *testing.T) {
	m, cal, _ := fixture(t, 9)
	// Biases with values, so that leaving a bias out of a module's sum would show.
	randomBiases(m, 3)
	const groups, batch = 4, 4 // batches of 4, 4 and 1 (left out) images
	mods := []Module{
		{Vision, KindHead, 0, 1}, {Vision, KindHead, 2, 3}, {Vision, KindFFN, 1, 2}, {Vision, KindLayer, 2, 0},
		{Text, KindHead, 1, 0}, {Text, KindFFN, 0, 3}, {Text, KindFFN, 2, 1}, {Text, KindLayer, 0, 0},
	}
	f, err := Score(m, cal, Options{Metric: "taylor", Towers: clip.BothTowers, Kinds: []string{KindHead, KindFFN, KindLayer}, Groups: groups, Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	got := map[Module]float64{}
	for _, s := range f.Scores {
		got[s.Module] = s.Score
	}
	for _, mod := range mods {
		ws := moduleWeights(m, mod, groups)
		orig := make([]float32, len(ws))
		for i, w := range ws {
			orig[i] = *w
		}
		at := func(eps float64) float64 {
			for i, w := range ws {
				*w = float32(float64(orig[i]) * (1 + eps))
			}
			l := calibLoss(m, cal, batch)
			for i, w := range ws {
				*w = orig[i]
			}
			return l
		}
		d := func(eps float64) float64 { return (at(eps) - at(-eps)) / (2 * eps) }
		const eps = 2e-2
		fd := (4*d(eps/2) - d(eps)) / 3 // O(ε⁴) truncation
		want := math.Abs(fd)
		// float32 forward passes: the loss (≈ 2·ln 4) carries ~1e-6 of
		// rounding noise, i.e. ≲1e-4 in the difference quotients;
		// agreement seen: ≤ 2e-4 relative. Leaving the head biases out of the
		// sums, or one batch out of the loss, fails (tried).
		tol := 3e-3*want + 1e-4
		if diff := math.Abs(got[mod] - want); diff > tol || math.IsNaN(got[mod]) {
			t.Errorf("%v: taylor score %.6g, finite difference %.6g (|diff| %.3g > %.3g)", mod, got[mod], want, diff, tol)
		} else {
			t.Logf("%v: taylor %.6g, finite difference %.6g", mod, got[mod], want)
		}
	}
}

// TestTaylorWithoutGradBuffers: a model whose gradient buffers were dropped
// (as mope score does for the other metrics) scores the same with taylor.
func TestTaylorWithoutGradBuffers(t *testing.T) {
	m, cal, _ := fixture(t, 9)
	o := Options{Metric: "taylor", Towers: clip.BothTowers, Kinds: []string{KindHead, KindFFN, KindLayer}, Groups: 4, Batch: 4}
	want, err := Score(m, cal, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params() {
		p.Grad = nil
	}
	got, err := Score(m, cal, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Scores) != len(want.Scores) || len(got.Scores) == 0 {
		t.Fatalf("%d scores, want %d", len(got.Scores), len(want.Scores))
	}
	for i := range want.Scores {
		if got.Scores[i].Score != want.Scores[i].Score {
			t.Fatalf("%v: %v without gradient buffers, %v with", want.Scores[i].Module, got.Scores[i].Score, want.Scores[i].Score)
		}
	}
}
