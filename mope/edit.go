package mope

import (
	"fmt"
	"strings"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/tensor"
)

// TowerPlan says what one tower keeps. Indices refer to the model the plan
// is applied to (a pruned model numbers its own heads, neurons and layers).
//
// Heads[l] and Neurons[l] list the kept heads and neurons of layer l in
// ascending order; a nil entry (JSON null), or a nil Heads/Neurons slice,
// keeps everything, an empty non-nil entry ([]) keeps nothing (the branch is
// removed). Layers lists the kept layers; nil keeps all.
type TowerPlan struct {
	Heads   [][]int `json:"heads,omitempty"`
	Neurons [][]int `json:"neurons,omitempty"`
	Layers  []int   `json:"layers,omitempty"`
}

// Plan is a TowerPlan per tower; nil leaves the tower as it is.
type Plan struct {
	Vision *TowerPlan `json:"vision,omitempty"`
	Text   *TowerPlan `json:"text,omitempty"`
}

func (p *Plan) tower(t clip.Tower) *TowerPlan {
	if p == nil {
		return nil
	}
	if t == Vision {
		return p.Vision
	}
	return p.Text
}

func (p *Plan) setTower(t clip.Tower, tp *TowerPlan) {
	if t == Vision {
		p.Vision = tp
	} else {
		p.Text = tp
	}
}

// validate checks p against a tower with the given blocks.
func (tp *TowerPlan) validate(blocks []*nn.Block) error {
	if tp == nil {
		return nil
	}
	L := len(blocks)
	if tp.Heads != nil && len(tp.Heads) != L {
		return fmt.Errorf("plan has heads for %d layers, model has %d", len(tp.Heads), L)
	}
	if tp.Neurons != nil && len(tp.Neurons) != L {
		return fmt.Errorf("plan has neurons for %d layers, model has %d", len(tp.Neurons), L)
	}
	check := func(what string, idx []int, n int) error {
		for i, v := range idx {
			if v < 0 || v >= n || (i > 0 && idx[i-1] >= v) {
				return fmt.Errorf("%s %v: must be ascending, distinct, in [0,%d)", what, idx, n)
			}
		}
		return nil
	}
	for l, b := range blocks {
		if tp.Heads != nil && tp.Heads[l] != nil {
			if err := check(fmt.Sprintf("layer %d heads", l), tp.Heads[l], numHeads(b)); err != nil {
				return err
			}
		}
		if tp.Neurons != nil && tp.Neurons[l] != nil {
			if err := check(fmt.Sprintf("layer %d neurons", l), tp.Neurons[l], numNeurons(b)); err != nil {
				return err
			}
		}
	}
	if tp.Layers != nil {
		if err := check("layers", tp.Layers, L); err != nil {
			return err
		}
	}
	return nil
}

// CloneModel returns a deep copy of m (parameters copied).
func CloneModel(m *clip.Model) *clip.Model {
	cfg := m.Config.Clone()
	v, t := *m.Vision, *m.Text
	v.Cfg, t.Cfg = &cfg.Vision, &cfg.Text
	v.ClassEmbedding, v.PatchEmbedding, v.PositionEmbed = cloneParam(v.ClassEmbedding), cloneParam(v.PatchEmbedding), cloneParam(v.PositionEmbed)
	v.PreLN, v.PostLN = cloneLN(v.PreLN), cloneLN(v.PostLN)
	v.Encoder = cloneTransformer(v.Encoder)
	t.TokenEmbedding, t.PositionEmbed = cloneParam(t.TokenEmbedding), cloneParam(t.PositionEmbed)
	t.FinalLN = cloneLN(t.FinalLN)
	t.Encoder = cloneTransformer(t.Encoder)
	return &clip.Model{Config: cfg, Vision: &v, Text: &t,
		VisualProjection: cloneLinear(m.VisualProjection), TextProjection: cloneLinear(m.TextProjection),
		LogitScale: cloneParam(m.LogitScale)}
}

func cloneParam(p *nn.Param) *nn.Param {
	if p == nil {
		return nil
	}
	return &nn.Param{Name: p.Name, Value: p.Value.Clone(), Grad: tensor.New(p.Value.Shape...), NoDecay: p.NoDecay}
}

func cloneLinear(l *nn.Linear) *nn.Linear {
	if l == nil {
		return nil
	}
	return &nn.Linear{W: cloneParam(l.W), B: cloneParam(l.B)}
}

func cloneLN(l *nn.LayerNorm) *nn.LayerNorm {
	return &nn.LayerNorm{W: cloneParam(l.W), B: cloneParam(l.B), Eps: l.Eps}
}

