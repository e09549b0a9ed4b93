package export

import (
	"fmt"
	"math"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/lower"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/tensor"
)

// ONNX versions written: opset 17 (the first with LayerNormalization) and
// the IR version that goes with it (ONNX 1.12).
const (
	Opset     = 17
	IRVersion = 8
)

// File names and graph input/output names of an ONNX export.
const (
	ImageEncoderFile = "image_encoder.onnx"
	TextEncoderFile  = "text_encoder.onnx"
	PixelValues      = "pixel_values"
	ImageEmbeds      = "image_embeds"
	InputIDs         = "input_ids"
	TextEmbeds       = "text_embeds"
)

// onnx element type codes used by Cast's "to" attribute.
const castToFloat = int64(Float)

// checkExportable rejects models that carry scoring-time masks for the HF
// export, which writes the model's parameters as they are.
func checkExportable(m *clip.Model) error {
	for _, tw := range []struct {
		name string
		enc  *nn.Transformer
	}{{"vision", m.Vision.Encoder}, {"text", m.Text.Encoder}} {
		if tw.enc.Skip != nil {
			return fmt.Errorf("export: %s encoder has layer skip flags (a masked model); apply the plan first", tw.name)
		}
		for l, b := range tw.enc.Layers {
			if b.SelfAttn != nil && b.SelfAttn.HeadKeep != nil {
				return fmt.Errorf("export: %s layer %d has a head mask (a masked model); apply the plan first", tw.name, l)
			}
		}
	}
	return nil
}

// ImageEncoder returns the ONNX model of m's image tower: pixel_values
// float32 [batch,3,S,S] → image_embeds float32 [batch,E], the projected,
// unnormalised embeddings. The graph is built from the model's lowering
// (package clip/lower, the one description every engine runs): each kept
// layer with its own widths, q/k/v fused, removed heads, branches and
// layers absent.
func ImageEncoder(m *clip.Model) (*ModelProto, error) {
	p, err := lower.Model(m)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return imageGraph(&p.Vision, m), nil
}

func imageGraph(v *lower.Vision, m *clip.Model) *ModelProto {
	b := newBuilder("mopeclip_image_encoder")
	S, P, C, Cin := v.ImageSize, v.PatchSize, v.Width, v.Channels
	g, T := S/P, v.SeqLen
	b.g.Inputs = []ValueInfo{{Name: PixelValues, DType: Float, Shape: []Dim{{Param: "batch"}, {Value: Cin}, {Value: S}, {Value: S}}}}
	b.used[PixelValues] = true

	// Patches: a stride-P convolution without bias → [B, g², C].
	x := b.op("patch_embeds", "Conv", []string{PixelValues, b.weight("vision_model.embeddings.patch_embedding.weight", v.Patch.W, C, Cin, P, P)},
		AttrInts("kernel_shape", int64(P), int64(P)), AttrInts("strides", int64(P), int64(P)))
	x = b.op("patches", "Reshape", []string{x, b.ints(0, int64(C), int64(g*g))})
	x = b.op("patches_t", "Transpose", []string{x}, AttrInts("perm", 0, 2, 1))
	// A zero row in front of the patches, then one [T,C] addend holding the
	// class embedding plus position 0 in row 0 and the position embedding
	// elsewhere: the class token without an Expand over the dynamic batch.
	x = b.op("tokens", "Pad", []string{x, b.ints(0, 1, 0, 0, 0, 0)})
	pos := append([]float32(nil), v.Pos...)
	for c := 0; c < C; c++ {
		pos[c] = v.Class[c] + pos[c]
	}
	x = b.op("embeddings", "Add", []string{x, b.weight("vision_model.embeddings.class_and_position", pos, T, C)})
	x = b.op("embeddings_2d", "Reshape", []string{x, b.ints(-1, int64(C))})
	x = layerNorm(b, "vision_model.pre_layrnorm", x, v.PreLN, C)

	heads := func(h, d int) string { return b.ints(-1, int64(T), int64(h), int64(d)) }
	merge := func(hd int) string { return b.ints(-1, int64(hd)) }
	for i := range v.Blocks {
		blk := &v.Blocks[i]
		x = block(b, fmt.Sprintf("vision_model.encoder.layers.%d", blk.Layer), x, blk, C, heads, merge, "")
	}
	x = b.op("last_hidden", "Reshape", []string{x, b.ints(-1, int64(T), int64(C))})
	x = b.op("class_token", "Gather", []string{x, b.int0("class_index", 0)}, AttrI("axis", 1))
	x = layerNorm(b, "vision_model.post_layernorm", x, v.Final, C)
	linearAs(b, ImageEmbeds, "visual_projection", x, &v.Proj)
	b.g.Outputs = []ValueInfo{{Name: ImageEmbeds, DType: Float, Shape: []Dim{{Param: "batch"}, {Value: v.Proj.Out}}}}
	return model(b, m, "CLIP image encoder: pixel_values [batch,3,S,S] → image_embeds [batch,E] (projected, unnormalised)")
}

