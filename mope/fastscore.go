package mope

import (
	"fmt"

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
type fastScorer struct {
	*towerRun
	e     *infer.Engine
	name  string
	full  []*infer.Layer
	pools [][]int // pooled row of each item, per batch
}

func newFastScorer(e *infer.Engine, r *towerRun) (*fastScorer, error) {
	f := &fastScorer{towerRun: r, e: e, name: infer.TowerVision}
	if r.tower == Text {
		f.name = infer.TowerText
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

// steps runs the given layers on every batch of start.
func (f *fastScorer) steps(start []*tensor.Tensor, layers []*infer.Layer) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(start))
	for bi, bt := range f.batches {
		out[bi] = tensor.New(start[bi].Shape...)
		if err := f.e.RunLayers(f.name, start[bi].Data, bt[1]-bt[0], f.T, layers, out[bi].Data); err != nil {
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
	E := f.e.EmbedDim()
	var out []float32
	for bi, bt := range f.batches {
		B := bt[1] - bt[0]
		emb := tensor.New(B, E)
		if err := f.e.EmbedFrom(f.name, start[bi].Data, B, f.T, layers, f.pools[bi], emb.Data); err != nil {
			return nil, fmt.Errorf("mope: %w", err)
		}
		out = append(out, ops.L2Normalize(nil, ops.Const(emb)).Value.Data...)
	}
	return out, nil
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