func cloneBlock(b *nn.Block) *nn.Block {
	nb := &nn.Block{LayerNorm1: cloneLN(b.LayerNorm1), LayerNorm2: cloneLN(b.LayerNorm2)}
	if a := b.SelfAttn; a != nil {
		na := *a
		na.Q, na.K, na.V, na.Out = cloneLinear(a.Q), cloneLinear(a.K), cloneLinear(a.V), cloneLinear(a.Out)
		na.HeadKeep = append([]bool(nil), a.HeadKeep...)
		nb.SelfAttn = &na
	}
	if m := b.MLP; m != nil {
		nb.MLP = &nn.MLP{FC1: cloneLinear(m.FC1), FC2: cloneLinear(m.FC2), Act: m.Act}
	}
	return nb
}

func cloneTransformer(t *nn.Transformer) *nn.Transformer {
	nt := &nn.Transformer{Skip: append([]bool(nil), t.Skip...)}
	if len(nt.Skip) == 0 {
		nt.Skip = nil
	}
	for _, b := range t.Layers {
		nt.Layers = append(nt.Layers, cloneBlock(b))
	}
	return nt
}

// sliceRows returns a Linear with the given output rows (weight rows and
// bias entries) of l.
func sliceRows(l *nn.Linear, rows []int) *nn.Linear {
	in := l.In()
	w := &nn.Param{Name: l.W.Name, Value: tensor.New(len(rows), in), Grad: tensor.New(len(rows), in), NoDecay: l.W.NoDecay}
	for i, r := range rows {
		copy(w.Value.Data[i*in:(i+1)*in], l.W.Value.Data[r*in:(r+1)*in])
	}
	out := &nn.Linear{W: w}
	if l.B != nil {
		out.B = &nn.Param{Name: l.B.Name, Value: tensor.New(len(rows)), Grad: tensor.New(len(rows)), NoDecay: l.B.NoDecay}
		for i, r := range rows {
			out.B.Value.Data[i] = l.B.Value.Data[r]
		}
	}
	return out
}

// sliceCols returns a Linear with the given input columns of l (bias kept).
func sliceCols(l *nn.Linear, cols []int) *nn.Linear {
	in, o := l.In(), l.Out()
	w := &nn.Param{Name: l.W.Name, Value: tensor.New(o, len(cols)), Grad: tensor.New(o, len(cols)), NoDecay: l.W.NoDecay}
	for r := 0; r < o; r++ {
		src, dst := l.W.Value.Data[r*in:(r+1)*in], w.Value.Data[r*len(cols):(r+1)*len(cols)]
		for i, c := range cols {
			dst[i] = src[c]
		}
	}
	return &nn.Linear{W: w, B: cloneParam(l.B)}
}

// sliceMLP keeps the given neurons (fc1 rows and bias, fc2 columns); nil
// when none are kept.
func sliceMLP(m *nn.MLP, keep []int) *nn.MLP {
	if len(keep) == 0 {
		return nil
	}
	return &nn.MLP{FC1: sliceRows(m.FC1, keep), FC2: sliceCols(m.FC2, keep), Act: m.Act}
}

// headRows lists the q/k/v rows (out_proj columns) of the given heads.
func headRows(heads []int, D int) []int {
	rows := make([]int, 0, len(heads)*D)
	for _, h := range heads {
		for d := 0; d < D; d++ {
			rows = append(rows, h*D+d)
		}
	}
	return rows
}

// sliceAttn keeps the given heads (q/k/v rows and biases, out_proj
// columns); nil when none are kept.
func sliceAttn(a *nn.MultiHeadAttention, keep []int) *nn.MultiHeadAttention {
	if len(keep) == 0 {
		return nil
	}
	rows := headRows(keep, a.HeadDim)
	na := *a
	na.Q, na.K, na.V = sliceRows(a.Q, rows), sliceRows(a.K, rows), sliceRows(a.V, rows)
	na.Out = sliceCols(a.Out, rows)
	na.Heads, na.HeadKeep = len(keep), nil
	return &na
}

