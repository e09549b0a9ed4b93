// Package clip is a minimal, exact CLIP: the vision transformer and the text
// transformer of OpenAI's CLIP with Hugging Face parameter names, so that
// Hugging Face checkpoints load 1:1, plus the tokenizer, image preprocessing
// and zero-shot evaluation around it.
//
// Shapes: B images or texts per batch, T tokens (vision: 1 + (S/P)² with
// image size S and patch P; text: the context length), C the tower width,
// E the projection (embedding) dimension.
//
// Vision: pixels [B,3,S,S] → bias-free patch conv → prepend class token → add
// position embedding → pre_layrnorm → pre-LN blocks → post_layernorm on the
// class token → visual_projection (no bias) → [B,E].
// Text: token + position embedding → causal pre-LN blocks → final_layer_norm
// → the hidden state at the EOT position → text_projection (no bias) → [B,E].
// The EOT position is the argmax of the ids when eos_token_id is 2 (the legacy
// Hugging Face configs, where EOT 49407 is the largest id), otherwise the
// first occurrence of eos_token_id.
package clip

import (
	"fmt"
	"math"

	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// VisionModel is the image tower (Hugging Face CLIPVisionTransformer).
type VisionModel struct {
	Cfg            *TowerConfig
	ClassEmbedding *nn.Param // [C]
	PatchEmbedding *nn.Param // [C,3,P,P], no bias
	PositionEmbed  *nn.Param // [T,C]
	PreLN          *nn.LayerNorm
	Encoder        *nn.Transformer
	PostLN         *nn.LayerNorm
}

// TextModel is the text tower (Hugging Face CLIPTextTransformer).
type TextModel struct {
	Cfg            *TowerConfig
	TokenEmbedding *nn.Param // [V,C]
	PositionEmbed  *nn.Param // [context,C]
	Encoder        *nn.Transformer
	FinalLN        *nn.LayerNorm
}

// Model is a CLIP model: both towers, their projections and the logit scale.
type Model struct {
	Config           *Config
	Vision           *VisionModel
	Text             *TextModel
	VisualProjection *nn.Linear // [E, Cv], no bias
	TextProjection   *nn.Linear // [E, Ct], no bias
	LogitScale       *nn.Param  // scalar (0-d in Hugging Face files)
	// Preprocess is the image preprocessing the model expects, from its
	// directory's preprocessor_config.json (or open_clip's preprocess_cfg);
	// nil means CLIP's default at the model's image size. See ImageConfig.
	Preprocess *imageproc.Config
	// Notes say how Load read the checkpoint (layout, declared dtype,
	// defaulted and unknown config keys); zero for a model built in memory.
	Notes ConfigNotes
}

// New returns a randomly initialised model (CLIP's initialisation, seeded).
func New(cfg *Config, seed uint64) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newModel(cfg, tensor.NewRNG(seed))
}

func towerBlocks(prefix string, t *TowerConfig, rng *tensor.RNG) (*nn.Transformer, error) {
	act, err := nn.ParseActivation(t.HiddenAct)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	widths := make([]nn.BlockConfig, t.NumHiddenLayers)
	for l := range widths {
		widths[l] = nn.BlockConfig{Width: t.HiddenSize, Heads: t.Heads(l), HeadDim: t.HeadDim(),
			Hidden: t.Intermediate(l), Act: act, Eps: float32(t.LayerNormEps)}
	}
	return nn.NewTransformer(prefix+".encoder", widths, rng), nil
}

