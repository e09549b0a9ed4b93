package clip

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/internal/safetensors"
)

// ParamShapes must list exactly what newModel allocates, or Load would
// check one thing and build another.
func TestParamShapesMatchModel(t *testing.T) {
	cfg, _ := Preset("tiny")
	cfg.Vision.LayerHeads = []int{0, 3}
	cfg.Vision.LayerIntermediate = []int{7, 0}
	m, err := newModel(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := m.Params()
	got := ParamShapes(cfg)
	if len(got) != len(want) {
		t.Fatalf("%d shapes for %d params", len(got), len(want))
	}
	for i, p := range want {
		if got[i].Name != p.Name || !sameShape(got[i].Shape, p.Value.Shape) {
			t.Errorf("%d: %s %v, model has %s %v", i, got[i].Name, got[i].Shape, p.Name, p.Value.Shape)
		}
	}
}

// TestLoadHostileConfigsAndWeights: configs whose sizes would make a loader
// allocate absurd amounts, that disagree with the weights or leave sizes
// out, and weights with non-finite values. Each is a one-line error that
// names the file and the key or tensor, found before the model is built.
func TestLoadHostileConfigsAndWeights(t *testing.T) {
	m := tinyModel(t, 9)
	src := saved(t, m)
	config, _ := os.ReadFile(filepath.Join(src, ConfigFile))
	edit := func(from, to string) []byte {
		if !strings.Contains(string(config), from) {
			t.Fatalf("config has no %q", from)
		}
		return []byte(strings.Replace(string(config), from, to, 1))
	}
	poison := func(name string, v float32) func(f *safetensors.File) {
		return func(f *safetensors.File) {
			tt := f.Tensors[name]
			tt.F32 = slices.Clone(tt.F32)
			tt.F32[len(tt.F32)/2] = v
		}
	}
	cases := []struct {
		name   string
		config []byte
		edit   func(f *safetensors.File)
		want   []string
	}{
		{"image_size 1e9", edit(`"image_size": 32`, `"image_size": 1e9`), nil, []string{ConfigFile, "vision_config.image_size", "limit"}},
		{"vocab_size 1e12", edit(`"vocab_size": 49408`, `"vocab_size": 1e12`), nil, []string{ConfigFile, "text_config.vocab_size", "limit"}},
		{"layers 1e6", edit(`"num_hidden_layers": 2`, `"num_hidden_layers": 1000000`), nil, []string{ConfigFile, "num_hidden_layers"}},
		{"vocab one more than the weights", edit(`"vocab_size": 49408`, `"vocab_size": 49409`), nil, []string{src, "text_model.embeddings.token_embedding.weight", "[49409 48]"}},
		{"context longer than the weights", edit(`"max_position_embeddings": 77`, `"max_position_embeddings": 78`), nil, []string{"text_model.embeddings.position_embedding.weight"}},
		{"image size of another model", edit(`"image_size": 32`, `"image_size": 64`), nil, []string{"vision_model.embeddings.position_embedding.weight"}},
		{"projection of another model", edit(`"projection_dim": 32`, `"projection_dim": 64`), nil, []string{"visual_projection.weight"}},
		{"missing size takes the default and says so", edit(`"hidden_size": 64,`, ``), nil,
			[]string{"vision_model.", "config.json lacks vision_config.hidden_size=768"}},
		{"model_type bert", edit(`"model_type": "clip"`, `"model_type": "bert"`), nil, []string{ConfigFile, `model_type is "bert"`}},
		{"NaN weight", config, poison("vision_model.encoder.layers.1.mlp.fc1.weight", float32(math.NaN())), []string{"vision_model.encoder.layers.1.mlp.fc1.weight", "non-finite"}},
		{"Inf weight", config, poison("text_projection.weight", float32(math.Inf(-1))), []string{"text_projection.weight", "non-finite"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if strings.Contains(c.name, "vocab one more") {
				dir = src + "-copy"
				os.MkdirAll(dir, 0o755)
				t.Cleanup(func() { os.RemoveAll(dir) })
				c.want[0] = dir
			}
			os.WriteFile(filepath.Join(dir, ConfigFile), c.config, 0o644)
			f := readST(t, src)
			if c.edit != nil {
				c.edit(f)
			}
			writeST(t, filepath.Join(dir, WeightsFile), f)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("loaded")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not mention %q: %v", w, msg)
				}
			}
		})
	}
}
