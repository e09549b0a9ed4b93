//go:build cuda && cudaemu

package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/internal/testutil"
	"github.com/mopeclip/mopeclip/mope"
	"github.com/mopeclip/mopeclip/train"
)

// The --device cuda paths on the CPU emulator of package cuda
// (go test -tags cuda,cudaemu -run Device ./cmd/mope/): the GPU-resident
// towers give the CPU embeddings to 1e-5 (normwise) in mope embed and the
// same metrics in mope eval, and mope bench reports both towers.

func TestDeviceEmbed(t *testing.T) {
	model := embedTinyModel(t)
	_, a, b := preprocessFixture(t)
	args := []string{"embed", "--model", model, "--image", a, "--image", b, "--text", "a red circle",
		"--text", "the big dog", "--text", "cat", "--batch", "2"}
	code, out, errs := runMope(args...)
	if code != 0 {
		t.Fatalf("cpu: exit %d: %s", code, errs)
	}
	want := parseEmbed(t, out)
	code, out, errs = runMope(append(args, "--device", "cuda")...)
	if code != 0 {
		t.Fatalf("cuda: exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "device: CPU emulator") {
		t.Errorf("no device line: %q", errs)
	}
	got := parseEmbed(t, out)
	if e := testutil.MaxRelErrRows(got.ImageEmbeds, want.ImageEmbeds); !(e <= 1e-5) {
		t.Errorf("image embeddings: relative error %.3g", e)
	}
	if e := testutil.MaxRelErrRows(got.TextEmbeds, want.TextEmbeds); !(e <= 1e-5) {
		t.Errorf("text embeddings: relative error %.3g", e)
	}

	// --pixels goes through the same tower.
	npy := filepath.Join(t.TempDir(), "px.npy")
	if code, _, errs := runMope("preprocess", "--model", model, "--image", a, "--image", b, "--out", npy); code != 0 {
		t.Fatalf("preprocess: exit %d: %s", code, errs)
	}
	code, out, errs = runMope("embed", "--model", model, "--pixels", npy, "--device", "cuda")
	if code != 0 {
		t.Fatalf("--pixels: exit %d: %s", code, errs)
	}
	if e := testutil.MaxRelErrRows(parseEmbed(t, out).ImageEmbeds, want.ImageEmbeds); !(e <= 1e-5) {
		t.Errorf("--pixels image embeddings: relative error %.3g", e)
	}
	// TF32 needs cuBLAS, which the emulator does not have: a clean error.
	code, out, errs = runMope(append(args, "--device", "cuda:tf32")...)
	if code != 1 || out != "" || !strings.Contains(errs, "TF32 needs cuBLAS") {
		t.Errorf("cuda:tf32 without cuBLAS: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestDeviceEval(t *testing.T) {
	model := embedTinyModel(t)
	args := []string{"eval", "--model", model, "--data", "shapes", "--limit", "6", "--batch", "4", "--json", "--quiet"}
	var reps [2]map[string]any
	for i, dev := range []string{"cpu", "cuda"} {
		code, out, errs := runMope(append(args, "--device", dev)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", dev, code, errs)
		}
		if dev == "cuda" && !strings.Contains(errs, "device: CPU emulator") {
			t.Errorf("no device line: %q", errs)
		}
		if err := json.Unmarshal([]byte(out), &reps[i]); err != nil {
			t.Fatalf("%s: %v\n%s", dev, err, out)
		}
		delete(reps[i], "seconds")
	}
	for _, k := range []string{"tr1", "tr5", "tr10", "ir1", "ir5", "ir10", "mean", "images", "captions"} {
		if reps[0][k] == nil || reps[0][k] != reps[1][k] {
			t.Errorf("%s: cpu %v, cuda %v", k, reps[0][k], reps[1][k])
		}
	}
}

func TestDeviceBench(t *testing.T) {
	model := embedTinyModel(t)
	code, out, errs := runMope("bench", "--model", model, "--device", "cuda", "--batch", "3", "--rounds", "1",
		"--warmup", "0", "--text-len", "9", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"image_per_s", "text_per_s", "image_gflops", "text_gflops"} {
		if v, ok := rep[k].(float64); !ok || !(v > 0) {
			t.Errorf("%s = %v", k, rep[k])
		}
	}
	if d, _ := rep["device"].(string); rep["engine"] != "cuda" || !strings.HasPrefix(d, "cuda: CPU emulator") {
		t.Errorf("engine %v, device %v", rep["engine"], rep["device"])
	}
	code, out, errs = runMope("bench", "--model", model, "--device", "cuda", "--tower", "text", "--rounds", "1", "--warmup", "0")
	if code != 0 || !strings.Contains(out, "texts/s") || strings.Contains(out, "images/s") || !strings.Contains(out, "GPU-resident towers on cuda: CPU emulator") {
		t.Fatalf("exit %d: %s\n%s", code, out, errs)
	}
}

// TestDeviceScore: mope score --device cuda (the towers on the device, the
// prefix cache there) writes the CPU's scores: the same recall counts.
func TestDeviceScore(t *testing.T) {
	model := embedTinyModel(t)
	dir := t.TempDir()
	var files [2]struct {
		Settings struct{ Engine string }
		Baseline float64
		Scores   []struct {
			ID    int
			Score float64
		}
	}
	for i, dev := range []string{"cpu", "cuda"} {
		out := filepath.Join(dir, dev+".json")
		code, _, errs := runMope("score", "--model", model, "--data", "shapes", "--limit", "4", "--tower", "vision",
			"--modules", "layers,heads", "--out", out, "--quiet", "--device", dev)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", dev, code, errs)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &files[i]); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
	}
	cpu, gpu := files[0], files[1]
	if cpu.Settings.Engine != "fast" || gpu.Settings.Engine != "cuda" {
		t.Errorf("engines %q and %q, want fast and cuda", cpu.Settings.Engine, gpu.Settings.Engine)
	}
	if len(gpu.Scores) == 0 || len(gpu.Scores) != len(cpu.Scores) || gpu.Baseline != cpu.Baseline {
		t.Fatalf("cuda: %d scores, baseline %v; cpu: %d, %v", len(gpu.Scores), gpu.Baseline, len(cpu.Scores), cpu.Baseline)
	}
	for i, s := range gpu.Scores {
		if w := cpu.Scores[i]; s != w {
			t.Errorf("module %d: cuda %v, cpu %v", s.ID, s.Score, w.Score)
		}
	}
}

// TestDevicePipeline: mope pipeline --device cuda (scoring on the
// device-resident towers, distillation on the device-resident backend)
// makes the CPU's pruning decisions: the same steps and shapes, the
// teacher's scores exactly, and distillation losses and gradient norms
// within 1e-4 (relative) of the CPU's.
func TestDevicePipeline(t *testing.T) {
	tdir, _ := tinyTeacherDir(t)
	var res [2]mope.PipelineResult
	var scores [2]*mope.ScoreFile
	for i, dev := range []string{"cpu", "cuda"} {
		out := filepath.Join(t.TempDir(), dev)
		code, _, errs := runMope("pipeline", "--stage", "finetune", "--tower", "vision", "--teacher", tdir, "--data", "shapes",
			"--target-flops", "0.4", "--min-width", "0.4", "--out", out, "--steps", "4", "--batch", "4", "--train-n", "8",
			"--val-n", "4", "--calib-n", "6", "--device", dev)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", dev, code, errs)
		}
		if n := strings.Count(errs, "distilling on the device-resident backend (cuda)"); (dev == "cuda") != (n == 2) {
			t.Errorf("%s: %d distillations on the device-resident backend, want 2 on the device, 0 on the CPU", dev, n)
		}
		b, err := os.ReadFile(filepath.Join(out, "pipeline.json"))
		if err != nil || json.Unmarshal(b, &res[i]) != nil {
			t.Fatalf("%s: pipeline.json: %v", dev, err)
		}
		if len(res[i].Steps) == 0 || res[i].Steps[0].Kind != "score" {
			t.Fatalf("%s: steps %+v", dev, res[i].Steps)
		}
		if scores[i], err = mope.ReadScores(filepath.Join(res[i].Steps[0].Dir, "scores.json")); err != nil {
			t.Fatal(err)
		}
	}
	cpu, gpu := res[0], res[1]
	if len(cpu.Steps) != len(gpu.Steps) {
		t.Fatalf("%d steps on the device, %d on the CPU", len(gpu.Steps), len(cpu.Steps))
	}
	for i, s := range gpu.Steps {
		c := cpu.Steps[i]
		if s.Name != c.Name || s.Kind != c.Kind || s.Params != c.Params || s.GFLOPs != c.GFLOPs {
			t.Errorf("step %d: device %s %s %d params %.4g GFLOPs; CPU %s %s %d %.4g", i, s.Name, s.Kind, s.Params, s.GFLOPs,
				c.Name, c.Kind, c.Params, c.GFLOPs)
		}
	}
	distills := 0
	for i, s := range gpu.Steps {
		if s.Kind != "distill" || i >= len(cpu.Steps) {
			continue
		}
		distills++
		for _, col := range []string{"loss", "grad_norm"} {
			want, got := curveSeries(t, cpu.Steps[i].Dir, col), curveSeries(t, s.Dir, col)
			if len(got) != len(want) || len(got) == 0 {
				t.Fatalf("%s %s: %d device rows, %d CPU rows", s.Name, col, len(got), len(want))
			}
			for r := range got {
				e := math.Abs(got[r]-want[r]) / math.Abs(want[r])
				t.Logf("ERRORS %s %s row %d: device %.7g, CPU %.7g, relative %.2e", s.Name, col, r, got[r], want[r], e)
				if !(e <= 1e-4) {
					t.Errorf("%s %s row %d: device %.7g, CPU %.7g (relative %.2e > 1e-4)", s.Name, col, r, got[r], want[r], e)
				}
			}
		}
	}
	if distills != 2 {
		t.Errorf("%d distillation steps compared, want 2", distills)
	}
	if e := scores[1].Settings.Engine; e != mope.EngineCUDA {
		t.Errorf("device scores made by engine %q", e)
	}
	if len(scores[1].Scores) == 0 || len(scores[1].Scores) != len(scores[0].Scores) {
		t.Fatalf("%d device scores, %d CPU scores", len(scores[1].Scores), len(scores[0].Scores))
	}
	for i, s := range scores[1].Scores {
		if w := scores[0].Scores[i]; s.Module != w.Module || s.Score != w.Score {
			t.Errorf("teacher score %v: device %v, CPU %v", s.Module, s.Score, w.Score)
		}
	}
}

// curveSeries is column col of the training curve in dir (curve.csv).
func curveSeries(t *testing.T, dir, col string) []float64 {
	t.Helper()
	c, err := train.ReadCurve(filepath.Join(dir, "curve.csv"))
	if err != nil {
		t.Fatal(err)
	}
	_, v := c.Series(col)
	return v
}