// newModel builds the parameter structure for cfg; rng == nil leaves the
// values zero (they are about to be loaded).
func newModel(cfg *Config, rng *tensor.RNG) (*Model, error) {
	cfg = cfg.Clone()
	vc, tc := &cfg.Vision, &cfg.Text
	m := &Model{Config: cfg}
	init := rng // nil: allocate only
	cv, ct := vc.HiddenSize, tc.HiddenSize
	venc, err := towerBlocks("vision_model", vc, init)
	if err != nil {
		return nil, err
	}
	tenc, err := towerBlocks("text_model", tc, init)
	if err != nil {
		return nil, err
	}
	m.Vision = &VisionModel{
		Cfg:            vc,
		ClassEmbedding: nn.NewParam("vision_model.embeddings.class_embedding", cv),
		PatchEmbedding: nn.NewParam("vision_model.embeddings.patch_embedding.weight", cv, 3, vc.PatchSize, vc.PatchSize),
		PositionEmbed:  nn.NewParam("vision_model.embeddings.position_embedding.weight", vc.NumPatches()+1, cv),
		PreLN:          nn.NewLayerNorm("vision_model.pre_layrnorm", cv, float32(vc.LayerNormEps)),
		Encoder:        venc,
		PostLN:         nn.NewLayerNorm("vision_model.post_layernorm", cv, float32(vc.LayerNormEps)),
	}
	m.Text = &TextModel{
		Cfg:            tc,
		TokenEmbedding: nn.NewParam("text_model.embeddings.token_embedding.weight", tc.VocabSize, ct),
		PositionEmbed:  nn.NewParam("text_model.embeddings.position_embedding.weight", tc.MaxPositionEmbeddings, ct),
		Encoder:        tenc,
		FinalLN:        nn.NewLayerNorm("text_model.final_layer_norm", ct, float32(tc.LayerNormEps)),
	}
	m.VisualProjection = nn.NewLinear("visual_projection", cv, cfg.ProjectionDim, false, init)
	m.TextProjection = nn.NewLinear("text_projection", ct, cfg.ProjectionDim, false, init)
	m.LogitScale = nn.NewParam("logit_scale")
	for _, p := range []*nn.Param{m.Vision.ClassEmbedding, m.Vision.PositionEmbed, m.Text.TokenEmbedding, m.Text.PositionEmbed, m.LogitScale} {
		p.NoDecay = true
	}
	m.LogitScale.Value.Data[0] = float32(cfg.LogitScaleInitValue)
	if rng != nil {
		// CLIP's initialisation (Hugging Face CLIPPreTrainedModel, factor 1).
		m.Vision.ClassEmbedding.Value.Normal(rng, 0, math.Pow(float64(cv), -0.5))
		m.Vision.PatchEmbedding.Value.Normal(rng, 0, 0.02)
		m.Vision.PositionEmbed.Value.Normal(rng, 0, 0.02)
		m.Text.TokenEmbedding.Value.Normal(rng, 0, 0.02)
		m.Text.PositionEmbed.Value.Normal(rng, 0, 0.01)
		m.VisualProjection.W.Value.Normal(rng, 0, math.Pow(float64(cv), -0.5))
		m.TextProjection.W.Value.Normal(rng, 0, math.Pow(float64(ct), -0.5))
	}
	return m, nil
}

// Params returns every parameter in a fixed order, under its Hugging Face name.
func (m *Model) Params() []*nn.Param {
	v, t := m.Vision, m.Text
	ps := []*nn.Param{v.ClassEmbedding, v.PatchEmbedding, v.PositionEmbed}
	ps = append(ps, nn.Collect(v.PreLN, v.Encoder, v.PostLN)...)
	ps = append(ps, t.TokenEmbedding, t.PositionEmbed)
	ps = append(ps, nn.Collect(t.Encoder, t.FinalLN, m.VisualProjection, m.TextProjection)...)
	return append(ps, m.LogitScale)
}

// VisionParams and TextParams split Params by tower (projections included).
func (m *Model) VisionParams() []*nn.Param {
	v := m.Vision
	ps := []*nn.Param{v.ClassEmbedding, v.PatchEmbedding, v.PositionEmbed}
	return append(ps, nn.Collect(v.PreLN, v.Encoder, v.PostLN, m.VisualProjection)...)
}

// TextParams returns the text tower's parameters and its projection.
func (m *Model) TextParams() []*nn.Param {
	t := m.Text
	ps := []*nn.Param{t.TokenEmbedding, t.PositionEmbed}
	return append(ps, nn.Collect(t.Encoder, t.FinalLN, m.TextProjection)...)
}

// SeqLen returns the vision sequence length T = 1 + (S/P)².
func (v *VisionModel) SeqLen() int { return v.Cfg.NumPatches() + 1 }

// Embed maps pixels [B,3,S,S] to the hidden states entering layer 0,
// [B·T, C]: patches, class token, position embedding, pre_layrnorm.
func (v *VisionModel) Embed(tp *ops.Tape, pixels *ops.Var) *ops.Var {
	B := pixels.Value.Shape[0]
	T, C := v.SeqLen(), v.Cfg.HiddenSize
	patches := ops.PatchEmbed(tp, pixels, v.PatchEmbedding.Var(tp), v.Cfg.PatchSize) // [B, T-1, C]
	x := ops.PrependToken(tp, patches, v.ClassEmbedding.Var(tp))                     // [B, T, C]
	pos := v.PositionEmbed.Var(tp)
	x = ops.Reshape(tp, x, B, T*C)
	x = ops.AddRowVector(tp, x, ops.Reshape(tp, pos, T*C))
	x = ops.Reshape(tp, x, B*T, C)
	return v.PreLN.Forward(tp, x)
}

// Pool applies post_layernorm to the class token of each image: hidden
// [B·T, C] → [B, C].
func (v *VisionModel) Pool(tp *ops.Tape, hidden *ops.Var) *ops.Var {
	T := v.SeqLen()
	B := hidden.Value.Shape[0] / T
	idx := make([]int, B)
	for b := range idx {
		idx[b] = b * T
	}
	return v.PostLN.Forward(tp, ops.GatherRows(tp, hidden, idx))
}