// TextEncoder returns the ONNX model of m's text tower: input_ids int64
// [batch,T] (T ≤ the context; ids after a row's end-of-text token are
// ignored) → text_embeds float32 [batch,E]. The pooled position is found as
// the model does: the argmax of the ids when eos_token_id is 2 (legacy
// configs), else the first eos_token_id (the last position when a row has
// none).
func TextEncoder(m *clip.Model) (*ModelProto, error) {
	p, err := lower.Model(m)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return textGraph(&p.Text, m), nil
}

func textGraph(t *lower.Text, m *clip.Model) *ModelProto {
	b := newBuilder("mopeclip_text_encoder")
	C, ctx := t.Width, t.SeqLen
	b.g.Inputs = []ValueInfo{{Name: InputIDs, DType: Int64, Shape: []Dim{{Param: "batch"}, {Param: "sequence"}}}}
	b.used[InputIDs] = true

	seq := b.op("sequence_length", "Shape", []string{InputIDs}, AttrI("start", 1), AttrI("end", 2)) // [1]
	tok := b.weight("text_model.embeddings.token_embedding.weight", t.Tok, t.Vocab, C)
	x := b.op("token_embeds", "Gather", []string{tok, InputIDs}, AttrI("axis", 0))
	pos := b.weight("text_model.embeddings.position_embedding.weight", t.Pos, ctx, C)
	pos = b.op("position_embeds", "Slice", []string{pos, b.ints(0), seq, b.ints(0)})
	x = b.op("embeddings", "Add", []string{x, pos})
	x = b.op("embeddings_2d", "Reshape", []string{x, b.ints(-1, int64(C))})

	// Causal mask: 0 on and below the diagonal, the lowest float32 above
	// it (as transformers builds it), cut to [T,T].
	mask := make([]float32, ctx*ctx)
	for i := 0; i < ctx; i++ {
		for j := i + 1; j < ctx; j++ {
			mask[i*ctx+j] = -math.MaxFloat32
		}
	}
	ends := b.op("mask_ends", "Concat", []string{seq, seq}, AttrI("axis", 0))
	causal := b.op("causal_mask", "Slice", []string{b.weight("causal_mask_full", mask, ctx, ctx), b.ints(0, 0), ends, b.ints(0, 1)})

	shapes := map[[2]int]string{}
	heads := func(h, d int) string {
		if s, ok := shapes[[2]int{h, d}]; ok {
			return s
		}
		s := b.op(fmt.Sprintf("shape_heads%d", h), "Concat", []string{b.ints(-1), seq, b.ints(int64(h), int64(d))}, AttrI("axis", 0))
		shapes[[2]int{h, d}] = s
		return s
	}
	merge := func(hd int) string { return b.ints(-1, int64(hd)) }
	for i := range t.Blocks {
		blk := &t.Blocks[i]
		x = block(b, fmt.Sprintf("text_model.encoder.layers.%d", blk.Layer), x, blk, C, heads, merge, causal)
	}

	eot := eotPositions(b, seq, m.Config.Text.EOSTokenID)
	shape3 := b.op("shape_hidden", "Concat", []string{b.ints(-1), seq, b.ints(int64(C))}, AttrI("axis", 0))
	x = b.op("last_hidden", "Reshape", []string{x, shape3})
	idx := b.op("eot_index", "Unsqueeze", []string{eot, b.ints(1)})
	x = b.op("eot_hidden", "GatherND", []string{x, idx}, AttrI("batch_dims", 1))
	x = layerNorm(b, "text_model.final_layer_norm", x, t.Final, C)
	linearAs(b, TextEmbeds, "text_projection", x, &t.Proj)
	b.g.Outputs = []ValueInfo{{Name: TextEmbeds, DType: Float, Shape: []Dim{{Param: "batch"}, {Value: t.Proj.Out}}}}
	return model(b, m, "CLIP text encoder: input_ids [batch,T≤context] → text_embeds [batch,E] (projected, unnormalised)")
}

