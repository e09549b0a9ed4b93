package clip

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The fixtures in testdata/configs are config.json files in the shape three
// eras of transformers write them: 4.16 (the openai/clip-vit-base-patch32
// dump: every PretrainedConfig and generation key in each sub-config, null
// *_config_dict), 4.24 (laion: text_config_dict / vision_config_dict with
// the diff beside full dumps, _commit_hash, the keys 4.2x added) and 5.0
// (diff-saved sub-configs that omit defaults, dtype instead of torch_dtype).
func TestParseConfigsOfEveryEra(t *testing.T) {
	for _, tc := range []struct {
		file      string
		preset    string
		act       string
		eos       int
		dtype     string
		defaulted []string // a sample of keys that must have taken defaults
	}{
		{"hf-4.16-openai-vit-b-32.json", "ViT-B/32", "quick_gelu", 2, "float32", nil},
		// text_config_dict overrides text_config wholesale, as transformers
		// does: eos_token_id is the class default 49407, not text_config's 2.
		{"hf-4.24-laion-vit-b-32.json", "ViT-B/32", "gelu", 49407, "float32", []string{"text_config.eos_token_id=49407", "vision_config.patch_size=32"}},
		{"hf-5.0-openai-vit-l-14.json", "ViT-L/14", "quick_gelu", 49407, "float32", []string{"text_config.num_hidden_layers=12", "vision_config.image_size=224"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c, notes, err := LoadConfigNotes(filepath.Join("testdata", "configs", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if w := notes.Warning(); w != "" {
				t.Errorf("unexpected warning: %s", w)
			}
			want, _ := Preset(tc.preset)
			for _, tw := range []struct{ got, want *TowerConfig }{{&c.Text, &want.Text}, {&c.Vision, &want.Vision}} {
				g, w := *tw.got, *tw.want
				g.HiddenAct, w.HiddenAct = "", ""
				g.EOSTokenID, w.EOSTokenID = 0, 0
				g.BOSTokenID, w.BOSTokenID, g.PadTokenID, w.PadTokenID = 0, 0, 0, 0
				if !tcEqual(g, w) {
					t.Errorf("tower %+v, want %+v", g, w)
				}
			}
			if c.Text.HiddenAct != tc.act || c.Vision.HiddenAct != tc.act {
				t.Errorf("hidden_act %q/%q, want %q", c.Text.HiddenAct, c.Vision.HiddenAct, tc.act)
			}
			if c.Text.EOSTokenID != tc.eos || notes.DType != tc.dtype || c.ProjectionDim != want.ProjectionDim {
				t.Errorf("eos %d dtype %q proj %d, want %d %q %d", c.Text.EOSTokenID, notes.DType, c.ProjectionDim, tc.eos, tc.dtype, want.ProjectionDim)
			}
			for _, d := range tc.defaulted {
				if !slices.Contains(notes.Defaulted, d) {
					t.Errorf("Defaulted %v lacks %s", notes.Defaulted, d)
				}
			}
		})
	}
}

func tcEqual(a, b TowerConfig) bool {
	return a.HiddenSize == b.HiddenSize && a.IntermediateSize == b.IntermediateSize && a.NumAttentionHeads == b.NumAttentionHeads &&
		a.NumHiddenLayers == b.NumHiddenLayers && a.LayerNormEps == b.LayerNormEps && a.ImageSize == b.ImageSize &&
		a.PatchSize == b.PatchSize && a.NumChannels == b.NumChannels && a.VocabSize == b.VocabSize &&
		a.MaxPositionEmbeddings == b.MaxPositionEmbeddings && len(a.LayerHeads) == len(b.LayerHeads)
}

// Keys never seen before are not errors: they are listed, once, in the
// warning the command prints.
func TestUnknownKeysAreOneWarning(t *testing.T) {
	src := strings.Replace(hfB32, `"model_type": "clip",`, `"model_type": "clip", "mystery": true, "zz_new_key": 1,`, 1)
	src = strings.Replace(src, `"num_channels": 3,`, `"num_channels": 3, "frobnicate": 1, "vocab_size": 5,`, 1)
	_, notes, err := ParseConfigNotes([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"mystery", "vision_config.frobnicate", "vision_config.vocab_size", "zz_new_key"}
	if !slices.Equal(notes.Unknown, want) {
		t.Fatalf("Unknown = %v, want %v", notes.Unknown, want)
	}
	w := notes.Warning()
	if strings.Count(w, "\n") != 0 || !strings.Contains(w, "4 unknown key(s): mystery, vision_config.frobnicate") {
		t.Fatalf("warning %q", w)
	}
}

// The config mope writes reads back identically, with no defaults taken and
// no warnings, and declares its float32 weights.
func TestWrittenConfigIsComplete(t *testing.T) {
	c, _ := Preset("tiny")
	b, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"torch_dtype": "float32"`) || strings.Contains(string(b), "Notes") {
		t.Fatalf("config.json:\n%s", b)
	}
	_, notes, err := ParseConfigNotes(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(notes.Defaulted) != 0 || len(notes.Unknown) != 0 || notes.DType != "float32" {
		t.Fatalf("notes %+v", notes)
	}
}

func TestParseConfigNullTowerTakesDefaults(t *testing.T) {
	c, notes, err := ParseConfigNotes([]byte(`{"model_type": "clip", "text_config": null, "vision_config": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Text.HiddenSize != 512 || c.Vision.HiddenSize != 768 || c.ProjectionDim != 512 || len(notes.Defaulted) < 20 {
		t.Fatalf("got %+v", c)
	}
	if _, err := ParseConfig([]byte(`null`)); err == nil {
		t.Fatal("null config accepted")
	}
	if _, err := os.Stat(filepath.Join("testdata", "configs")); err != nil {
		t.Fatal(err)
	}
}