// Forward runs the whole tower: pixels [B,3,S,S] → pooled [B, C].
func (v *VisionModel) Forward(tp *ops.Tape, pixels *ops.Var) *ops.Var {
	B := pixels.Value.Shape[0]
	h := v.Encoder.Forward(tp, v.Embed(tp, pixels), B, v.SeqLen(), nn.AttnMask{})
	return v.Pool(tp, h)
}

// TextBatch is a tokenised batch: ids [B·T] zero-padded to T = context, and
// the EOT position of each row.
type TextBatch struct {
	IDs    []int
	EOTPos []int
	B, T   int
}

// Check validates a batch against the tower: ids in the vocabulary, T within
// the position table, EOT positions in range.
func (t *TextModel) Check(b *TextBatch) error {
	if b.B <= 0 || b.T <= 0 || len(b.IDs) != b.B*b.T || len(b.EOTPos) != b.B {
		return fmt.Errorf("text batch: %d ids and %d EOT positions for B=%d T=%d", len(b.IDs), len(b.EOTPos), b.B, b.T)
	}
	if b.T > t.Cfg.MaxPositionEmbeddings {
		return fmt.Errorf("text batch: context %d exceeds max_position_embeddings %d", b.T, t.Cfg.MaxPositionEmbeddings)
	}
	for i, id := range b.IDs {
		if id < 0 || id >= t.Cfg.VocabSize {
			return fmt.Errorf("text batch: token id %d at %d outside the vocabulary of %d", id, i, t.Cfg.VocabSize)
		}
	}
	for i, p := range b.EOTPos {
		if p < 0 || p >= b.T {
			return fmt.Errorf("text batch: EOT position %d of row %d outside [0,%d)", p, i, b.T)
		}
	}
	return nil
}

// EOTPositions finds the pooling position of each row of ids [B·T] with the
// rule of the config: argmax of ids when eos_token_id is 2, otherwise the
// first eos_token_id (the last position when there is none).
func EOTPositions(ids []int, B, T, eos int) []int {
	pos := make([]int, B)
	for b := 0; b < B; b++ {
		row := ids[b*T : (b+1)*T]
		p := T - 1
		if eos == 2 {
			p = 0
			for j, id := range row {
				if id > row[p] {
					p = j
				}
			}
		} else {
			for j, id := range row {
				if id == eos {
					p = j
					break
				}
			}
		}
		pos[b] = p
	}
	return pos
}

// Embed maps token ids to the hidden states entering layer 0, [B·T, C].
func (t *TextModel) Embed(tp *ops.Tape, b *TextBatch) *ops.Var {
	C := t.Cfg.HiddenSize
	x := ops.Embedding(tp, t.TokenEmbedding.Var(tp), b.IDs) // [B·T, C]
	pos := ops.SliceRows(tp, t.PositionEmbed.Var(tp), 0, b.T)
	x = ops.Reshape(tp, x, b.B, b.T*C)
	x = ops.AddRowVector(tp, x, ops.Reshape(tp, pos, b.T*C))
	return ops.Reshape(tp, x, b.B*b.T, C)
}

// Pool applies final_layer_norm and takes the EOT token of each row:
// [B·T, C] → [B, C]. (Layer norm is per token, so it is applied to the
// gathered rows only.)
func (t *TextModel) Pool(tp *ops.Tape, hidden *ops.Var, b *TextBatch) *ops.Var {
	idx := make([]int, b.B)
	for i := range idx {
		idx[i] = i*b.T + b.EOTPos[i]
	}
	return t.FinalLN.Forward(tp, ops.GatherRows(tp, hidden, idx))
}

// Mask returns the attention mask of the text tower: causal.
func (t *TextModel) Mask() nn.AttnMask { return nn.AttnMask{Causal: true} }

// Forward runs the whole tower: ids → pooled [B, C].
func (t *TextModel) Forward(tp *ops.Tape, b *TextBatch) *ops.Var {
	h := t.Encoder.Forward(tp, t.Embed(tp, b), b.B, b.T, t.Mask())
	return t.Pool(tp, h, b)
}

// EncodeImage returns projected, unnormalised image embeddings [B, E].
func (m *Model) EncodeImage(tp *ops.Tape, pixels *ops.Var) *ops.Var {
	return m.VisualProjection.Forward(tp, m.Vision.Forward(tp, pixels))
}

// EncodeText returns projected, unnormalised text embeddings [B, E].
func (m *Model) EncodeText(tp *ops.Tape, b *TextBatch) *ops.Var {
	return m.TextProjection.Forward(tp, m.Text.Forward(tp, b))
}

// NumParams returns the parameter counts of the vision tower (with its
// projection), the text tower (with its projection) and the whole model.
func (m *Model) NumParams() (vision, text, total int) {
	vision = nn.NumParams(m.VisionParams())
	text = nn.NumParams(m.TextParams())
	return vision, text, nn.NumParams(m.Params())
}
