// Package lower is the one lowering of a clip.Model for the inference
// engines: the fast CPU engine (package infer, f32 and bf16), the CUDA
// towers (package cuda) and, through infer, the MoPE scorer's fast path.
//
// Model validates a model once and describes each tower as the engines run
// it, so that every rule is decided here and nowhere else:
//
//   - kept heads: a HeadKeep mask is resolved into the list of kept heads;
//     the engines see only those (compacted: q/k/v rows and out_proj
//     columns of the dropped heads are left out);
//   - fused q/k/v: Attn.QKV is one [3·H·D, C] matrix (q heads, then k heads,
//     then v heads) and its bias;
//   - attention scale: nn.MultiHeadAttention.EffectiveScale (ops.AttnScale),
//     resolved to a number;
//   - activation: the hidden_act of each MLP as a tensor.Activation (the
//     GEMM epilogue's), unknown ones rejected;
//   - bias policy: a Linear's B is nil when the layer has no bias (the
//     engines then add nothing); the fused q/k/v bias is nil when none of
//     q, k, v has one and zeros stand in for a missing part otherwise; the
//     projections may have a bias (CLIP's have none);
//   - a branch that computes nothing (every head dropped, or an MLP of zero
//     width) still adds its output bias, as the reference forward does: it
//     is lowered to a bias-only branch (Block.AttnBias, Block.MLPBias);
//   - skipped layers (nn.Transformer.Skip) are left out;
//   - every shape is checked, with an error naming the tower, layer and
//     parameter.
//
// The plan refers to the model's parameter slices (no copy) except where it
// fuses or compacts (Attn.QKV, Attn.Out of a pruned layer), which
// materialise on demand so that an engine packing layer by layer holds one
// layer's copy at a time. The model must not change while a plan of it is
// in use.
package lower

import (
	"errors"
	"fmt"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/tensor"
)

// Linear is a weight matrix W [Out, In] (row-major, as nn.Linear) with an
// optional bias B [Out] (nil: none).
type Linear struct {
	In, Out int
	W       []float32
	B       []float32
	src     *nn.Linear
}

// LayerNorm is a layer norm's gain, bias and epsilon.
type LayerNorm struct {
	G, B []float32
	Eps  float32
}

// Attn is an attention branch that computes Heads ≥ 1 heads of HeadDim ≥ 1.
type Attn struct {
	Heads, HeadDim int
	// Scale multiplies q·kᵀ (the default resolved).
	Scale float32
	// Kept lists the computed heads among the layer's heads (ascending).
	Kept []int
	// OutB is out_proj's bias [C] (nil: none).
	OutB []float32

	q, k, v, out *nn.Linear
	all          int // the layer's heads, kept or not
	width        int // C
}

// Inner returns H·D, the width of the attention output.
func (a *Attn) Inner() int { return a.Heads * a.HeadDim }

// QKV returns the fused projection [3·H·D, C]: the rows of the kept heads of
// q_proj, then of k_proj, then of v_proj, and its bias (nil when none of
// them has one; zeros for a missing part otherwise). It copies.
func (a *Attn) QKV() Linear {
	D, C, in := a.HeadDim, a.width, a.Inner()
	l := Linear{In: C, Out: 3 * in, W: make([]float32, 3*in*C)}
	hasBias := a.q.B != nil || a.k.B != nil || a.v.B != nil
	if hasBias {
		l.B = make([]float32, 3*in)
	}
	for p, lin := range []*nn.Linear{a.q, a.k, a.v} {
		wd := lin.W.Value.Data
		for j, h := range a.Kept {
			copy(l.W[(p*in+j*D)*C:(p*in+(j+1)*D)*C], wd[h*D*C:(h+1)*D*C])
			if lin.B != nil {
				copy(l.B[p*in+j*D:p*in+(j+1)*D], lin.B.Value.Data[h*D:(h+1)*D])
			}
		}
	}
	return l
}

// Out returns out_proj [C, H·D] restricted to the columns of the kept heads,
// with its bias. It copies only when heads were dropped.
func (a *Attn) Out() Linear {
	D, C, in := a.HeadDim, a.width, a.Inner()
	l := Linear{In: in, Out: C, B: a.OutB, src: a.out}
	ow := a.out.W.Value.Data
	if len(a.Kept) == a.all {
		l.W = ow
		return l
	}
	full := a.all * D
	l.W = make([]float32, C*in)
	for r := 0; r < C; r++ {
		for j, h := range a.Kept {
			copy(l.W[r*in+j*D:r*in+(j+1)*D], ow[r*full+h*D:r*full+(h+1)*D])
		}
	}
	return l
}

