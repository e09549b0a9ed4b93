package mope

import (
	"fmt"
	"slices"
	"sort"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// resolveEngine returns the engine a run of metric uses ("" for metrics
// that do not run the towers).
func resolveEngine(metric Metric, engine Engine, gpu GPU) (Engine, error) {
	if !metric.RunsTowers() {
		return EngineAuto, nil
	}
	switch engine {
	case EngineAuto:
		if gpu.Ctx != nil {
			return gpu.engine(), nil
		}
		if ops.CurrentBackend().Name() == "cpu" {
			return EngineFast, nil
		}
		return EngineRef, nil
	case EngineFast, EngineRef:
		return engine, nil
	case EngineCUDA, EngineCUDATF32:
		if gpu.Ctx != nil && engine == gpu.engine() {
			return engine, nil
		}
	}
	return "", fmt.Errorf("mope: unknown scoring engine %q (want %s or %s)", engine, EngineFast, EngineRef)
}

// scorer runs one tower's evaluations from the prefix cache: the hidden
// states entering layer l (hs) and the mid states M_l = H_l + attn(ln1(H_l))
// (ms), one tensor per batch.
type scorer interface {
	embedAll() []*tensor.Tensor
	mid(l int, hs []*tensor.Tensor) []*tensor.Tensor
	finish(l int, ms []*tensor.Tensor) []*tensor.Tensor
	// features returns the normalised embeddings [n, E] of the model
	// (from = 0, hs the embeddings) or of the model without module mod
	// of layer from (start: hs, or ms for an FFN group).
	features(start []*tensor.Tensor, from int, mod *Module, groups int) ([]float32, error)
}

// refScorer is the reference forward (towerRun).
type refScorer struct{ *towerRun }

func (r refScorer) features(start []*tensor.Tensor, from int, mod *Module, groups int) ([]float32, error) {
	if mod == nil {
		return r.towerRun.features(start, from, nil), nil
	}
	b := r.blocks[from]
	var v *variant
	switch mod.Kind {
	case KindHead:
		v = r.headVariant(b, mod.Index)
	case KindFFN:
		lo, hi := NeuronGroup(numNeurons(b), groups, mod.Index)
		v = r.ffnVariant(b, lo, hi)
	case KindLayer:
		v = layerVariant()
	}
	return r.towerRun.features(start, from, v), nil
}

// fastScorer runs the same evaluations on an infer.Engine.
//
// It runs the text tower's captions sorted by length, each batch cut to its
// longest caption (order, ts): the tower's attention is causal, so the rows
// past a caption's end-of-text token never reach its features, and every
// row it keeps is computed as in a batch of full length (row-wise GEMMs and
// norms, softmax over the causal part of the row, and products with the
// cut-off probabilities, which are zeros). Features go back to calibration
// order (unsort), so the recalls and the scores keep their bits, with a
// fraction of the text tower's work and prefix cache (shapes captions: 14
// tokens on average, batches padded to 37 before).
type fastScorer struct {
	*towerRun
	e     *infer.Engine
	name  string
	full  []*infer.Layer
	pools [][]int // pooled row of each item, per batch
	order []int   // text: calibration index of the k-th item run; nil: identity
	ts    []int   // text: tokens per batch; nil: T for every batch
}

func newFastScorer(e *infer.Engine, r *towerRun) (*fastScorer, error) {
	f := &fastScorer{towerRun: r, e: e, name: infer.TowerVision}
	if r.tower == Text {
		f.name = infer.TowerText
		if sortText {
			f.sortByLength()
			r = f.towerRun
		}
	}
	own, err := e.Layers(f.name)
	if err != nil {
		return nil, err
	}
	_, enc := towerOf(r.m, r.tower)
	if enc.Skip == nil && len(own) == len(r.blocks) {
		f.full = own // the engine's packed layers: no second copy
	} else {
		// Skip flags: the engine left layers out, scoring runs them all
		// (as the reference path does).
		for l, b := range r.blocks {
			p, err := e.PackBlock(f.name, b, true, true)
			if err != nil {
				return nil, fmt.Errorf("mope: %s layer %d: %w", r.tower, l, err)
			}
			f.full = append(f.full, p)
		}
	}
	for _, bt := range r.batches {
		p := make([]int, bt[1]-bt[0])
		if r.tower == Text {
			copy(p, r.cal.EOTPos[bt[0]:bt[1]])
		}
		f.pools = append(f.pools, p)
	}
	return f, nil
}

// sortText enables sortByLength (a variable so that tests can compare).
var sortText = true

// sortByLength gives f its own tower run over the captions sorted by
// end-of-text position (stably), and the token count of each batch.
func (f *fastScorer) sortByLength() {
	c := f.cal
	f.order = make([]int, c.NTxt)
	for i := range f.order {
		f.order[i] = i
	}
	sort.SliceStable(f.order, func(a, b int) bool { return c.EOTPos[f.order[a]] < c.EOTPos[f.order[b]] })
	sc := *c
	// Only the tokens are run from this copy; the recalls use c, in
	// calibration order (CaptionImage left out so nothing mixes them up).
	sc.IDs, sc.EOTPos, sc.CaptionImage = make([]int, len(c.IDs)), make([]int, c.NTxt), nil
	for k, i := range f.order {
		copy(sc.IDs[k*c.T:(k+1)*c.T], c.IDs[i*c.T:(i+1)*c.T])
		sc.EOTPos[k] = c.EOTPos[i]
	}
	run := *f.towerRun
	run.cal = &sc
	f.towerRun = &run
	for _, bt := range run.batches {
		f.ts = append(f.ts, slices.Max(sc.EOTPos[bt[0]:bt[1]])+1)
	}
}

// batchT is the number of tokens batch bi runs with.
func (f *fastScorer) batchT(bi int) int {
	if f.ts == nil {
		return f.T
	}
	return f.ts[bi]
}

// unsort puts features computed in f's item order ([n, E], row by row)
// back in calibration order.
func (f *fastScorer) unsort(feats []float32) []float32 {
	if f.order == nil {
		return feats
	}
	E := len(feats) / len(f.order)
	out := make([]float32, len(feats))
	for k, i := range f.order {
		copy(out[i*E:(i+1)*E], feats[k*E:(k+1)*E])
	}
	return out
}

// embedAll returns the hidden states entering layer 0, per batch, each
// with its batch's token count.
func (f *fastScorer) embedAll() []*tensor.Tensor {
	hs := make([]*tensor.Tensor, len(f.batches))
	for bi := range f.batches {
		hs[bi] = f.embedBatch(bi)
	}
	return hs
}

// embedBatch returns the hidden states entering layer 0 of batch bi
// ([B, batchT(bi), C]).
func (f *fastScorer) embedBatch(bi int) *tensor.Tensor {
	bt := f.batches[bi]
	x := f.embed(nil, bt[0], bt[1]).Value
	B, T, Tb := bt[1]-bt[0], f.T, f.batchT(bi)
	if Tb == T {
		return x
	}
	C := x.Len() / (B * T)
	cut := tensor.New(B, Tb, C)
	for b := 0; b < B; b++ {
		copy(cut.Data[b*Tb*C:(b+1)*Tb*C], x.Data[b*T*C:b*T*C+Tb*C])
	}
	return cut
}

// steps runs the given layers on every batch of start.
func (f *fastScorer) steps(start []*tensor.Tensor, layers []*infer.Layer) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(start))
	for bi, bt := range f.batches {
		out[bi] = tensor.New(start[bi].Shape...)
		if err := f.e.RunLayers(f.name, start[bi].Data, bt[1]-bt[0], f.batchT(bi), layers, out[bi].Data); err != nil {
			panic(err) // shapes are ours: a bug, not user input
		}
	}
	return out
}

