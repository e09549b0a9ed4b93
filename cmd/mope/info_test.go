package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
)

// hubConfigDir writes a tiny model whose config.json is the transformers
// 4.16 dump of openai/clip-vit-base-patch32 (every PretrainedConfig key)
// with the sizes of the tiny preset and the given extra top-level keys.
func hubConfigDir(t *testing.T, extra map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	cfg, _ := clip.Preset("tiny")
	m, err := clip.New(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "clip", "testdata", "configs", "hf-4.16-openai-vit-b-32.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	tc, vc := doc["text_config"].(map[string]any), doc["vision_config"].(map[string]any)
	for k, v := range map[string]any{"hidden_size": 48, "intermediate_size": 192, "num_attention_heads": 4, "num_hidden_layers": 2} {
		tc[k] = v
	}
	for k, v := range map[string]any{"hidden_size": 64, "intermediate_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2, "image_size": 32, "patch_size": 8} {
		vc[k] = v
	}
	tc["eos_token_id"] = 49407
	doc["projection_dim"] = 32
	for k, v := range extra {
		doc[k] = v
	}
	out, _ := json.MarshalIndent(doc, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, clip.ConfigFile), out, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestInfoOnHubConfig(t *testing.T) {
	dir := hubConfigDir(t, map[string]any{"brand_new_key": 1, "another_one": "x"})
	code, out, errs := runMope("info", "--model", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "2 unknown key(s): another_one, brand_new_key") {
		t.Fatalf("stderr %q: want one warning line listing the unknown keys", errs)
	}
	if !strings.Contains(out, "declared dtype float32") || !strings.Contains(out, "vision: 2 layers, width 64") {
		t.Fatalf("output:\n%s", out)
	}
	code, out, errs = runMope("info", "--model", dir, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var doc struct {
		Model   string          `json:"model"`
		Layout  string          `json:"layout"`
		DType   string          `json:"declared_dtype"`
		Params  int             `json:"params"`
		Unknown []string        `json:"unknown_keys"`
		Config  json.RawMessage `json:"effective_config"`
		Vision  struct {
			PerLayer []struct{ Heads int } `json:"per_layer"`
		} `json:"vision"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	cfg, err := clip.ParseConfig(doc.Config)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Model != dir || doc.Layout != "hf" || doc.DType != "float32" || len(doc.Unknown) != 2 ||
		cfg.Vision.HiddenSize != 64 || len(doc.Vision.PerLayer) != 2 || doc.Vision.PerLayer[1].Heads != 4 || doc.Params == 0 {
		t.Fatalf("json: %s", out)
	}
}

func TestInfoRejectsNonCLIP(t *testing.T) {
	for _, tc := range []struct {
		extra map[string]any
		want  string
	}{
		{map[string]any{"model_type": "bert"}, `model_type is "bert"`},
		{map[string]any{"pruned_heads": map[string]any{"0": []int{1}}}, "pruned_heads"},
		{map[string]any{"projection_dim": 1e12}, "projection_dim"},
	} {
		dir := hubConfigDir(t, tc.extra)
		code, _, errs := runMope("info", "--model", dir)
		if code == 0 || !strings.Contains(errs, tc.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q (want one line naming %q)", tc.extra, code, errs, tc.want)
		}
	}
}

// tokenize --model uses the model's tokenizer and, unless --context says
// otherwise, the model's text context.
func TestTokenizeModelContext(t *testing.T) {
	dir := tinyModelDir(t)
	m, err := clip.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.Config.Text.MaxPositionEmbeddings = 6
	m.Text.PositionEmbed.Value.Data = m.Text.PositionEmbed.Value.Data[:6*m.Config.Text.HiddenSize]
	m.Text.PositionEmbed.Value.Shape = []int{6, m.Config.Text.HiddenSize}
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	text := "a red square and a blue circle and a green star"
	code, _, errs := runMope("tokenize", "--model", dir, text)
	if code == 0 || !strings.Contains(errs, "6") {
		t.Fatalf("exit %d, stderr %q: want a context-6 error", code, errs)
	}
	code, out, errs := runMope("tokenize", "--model", dir, "--truncate", text)
	var ids []int
	if code != 0 || json.Unmarshal([]byte(out), &ids) != nil || len(ids) != 6 {
		t.Fatalf("exit %d, out %q, stderr %q", code, out, errs)
	}
	code, out, _ = runMope("tokenize", "--model", dir, "--context", "20", text)
	if code != 0 || json.Unmarshal([]byte(out), &ids) != nil || len(ids) <= 6 {
		t.Fatalf("--context 20: exit %d, %q", code, out)
	}
}