// MLP is fc2(act(fc1(x))) with Hidden ≥ 1 neurons.
type MLP struct {
	Hidden   int
	Act      tensor.Activation
	FC1, FC2 Linear
}

// Block is one pre-LN layer as the engines run it:
//
//	h   = x + attn(LN1(x))      (Attn; or x + AttnBias; or x)
//	out = h + mlp(LN2(h))       (MLP; or h + MLPBias; or h)
type Block struct {
	// Layer is the index of the layer in its encoder (errors name it).
	Layer int
	LN1   LayerNorm
	// Attn is nil when the block computes no head.
	Attn *Attn
	// AttnBias is what an attention branch with no head left adds to the
	// stream (out_proj's bias); nil when Attn is set or nothing is added.
	AttnBias []float32
	LN2      LayerNorm
	// MLP is nil when the block computes no neuron.
	MLP *MLP
	// MLPBias is what an MLP with no neuron adds (fc2's bias); nil when MLP
	// is set or nothing is added.
	MLPBias []float32

	src *nn.Block
}

// Release drops the model's copies of the block's weight matrices (their
// Value.Data becomes nil) and the plan's references to them, for an engine
// that has packed them (infer.Options.ReleaseWeights). The block can then
// not be packed again, nor can the model run its reference forward.
func (b *Block) Release() {
	if b.src == nil {
		return
	}
	if a := b.src.SelfAttn; a != nil && b.Attn != nil {
		for _, l := range []*nn.Linear{a.Q, a.K, a.V, a.Out} {
			l.W.Value.Data = nil
		}
	}
	if m := b.src.MLP; m != nil && b.MLP != nil {
		m.FC1.W.Value.Data, m.FC2.W.Value.Data = nil, nil
		b.MLP.FC1.W, b.MLP.FC2.W = nil, nil
	}
}

// Release drops the model's copy of the matrix (Value.Data = nil) and l's
// reference to it.
func (l *Linear) Release() {
	if l.src != nil {
		l.src.W.Value.Data = nil
	}
	l.W = nil
}

// Tower is what both encoders share: the width, the sequence length the
// embeddings produce (vision: 1 + patches; text: the context length), the
// mask, the blocks that run (skipped layers left out), the final layer norm
// of the pooled rows and the projection [E, C].
type Tower struct {
	Name   string // "vision" or "text"
	Width  int
	SeqLen int
	Causal bool
	Blocks []Block
	Final  LayerNorm
	Proj   Linear
}

// Embed returns the projection dimension E.
func (t *Tower) Embed() int { return t.Proj.Out }

// Vision is the image tower: patch embedding (a bias-free convolution with
// stride = kernel = PatchSize, as a [C, Channels·P·P] matrix), class token,
// position embedding [SeqLen, C] and pre_layrnorm, then the Tower.
type Vision struct {
	Tower
	ImageSize, PatchSize, Channels int
	// Patches is (ImageSize/PatchSize)²; SeqLen is Patches + 1.
	Patches int
	Patch   Linear
	Class   []float32
	Pos     []float32
	PreLN   LayerNorm
}

// Text is the text tower: token embedding [Vocab, C] and position embedding
// [SeqLen, C] (SeqLen is the context length), then the causal Tower.
type Text struct {
	Tower
	Vocab int
	Tok   []float32
	Pos   []float32
}

// Plan is the lowering of a clip.Model.
type Plan struct {
	Vision Vision
	Text   Text
}

// ErrUnsupported is wrapped by the errors for models the engines cannot run
// (as opposed to malformed ones).
var ErrUnsupported = errors.New("not supported")

// Model lowers m. Every engine built from a model calls it (and no engine
// adds rules of its own), so a model every engine runs, or an error every
// engine returns.
func Model(m *clip.Model) (*Plan, error) {
	if m == nil || m.Vision == nil || m.Text == nil || m.VisualProjection == nil || m.TextProjection == nil ||
		m.Vision.Cfg == nil || m.Text.Cfg == nil {
		return nil, fmt.Errorf("lower: incomplete model")
	}
	p := &Plan{}
	var err error
	if p.Vision, err = vision(m); err != nil {
		return nil, fmt.Errorf("lower: vision: %w", err)
	}
	if p.Text, err = text(m); err != nil {
		return nil, fmt.Errorf("lower: text: %w", err)
	}
	return p, nil
}

