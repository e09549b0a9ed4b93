package testutil

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/internal/safetensors"
)

// WriteOpenCLIP writes m into dir (which must exist) as an open_clip hub
// directory, open_clip_config.json and open_clip_model.safetensors,
// following open_clip's own names (model.py CLIP, transformer.py:
// visual.conv1, class_embedding, positional_embedding, ln_pre,
// transformer.resblocks.N.{ln_1, attn.in_proj_*, attn.out_proj, ln_2,
// mlp.c_fc, mlp.c_proj}, ln_post, proj; token_embedding,
// positional_embedding, transformer.*, ln_final, text_projection,
// logit_scale). The mapping is written from open_clip's side (q/k/v fused
// into in_proj, projections stored as [width, embed]), independently of
// clip's loader, so that a test of the loader is not the loader read
// backwards. The preprocess_cfg has a mean of (0.25, 0.5, 0.75), unlike
// CLIP's, so that tests see it honoured. edit, when not nil, may change the
// config document before it is written.
func WriteOpenCLIP(dir string, m *clip.Model, edit func(doc map[string]any)) error {
	c := m.Config
	v, tx := &c.Vision, &c.Text
	model := map[string]any{
		"embed_dim":  c.ProjectionDim,
		"quick_gelu": v.HiddenAct == "quick_gelu",
		"vision_cfg": map[string]any{"image_size": v.ImageSize, "layers": v.NumHiddenLayers, "width": v.HiddenSize,
			"patch_size": v.PatchSize, "head_width": v.HeadDim(), "mlp_ratio": float64(v.IntermediateSize) / float64(v.HiddenSize)},
		"text_cfg": map[string]any{"context_length": tx.MaxPositionEmbeddings, "vocab_size": tx.VocabSize, "width": tx.HiddenSize,
			"heads": tx.NumAttentionHeads, "layers": tx.NumHiddenLayers, "mlp_ratio": float64(tx.IntermediateSize) / float64(tx.HiddenSize)},
	}
	doc := map[string]any{"model_cfg": model, "preprocess_cfg": map[string]any{
		"mean": []float64{0.25, 0.5, 0.75}, "std": []float64{0.26862954, 0.26130258, 0.27577711},
		"interpolation": "bicubic", "resize_mode": "shortest"}}
	if edit != nil {
		edit(doc)
	}
	raw, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, clip.OpenCLIPConfigFile), raw, 0o644); err != nil {
		return err
	}
	byName := map[string][]float32{}
	shapes := map[string][]int{}
	for _, p := range m.Params() {
		byName[p.Name], shapes[p.Name] = p.Value.Data, p.Value.Shape
	}
	f := &safetensors.File{Tensors: map[string]*safetensors.Tensor{}, Metadata: map[string]string{"format": "pt"}}
	var missing []string
	put := func(name string, shape []int, data []float32) {
		f.Add(name, &safetensors.Tensor{DType: safetensors.F32, Shape: shape, F32: data})
	}
	get := func(hf string) ([]int, []float32) {
		d, ok := byName[hf]
		if !ok {
			missing = append(missing, hf)
		}
		return shapes[hf], d
	}
	same := func(oc, hf string) {
		s, d := get(hf)
		put(oc, s, d)
	}
	projT := func(oc, hf string) { // [E, C] → [C, E]
		s, d := get(hf)
		if len(s) != 2 {
			return
		}
		out := make([]float32, len(d))
		for e := 0; e < s[0]; e++ {
			for ch := 0; ch < s[1]; ch++ {
				out[ch*s[0]+e] = d[e*s[1]+ch]
			}
		}
		put(oc, []int{s[1], s[0]}, out)
	}
	blocks := func(oc, hf string, layers int) {
		for l := 0; l < layers; l++ {
			o, h := fmt.Sprintf("%s.resblocks.%d.", oc, l), fmt.Sprintf("%s.encoder.layers.%d.", hf, l)
			same(o+"ln_1.weight", h+"layer_norm1.weight")
			same(o+"ln_1.bias", h+"layer_norm1.bias")
			for _, kind := range []string{"weight", "bias"} {
				var fused []float32
				for _, p := range []string{"q_proj", "k_proj", "v_proj"} {
					_, d := get(h + "self_attn." + p + "." + kind)
					fused = append(fused, d...)
				}
				s, _ := get(h + "self_attn.q_proj." + kind)
				s = slices.Clone(s)
				if len(s) > 0 {
					s[0] *= 3
				}
				put(o+"attn.in_proj_"+kind, s, fused)
				same(o+"attn.out_proj."+kind, h+"self_attn.out_proj."+kind)
				same(o+"mlp.c_fc."+kind, h+"mlp.fc1."+kind)
				same(o+"mlp.c_proj."+kind, h+"mlp.fc2."+kind)
			}
			same(o+"ln_2.weight", h+"layer_norm2.weight")
			same(o+"ln_2.bias", h+"layer_norm2.bias")
		}
	}
	same("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight")
	same("visual.class_embedding", "vision_model.embeddings.class_embedding")
	same("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight")
	same("visual.ln_pre.weight", "vision_model.pre_layrnorm.weight")
	same("visual.ln_pre.bias", "vision_model.pre_layrnorm.bias")
	blocks("visual.transformer", "vision_model", v.NumHiddenLayers)
	same("visual.ln_post.weight", "vision_model.post_layernorm.weight")
	same("visual.ln_post.bias", "vision_model.post_layernorm.bias")
	projT("visual.proj", "visual_projection.weight")
	same("token_embedding.weight", "text_model.embeddings.token_embedding.weight")
	same("positional_embedding", "text_model.embeddings.position_embedding.weight")
	blocks("transformer", "text_model", tx.NumHiddenLayers)
	same("ln_final.weight", "text_model.final_layer_norm.weight")
	same("ln_final.bias", "text_model.final_layer_norm.bias")
	projT("text_projection", "text_projection.weight")
	_, ls := get("logit_scale")
	put("logit_scale", []int{}, ls)
	if len(missing) > 0 {
		return fmt.Errorf("testutil: WriteOpenCLIP: the model has no %v (a pruned model has no open_clip form)", missing)
	}
	return safetensors.Save(filepath.Join(dir, clip.OpenCLIPWeightsFile), f)
}
