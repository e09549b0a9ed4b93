package clip_test

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/internal/safetensors"
	"github.com/mopeclip/mopeclip/internal/testutil"
)

// writeOpenCLIP writes m as an open_clip hub directory (testutil.WriteOpenCLIP)
// in a fresh directory.
func writeOpenCLIP(t *testing.T, m *clip.Model, edit func(cfg map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	if err := testutil.WriteOpenCLIP(dir, m, edit); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLoadOpenCLIPMatchesHF loads the same random weights through the
// open_clip layout and compares the embeddings with the model itself
// (bit for bit: the same numbers reach the same computation), for QuickGELU
// and exact-GELU models.
func TestLoadOpenCLIPMatchesHF(t *testing.T) {
	for _, act := range []string{"quick_gelu", "gelu"} {
		t.Run(act, func(t *testing.T) {
			m := clip.TinyModel(t, 21)
			m.Config.Vision.HiddenAct, m.Config.Text.HiddenAct = act, act
			m, err := reload(m)
			if err != nil {
				t.Fatal(err)
			}
			dir := writeOpenCLIP(t, m, nil)
			got, err := clip.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got.Notes.Layout != clip.LayoutOpenCLIP || got.Config.Vision.HiddenAct != act || got.Config.Text.EOSTokenID != 2 {
				t.Fatalf("config %+v notes %+v", got.Config, got.Notes)
			}
			pix, tb := clip.TestInputs(m.Config)
			wi, wt := m.EncodeImage(nil, pix).Value.Data, m.EncodeText(nil, tb).Value.Data
			gi, gt := got.EncodeImage(nil, pix).Value.Data, got.EncodeText(nil, tb).Value.Data
			if !sameBits(gi, wi) || !sameBits(gt, wt) {
				t.Fatalf("open_clip load differs: image rel err %.3g, text %.3g", testutil.MaxRelErr(gi, wi), testutil.MaxRelErr(gt, wt))
			}
			// open_clip pools text at the argmax of the ids; with <|endoftext|>
			// the largest id that is the first end-of-text token.
			if !slices.Equal(clip.EOTPositions(tb.IDs, tb.B, tb.T, 2), clip.EOTPositions(tb.IDs, tb.B, tb.T, m.Config.Text.EOSTokenID)) {
				t.Fatal("argmax pooling differs from first-EOT pooling on tokenised rows")
			}
			// The directory also preprocesses and saves as Hugging Face's.
			if pc, err := clip.LoadPreprocess(dir); err != nil || pc.Size != m.Config.Vision.ImageSize {
				t.Fatalf("preprocess %+v %v", pc, err)
			}
			out := filepath.Join(t.TempDir(), "hf")
			if err := got.Save(out); err != nil {
				t.Fatal(err)
			}
			// A model derived from it (no preprocessing of its own) takes
			// the source's preprocess_cfg into preprocessor_config.json.
			derived, _ := clip.New(got.Config, 1)
			out2 := filepath.Join(t.TempDir(), "derived")
			if err := derived.SaveWith(out2, clip.SaveOptions{From: dir}); err != nil {
				t.Fatal(err)
			}
			if pc, err := clip.LoadPreprocess(out2); err != nil || pc.Mean != [3]float32{0.25, 0.5, 0.75} {
				t.Fatalf("derived model's preprocessing %+v, %v", pc, err)
			}
			back, err := clip.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if bi := back.EncodeImage(nil, pix).Value.Data; !sameBits(bi, wi) {
				t.Fatal("open_clip → HF save changed the image embeddings")
			}
		})
	}
}

// reload returns m after a Save/Load round trip (so its config is what a
// directory says).
func reload(m *clip.Model) (*clip.Model, error) {
	dir, err := os.MkdirTemp("", "mope-oc-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := m.Save(filepath.Join(dir, "m")); err != nil {
		return nil, err
	}
	return clip.Load(filepath.Join(dir, "m"))
}

// TestOpenCLIPUnsupportedSettings: every setting whose math is not the ViT
// CLIP implemented here is a one-line error naming it.
func TestOpenCLIPUnsupportedSettings(t *testing.T) {
	m := clip.TinyModel(t, 22)
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
		{"missing tensor", nil, func(f *safetensors.File) { clip.DeleteTensor(f, "visual.ln_post.bias") }, "vision_model.post_layernorm.bias"},
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
				f, err := safetensors.Load(filepath.Join(dir, clip.OpenCLIPWeightsFile))
				if err != nil {
					t.Fatal(err)
				}
				c.tensors(f)
				saveST(t, filepath.Join(dir, clip.OpenCLIPWeightsFile), f)
			}
			_, err := clip.Load(dir)
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
	got, err := clip.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if w := got.Notes.Warning(); !strings.Contains(w, "model_cfg.vision_cfg.brand_new") {
		t.Fatalf("warning %q", w)
	}
}

// sameBits reports whether a and b hold the same float32 bit patterns.
func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func saveST(t *testing.T, path string, f *safetensors.File) {
	t.Helper()
	if err := safetensors.Save(path, f); err != nil {
		t.Fatal(err)
	}
}
