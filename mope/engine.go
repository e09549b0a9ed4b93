package mope

import (
	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/zeroshot"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// towerRun runs one tower over the calibration set in batches, layer by
// layer, so that scoring can keep the hidden states entering a layer and
// start every evaluation there (the prefix cache).
type towerRun struct {
	m       *clip.Model
	tower   clip.Tower
	cal     *Calib
	blocks  []*nn.Block
	mask    nn.AttnMask
	T, C    int
	n       int      // items (images or captions)
	batches [][2]int // [lo, hi) item ranges
}

func newTowerRun(m *clip.Model, tower clip.Tower, cal *Calib, batch int) *towerRun {
	r := &towerRun{m: m, tower: tower, cal: cal}
	if tower == Vision {
		r.blocks, r.T, r.C, r.n = m.Vision.Encoder.Layers, m.Vision.SeqLen(), m.Config.Vision.HiddenSize, cal.NImg
	} else {
		r.blocks, r.T, r.C, r.n = m.Text.Encoder.Layers, cal.T, m.Config.Text.HiddenSize, cal.NTxt
		r.mask = m.Text.Mask()
	}
	if batch <= 0 {
		batch = 32
		if tower == Text {
			batch = 128
		}
	}
	for lo := 0; lo < r.n; lo += batch {
		r.batches = append(r.batches, [2]int{lo, min(r.n, lo+batch)})
	}
	return r
}

func (r *towerRun) textBatch(lo, hi int) *clip.TextBatch {
	c := r.cal
	return &clip.TextBatch{IDs: c.IDs[lo*c.T : hi*c.T], EOTPos: c.EOTPos[lo:hi], B: hi - lo, T: c.T}
}

// embed returns the hidden states entering layer 0 for items [lo, hi).
func (r *towerRun) embed(tp *ops.Tape, lo, hi int) *ops.Var {
	if r.tower == Vision {
		px := tensor.New(hi-lo, 3, r.cal.Size, r.cal.Size)
		r.cal.PixelsInto(px.Data, lo, hi)
		return r.m.Vision.Embed(tp, ops.Const(px))
	}
	return r.m.Text.Embed(tp, r.textBatch(lo, hi))
}

// project pools, projects and returns the (unnormalised) embeddings.
func (r *towerRun) project(tp *ops.Tape, h *ops.Var, lo, hi int) *ops.Var {
	if r.tower == Vision {
		return r.m.VisualProjection.Forward(tp, r.m.Vision.Pool(tp, h))
	}
	return r.m.TextProjection.Forward(tp, r.m.Text.Pool(tp, h, r.textBatch(lo, hi)))
}

// variant is what replaces layer l in an evaluation: it maps the layer's
// input (or the cached mid state, fromMid) to the layer's output.
type variant struct {
	fromMid bool
	run     func(x *ops.Var, B int) *ops.Var
}

// features runs layers from..L-1 on start (one tensor per batch), with layer
// from replaced by v when v is non-nil, and returns the normalised
// embeddings [n, E].
func (r *towerRun) features(start []*tensor.Tensor, from int, v *variant) []float32 {
	var out []float32
	for bi, b := range r.batches {
		B := b[1] - b[0]
		x := ops.Const(start[bi])
		l := from
		if v != nil {
			x = v.run(x, B)
			l++
		}
		for ; l < len(r.blocks); l++ {
			x = r.blocks[l].Forward(nil, x, B, r.T, r.mask)
		}
		e := ops.L2Normalize(nil, r.project(nil, x, b[0], b[1]))
		out = append(out, e.Value.Data...)
	}
	return out
}

// embedAll returns the hidden states entering layer 0, per batch.
func (r *towerRun) embedAll() []*tensor.Tensor {
	hs := make([]*tensor.Tensor, len(r.batches))
	for bi, b := range r.batches {
		hs[bi] = r.embed(nil, b[0], b[1]).Value
	}
	return hs
}

// mid computes M_l = H_l + attn(ln1(H_l)) per batch.
func (r *towerRun) mid(l int, hs []*tensor.Tensor) []*tensor.Tensor {
	ms := make([]*tensor.Tensor, len(hs))
	for bi, b := range r.batches {
		ms[bi] = r.blocks[l].AttnResidual(nil, ops.Const(hs[bi]), b[1]-b[0], r.T, r.mask).Value
	}
	return ms
}

// finish computes H_{l+1} = M_l + mlp(ln2(M_l)) per batch.
func (r *towerRun) finish(l int, ms []*tensor.Tensor) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(ms))
	for bi := range ms {
		out[bi] = r.blocks[l].MLPResidual(nil, ops.Const(ms[bi])).Value
	}
	return out
}

// headVariant drops head h of block b (HeadKeep: the head costs nothing).
func (r *towerRun) headVariant(b *nn.Block, h int) *variant {
	nb := dropHead(b, h)
	return &variant{run: func(x *ops.Var, B int) *ops.Var { return nb.Forward(nil, x, B, r.T, r.mask) }}
}

// ffnVariant drops neurons [lo, hi) of block b's MLP: the MLP runs on a
// sliced copy of fc1/fc2, starting from the cached mid state.
func (r *towerRun) ffnVariant(b *nn.Block, lo, hi int) *variant {
	nb := dropNeurons(b, lo, hi)
	return &variant{fromMid: true, run: func(x *ops.Var, B int) *ops.Var { return nb.MLPResidual(nil, x) }}
}

// layerVariant skips the layer.
func layerVariant() *variant {
	return &variant{run: func(x *ops.Var, B int) *ops.Var { return x }}
}

// zScore is Z: the mean of TR@1/5/10 and IR@1/5/10 (percent) between image
// and text embeddings (both normalised, [nImg,E] and [nTxt,E]).
func zScore(img, txt []float32, cal *Calib, E int) float64 {
	sim := tensor.New(cal.NImg, cal.NTxt)
	a, _ := tensor.FromData(img, cal.NImg, E)
	b, _ := tensor.FromData(txt, cal.NTxt, E)
	s := ops.MatMul(nil, ops.Const(a), ops.Const(b), false, true)
	copy(sim.Data, s.Value.Data)
	return zeroshot.Retrieval(sim.Data, cal.NImg, cal.NTxt, cal.CaptionImage).Mean()
}

// meanCos returns the mean cosine similarity of matching rows of two
// normalised [n, E] matrices.
func meanCos(a, b []float32, E int) float64 {
	n := len(a) / E
	var s float64
	for i := 0; i < n; i++ {
		s += float64(tensor.Dot(a[i*E:(i+1)*E], b[i*E:(i+1)*E]))
	}
	return s / float64(n)
}
