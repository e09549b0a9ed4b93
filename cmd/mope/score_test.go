package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/mope"
)

// tinyModelDir writes a random tiny model with a tokenizer trained on
// shapes captions.
func tinyModelDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg, _ := clip.Preset("tiny")
	m, err := clip.New(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	exs, _ := shapes.Generate(shapes.DefaultConfig(), "calib", 30)
	_, caps, _ := shapes.Flatten(exs)
	tok, err := tokenizer.Train(caps, 700)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.SaveHF(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("mope %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
	}
	return out.String()
}

func TestScoreShardMergePruneInfo(t *testing.T) {
	model := tinyModelDir(t)
	tmp := t.TempDir()
	full := filepath.Join(tmp, "full.json")
	common := []string{"score", "--model", model, "--data", "shapes", "--tower", "both", "--modules", "heads,ffn,layers", "--metric", "mope", "--limit", "16", "--groups", "4", "--quiet"}
	mustRun(t, append(common, "--out", full)...)
	var parts []string
	for _, s := range []string{"0/3", "1/3", "2/3"} {
		p := filepath.Join(tmp, "part"+s[:1]+".json")
		mustRun(t, append(common, "--shard", s, "--out", p)...)
		parts = append(parts, p)
	}
	merged := filepath.Join(tmp, "merged.json")
	mustRun(t, append(append([]string{"score", "merge"}, parts...), "--out", merged)...)
	a, _ := os.ReadFile(full)
	b, _ := os.ReadFile(merged)
	if !bytes.Equal(a, b) {
		t.Fatal("merged shards differ from a single run")
	}
	var out, errb bytes.Buffer
	if code := run(append(append([]string{"score", "merge"}, parts[:2]...), "--out", merged), &out, &errb); code == 0 || !strings.Contains(errb.String(), "missing") {
		t.Errorf("merge with a missing shard: exit %d, %s", code, errb.String())
	}
	// --resume of a finished run scores nothing new and writes the same file.
	mustRun(t, append(common, "--out", full, "--resume")...)
	if c, _ := os.ReadFile(full); !bytes.Equal(a, c) {
		t.Error("resume changed a finished run")
	}

	pruned := filepath.Join(tmp, "pruned")
	msg := mustRun(t, "prune", "--model", model, "--scores", full, "--width", "0.5", "--depth", "0.5", "--data", "shapes", "--limit", "16", "--out", pruned, "--quiet")
	if !strings.Contains(msg, "rescored") {
		t.Errorf("prune output: %s", msg)
	}
	pm, err := clip.Load(pruned)
	if err != nil {
		t.Fatal(err)
	}
	if pm.Config.Vision.NumHiddenLayers != 1 || pm.Config.Vision.Heads(0) != 2 || pm.Config.Text.Intermediate(0) != 96 {
		t.Errorf("pruned config %+v", pm.Config.Vision)
	}
	for _, f := range []string{clip.VocabFile, clip.MergesFile, PruneReportFile} {
		if _, err := os.Stat(filepath.Join(pruned, f)); err != nil {
			t.Error(err)
		}
	}
	info := mustRun(t, "info", "--model", pruned)
	for _, want := range []string{"vision: 1 layers", "text: 1 layers", "teacher", "GFLOPs"} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}
	// Target FLOPs from file layer scores (no --data).
	tgt := filepath.Join(tmp, "tgt")
	mustRun(t, "prune", "--model", model, "--scores", full, "--target-flops", "0.6", "--out", tgt, "--quiet")
	tm, err := clip.Load(tgt)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := clip.Load(model)
	both := clip.BothTowers
	if r := mope.Cost(tm.Config, both, false) / mope.Cost(m.Config, both, false); r > 0.6 {
		t.Errorf("target 0.6: got %.3f", r)
	}
	// Baseline metrics run through the CLI.
	for _, metric := range []string{"magnitude", "random", "taylor", "unimodal"} {
		mustRun(t, "score", "--model", model, "--data", "shapes", "--limit", "8", "--tower", "vision", "--modules", "heads", "--metric", metric, "--quiet", "--out", filepath.Join(tmp, metric+".json"))
	}
}
