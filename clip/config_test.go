package clip

import (
	"strings"
	"testing"
)

// A real Hugging Face openai/clip-vit-base-patch32 config.json, abridged to
// the keys that matter plus a sample of PretrainedConfig noise keys.
const hfB32 = `{
  "_name_or_path": "openai/clip-vit-base-patch32",
  "architectures": ["CLIPModel"],
  "initializer_factor": 1.0,
  "logit_scale_init_value": 2.6592,
  "model_type": "clip",
  "projection_dim": 512,
  "text_config": {
    "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2,
    "hidden_act": "quick_gelu", "hidden_size": 512, "initializer_factor": 1.0,
    "initializer_range": 0.02, "intermediate_size": 2048, "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77, "model_type": "clip_text_model", "num_attention_heads": 8,
    "num_hidden_layers": 12, "pad_token_id": 1, "projection_dim": 512, "vocab_size": 49408,
    "bad_words_ids": null, "id2label": {"0": "LABEL_0"}
  },
  "torch_dtype": "float32",
  "transformers_version": null,
  "vision_config": {
    "attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "quick_gelu", "hidden_size": 768,
    "image_size": 224, "initializer_factor": 1.0, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-05, "model_type": "clip_vision_model",
    "num_attention_heads": 12, "num_channels": 3, "num_hidden_layers": 12, "patch_size": 32,
    "projection_dim": 512
  }
}`

func TestParseHFConfig(t *testing.T) {
	c, err := ParseConfig([]byte(hfB32))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Preset("ViT-B/32")
	if c.Vision.HiddenSize != want.Vision.HiddenSize || c.Text.NumHiddenLayers != 12 || c.Vision.NumPatches() != 49 ||
		c.Text.EOSTokenID != 2 || c.ProjectionDim != 512 || c.Vision.HeadDim() != 64 {
		t.Fatalf("parsed %+v", c)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{`"projection_dim": 512,`, `"projection_dim": 0,`, "projection_dim"},
		{`"patch_size": 32,`, `"patch_size": 30,`, "patch_size"},
		{`"hidden_act": "quick_gelu", "hidden_size": 768`, `"hidden_act": "swish", "hidden_size": 768`, "vision_config.hidden_act"},
		{`"model_type": "clip",`, `"model_type": "bert",`, `model_type is "bert"`},
		{`"model_type": "clip_vision_model"`, `"model_type": "siglip_vision_model"`, "vision_config.model_type"},
		{`"num_channels": 3,`, `"num_channels": 1,`, "vision_config.num_channels"},
		{`"num_channels": 3,`, `"num_channels": 3, "pruned_heads": {"1": [0]},`, "vision_config.pruned_heads"},
		{`"model_type": "clip",`, `"model_type": "clip", "pruned_heads": {"0": [1]},`, "pruned_heads"},
		{`"num_channels": 3,`, `"num_channels": 3, "projection_bias": true,`, "vision_config.projection_bias"},
		{`"image_size": 224,`, `"image_size": 1e9,`, "vision_config.image_size"},
		{`"vocab_size": 49408`, `"vocab_size": 1e12`, "text_config.vocab_size"},
		{`"vocab_size": 49408`, `"vocab_size": 4.5`, "text_config.vocab_size"},
		{`"vocab_size": 49408`, `"vocab_size": null`, "text_config.vocab_size is null"},
		{`"hidden_size": 768,`, `"hidden_size": 99999999999999999999,`, "vision_config.hidden_size"},
		{`"num_hidden_layers": 12, "patch_size"`, `"num_hidden_layers": 100000, "patch_size"`, "vision_config.num_hidden_layers"},
		{`"layer_norm_eps": 1e-05, "model_type": "clip_vision_model"`, `"layer_norm_eps": "small", "model_type": "clip_vision_model"`, "vision_config.layer_norm_eps"},
		{`"model_type": "clip",`, `"model_type": "clip", "text_config_dict": [1],`, "text_config_dict"},
		{`"num_attention_heads": 8,`, `"num_attention_heads": 7,`, "num_attention_heads"},
		{`"vocab_size": 49408`, `"vocab_size": "many"`, "vocab_size"},
		{`"num_channels": 3,`, `"num_channels": 3, "mopeclip_layer_heads": [12, 12],`, "mopeclip_layer_heads"},
		{`"eos_token_id": 2,`, `"eos_token_id": 99999,`, "eos_token_id"},
	} {
		src := strings.Replace(hfB32, tc.from, tc.to, 1)
		if src == hfB32 {
			t.Fatalf("edit %q did not apply", tc.from)
		}
		_, err := ParseConfig([]byte(src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("edit %q: error %v, want mention of %q", tc.to, err, tc.want)
		}
	}
	if _, err := ParseConfig([]byte(`{"text_config": `)); err == nil {
		t.Error("truncated JSON accepted")
	}
}

func TestConfigRoundTripWithPerLayerWidths(t *testing.T) {
	c, _ := Preset("tiny")
	c.Vision.LayerHeads = []int{3, 1}
	c.Vision.LayerIntermediate = []int{100, 7}
	c.Vision.TeacherLayers = []int{0, 1}
	b, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Vision.Heads(0) != 3 || d.Vision.Intermediate(1) != 7 || d.Text.Heads(1) != 4 {
		t.Fatalf("round trip lost widths: %+v", d.Vision)
	}
	for _, name := range PresetNames() {
		p, _ := Preset(name)
		if err := p.Validate(); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
	if _, err := Preset("ViT-Z/99"); err == nil {
		t.Error("unknown preset accepted")
	}
}