// eotPositions returns the pooled position of each row of input_ids, [B]
// int64, by clip.EOTPositions' rule.
func eotPositions(b *builder, seq string, eos int) string {
	if eos == 2 {
		// Legacy: the first position of the largest id (ids < 2^24 are exact in float32).
		ids := b.op("ids_float", "Cast", []string{InputIDs}, AttrI("to", castToFloat))
		return b.op("eot_position", "ArgMax", []string{ids}, AttrI("axis", 1), AttrI("keepdims", 0))
	}
	hit := b.op("is_eos", "Equal", []string{InputIDs, b.int0("eos_token_id", int64(eos))})
	hitF := b.op("is_eos_float", "Cast", []string{hit}, AttrI("to", castToFloat))
	first := b.op("first_eos", "ArgMax", []string{hitF}, AttrI("axis", 1), AttrI("keepdims", 0))
	hasEOS := b.op("has_eos", "ReduceMax", []string{hitF}, AttrInts("axes", 1), AttrI("keepdims", 0))
	anyB := b.op("has_eos_bool", "Cast", []string{hasEOS}, AttrI("to", int64(Bool)))
	last := b.op("last_position", "Sub", []string{seq, b.ints(1)})
	return b.op("eot_position", "Where", []string{anyB, first, last})
}

// layerNorm adds LayerNormalization over the last axis (width C).
func layerNorm(b *builder, name string, x string, ln lower.LayerNorm, C int) string {
	return b.op(name, "LayerNormalization", []string{x, b.weight(name+".weight", ln.G, C), b.weight(name+".bias", ln.B, C)},
		AttrI("axis", -1), AttrF("epsilon", ln.Eps))
}

// linear adds x·Wᵀ + bias as a Gemm on the 2-D activations [B·T, in], its
// weights named after name.
func linear(b *builder, name, x string, l *lower.Linear) string {
	return linearAs(b, name, name, x, l)
}

// linearAs is linear with the output value named out.
func linearAs(b *builder, out, name, x string, l *lower.Linear) string {
	in := []string{x, b.weight(name+".weight", l.W, l.Out, l.In)}
	if l.B != nil {
		in = append(in, b.weight(name+".bias", l.B, l.Out))
	}
	return b.op(out, "Gemm", in, AttrI("transB", 1))
}

