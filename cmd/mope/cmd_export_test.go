package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/export"
	"github.com/mopeclip/mopeclip/internal/ortnode"
	"github.com/mopeclip/mopeclip/internal/testutil"
	"github.com/mopeclip/mopeclip/mope"
	"github.com/mopeclip/mopeclip/tensor"
)

// prunedTeacher writes the committed shapes teacher pruned unevenly (per
// layer heads and MLP widths, one layer of each tower removed, a text
// layer without attention) as a model directory with its tokenizer.
func prunedTeacher(t *testing.T) string {
	t.Helper()
	const src = "../../assets/shapes-teacher"
	m, err := clip.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	span := func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = i * 2 // every other neuron
		}
		return s
	}
	plan := &mope.Plan{
		Vision: &mope.TowerPlan{Heads: [][]int{{0, 1, 2, 3}, {1}, {0, 2, 3}, {2}}, Neurons: [][]int{nil, span(37), span(200), span(5)}, Layers: []int{0, 1, 3}},
		Text:   &mope.TowerPlan{Heads: [][]int{{}, {0, 3}, {1, 2}, {0}}, Neurons: [][]int{span(100), span(255), nil, span(64)}, Layers: []int{0, 1, 2}},
	}
	p, err := mope.Apply(m, plan)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := p.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := clip.CopyTokenizer(src, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func rows(flat []float32, n int) [][]float32 {
	if n == 0 {
		return nil
	}
	e := len(flat) / n
	out := make([][]float32, n)
	for i := range out {
		out[i] = flat[i*e : (i+1)*e]
	}
	return out
}

var exportTexts = []string{"a red circle", "two small blue squares and a green triangle", "x"}

// embedOf runs 'mope embed' on dir with the pixels file and exportTexts.
func embedOf(t *testing.T, dir, pixels string) embedOutput {
	t.Helper()
	args := []string{"embed", "--model", dir, "--pixels", pixels}
	for _, s := range exportTexts {
		args = append(args, "--text", s)
	}
	code, out, errs := runMope(args...)
	if code != 0 {
		t.Fatalf("embed %s: exit %d: %s", dir, code, errs)
	}
	return parseEmbed(t, out)
}

// exportSummary runs 'mope export --json' of model in format to out and
// returns the summary it prints, and the text of it.
func exportSummary(t *testing.T, model, format, out string) (export.Summary, string) {
	t.Helper()
	code, so, errs := runMope("export", "--model", model, "--format", format, "--out", out, "--json")
	if code != 0 {
		t.Fatalf("export %s: exit %d: %s", format, code, errs)
	}
	var s export.Summary
	if err := json.Unmarshal([]byte(so), &s); err != nil {
		t.Fatalf("export --json output: %v\n%s", err, so)
	}
	return s, so
}

// runORT runs the ONNX export in onnxDir in ONNX Runtime on pix and on
// exportTexts, tokenized with model's tokenizer at T tokens.
func runORT(t *testing.T, model, onnxDir string, T int, pix *tensor.Tensor) *ortnode.Outputs {
	t.Helper()
	tok, err := clip.LoadTokenizer(model)
	if err != nil {
		t.Fatal(err)
	}
	ids, _, err := tok.Batch(exportTexts, T, true)
	if err != nil {
		t.Fatal(err)
	}
	in := &ortnode.Inputs{Pixels: pix.Data, PixelsShape: pix.Shape, IDsShape: []int{len(exportTexts), T}}
	for _, id := range ids {
		in.IDs = append(in.IDs, int64(id))
	}
	res, err := ortnode.Run(context.Background(), onnxDir, in)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestExportONNXMatchesEmbed: 'mope export --format onnx' of a pruned model
// runs in ONNX Runtime with the embeddings 'mope embed' prints (≤ 1e-5
// relative), texts fed at the full context with zeros after EOT.
func TestExportONNXMatchesEmbed(t *testing.T) {
	if err := ortnode.Available(context.Background()); err != nil {
		if os.Getenv(ortnode.RequireEnv) == "1" {
			t.Fatalf("%v (%s=1)", err, ortnode.RequireEnv)
		}
		t.Skipf("%v", err)
	}
	model := prunedTeacher(t)
	out := filepath.Join(t.TempDir(), "onnx")
	s, so := exportSummary(t, model, "onnx", out)
	if s.Format != "onnx" || s.Vision.Layers != 3 || s.Text.Heads[0] != 0 || s.Vision.Intermediate[1] != 37 {
		t.Errorf("summary %s", so)
	}
	for _, f := range []string{export.ImageEncoderFile, export.TextEncoderFile, export.InfoFile, clip.VocabFile, clip.MergesFile,
		clip.TokenizerConfigFile, clip.SpecialTokensFile, clip.PreprocessorFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("export lacks %s: %v", f, err)
		}
	}
	m, err := clip.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	S := m.Config.Vision.ImageSize
	pix := tensor.New(3, 3, S, S).Normal(tensor.NewRNG(4), 0, 1)
	pixPath := filepath.Join(t.TempDir(), "pix.npy")
	if err := imageproc.WriteNPY(pixPath, pix.Data, pix.Shape); err != nil {
		t.Fatal(err)
	}
	want := embedOf(t, model, pixPath)
	got := runORT(t, model, out, m.Config.Text.MaxPositionEmbeddings, pix)
	for _, c := range []struct {
		name      string
		got, want [][]float32
	}{{"image", rows(got.ImageEmbeds, 3), want.ImageEmbeds}, {"text", rows(got.TextEmbeds, len(exportTexts)), want.TextEmbeds}} {
		e := testutil.MaxRelErrRows(c.got, c.want)
		t.Logf("%s: ONNX Runtime vs mope embed relative error %.2e", c.name, e)
		if !(e <= 1e-5) {
			t.Errorf("%s: ONNX Runtime differs from mope embed: %.3e > 1e-5", c.name, e)
		}
	}
}

// TestExportHF: the padded export has no mopeclip keys, one width per
// tower, and the same 'mope embed' output as the pruned model.
func TestExportHF(t *testing.T) {
	model := prunedTeacher(t)
	out := filepath.Join(t.TempDir(), "hf")
	code, so, errs := runMope("export", "--model", model, "--format", "hf", "--out", out)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errs)
	}
	if !strings.Contains(so, "wrote hf export") {
		t.Errorf("output: %s", so)
	}
	for _, f := range []string{clip.WeightsFile, clip.VocabFile, clip.MergesFile, clip.TokenizerConfigFile, clip.SpecialTokensFile, clip.PreprocessorFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("HF export lacks %s: %v", f, err)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(out, clip.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfg), "mopeclip") {
		t.Errorf("config.json has mopeclip keys:\n%s", cfg)
	}
	c, err := clip.LoadConfig(filepath.Join(out, clip.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if c.Vision.NumHiddenLayers != 3 || c.Text.NumHiddenLayers != 3 || c.Vision.NumAttentionHeads != 4 {
		t.Errorf("padded config %+v", c)
	}
	pix := tensor.New(2, 3, c.Vision.ImageSize, c.Vision.ImageSize).Normal(tensor.NewRNG(8), 0, 1)
	pixPath := filepath.Join(t.TempDir(), "pix.npy")
	if err := imageproc.WriteNPY(pixPath, pix.Data, pix.Shape); err != nil {
		t.Fatal(err)
	}
	want, got := embedOf(t, model, pixPath), embedOf(t, out, pixPath)
	for _, c := range []struct {
		name      string
		got, want [][]float32
	}{{"image", got.ImageEmbeds, want.ImageEmbeds}, {"text", got.TextEmbeds, want.TextEmbeds}} {
		if e := testutil.MaxRelErrRows(c.got, c.want); !(e <= 1e-5) {
			t.Errorf("%s: padded export embeds differently: %.3e > 1e-5", c.name, e)
		}
	}
}

func TestExportErrors(t *testing.T) {
	model := prunedTeacher(t)
	tmp := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no format", []string{"--model", model, "--out", tmp + "/a"}, 2, "--format"},
		{"bad format", []string{"--model", model, "--format", "tflite", "--out", tmp + "/a"}, 2, "tflite"},
		{"no out", []string{"--model", model, "--format", "hf"}, 2, "--out"},
		{"no model", []string{"--format", "hf", "--out", tmp + "/a"}, 2, "--model"},
		{"out is model", []string{"--model", model, "--format", "onnx", "--out", model, "--force"}, 1, "model directory"},
		{"out holds model", []string{"--model", model, "--format", "onnx", "--out", filepath.Dir(model), "--force"}, 1, "model directory"},
		{"missing model", []string{"--model", tmp + "/nope", "--format", "hf", "--out", tmp + "/a"}, 1, "does not exist"},
		{"stray arg", []string{"--model", model, "--format", "hf", "--out", tmp + "/a", "extra"}, 2, "extra"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runMope(append([]string{"export"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.msg) || strings.Count(strings.TrimSpace(errs), "\n") > 1 {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errs, tc.msg)
			}
		})
	}
	if _, err := os.Stat(tmp + "/a"); err == nil {
		t.Error("a failed export left its --out behind")
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("failed exports left %v", entries)
	}
	if code, _, errs := runMope("export", "--model", model, "--format", "hf", "--out", tmp+"/b"); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if code, _, errs := runMope("export", "--model", model, "--format", "hf", "--out", tmp+"/b"); code != 1 || !strings.Contains(errs, "--force") {
		t.Errorf("existing --out: exit %d, %s", code, errs)
	}
}