// Apply returns a copy of m pruned as p says, with its Config updated:
// per-layer heads and MLP widths (LayerHeads, LayerIntermediate),
// NumHiddenLayers, and TeacherLayers (each kept layer remembers the teacher
// layer it came from, composed over repeated pruning). m is not changed.
// Within a tower, heads and neurons are cut first, then layers dropped.
func Apply(m *clip.Model, p *Plan) (*clip.Model, error) {
	out := CloneModel(m)
	for _, tw := range clip.AllTowers {
		tp := p.tower(tw)
		cfg, enc := towerOf(out, tw)
		if err := tp.validate(enc.Layers); err != nil {
			return nil, fmt.Errorf("mope: %s: %w", tw, err)
		}
		if tp == nil {
			continue
		}
		if enc.Skip != nil {
			return nil, fmt.Errorf("mope: %s encoder has skip flags; edit an unmasked model", tw)
		}
		prefix := "vision_model"
		if tw == Text {
			prefix = "text_model"
		}
		for l, b := range enc.Layers {
			if tp.Heads != nil && tp.Heads[l] != nil && b.SelfAttn != nil {
				b.SelfAttn = sliceAttn(b.SelfAttn, tp.Heads[l])
			}
			if tp.Neurons != nil && tp.Neurons[l] != nil && b.MLP != nil {
				b.MLP = sliceMLP(b.MLP, tp.Neurons[l])
			}
		}
		keep := tp.Layers
		if keep == nil {
			keep = make([]int, len(enc.Layers))
			for i := range keep {
				keep[i] = i
			}
		}
		var layers []*nn.Block
		teacher := make([]int, len(keep))
		for i, l := range keep {
			b := enc.Layers[l]
			renameBlock(b, prefix, l, i)
			layers = append(layers, b)
			teacher[i] = cfg.TeacherLayer(l)
		}
		enc.Layers = layers
		syncTowerConfig(cfg, enc, teacher)
	}
	if err := out.Config.Validate(); err != nil {
		return nil, fmt.Errorf("mope: pruned config: %w", err)
	}
	return out, nil
}

// renameBlock renames the parameters of a block moved from layer from to
// layer to.
func renameBlock(b *nn.Block, prefix string, from, to int) {
	if from == to {
		return
	}
	old := fmt.Sprintf("%s.encoder.layers.%d.", prefix, from)
	nw := fmt.Sprintf("%s.encoder.layers.%d.", prefix, to)
	for _, p := range b.Params() {
		p.Name = strings.Replace(p.Name, old, nw, 1)
	}
}

// syncTowerConfig writes the live per-layer widths and the teacher map
// into cfg (nil lists when they are the defaults).
func syncTowerConfig(cfg *clip.TowerConfig, enc *nn.Transformer, teacher []int) {
	L := len(enc.Layers)
	heads, inter := make([]int, L), make([]int, L)
	uniform := true
	for l, b := range enc.Layers {
		heads[l], inter[l] = numHeads(b), numNeurons(b)
		if heads[l] != cfg.NumAttentionHeads || inter[l] != cfg.IntermediateSize {
			uniform = false
		}
	}
	identity := true
	for i, t := range teacher {
		if t != i {
			identity = false
		}
	}
	// The teacher map is kept whenever layers were ever dropped, so that a
	// pruned model remembers its origin even if its layer count matches.
	if identity && len(cfg.TeacherLayers) == 0 {
		teacher = nil
	}
	cfg.NumHiddenLayers = L
	cfg.TeacherLayers = teacher
	if uniform {
		cfg.LayerHeads, cfg.LayerIntermediate = nil, nil
	} else {
		cfg.LayerHeads, cfg.LayerIntermediate = heads, inter
	}
}

// Mask returns a copy of m in which p's removals are masked instead of
// edited: HeadKeep drops heads (no FLOPs), removed neurons have their fc1
// rows and bias and fc2 columns zeroed (still computed), and removed layers
// are skipped (Transformer.Skip). Its outputs equal Apply's up to rounding;
// it exists for tests and benchmarks.
func Mask(m *clip.Model, p *Plan) (*clip.Model, error) {
	out := CloneModel(m)
	for _, tw := range clip.AllTowers {
		tp := p.tower(tw)
		_, enc := towerOf(out, tw)
		if err := tp.validate(enc.Layers); err != nil {
			return nil, fmt.Errorf("mope: %s: %w", tw, err)
		}
		if tp == nil {
			continue
		}
		for l, b := range enc.Layers {
			if tp.Heads != nil && tp.Heads[l] != nil && b.SelfAttn != nil {
				keep := make([]bool, b.SelfAttn.Heads)
				for _, h := range tp.Heads[l] {
					keep[h] = true
				}
				if len(tp.Heads[l]) == 0 {
					b.SelfAttn = nil
				} else {
					b.SelfAttn.HeadKeep = keep
				}
			}
			if tp.Neurons != nil && tp.Neurons[l] != nil && b.MLP != nil {
				kept := map[int]bool{}
				for _, i := range tp.Neurons[l] {
					kept[i] = true
				}
				fc1, fc2 := b.MLP.FC1, b.MLP.FC2
				in, I := fc1.In(), fc1.Out()
				for i := 0; i < I; i++ {
					if kept[i] {
						continue
					}
					clear(fc1.W.Value.Data[i*in : (i+1)*in])
					fc1.B.Value.Data[i] = 0
					for r := 0; r < fc2.Out(); r++ {
						fc2.W.Value.Data[r*I+i] = 0
					}
				}
			}
		}
		if tp.Layers != nil {
			enc.Skip = make([]bool, len(enc.Layers))
			for i := range enc.Skip {
				enc.Skip[i] = true
			}
			for _, l := range tp.Layers {
				enc.Skip[l] = false
			}
		}
	}
	return out, nil
}