func (f *fastScorer) mid(l int, hs []*tensor.Tensor) []*tensor.Tensor {
	return f.steps(hs, []*infer.Layer{f.full[l].Branch(true)})
}

func (f *fastScorer) finish(l int, ms []*tensor.Tensor) []*tensor.Tensor {
	return f.steps(ms, []*infer.Layer{f.full[l].Branch(false)})
}

func (f *fastScorer) features(start []*tensor.Tensor, from int, mod *Module, groups int) ([]float32, error) {
	layers := f.full[from:]
	if mod != nil {
		b := f.blocks[from]
		var v *infer.Layer
		var err error
		switch mod.Kind {
		case KindHead:
			v, err = f.e.PackBlock(f.name, dropHead(b, mod.Index), true, true)
		case KindFFN:
			lo, hi := NeuronGroup(numNeurons(b), groups, mod.Index)
			v, err = f.e.PackBlock(f.name, dropNeurons(b, lo, hi), false, true)
		}
		if err != nil {
			return nil, fmt.Errorf("mope: %v: %w", *mod, err)
		}
		layers = append([]*infer.Layer(nil), f.full[from+1:]...)
		if v != nil { // a dropped layer has none
			layers = append([]*infer.Layer{v}, layers...)
		}
	}
	var out []float32
	for bi := range f.batches {
		feats, err := f.batchFeatures(bi, start[bi], layers)
		if err != nil {
			return nil, err
		}
		out = append(out, feats...)
	}
	return f.unsort(out), nil
}

// batchFeatures runs layers on batch bi's hidden states start and returns
// the batch's normalised embeddings, in f's item order.
func (f *fastScorer) batchFeatures(bi int, start *tensor.Tensor, layers []*infer.Layer) ([]float32, error) {
	bt := f.batches[bi]
	B := bt[1] - bt[0]
	emb := tensor.New(B, f.e.EmbedDim())
	if err := f.e.EmbedFrom(f.name, start.Data, B, f.batchT(bi), layers, f.pools[bi], emb.Data); err != nil {
		return nil, fmt.Errorf("mope: %w", err)
	}
	return ops.L2Normalize(nil, ops.Const(emb)).Value.Data, nil
}

// dropHead returns a copy of b without head h (HeadKeep; no attention
// branch when h was the only head).
func dropHead(b *nn.Block, h int) *nn.Block {
	attn := *b.SelfAttn
	attn.HeadKeep = make([]bool, attn.Heads)
	for i := range attn.HeadKeep {
		attn.HeadKeep[i] = i != h
	}
	nb := *b
	nb.SelfAttn = &attn
	if attn.Heads == 1 {
		nb.SelfAttn = nil
	}
	return &nb
}

// dropNeurons returns a copy of b whose MLP lacks neurons [lo, hi).
func dropNeurons(b *nn.Block, lo, hi int) *nn.Block {
	keep := make([]int, 0, numNeurons(b)-(hi-lo))
	for i := 0; i < numNeurons(b); i++ {
		if i < lo || i >= hi {
			keep = append(keep, i)
		}
	}
	nb := *b
	nb.MLP = sliceMLP(b.MLP, keep)
	return &nb
}

// newScorer returns the scorer of one tower for the given engine.
func newScorer(e *infer.Engine, m *clip.Model, tower clip.Tower, cal *Calib, batch int) (scorer, error) {
	r := newTowerRun(m, tower, cal, batch)
	if e == nil {
		return refScorer{r}, nil
	}
	return newFastScorer(e, r)
}
