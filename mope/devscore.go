package mope

import (
	"fmt"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/cuda"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// GPU is where scoring runs its towers on the GPU (package cuda): an open
// context and the precision of the matrix products. The zero value scores
// on the CPU.
type GPU struct {
	Ctx       *cuda.Context
	Precision cuda.Precision
}

// engine is the scoring engine recorded for g.
func (g GPU) engine() Engine {
	if g.Precision == cuda.TF32 {
		return EngineCUDATF32
	}
	return EngineCUDA
}

// Training runs run (a training loop: Distill, train.Run) with every op on
// a resident backend of g (cuda.BackendOptions.Resident: parameters,
// activations, gradients and optimiser state stay on the device for the
// whole step), then puts back the backend that was active and frees the
// device copies. It is how the training inside mope pipeline and mope demo
// runs with --device cuda, while their scoring keeps the per-op backend
// and the device towers (Options.GPU). When it returns, the host copies
// of params' values and gradients are current; nothing else the resident
// backend wrote is (train.Run syncs what checkpoints, validation and the
// teacher cache read). It swaps the process's backend (ops.SetBackend):
// no other goroutine may run ops meanwhile. With the zero g (the CPU) it
// only calls run.
func (g GPU) Training(params []*nn.Param, run func() error) error {
	if g.Ctx == nil {
		return run()
	}
	b, err := cuda.NewBackend(g.Ctx, cuda.BackendOptions{Precision: g.Precision, Resident: true})
	if err != nil {
		return fmt.Errorf("mope: resident training backend: %w", err)
	}
	prev := ops.CurrentBackend()
	ops.SetBackend(b)
	defer func() {
		ops.SetBackend(prev)
		b.Close()
	}()
	if err := run(); err != nil {
		return err
	}
	var xs [][]float32
	for _, p := range params {
		xs = append(xs, p.Value.Data)
		if p.Grad != nil {
			xs = append(xs, p.Grad.Data)
		}
	}
	b.Sync(xs...)
	return nil
}

// DeviceBatch is the items per device pass of GPU scoring when
// Options.Batch is 0.
const DeviceBatch = 256

// deviceScorer runs one tower's evaluations on the GPU (cuda.Suffix): the
// prefix cache is cuda.States, the hidden states of every calibration item
// entering a layer, kept on the device; an evaluation without a module of
// layer l uploads the edited layer (the lowering of dropHead/dropNeurons)
// and runs layers l.. on a copy of the cached states. Only the embeddings
// come back to the host.
type deviceScorer struct {
	*towerRun
	s    *cuda.Suffix
	full []*cuda.Layer
	eot  []int // text: each caption's EOT position
}

func newDeviceScorer(g GPU, m *clip.Model, tw clip.Tower, cal *Calib, batch int) (*deviceScorer, error) {
	if batch <= 0 {
		batch = DeviceBatch
	}
	r := newTowerRun(m, tw, cal, batch)
	s, err := cuda.NewSuffix(g.Ctx, m, tw, cuda.EncoderOptions{Precision: g.Precision, MaxBatch: batch})
	if err != nil {
		return nil, fmt.Errorf("mope: %s tower on the GPU: %w", tw, err)
	}
	d := &deviceScorer{towerRun: r, s: s, full: s.Layers()}
	if tw == Text {
		d.eot = cal.EOTPos[:r.n]
	}
	return d, nil
}

func (d *deviceScorer) close() { d.s.Close() }

func (d *deviceScorer) embedAll() (*cuda.States, error) {
	st, err := d.s.NewStates(d.n, d.T)
	if err != nil {
		return nil, fmt.Errorf("mope: %w", err)
	}
	for _, bt := range d.batches {
		lo, hi := bt[0], bt[1]
		if d.tower == Vision {
			px := make([]float32, (hi-lo)*3*d.cal.Size*d.cal.Size)
			d.cal.PixelsInto(px, lo, hi)
			err = d.s.EmbedImages(st, lo, px, hi-lo)
		} else {
			err = d.s.EmbedTexts(st, lo, d.textBatch(lo, hi))
		}
		if err != nil {
			st.Free()
			return nil, fmt.Errorf("mope: %w", err)
		}
	}
	return st, nil
}

// step runs layers on every item of src into new states.
func (d *deviceScorer) step(src *cuda.States, layers ...*cuda.Layer) (*cuda.States, error) {
	dst, err := d.s.NewStates(src.N, src.T)
	if err != nil {
		return nil, fmt.Errorf("mope: %w", err)
	}
	if err := d.s.RunLayers(dst, src, layers); err != nil {
		dst.Free()
		return nil, fmt.Errorf("mope: %w", err)
	}
	return dst, nil
}

func (d *deviceScorer) mid(l int, hs *cuda.States) (*cuda.States, error) {
	return d.step(hs, d.full[l].Branch(true))
}

func (d *deviceScorer) finish(l int, ms *cuda.States) (*cuda.States, error) {
	return d.step(ms, d.full[l].Branch(false))
}

func (d *deviceScorer) drop(st *cuda.States) { st.Free() }

// features uploads layer from without mod (none for a layer), runs it and
// the layers after it on start, and returns the normalised embeddings.
func (d *deviceScorer) features(start *cuda.States, from int, mod *Module, groups int) ([]float32, error) {
	layers := d.full[from:]
	if mod != nil {
		b := d.blocks[from]
		var v *cuda.Layer
		var err error
		switch mod.Kind {
		case KindHead:
			v, err = d.s.PackBlock(dropHead(b, mod.Index), true, true)
		case KindFFN:
			lo, hi := NeuronGroup(numNeurons(b), groups, mod.Index)
			v, err = d.s.PackBlock(dropNeurons(b, lo, hi), false, true)
		}
		if err != nil {
			return nil, fmt.Errorf("mope: %v: %w", *mod, err)
		}
		defer d.s.Release(v)
		layers = append([]*cuda.Layer(nil), d.full[from+1:]...)
		if v != nil { // a dropped layer has none
			layers = append([]*cuda.Layer{v}, layers...)
		}
	}
	E := d.s.E
	emb := tensor.New(d.n, E)
	if err := d.s.EmbedFrom(start, layers, d.eot, emb.Data); err != nil {
		return nil, fmt.Errorf("mope: %w", err)
	}
	// Normalised per batch, as the host scorers do.
	var out []float32
	for _, bt := range d.batches {
		t, _ := tensor.FromData(emb.Data[bt[0]*E:bt[1]*E], bt[1]-bt[0], E)
		out = append(out, ops.L2Normalize(nil, ops.Const(t)).Value.Data...)
	}
	return out, nil
}

// deviceFeatures is hostFeatures on the GPU.
func deviceFeatures(g GPU, m *clip.Model, tw clip.Tower, cal *Calib, o Options) ([]float32, error) {
	d, err := newDeviceScorer(g, m, tw, cal, o.Batch)
	if err != nil {
		return nil, err
	}
	defer d.close()
	return fullFeatures(d, o.Groups)
}

// deviceModules is hostModules on the GPU.
func deviceModules(g GPU, m *clip.Model, tw clip.Tower, cal *Calib, o Options, todo []ModuleScore, score func(ModuleScore, []float32) error) error {
	d, err := newDeviceScorer(g, m, tw, cal, o.Batch)
	if err != nil {
		return err
	}
	defer d.close()
	return scoreModules(d, todo, o.Groups, score)
}
