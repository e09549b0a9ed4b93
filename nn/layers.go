package nn

import (
	"fmt"
	"math"

	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// Std002 is the 0.02 standard deviation CLIP uses for embeddings and for
// layers without a more specific rule.
const Std002 = 0.02

// DefaultEps is the LayerNorm epsilon of CLIP (layer_norm_eps).
const DefaultEps = 1e-5

// normalParam returns a parameter drawn from N(0, std²), or zero when rng
// is nil (a parameter about to be loaded from a checkpoint).
func normalParam(name string, std float64, rng *tensor.RNG, shape ...int) *Param {
	p := NewParam(name, shape...)
	if rng != nil && std != 0 {
		p.Value.Normal(rng, 0, std)
	}
	return p
}

// Linear is y = x·Wᵀ + b with Weight [Out, In] (Hugging Face layout) and an
// optional Bias [Out]. Its parameters are "<name>.weight" and "<name>.bias".
type Linear struct {
	W *Param // weight [Out, In]
	B *Param // bias [Out]; nil for a layer without bias
}

// NewLinear returns a Linear layer named name with weights drawn from
// N(0, 0.02²) (zero when rng is nil) and a zero bias when bias is set.
func NewLinear(name string, in, out int, bias bool, rng *tensor.RNG) *Linear {
	return NewLinearStd(name, in, out, bias, Std002, rng)
}

// NewLinearStd is NewLinear with weights drawn from N(0, std²).
func NewLinearStd(name string, in, out int, bias bool, std float64, rng *tensor.RNG) *Linear {
	l := &Linear{W: normalParam(join(name, "weight"), std, rng, out, in)}
	if bias {
		l.B = NewParam(join(name, "bias"), out)
		l.B.NoDecay = true
	}
	return l
}

// In returns the input width.
func (l *Linear) In() int { return l.W.Value.Shape[1] }

// Out returns the output width.
func (l *Linear) Out() int { return l.W.Value.Shape[0] }

// Forward maps x [..., In] to [..., Out].
func (l *Linear) Forward(tp *ops.Tape, x *ops.Var) *ops.Var {
	var b *ops.Var
	if l.B != nil {
		b = l.B.Var(tp)
	}
	return ops.Linear(tp, x, l.W.Var(tp), b)
}

// Params returns weight then bias.
func (l *Linear) Params() []*Param {
	if l.B == nil {
		return []*Param{l.W}
	}
	return []*Param{l.W, l.B}
}

// LayerNorm normalises the last dimension C and applies W (γ, [C],
// initially 1) and B (β, [C], initially 0): "<name>.weight", "<name>.bias".
type LayerNorm struct {
	W, B *Param
	Eps  float32
}

// NewLayerNorm returns a LayerNorm named name over width C.
func NewLayerNorm(name string, width int, eps float32) *LayerNorm {
	ln := &LayerNorm{W: NewParam(join(name, "weight"), width), B: NewParam(join(name, "bias"), width), Eps: eps}
	ln.W.Value.Fill(1)
	ln.W.NoDecay, ln.B.NoDecay = true, true
	return ln
}

// Forward normalises x [..., C].
func (l *LayerNorm) Forward(tp *ops.Tape, x *ops.Var) *ops.Var {
	return ops.LayerNorm(tp, x, l.W.Var(tp), l.B.Var(tp), l.Eps)
}

// Params returns weight then bias.
func (l *LayerNorm) Params() []*Param { return []*Param{l.W, l.B} }

// Embedding is a lookup table Weight [N, C] (token or position embeddings).
// Its parameter is "<name>.weight", with NoDecay set.
type Embedding struct {
	W *Param
}

// NewEmbedding returns an n×dim table drawn from N(0, std²) (zero when rng
// is nil).
func NewEmbedding(name string, n, dim int, std float64, rng *tensor.RNG) *Embedding {
	e := &Embedding{W: normalParam(join(name, "weight"), std, rng, n, dim)}
	e.W.NoDecay = true
	return e
}

// Forward returns the rows ids of the table, [len(ids), C].
func (e *Embedding) Forward(tp *ops.Tape, ids []int) *ops.Var {
	return ops.Embedding(tp, e.W.Var(tp), ids)
}

// Params returns the table.
func (e *Embedding) Params() []*Param { return []*Param{e.W} }

// NewLogitScale returns CLIP's learnable log temperature: a scalar parameter
// (shape [], one value) holding value, with NoDecay set. CLIP starts it at
// ln(1/0.07).
func NewLogitScale(name string, value float32) *Param {
	p := NewParam(name)
	p.Value.Data[0] = value
	p.NoDecay = true
	return p
}

// AttnMask selects the attention masks of the layers that mix tokens. The
// zero value masks nothing (CLIP's vision encoder).
type AttnMask struct {
	// Causal masks key j for query i when j > i (CLIP's text encoder).
	Causal bool
	// KeyLens, when non-nil (len B), masks keys at positions >= KeyLens[b]
	// (padding).
	KeyLens []int
}

// MultiHeadAttention is CLIP's self-attention: separate q_proj, k_proj,
// v_proj [Heads*HeadDim, C] and out_proj [C, Heads*HeadDim], all with bias.
// The inner width Heads*HeadDim may differ from C once heads are pruned.
type MultiHeadAttention struct {
	Q, K, V, Out   *Linear
	Heads, HeadDim int
	// HeadKeep, when non-nil (len Heads), drops the heads marked false:
	// their output is exactly zero and they cost nothing (MoPE scoring).
	HeadKeep []bool
	// Scale multiplies q·kᵀ; 0 means HeadDim^-1/2.
	Scale float32
}

// NewMultiHeadAttention returns an attention layer named name (its
// projections are "<name>.q_proj" ...) over width C with heads heads of
// headDim each. q/k/v weights are drawn with std inStd, out_proj with
// outStd, in the order q, k, v, out.
func NewMultiHeadAttention(name string, width, heads, headDim int, inStd, outStd float64, rng *tensor.RNG) *MultiHeadAttention {
	inner := heads * headDim
	return &MultiHeadAttention{
		Q:       NewLinearStd(join(name, "q_proj"), width, inner, true, inStd, rng),
		K:       NewLinearStd(join(name, "k_proj"), width, inner, true, inStd, rng),
		V:       NewLinearStd(join(name, "v_proj"), width, inner, true, inStd, rng),
		Out:     NewLinearStd(join(name, "out_proj"), inner, width, true, outStd, rng),
		Heads:   heads,
		HeadDim: headDim,
	}
}

// Forward attends over the sequences of x [B*T, C] and returns [B*T, C].
func (a *MultiHeadAttention) Forward(tp *ops.Tape, x *ops.Var, B, T int, m AttnMask) *ops.Var {
	if a.Q.Out() != a.Heads*a.HeadDim {
		panic(fmt.Sprintf("nn.MultiHeadAttention: q_proj has %d outputs for %d heads of %d", a.Q.Out(), a.Heads, a.HeadDim))
	}
	q := a.Q.Forward(tp, x)
	k := a.K.Forward(tp, x)
	v := a.V.Forward(tp, x)
	o := ops.Attention(tp, q, k, v, B, T, ops.AttnOpts{
		Heads: a.Heads, Causal: m.Causal, KeyLens: m.KeyLens, HeadKeep: a.HeadKeep, Scale: a.EffectiveScale(),
	})
	return a.Out.Forward(tp, o)
}

// EffectiveScale returns the factor applied to q·kᵀ: Scale, or
// HeadDim^-1/2 when Scale is 0 (ops.AttnScale).
func (a *MultiHeadAttention) EffectiveScale() float32 { return ops.AttnScale(a.Scale, a.HeadDim) }

// Params returns q, k, v, out projections (weight, bias each).
func (a *MultiHeadAttention) Params() []*Param { return Collect(a.Q, a.K, a.V, a.Out) }

// Activation selects the MLP non-linearity.
type Activation int

const (
	// ActQuickGELU is x·σ(1.702x), OpenAI CLIP's activation.
	ActQuickGELU Activation = iota
	// ActGELU is the exact x·Φ(x).
	ActGELU
)

// String returns the Hugging Face hidden_act name.
func (a Activation) String() string {
	switch a {
	case ActQuickGELU:
		return "quick_gelu"
	case ActGELU:
		return "gelu"
	}
	return fmt.Sprintf("Activation(%d)", int(a))
}

// ParseActivation maps a Hugging Face hidden_act name to an Activation.
func ParseActivation(s string) (Activation, error) {
	switch s {
	case "quick_gelu":
		return ActQuickGELU, nil
	case "gelu":
		return ActGELU, nil
	}
	return 0, fmt.Errorf("nn: unsupported activation %q", s)
}

// MLP is fc2(act(fc1(x))) with fc1 [Hidden, C] and fc2 [C, Hidden].
type MLP struct {
	FC1, FC2 *Linear
	Act      Activation
}

// NewMLP returns an MLP named name ("<name>.fc1", "<name>.fc2") over width
// C with hidden units, fc1 drawn with std1 and fc2 with std2.
func NewMLP(name string, width, hidden int, act Activation, std1, std2 float64, rng *tensor.RNG) *MLP {
	return &MLP{
		FC1: NewLinearStd(join(name, "fc1"), width, hidden, true, std1, rng),
		FC2: NewLinearStd(join(name, "fc2"), hidden, width, true, std2, rng),
		Act: act,
	}
}

// Hidden returns the number of hidden units.
func (m *MLP) Hidden() int { return m.FC1.Out() }

// Forward maps x [..., C] to [..., C].
func (m *MLP) Forward(tp *ops.Tape, x *ops.Var) *ops.Var {
	h := m.FC1.Forward(tp, x)
	switch m.Act {
	case ActQuickGELU:
		h = ops.QuickGELU(tp, h)
	case ActGELU:
		h = ops.GELU(tp, h)
	default:
		panic(fmt.Sprintf("nn.MLP: unknown activation %v", m.Act))
	}
	return m.FC2.Forward(tp, h)
}

// Params returns fc1 then fc2.
func (m *MLP) Params() []*Param { return Collect(m.FC1, m.FC2) }

// Block is a pre-LN residual transformer layer, named as a Hugging Face
// CLIPEncoderLayer:
//
//	h   = x + self_attn(layer_norm1(x))
//	out = h + mlp(layer_norm2(h))
//
// A nil SelfAttn (every head pruned) or MLP (every unit pruned) drops that
// residual branch together with its LayerNorm from the forward pass.
type Block struct {
	LayerNorm1 *LayerNorm
	SelfAttn   *MultiHeadAttention
	LayerNorm2 *LayerNorm
	MLP        *MLP
}

// BlockConfig sizes one Block.
type BlockConfig struct {
	Width, Heads, HeadDim, Hidden int
	Act                           Activation
	Eps                           float32
}

// BlockInit holds the weight stds of a Block's linear layers.
type BlockInit struct {
	QKV, Out, FC1, FC2 float64
}

// InitCLIP returns the stds Hugging Face CLIP initialises a layer of a
// transformer with layers layers and width width with (initializer_factor
// 1): q/k/v width^-1/2·(2·layers)^-1/2, out_proj width^-1/2, fc1
// (2·width)^-1/2, fc2 width^-1/2·(2·layers)^-1/2.
func InitCLIP(width, layers int) BlockInit {
	c := float64(width)
	in := math.Pow(c, -0.5) * math.Pow(2*float64(layers), -0.5)
	return BlockInit{QKV: in, Out: math.Pow(c, -0.5), FC1: math.Pow(2*c, -0.5), FC2: in}
}

// NewBlock returns a Block named name ("<name>.layer_norm1", ...). Weights
// are drawn in the order q, k, v, out_proj, fc1, fc2 (none when rng is nil).
func NewBlock(name string, c BlockConfig, init BlockInit, rng *tensor.RNG) *Block {
	b := &Block{
		LayerNorm1: NewLayerNorm(join(name, "layer_norm1"), c.Width, c.Eps),
		LayerNorm2: NewLayerNorm(join(name, "layer_norm2"), c.Width, c.Eps),
	}
	if c.Heads > 0 {
		b.SelfAttn = NewMultiHeadAttention(join(name, "self_attn"), c.Width, c.Heads, c.HeadDim, init.QKV, init.Out, rng)
	}
	if c.Hidden > 0 {
		b.MLP = NewMLP(join(name, "mlp"), c.Width, c.Hidden, c.Act, init.FC1, init.FC2, rng)
	}
	return b
}

// Forward runs the layer on x [B*T, C]: MLPResidual(AttnResidual(x)).
func (b *Block) Forward(tp *ops.Tape, x *ops.Var, B, T int, m AttnMask) *ops.Var {
	return b.MLPResidual(tp, b.AttnResidual(tp, x, B, T, m))
}

// AttnResidual returns x + self_attn(layer_norm1(x)), the first half of the
// layer (x itself when the block has no attention).
func (b *Block) AttnResidual(tp *ops.Tape, x *ops.Var, B, T int, m AttnMask) *ops.Var {
	if b.SelfAttn == nil {
		return x
	}
	return ops.Add(tp, x, b.SelfAttn.Forward(tp, b.LayerNorm1.Forward(tp, x), B, T, m))
}

// MLPResidual returns h + mlp(layer_norm2(h)), the second half of the layer
// (h itself when the block has no MLP).
func (b *Block) MLPResidual(tp *ops.Tape, h *ops.Var) *ops.Var {
	if b.MLP == nil {
		return h
	}
	return ops.Add(tp, h, b.MLP.Forward(tp, b.LayerNorm2.Forward(tp, h)))
}

// Params returns layer_norm1, self_attn, layer_norm2, mlp, in that order
// (the layer norm of a removed branch is still listed: it stays in the
// checkpoint).
func (b *Block) Params() []*Param {
	ps := b.LayerNorm1.Params()
	if b.SelfAttn != nil {
		ps = append(ps, b.SelfAttn.Params()...)
	}
	ps = append(ps, b.LayerNorm2.Params()...)
	if b.MLP != nil {
		ps = append(ps, b.MLP.Params()...)
	}
	return ps
}

// Transformer is a stack of Blocks named "<name>.layers.N" (name is e.g.
// "vision_model.encoder").
type Transformer struct {
	Layers []*Block
	// Skip, when non-nil (len(Layers)), makes Forward pass over the layers
	// marked true (identity), e.g. for depth pruning or layer-drop scoring.
	Skip []bool
}

// NewTransformer builds one Block per entry of layers (per-layer widths
// allowed: a pruned model has its own heads and hidden units in every
// layer), initialised as InitCLIP(layers[0].Width, len(layers)) layer after
// layer (zero weights when rng is nil).
func NewTransformer(name string, layers []BlockConfig, rng *tensor.RNG) *Transformer {
	t := &Transformer{}
	if len(layers) == 0 {
		return t
	}
	init := InitCLIP(layers[0].Width, len(layers))
	for i, bc := range layers {
		if bc.Width != layers[0].Width {
			panic(fmt.Sprintf("nn.NewTransformer: layer %d has width %d, layer 0 %d", i, bc.Width, layers[0].Width))
		}
		t.Layers = append(t.Layers, NewBlock(join(name, fmt.Sprintf("layers.%d", i)), bc, init, rng))
	}
	return t
}

// Uniform returns n identical layer configurations, for NewTransformer.
func Uniform(n int, c BlockConfig) []BlockConfig {
	cs := make([]BlockConfig, n)
	for i := range cs {
		cs[i] = c
	}
	return cs
}

// Forward runs every kept layer on x [B*T, C].
func (t *Transformer) Forward(tp *ops.Tape, x *ops.Var, B, T int, m AttnMask) *ops.Var {
	out, _ := t.forward(tp, x, B, T, m, false)
	return out
}

// ForwardHidden is Forward that also returns the hidden states as Hugging
// Face's output_hidden_states does: hidden[0] is x and hidden[i+1] the output
// of layer i (for a skipped layer, its input), len(Layers)+1 in all. They are
// ordinary Vars of tp, usable in distillation losses.
func (t *Transformer) ForwardHidden(tp *ops.Tape, x *ops.Var, B, T int, m AttnMask) (out *ops.Var, hidden []*ops.Var) {
	return t.forward(tp, x, B, T, m, true)
}

func (t *Transformer) forward(tp *ops.Tape, x *ops.Var, B, T int, m AttnMask, keep bool) (*ops.Var, []*ops.Var) {
	if t.Skip != nil && len(t.Skip) != len(t.Layers) {
		panic(fmt.Sprintf("nn.Transformer: %d skip flags for %d layers", len(t.Skip), len(t.Layers)))
	}
	var hidden []*ops.Var
	if keep {
		hidden = make([]*ops.Var, 0, len(t.Layers)+1)
		hidden = append(hidden, x)
	}
	for i, b := range t.Layers {
		if t.Skip == nil || !t.Skip[i] {
			x = b.Forward(tp, x, B, T, m)
		}
		if keep {
			hidden = append(hidden, x)
		}
	}
	return x, hidden
}

// Params returns the parameters of every layer (skipped ones included), layer
// by layer.
func (t *Transformer) Params() []*Param {
	var ps []*Param
	for _, b := range t.Layers {
		ps = append(ps, b.Params()...)
	}
	return ps
}
