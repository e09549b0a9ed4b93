package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/mope"
)

// tinyTeacherDir saves a random tiny shapes model with the world's tokenizer.
func tinyTeacherDir(t *testing.T) (string, *clip.Model) {
	t.Helper()
	tok, err := world.Tokenizer(shapes.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := clip.Preset(world.TinyPreset)
	m, err := clip.New(cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "teacher")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := tok.SaveHF(dir); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

func TestDistillCommand(t *testing.T) {
	tdir, teacher := tinyTeacherDir(t)
	student, err := mope.Apply(teacher, &mope.Plan{Vision: &mope.TowerPlan{Layers: []int{1}}})
	if err != nil {
		t.Fatal(err)
	}
	sdir := filepath.Join(t.TempDir(), "student")
	if err := student.Save(sdir); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"distill", "--teacher", tdir, "--student", sdir, "--data", "shapes", "--out", out,
		"--steps", "4", "--batch", "4", "--train-n", "16", "--val-n", "8", "--val-every", "2", "--warmup", "1"}
	var so, se bytes.Buffer
	if rc := run(args, &so, &se); rc != 0 {
		t.Fatalf("rc %d: %s", rc, se.String())
	}
	m, err := clip.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Vision.NumHiddenLayers != 1 || m.Config.Vision.TeacherLayer(0) != 1 {
		t.Errorf("distilled student lost its shape: %+v", m.Config.Vision)
	}
	var mr distillResult
	b, err := os.ReadFile(filepath.Join(out, "metrics.json"))
	if err != nil || json.Unmarshal(b, &mr) != nil || mr.Val == nil || mr.Val.Mean <= 0 || mr.Model != out {
		t.Errorf("metrics.json: %v %s", err, b)
	}
	for _, f := range []string{"curve.csv", "curve.png", "vocab.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// Missing flags are usage errors.
	if rc := run([]string{"distill", "--teacher", tdir}, &so, &se); rc != 2 {
		t.Errorf("missing flags: rc %d", rc)
	}
}

func TestPipelineCommand(t *testing.T) {
	tdir, _ := tinyTeacherDir(t)
	out := filepath.Join(t.TempDir(), "pipe")
	args := []string{"pipeline", "--stage", "finetune", "--tower", "vision", "--teacher", tdir, "--data", "shapes",
		"--target-flops", "0.4", "--min-width", "0.4", "--out", out, "--steps", "4", "--batch", "4", "--train-n", "16",
		"--val-n", "8", "--calib-n", "8"}
	var so, se bytes.Buffer
	if rc := run(args, &so, &se); rc != 0 {
		t.Fatalf("rc %d: %s", rc, se.String())
	}
	var res mope.PipelineResult
	b, err := os.ReadFile(filepath.Join(out, "pipeline.json"))
	if err != nil || json.Unmarshal(b, &res) != nil {
		t.Fatalf("pipeline.json: %v", err)
	}
	kinds := ""
	for _, s := range res.Steps {
		kinds += s.Kind[:1]
	}
	// score, width, distil, layer rescoring, depth, distil.
	if kinds != "spdspd" {
		t.Errorf("steps %q, want spdspd", kinds)
	}
	if _, err := clip.Load(filepath.Join(out, "final")); err != nil {
		t.Error(err)
	}
	se.Reset()
	if rc := run(args, &so, &se); rc != 0 {
		t.Fatalf("re-run rc %d: %s", rc, se.String())
	}
	if !bytes.Contains(se.Bytes(), []byte("done earlier")) {
		t.Errorf("re-run did not resume:\n%s", se.String())
	}
}
