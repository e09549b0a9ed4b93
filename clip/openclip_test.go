package clip

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/internal/safetensors"
	"github.com/mopeclip/mopeclip/tensor"
)

// writeOpenCLIP writes m as an open_clip hub directory, following open_clip's
// own names (model.py CLIP, transformer.py: visual.conv1, class_embedding,
// positional_embedding, ln_pre, transformer.resblocks.N.{ln_1, attn.in_proj_*,
// attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}, ln_post, proj; token_embedding,
// positional_embedding, transformer.*, ln_final, text_projection,
// logit_scale). The mapping here is written from open_clip's side (fuse
// q/k/v into in_proj, store projections as [width, embed]), independently of
// the loader's. edit may change the config document before it is written.
func writeOpenCLIP(t *testing.T, m *Model, edit func(cfg map[string]any)) string {
	t.Helper()
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
	dir := t.TempDir()
	raw, _ := json.MarshalIndent(doc, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, OpenCLIPConfigFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	byName := map[string][]float32{}
	shapes := map[string][]int{}
	for _, p := range m.Params() {
		byName[p.Name], shapes[p.Name] = p.Value.Data, p.Value.Shape
	}
	f := &safetensors.File{Tensors: map[string]*safetensors.Tensor{}, Metadata: map[string]string{"format": "pt"}}
	put := func(name string, shape []int, data []float32) {
		f.Add(name, &safetensors.Tensor{DType: safetensors.F32, Shape: shape, F32: data})
	}
	same := func(oc, hf string) { put(oc, shapes[hf], byName[hf]) }
	projT := func(oc, hf string) { // [E, C] → [C, E]
		s, d := shapes[hf], byName[hf]
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
					fused = append(fused, byName[h+"self_attn."+p+"."+kind]...)
				}
				s := slices.Clone(shapes[h+"self_attn.q_proj."+kind])
				s[0] *= 3
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
	put("logit_scale", []int{}, byName["logit_scale"])
	writeST(t, filepath.Join(dir, OpenCLIPWeightsFile), f)
	return dir
}

// TestLoadOpenCLIPMatchesHF loads the same random weights through the
// open_clip layout and compares the embeddings with the model itself
// (bit for bit: the same numbers reach the same computation), for QuickGELU
// and exact-GELU models.
func TestLoadOpenCLIPMatchesHF(t *testing.T) {
	for _, act := range []string{"quick_gelu", "gelu"} {
		t.Run(act, func(t *testing.T) {
			m := tinyModel(t, 21)
			m.Config.Vision.HiddenAct, m.Config.Text.HiddenAct = act, act
			m, err := reload(m)
			if err != nil {
				t.Fatal(err)
			}
			dir := writeOpenCLIP(t, m, nil)
			got, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got.Notes.Layout != LayoutOpenCLIP || got.Config.Vision.HiddenAct != act || got.Config.Text.EOSTokenID != 2 {
				t.Fatalf("config %+v notes %+v", got.Config, got.Notes)
			}
			pix, tb := testInputs(m.Config)
			wi, wt := m.EncodeImage(nil, pix).Value.Data, m.EncodeText(nil, tb).Value.Data
			gi, gt := got.EncodeImage(nil, pix).Value.Data, got.EncodeText(nil, tb).Value.Data
			if !sameBitsF32(gi, wi) || !sameBitsF32(gt, wt) {
				t.Fatalf("open_clip load differs: image rel err %.3g, text %.3g", relErr(gi, wi), relErr(gt, wt))
			}
			// open_clip pools text at the argmax of the ids; with <|endoftext|>
			// the largest id that is the first end-of-text token.
			if !slices.Equal(EOTPositions(tb.IDs, tb.B, tb.T, 2), EOTPositions(tb.IDs, tb.B, tb.T, m.Config.Text.EOSTokenID)) {
				t.Fatal("argmax pooling differs from first-EOT pooling on tokenised rows")
			}
			// The directory also preprocesses and saves as Hugging Face's.
			if pc, err := LoadPreprocess(dir); err != nil || pc.Size != m.Config.Vision.ImageSize {
				t.Fatalf("preprocess %+v %v", pc, err)
			}
			out := filepath.Join(t.TempDir(), "hf")
			if err := got.Save(out); err != nil {
				t.Fatal(err)
			}
			// A model derived from it (no preprocessing of its own) takes
			// the source's preprocess_cfg into preprocessor_config.json.
			derived, _ := New(got.Config, 1)
			out2 := filepath.Join(t.TempDir(), "derived")
			if err := derived.SaveWith(out2, SaveOptions{From: dir}); err != nil {
				t.Fatal(err)
			}
			if pc, err := LoadPreprocess(out2); err != nil || pc.Mean != [3]float32{0.25, 0.5, 0.75} {
				t.Fatalf("derived model's preprocessing %+v, %v", pc, err)
			}
			back, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if bi := back.EncodeImage(nil, pix).Value.Data; !sameBitsF32(bi, wi) {
				t.Fatal("open_clip → HF save changed the image embeddings")
			}
		})
	}
}

// reload returns m after a Save/Load round trip (so its config is what a
// directory says).
func reload(m *Model) (*Model, error) {
	dir, err := os.MkdirTemp("", "mope-oc-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := m.Save(filepath.Join(dir, "m")); err != nil {
		return nil, err
	}
	return Load(filepath.Join(dir, "m"))
}

// TestOpenCLIPUnsupportedSettings: every setting whose math is not the ViT
// CLIP implemented here is a one-line error naming it.
func TestOpenCLIPUnsupportedSettings(t *testing.T) {
	m := tinyModel(t, 22)
	set := func(path string, v any) func(map[string]any) {
		return func(doc map[string]any) {
			keys := strings.Split(path, ".")
			cur := doc
			for _, k := range keys[:len(keys)-1] {
				cur = cur[k].(map[string]any)
			}
			cur[keys[len(keys)-1]] = v
		}
	}
	del := func(path string) func(map[string]any) {
		return func(doc map[string]any) {
			keys := strings.Split(path, ".")
			cur := doc
			for _, k := range keys[:len(keys)-1] {
				cur = cur[k].(map[string]any)
			}
			delete(cur, keys[len(keys)-1])
		}
	}
	cases := []struct {
		name    string
		edit    func(map[string]any)
		tensors func(f *safetensors.File)
		want    string
	}{
		{"attentional pooler", set("model_cfg.vision_cfg.attentional_pool", true), nil, "model_cfg.vision_cfg.attentional_pool"},
		{"layer scale", set("model_cfg.vision_cfg.ls_init_value", 1e-5), nil, "model_cfg.vision_cfg.ls_init_value"},
		{"mean pooling", set("model_cfg.vision_cfg.pool_type", "avg"), nil, "model_cfg.vision_cfg.pool_type"},
		{"text eos pooling", set("model_cfg.text_cfg.pool_type", "last"), nil, "model_cfg.text_cfg.pool_type"},
		{"resnet", set("model_cfg.vision_cfg.layers", []int{3, 4, 6, 3}), nil, "ResNet"},
		{"hf text tower", set("model_cfg.text_cfg.hf_model_name", "roberta-base"), nil, "model_cfg.text_cfg.hf_model_name"},
		{"custom text", set("model_cfg.custom_text", true), nil, "model_cfg.custom_text"},
		{"siglip bias", set("model_cfg.init_logit_bias", -10), nil, "model_cfg.init_logit_bias"},
		{"coca", set("model_cfg.multimodal_cfg", map[string]any{"width": 512}), nil, "model_cfg.multimodal_cfg"},
		{"interpolation", set("preprocess_cfg.interpolation", "bilinear"), nil, "preprocess_cfg.interpolation"},
		{"no model_cfg", del("model_cfg"), nil, "model_cfg is missing"},
		{"embed_dim missing", del("model_cfg.embed_dim"), nil, "model_cfg.embed_dim is missing"},
		{"width disagrees with the weights", set("model_cfg.vision_cfg.width", 128), nil, "visual"},
		{"missing tensor", nil, func(f *safetensors.File) { deleteTensor(f, "visual.ln_post.bias") }, "vision_model.post_layernorm.bias"},
		{"unknown tensor", nil, func(f *safetensors.File) {
			f.Add("visual.attn_pool.query", &safetensors.Tensor{DType: safetensors.F32, Shape: []int{1}, F32: []float32{1}})
		}, "visual.attn_pool.query"},
		{"odd in_proj", nil, func(f *safetensors.File) {
			tt := f.Tensors["transformer.resblocks.0.attn.in_proj_bias"]
			tt.Shape, tt.F32 = []int{len(tt.F32) - 1}, tt.F32[1:]
		}, "transformer.resblocks.0.attn.in_proj_bias"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeOpenCLIP(t, m, c.edit)
			if c.tensors != nil {
				f, err := safetensors.Load(filepath.Join(dir, OpenCLIPWeightsFile))
				if err != nil {
					t.Fatal(err)
				}
				c.tensors(f)
				writeST(t, filepath.Join(dir, OpenCLIPWeightsFile), f)
			}
			_, err := Load(dir)
			if err == nil {
				t.Fatal("loaded")
			}
			if msg := err.Error(); !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") || !strings.Contains(msg, dir) {
				t.Fatalf("error %q: want one line naming %q and the directory", msg, c.want)
			}
		})
	}
	// Unknown keys are a warning, not an error.
	dir := writeOpenCLIP(t, m, set("model_cfg.vision_cfg.brand_new", 3))
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if w := got.Notes.Warning(); !strings.Contains(w, "model_cfg.vision_cfg.brand_new") {
		t.Fatalf("warning %q", w)
	}
	_ = tensor.New
}
