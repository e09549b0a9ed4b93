package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/internal/atomicfile"
)

// TestHostileFlagsAndOutputs: what a probe of the built binary found
// (absurd sizes and counts, an --out that is an input, two exports to one
// place), each now a one-line error with a non-zero exit that writes
// nothing and leaves every input as it was. Every case is refused before a
// model or data set is loaded.
func TestHostileFlagsAndOutputs(t *testing.T) {
	model := tinyModelDir(t)
	tmp := t.TempDir()
	img := filepath.Join(tmp, "a.png")
	writeTestPNG(t, img, 40, 30, 0)
	data := filepath.Join(tmp, "data.jsonl")
	sheet := filepath.Join(tmp, "dataset.json")
	for path, body := range map[string]string{data: `{"image": "a.png", "caption": "a cat"}` + "\n", sheet: `{"images": []}`} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	weights := filepath.Join(model, "model.safetensors")
	inputs := []string{img, data, sheet, weights, filepath.Join(model, "config.json")}
	before := map[string]string{}
	for _, p := range inputs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		before[p] = string(b)
	}
	fresh := func(name string) string { return filepath.Join(tmp, "out-"+name) }
	pt := []string{"pretrain", "--init", model, "--data", "shapes", "--steps", "1", "--batch", "2", "--train-n", "2", "--val-n", "0", "--quiet"}
	ds := []string{"distill", "--teacher", model, "--student", model, "--steps", "1", "--batch", "2", "--train-n", "2", "--val-n", "0", "--quiet"}
	pl := []string{"pipeline", "--teacher", model, "--metric", "magnitude", "--steps", "1", "--batch", "2", "--train-n", "2", "--val-n", "0", "--calib-n", "2", "--quiet"}
	pr := []string{"prune", "--model", model, "--scores", data, "--quiet"}
	sc := []string{"score", "--model", model, "--metric", "magnitude", "--quiet"}
	with := func(base []string, more ...string) []string { return append(append([]string(nil), base...), more...) }
	cases := []struct {
		name string
		args []string
		code int
		msg  string
		out  string // must not exist afterwards ("" to skip)
	}{
		// An --out that is an input.
		{"preprocess over its image", []string{"preprocess", "--size", "32", "--image", img, "--out", img}, 2, "would destroy the input", ""},
		{"score over the weights", with(sc, "--out", weights), 2, "is the model.safetensors of --model", ""},
		{"score over its data", with(sc, "--data", data, "--out", data), 2, "is --data", ""},
		{"pretrain over --init", with(pt, "--out", model), 2, "--init", ""},
		{"preview over a non-PNG", []string{"data", "preview", "--limit", "2", "--out", sheet}, 2, "want a .png file name", ""},
		// Absurd sizes.
		{"preprocess --size 1e9", []string{"preprocess", "--size", "1000000000", "--image", img, "--out", fresh("p.npy")}, 2, "at most 4096 pixels", fresh("p.npy")},
		{"bench --batch 1e12", []string{"bench", "--model", model, "--batch", "1000000000000", "--rounds", "1"}, 2, "want 1 to 4096", ""},
		// Counts and rates out of range.
		{"pretrain --lr NaN", with(pt, "--lr", "NaN", "--out", fresh("pt1")), 2, "--lr must be a finite number > 0, got NaN", fresh("pt1")},
		{"pretrain --lr -1", with(pt, "--lr", "-1", "--out", fresh("pt2")), 2, "--lr must be", fresh("pt2")},
		{"pretrain --wd Inf", with(pt, "--wd", "Inf", "--out", fresh("pt3")), 2, "--wd must be", fresh("pt3")},
		{"pretrain --warmup -1", with(pt, "--warmup", "-1", "--out", fresh("pt4")), 2, "--warmup must be 0 or positive", fresh("pt4")},
		{"pretrain --train-n -1", with(pt, "--train-n", "-1", "--out", fresh("pt5")), 2, "--train-n", fresh("pt5")},
		{"pretrain --val-every -1", with(pt, "--val-every", "-1", "--out", fresh("pt6")), 2, "--val-every", fresh("pt6")},
		{"pretrain --checkpoint-every -1", with(pt, "--checkpoint-every", "-1", "--out", fresh("pt7")), 2, "--checkpoint-every", fresh("pt7")},
		{"pretrain --stop-at -1", with(pt, "--stop-at", "-1", "--out", fresh("pt8")), 2, "--stop-at", fresh("pt8")},
		{"distill --steps -1", with(ds, "--steps", "-1", "--out", fresh("d1")), 2, "--steps must be at least 1", fresh("d1")},
		{"distill --batch 0", with(ds, "--batch", "0", "--out", fresh("d2")), 2, "--batch must be at least 2", fresh("d2")},
		{"distill --temp 0", with(ds, "--temp", "0", "--out", fresh("d3")), 2, "--temp must be a finite number > 0", fresh("d3")},
		{"distill --kd -1", with(ds, "--kd", "-1", "--out", fresh("d4")), 2, "--kd", fresh("d4")},
		{"distill --min-lr NaN", with(ds, "--min-lr", "NaN", "--out", fresh("d5")), 2, "--min-lr", fresh("d5")},
		{"pipeline --steps -1", with(pl, "--steps", "-1", "--out", fresh("pl1")), 2, "--steps must be 0 or positive", fresh("pl1")},
		{"pipeline --calib-n -1", with(pl, "--calib-n", "-1", "--out", fresh("pl2")), 2, "--calib-n", fresh("pl2")},
		{"pipeline --target-flops 2", with(pl, "--target-flops", "2", "--out", fresh("pl3")), 2, "--target-flops must be a number in [0, 1]", fresh("pl3")},
		{"pipeline --min-width 2", with(pl, "--min-width", "2", "--out", fresh("pl4")), 2, "--min-width", fresh("pl4")},
		{"prune --target-flops 2", with(pr, "--target-flops", "2", "--out", fresh("pr1")), 2, "--target-flops must be a number in [0, 1], got 2", fresh("pr1")},
		{"prune --width -1", with(pr, "--width", "-1", "--out", fresh("pr2")), 2, "--width", fresh("pr2")},
		{"prune --min-width 2", with(pr, "--target-flops", "0.5", "--min-width", "2", "--out", fresh("pr3")), 2, "--min-width", fresh("pr3")},
		{"score --groups -1", with(sc, "--groups", "-1", "--out", fresh("s1.json")), 2, "--groups", fresh("s1.json")},
		{"score --batch -1", with(sc, "--batch", "-1", "--out", fresh("s2.json")), 2, "--batch", fresh("s2.json")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runMope(tc.args...)
			msg := strings.TrimSpace(errs)
			if i := strings.Index(msg, "\n(run 'mope"); i >= 0 {
				msg = msg[:i] // the usage hint of exit 2
			}
			if code != tc.code || !strings.Contains(msg, tc.msg) || strings.Contains(msg, "\n") {
				t.Errorf("exit %d (want %d), stderr %q (want one line with %q)", code, tc.code, errs, tc.msg)
			}
			if tc.out != "" {
				if _, err := os.Stat(tc.out); err == nil {
					t.Errorf("a refused run wrote %s", tc.out)
				}
			}
		})
	}
	for _, p := range inputs {
		if b, _ := os.ReadFile(p); string(b) != before[p] {
			t.Errorf("%s changed", p)
		}
	}
}