func vision(m *clip.Model) (Vision, error) {
	v := m.Vision
	pw := v.PatchEmbedding
	if pw == nil || len(pw.Value.Shape) != 4 || pw.Value.Shape[2] != pw.Value.Shape[3] {
		return Vision{}, fmt.Errorf("patch embedding must be [C, channels, P, P]")
	}
	sh := pw.Value.Shape
	C, Cin, P, S := sh[0], sh[1], sh[2], v.Cfg.ImageSize
	if P <= 0 || S <= 0 || S%P != 0 {
		return Vision{}, fmt.Errorf("image size %d is not a multiple of patch %d", S, P)
	}
	if C != v.Cfg.HiddenSize || Cin <= 0 {
		return Vision{}, fmt.Errorf("patch embedding %v for hidden size %d", sh, v.Cfg.HiddenSize)
	}
	N := (S / P) * (S / P)
	out := Vision{ImageSize: S, PatchSize: P, Channels: Cin, Patches: N,
		Patch: Linear{In: Cin * P * P, Out: C, W: pw.Value.Data}}
	var err error
	if out.Class, err = vec(v.ClassEmbedding, "class embedding", C); err != nil {
		return out, err
	}
	if out.Pos, err = vec(v.PositionEmbed, "position embedding", (N+1)*C); err != nil {
		return out, err
	}
	if out.PreLN, err = layerNorm(v.PreLN, "pre_layrnorm", C); err != nil {
		return out, err
	}
	out.Tower, err = tower("vision", v.Encoder, C, N+1, false, v.PostLN, m.VisualProjection)
	return out, err
}

func text(m *clip.Model) (Text, error) {
	t := m.Text
	C, V, ctx := t.Cfg.HiddenSize, t.Cfg.VocabSize, t.Cfg.MaxPositionEmbeddings
	if C <= 0 || V <= 0 || ctx <= 0 {
		return Text{}, fmt.Errorf("hidden size %d, vocabulary %d, context %d", C, V, ctx)
	}
	out := Text{Vocab: V}
	var err error
	if out.Tok, err = vec(t.TokenEmbedding, "token embedding", V*C); err != nil {
		return out, err
	}
	if out.Pos, err = vec(t.PositionEmbed, "position embedding", ctx*C); err != nil {
		return out, err
	}
	out.Tower, err = tower("text", t.Encoder, C, ctx, true, t.FinalLN, m.TextProjection)
	return out, err
}

func vec(p *nn.Param, what string, n int) ([]float32, error) {
	if p == nil || len(p.Value.Data) != n {
		got := 0
		if p != nil {
			got = len(p.Value.Data)
		}
		return nil, fmt.Errorf("%s has %d values, want %d", what, got, n)
	}
	return p.Value.Data, nil
}

func layerNorm(l *nn.LayerNorm, what string, C int) (LayerNorm, error) {
	if l == nil || l.W == nil || l.B == nil || len(l.W.Value.Data) != C || len(l.B.Value.Data) != C {
		return LayerNorm{}, fmt.Errorf("%s is not a layer norm of width %d", what, C)
	}
	return LayerNorm{G: l.W.Value.Data, B: l.B.Value.Data, Eps: l.Eps}, nil
}

// linear checks l is [out, in] with an optional bias [out].
func linear(l *nn.Linear, what string, in, out int) (Linear, error) {
	if l == nil || l.W == nil {
		return Linear{}, fmt.Errorf("%s is missing", what)
	}
	if l.In() != in || l.Out() != out || len(l.W.Value.Data) != in*out {
		return Linear{}, fmt.Errorf("%s is %dx%d, want %dx%d", what, l.Out(), l.In(), out, in)
	}
	r := Linear{In: in, Out: out, W: l.W.Value.Data, src: l}
	if l.B != nil {
		if len(l.B.Value.Data) != out {
			return Linear{}, fmt.Errorf("%s bias has %d values, want %d", what, len(l.B.Value.Data), out)
		}
		r.B = l.B.Value.Data
	}
	return r, nil
}