// block adds one pre-LN CLIP encoder layer on x [B·T, C] as the lowering
// describes it: an attention branch (fused q/k/v over the kept heads), or
// the bias a branch without heads adds, or nothing; the same for the MLP.
// heads(h, d) gives the shape [-1,T,h,d] for splitting h heads, merge(h·d)
// the shape [-1,h·d]; mask, when not empty, is added to the scores.
func block(b *builder, name, x string, blk *lower.Block, C int, heads func(int, int) string, merge func(int) string, mask string) string {
	switch a := blk.Attn; {
	case a != nil:
		h := layerNorm(b, name+".layer_norm1", x, blk.LN1, C)
		qkvW := a.QKV()
		qkv := linear(b, name+".self_attn.qkv_proj", h, &qkvW)
		HD := a.Inner()
		parts := b.opN(name+".self_attn.split", "Split", []string{qkv, b.ints(int64(HD), int64(HD), int64(HD))}, 3, AttrI("axis", 1))
		split := heads(a.Heads, a.HeadDim)
		q := b.op(name+".q", "Reshape", []string{parts[0], split})
		k := b.op(name+".k", "Reshape", []string{parts[1], split})
		v := b.op(name+".v", "Reshape", []string{parts[2], split})
		q = b.op(name+".q_heads", "Transpose", []string{q}, AttrInts("perm", 0, 2, 1, 3)) // [B,H,T,D]
		k = b.op(name+".k_heads", "Transpose", []string{k}, AttrInts("perm", 0, 2, 3, 1)) // [B,H,D,T]
		v = b.op(name+".v_heads", "Transpose", []string{v}, AttrInts("perm", 0, 2, 1, 3)) // [B,H,T,D]
		s := b.op(name+".scores", "MatMul", []string{q, k})
		s = b.op(name+".scaled", "Mul", []string{s, b.scalar(name+".scale", a.Scale)})
		if mask != "" {
			s = b.op(name+".masked", "Add", []string{s, mask})
		}
		p := b.op(name+".probs", "Softmax", []string{s}, AttrI("axis", -1))
		o := b.op(name+".context", "MatMul", []string{p, v})
		o = b.op(name+".context_t", "Transpose", []string{o}, AttrInts("perm", 0, 2, 1, 3))
		o = b.op(name+".context_2d", "Reshape", []string{o, merge(HD)})
		out := a.Out()
		o = linear(b, name+".self_attn.out_proj", o, &out)
		x = b.op(name+".attn_residual", "Add", []string{x, o})
	case blk.AttnBias != nil:
		x = b.op(name+".attn_residual", "Add", []string{x, b.weight(name+".self_attn.out_proj.bias", blk.AttnBias, C)})
	}
	switch mlp := blk.MLP; {
	case mlp != nil:
		h := layerNorm(b, name+".layer_norm2", x, blk.LN2, C)
		h = linear(b, name+".mlp.fc1", h, &mlp.FC1)
		h = activation(b, name+".mlp.act", h, mlp.Act)
		h = linear(b, name+".mlp.fc2", h, &mlp.FC2)
		x = b.op(name+".mlp_residual", "Add", []string{x, h})
	case blk.MLPBias != nil:
		x = b.op(name+".mlp_residual", "Add", []string{x, b.weight(name+".mlp.fc2.bias", blk.MLPBias, C)})
	}
	return x
}

// activation adds QuickGELU x·σ(1.702x) or the exact GELU ½x(1+erf(x/√2)).
func activation(b *builder, name, x string, act tensor.Activation) string {
	switch act {
	case tensor.ActQuickGELU:
		s := b.op(name+".scaled", "Mul", []string{x, b.scalar(name+".alpha", 1.702)})
		s = b.op(name+".sigmoid", "Sigmoid", []string{s})
		return b.op(name, "Mul", []string{x, s})
	case tensor.ActGELU:
		e := b.op(name+".div", "Div", []string{x, b.scalar(name+".sqrt2", float32(math.Sqrt2))})
		e = b.op(name+".erf", "Erf", []string{e})
		e = b.op(name+".one_plus", "Add", []string{e, b.scalar(name+".one", 1)})
		h := b.op(name+".half", "Mul", []string{x, b.scalar(name+".half_c", 0.5)})
		return b.op(name, "Mul", []string{h, e})
	}
	return x // tensor.ActNone; lower rejects anything else
}

// model wraps a finished graph with the model header.
func model(b *builder, m *clip.Model, doc string) *ModelProto {
	c := m.Config
	return &ModelProto{
		IRVersion: IRVersion, Opset: Opset, ProducerName: "mopeclip", ProducerVersion: "1", DocString: doc,
		Metadata: [][2]string{
			{"image_size", fmt.Sprint(c.Vision.ImageSize)},
			{"context_length", fmt.Sprint(c.Text.MaxPositionEmbeddings)},
			{"projection_dim", fmt.Sprint(c.ProjectionDim)},
			{"eos_token_id", fmt.Sprint(c.Text.EOSTokenID)},
		},
		Graph: b.g,
	}
}