// TestExportLocked: two exports to one --out do not both succeed (each
// would otherwise find --out free, and the second silently replace the
// first's): the one that finds it locked fails at once.
func TestExportLocked(t *testing.T) {
	model := tinyModelDir(t)
	out := filepath.Join(t.TempDir(), "hf")
	release, err := atomicfile.Lock(out)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs := runMope("export", "--model", model, "--format", "hf", "--out", out)
	release()
	if code != 1 || !strings.Contains(errs, "another mope is writing it") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the locked export wrote --out")
	}
	if code, _, errs := runMope("export", "--model", model, "--format", "hf", "--out", out); code != 0 {
		t.Errorf("after the lock: exit %d: %s", code, errs)
	}
}

// TestFailedRunLeavesNoDirectory: a distillation that fails at its first
// step (a tar with only .txt members, found when streaming starts) leaves
// no empty --out/checkpoint behind, and says what is wrong in one line.
func TestFailedRunLeavesNoDirectory(t *testing.T) {
	const model = "../../assets/shapes-teacher"
	tmp := t.TempDir()
	shard := filepath.Join(tmp, "txt-only.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range 3 {
		b := []byte(fmt.Sprintf("caption %d\n", i))
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%05d.txt", i), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	tw.Close()
	if err := os.WriteFile(shard, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "student")
	code, _, errs := runMope("distill", "--teacher", model, "--student", model, "--data", shard, "--steps", "1", "--batch", "2",
		"--val-n", "0", "--out", out, "--quiet")
	if code != 1 || !strings.Contains(errs, "has no image") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("the failed run left %s", out)
	}
}

// TestPipelineSourceHint: pipeline has no --force, so refusing its
// teacher as --out does not suggest one.
func TestPipelineSourceHint(t *testing.T) {
	model := tinyModelDir(t)
	code, _, errs := runMope("pipeline", "--teacher", model, "--out", model, "--metric", "magnitude")
	if code != 2 || !strings.Contains(errs, "would destroy the source") || strings.Contains(errs, "--force") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}