func tower(name string, enc *nn.Transformer, C, T int, causal bool, final *nn.LayerNorm, proj *nn.Linear) (Tower, error) {
	tw := Tower{Name: name, Width: C, SeqLen: T, Causal: causal}
	if enc == nil {
		return tw, fmt.Errorf("no encoder")
	}
	var err error
	if tw.Final, err = layerNorm(final, "final layer norm", C); err != nil {
		return tw, err
	}
	if proj == nil {
		return tw, fmt.Errorf("projection is missing")
	}
	if tw.Proj, err = linear(proj, "projection", C, proj.Out()); err != nil {
		return tw, err
	}
	if proj.Out() <= 0 {
		return tw, fmt.Errorf("projection has no outputs")
	}
	if enc.Skip != nil && len(enc.Skip) != len(enc.Layers) {
		return tw, fmt.Errorf("%d skip flags for %d layers", len(enc.Skip), len(enc.Layers))
	}
	for i, b := range enc.Layers {
		if enc.Skip != nil && enc.Skip[i] {
			continue
		}
		lb, err := FromBlock(b, i, C)
		if err != nil {
			return tw, err
		}
		tw.Blocks = append(tw.Blocks, lb)
	}
	return tw, nil
}

// FromBlock lowers block b (layer index layer, or -1 when it stands alone)
// of a width-C encoder. Model
// uses it for every block; scoring uses it for the variants of one block.
func FromBlock(b *nn.Block, layer, C int) (Block, error) {
	out, err := fromBlock(b, layer, C)
	if err != nil && layer >= 0 {
		return Block{}, fmt.Errorf("layer %d: %w", layer, err)
	}
	return out, nil
}

func fromBlock(b *nn.Block, layer, C int) (Block, error) {
	if b == nil {
		return Block{}, fmt.Errorf("nil block")
	}
	out := Block{Layer: layer, src: b}
	var err error
	if a := b.SelfAttn; a != nil {
		if out.LN1, err = layerNorm(b.LayerNorm1, "layer_norm1", C); err != nil {
			return out, err
		}
		if out.Attn, out.AttnBias, err = attn(a, C); err != nil {
			return out, err
		}
	}
	if m := b.MLP; m != nil {
		if out.LN2, err = layerNorm(b.LayerNorm2, "layer_norm2", C); err != nil {
			return out, err
		}
		if out.MLP, out.MLPBias, err = mlp(m, C); err != nil {
			return out, err
		}
	}
	return out, nil
}

func attn(a *nn.MultiHeadAttention, C int) (*Attn, []float32, error) {
	H, D := a.Heads, a.HeadDim
	if H < 0 || D < 0 {
		return nil, nil, fmt.Errorf("attention with %d heads of %d", H, D)
	}
	inner := H * D
	lins := make([]Linear, 4)
	for i, l := range []*nn.Linear{a.Q, a.K, a.V} {
		var err error
		if lins[i], err = linear(l, [...]string{"q_proj", "k_proj", "v_proj"}[i], C, inner); err != nil {
			return nil, nil, err
		}
	}
	out, err := linear(a.Out, "out_proj", inner, C)
	if err != nil {
		return nil, nil, err
	}
	if a.HeadKeep != nil && len(a.HeadKeep) != H {
		return nil, nil, fmt.Errorf("%d head-keep flags for %d heads", len(a.HeadKeep), H)
	}
	var kept []int
	for h := 0; h < H; h++ {
		if a.HeadKeep == nil || a.HeadKeep[h] {
			kept = append(kept, h)
		}
	}
	if len(kept) == 0 || D == 0 {
		// The heads output zero; out_proj adds its bias.
		return nil, out.B, nil
	}
	scale := a.EffectiveScale()
	return &Attn{Heads: len(kept), HeadDim: D, Scale: scale, Kept: kept, OutB: out.B,
		q: a.Q, k: a.K, v: a.V, out: a.Out, all: H, width: C}, nil, nil
}

// activation maps an MLP's activation to the GEMM epilogue's: the one
// mapping every engine uses.
func activation(a nn.Activation) (tensor.Activation, error) {
	switch a {
	case nn.ActQuickGELU:
		return tensor.ActQuickGELU, nil
	case nn.ActGELU:
		return tensor.ActGELU, nil
	}
	return 0, fmt.Errorf("activation %v: %w", a, ErrUnsupported)
}

func mlp(m *nn.MLP, C int) (*MLP, []float32, error) {
	if m.FC1 == nil || m.FC2 == nil {
		return nil, nil, fmt.Errorf("MLP without fc1 or fc2")
	}
	F := m.FC1.Out()
	fc1, err := linear(m.FC1, "fc1", C, F)
	if err != nil {
		return nil, nil, err
	}
	fc2, err := linear(m.FC2, "fc2", F, C)
	if err != nil {
		return nil, nil, err
	}
	act, err := activation(m.Act)
	if err != nil {
		return nil, nil, err
	}
	if F == 0 {
		return nil, fc2.B, nil
	}
	return &MLP{Hidden: F, Act: act, FC1: fc1, FC2: fc2}, nil, nil
}
