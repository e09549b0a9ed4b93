package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/train"
)

func mopeRun(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("mope %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String() + errb.String()
}

// tinyTeacher pretrains a tiny shapes model (seconds) and returns its dir.
func tinyTeacher(t *testing.T, steps int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "teacher")
	mopeRun(t, "pretrain", "--data", "shapes", "--preset", world.TinyPreset, "--steps", strconv.Itoa(steps), "--batch", "16",
		"--train-n", "32", "--val-n", "16", "--val-every", "10", "--warmup", "3", "--lr", "3e-3", "--out", dir)
	return dir
}

func TestPretrainTinyLearnsAndWritesModel(t *testing.T) {
	dir := tinyTeacher(t, 30)
	for _, f := range []string{"config.json", "model.safetensors", "vocab.json", "merges.txt", "curve.csv", "curve.png"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("missing %s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoint")); !os.IsNotExist(err) {
		t.Fatal("checkpoint dir left behind after a finished run")
	}
	c, err := train.ReadCurve(filepath.Join(dir, "curve.csv"))
	if err != nil {
		t.Fatal(err)
	}
	_, loss := c.Series("loss")
	if len(loss) < 3 || !(loss[len(loss)-1] < loss[0]) {
		t.Fatalf("loss did not decrease: %v", loss)
	}
	if _, r1 := c.Series("val_r1"); len(r1) != 3 {
		t.Fatalf("want 3 validation rows, got %v", r1)
	}
	m, err := clip.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := clip.LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Text.VocabSize != tok.VocabSize() || m.Config.Text.EOSTokenID != tok.EOT() {
		t.Fatal("model and tokenizer disagree")
	}
}

// A run stopped at step k (as Ctrl-C or a kill after a checkpoint leaves it)
// and resumed gives the same model, bit for bit, as a straight run.
func TestPretrainResumeMatchesStraightRun(t *testing.T) {
	args := func(dir string) []string {
		return []string{"pretrain", "--preset", world.TinyPreset, "--steps", "7", "--batch", "8", "--train-n", "24",
			"--val-n", "8", "--val-every", "2", "--ckpt-every", "3", "--out", dir}
	}
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	mopeRun(t, args(a)...)
	var out, errb bytes.Buffer
	if code := run(append(args(b), "--stop-at", "4"), &out, &errb); code != 0 || !strings.Contains(errb.String(), "continue with") || !strings.Contains(errb.String(), "--resume") || strings.Contains(errb.String(), "--stop-at 4") {
		t.Fatalf("stopped run: exit %d\n%s", code, errb.String())
	}
	if s := mopeRun(t, append(args(b), "--resume")...); !strings.Contains(s, "resuming from") || !strings.Contains(s, "step 4/7") {
		t.Fatalf("no resume message:\n%s", s)
	}
	for _, f := range []string{"model.safetensors", "curve.csv"} {
		wa, _ := os.ReadFile(filepath.Join(a, f))
		wb, _ := os.ReadFile(filepath.Join(b, f))
		if len(wa) == 0 || !bytes.Equal(wa, wb) {
			t.Fatalf("%s of the resumed run differs from the straight run's", f)
		}
	}
}

func TestDemoOnTinyTeacher(t *testing.T) {
	teacher := tinyTeacher(t, 6)
	out := filepath.Join(t.TempDir(), "demo")
	s := mopeRun(t, "demo", "--no-story", "--teacher", teacher, "--out", out, "--n", "20")
	for _, want := range []string{"teacher", "TR@1", "mean R@1", "results.json"} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q:\n%s", want, s)
		}
	}
	js, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(js, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0]["name"] != "teacher" {
		t.Fatalf("results: %s", js)
	}
	for _, k := range []string{"tr1", "tr5", "tr10", "ir1", "ir5", "ir10", "params", "image_gflops", "text_gflops", "shape_top1", "color_top1"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("results.json lacks %q", k)
		}
	}
	if _, err := clip.Load(filepath.Join(out, "teacher")); err != nil {
		t.Fatal(err)
	}
	if _, err := clip.LoadTokenizer(filepath.Join(out, "teacher")); err != nil {
		t.Fatal(err)
	}
}