// TestExportVocab: a model directory without a tokenizer (as open_clip
// ones often are) gets the --vocab tokenizer written along; one of another
// size is refused, naming both sizes.
func TestExportVocab(t *testing.T) {
	const teacher = "../../assets/shapes-teacher"
	m, err := clip.Load(teacher)
	if err != nil {
		t.Fatal(err)
	}
	bare := t.TempDir()
	if err := m.Save(bare); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{clip.VocabFile, clip.MergesFile} {
		os.Remove(filepath.Join(bare, f))
	}
	out := filepath.Join(t.TempDir(), "onnx")
	if code, _, errs := runMope("export", "--model", bare, "--format", "onnx", "--out", out, "--vocab", teacher); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, f := range []string{clip.VocabFile, clip.MergesFile, clip.TokenizerConfigFile} {
		want, _ := os.ReadFile(filepath.Join(teacher, f))
		got, err := os.ReadFile(filepath.Join(out, f))
		if err != nil || len(got) == 0 || (f == clip.MergesFile && string(got) != string(want)) {
			t.Errorf("%s not written from --vocab (%v)", f, err)
		}
	}
	tiny, _ := clip.Preset("tiny")
	tm, err := clip.New(tiny, 1)
	if err != nil {
		t.Fatal(err)
	}
	tdir := t.TempDir()
	if err := tm.Save(tdir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{clip.VocabFile, clip.MergesFile} {
		os.Remove(filepath.Join(tdir, f))
	}
	bad := filepath.Join(t.TempDir(), "x")
	code, _, errs := runMope("export", "--model", tdir, "--format", "hf", "--out", bad, "--vocab", teacher)
	if code != 1 || !strings.Contains(errs, "768 tokens") || !strings.Contains(errs, "49408") {
		t.Errorf("mismatched --vocab: exit %d, %s", code, errs)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("failed export left its --out")
	}
}
