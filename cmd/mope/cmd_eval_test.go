package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/dataset"
)

// evalJSON runs eval with --json and returns the decoded object.
func evalJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	code, out, errs := runMope(append([]string{"eval", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("eval %v: exit %d: %s", args, code, errs)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return v
}

// evalFixture writes n PNGs and a JSONL file with two captions each; the
// first 4 images are in split "test", the others in "train".
func evalFixture(t *testing.T, n int) (dir, jsonl string) {
	dir = t.TempDir()
	var lines []string
	words := []string{"red", "green", "blue", "big", "small", "circle", "square", "star", "cat", "dog"}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("im%02d.png", i)
		writeTestPNG(t, filepath.Join(dir, name), 20+3*i, 40-i, uint8(37*i))
		split := "train"
		if i < 4 {
			split = "test"
		}
		caps := []string{words[i%10] + " " + words[(i*3+1)%10], "a photo of a " + words[(i*7+2)%10]}
		b, _ := json.Marshal(map[string]any{"image": name, "captions": caps, "split": split})
		lines = append(lines, string(b))
	}
	jsonl = filepath.Join(dir, "data.jsonl")
	if err := os.WriteFile(jsonl, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, jsonl
}

func TestEvalRetrievalFile(t *testing.T) {
	model := embedTinyModel(t)
	_, jsonl := evalFixture(t, 10)
	got := evalJSON(t, "--model", model, "--data", jsonl, "--split", "all", "--batch", "3")
	r, err := dataset.Load(jsonl, "all", 0)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := clip.Load(model)
	tok, _ := clip.LoadTokenizer(model)
	pre, _ := modelPreprocessConfig(model)
	enc := &clip.Encoder{Model: m, Tok: tok, Batch: 3}
	img, err := enc.ImageFiles(r.Images, pre)
	if err != nil {
		t.Fatal(err)
	}
	txt, err := enc.Texts(r.Captions)
	if err != nil {
		t.Fatal(err)
	}
	want := clip.RetrievalMetrics(img, txt, r.CaptionImage)
	for k, v := range map[string]float64{"tr1": want.TR1, "tr5": want.TR5, "tr10": want.TR10, "ir1": want.IR1, "ir5": want.IR5, "ir10": want.IR10} {
		if g, ok := got[k].(float64); !ok || g != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if got["images"] != 10.0 || got["captions"] != 20.0 || got["task"] != "retrieval" || got["model"] != model {
		t.Errorf("report: %v", got)
	}
	// The image part's rate (to compare with mope bench --tower vision).
	if is, ips := got["image_seconds"].(float64), got["images_per_s"].(float64); is <= 0 || ips != 10/is || got["text_seconds"].(float64) <= 0 {
		t.Errorf("image part %vs at %v images/s, text part %vs", got["image_seconds"], got["images_per_s"], got["text_seconds"])
	}
	// r1 is the demo's mean R@1, mean the mean of the six recalls.
	if g, w := got["r1"], (want.TR1+want.IR1)/2; g != w {
		t.Errorf("r1 = %v, want %v", g, w)
	}
	if g, w := got["mean"], want.Mean(); g != w {
		t.Errorf("mean = %v, want %v", g, w)
	}
	// The default split is test; --limit keeps the first N images.
	got = evalJSON(t, "--model", model, "--data", jsonl)
	if got["images"] != 4.0 {
		t.Errorf("default split: %v images, want the 4 test images", got["images"])
	}
	got = evalJSON(t, "--model", model, "--data", jsonl, "--split", "train", "--limit", "3")
	if got["images"] != 3.0 || got["captions"] != 6.0 {
		t.Errorf("--limit 3: %v", got)
	}
	// Human-readable output.
	code, out, errs := runMope("eval", "--model", model, "--data", jsonl, "--quiet")
	if code != 0 || !strings.Contains(out, "R@1") || !strings.Contains(out, "mean R@1") || !strings.Contains(out, "images: 4 in ") {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
}

func TestEvalShapes(t *testing.T) {
	model := embedTinyModel(t)
	got := evalJSON(t, "--model", model, "--data", "shapes", "--limit", "24", "--quiet")
	for _, k := range []string{"tr1", "tr5", "tr10", "ir1", "ir5", "ir10"} {
		v, ok := got[k].(float64)
		if !ok || v < 0 || v > 100 {
			t.Errorf("%s = %v", k, got[k])
		}
	}
	if got["images"] != 24.0 || got["captions"] != 120.0 || got["split"] != "test" {
		t.Errorf("report: %v", got)
	}
	if got["tr10"].(float64) < got["tr1"].(float64) {
		t.Errorf("recall@10 below recall@1: %v", got)
	}
	// --misses: the same recalls, and one classified miss per caption whose
	// top-1 image is not its own.
	m := evalJSON(t, "--model", model, "--data", "shapes", "--limit", "24", "--quiet", "--misses")
	for _, k := range []string{"tr1", "tr5", "tr10", "ir1", "ir5", "ir10"} {
		if m[k] != got[k] {
			t.Errorf("--misses changed %s: %v vs %v", k, m[k], got[k])
		}
	}
	kinds, ok := m["misses"].(map[string]any)
	if !ok || len(kinds) != 4 {
		t.Fatalf("misses: %v", m["misses"])
	}
	n := 0.0
	for _, v := range kinds {
		n += v.(float64)
	}
	if want := 120 * (1 - got["ir1"].(float64)/100); math.Abs(n-want) > 0.5 {
		t.Errorf("%v misses for %d captions at IR@1 %v", n, 120, got["ir1"])
	}
	// Progress goes to stderr, not stdout.
	code, _, errs := runMope("eval", "--model", model, "--data", "shapes", "--limit", "8", "--split", "val")
	if code != 0 || !strings.Contains(errs, "shapes val: 8 images") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestEvalZeroShotFolder(t *testing.T) {
	model := embedTinyModel(t)
	root := t.TempDir()
	for c, class := range []string{"red_circle", "blue_square", "cat"} {
		dir := filepath.Join(root, class)
		os.MkdirAll(dir, 0o755)
		for i := 0; i < 3; i++ {
			writeTestPNG(t, filepath.Join(dir, fmt.Sprintf("%d.png", i)), 25+i, 30, uint8(60*c+7*i))
		}
	}
	got := evalJSON(t, "--model", model, "--data", root, "--quiet")
	if got["task"] != "zeroshot" || got["images"] != 9.0 || got["classes"] != 3.0 {
		t.Fatalf("report: %v", got)
	}
	// With 3 classes every image is in the top 5.
	if got["top5"] != 100.0 {
		t.Errorf("top5 = %v", got["top5"])
	}
	m, _ := clip.Load(model)
	tok, _ := clip.LoadTokenizer(model)
	pre, _ := modelPreprocessConfig(model)
	folder, _ := dataset.ReadImageFolder(root, 0)
	enc := &clip.Encoder{Model: m, Tok: tok, Batch: 4}
	cls, err := enc.ClassEmbeddings([]string{"blue square", "cat", "red circle"}, []string{"a {}", "the {}"})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	var labels []int
	for _, it := range folder.Items {
		paths, labels = append(paths, it.Image), append(labels, it.Label)
	}
	img, err := enc.ImageFiles(paths, pre)
	if err != nil {
		t.Fatal(err)
	}
	want := clip.ClassMetrics(img, cls, labels)
	got = evalJSON(t, "--model", model, "--data", root, "--task", "zeroshot", "--template", "a {}", "--template", "the {}", "--quiet")
	if got["top1"] != want.Top1 || got["top5"] != want.Top5 {
		t.Errorf("got %v, want %+v", got, want)
	}
	names := filepath.Join(t.TempDir(), "names.txt")
	os.WriteFile(names, []byte("blue square\ncat\nred circle\n"), 0o644)
	got = evalJSON(t, "--model", model, "--data", root, "--classnames", names, "--template", "a {}", "--template", "the {}", "--quiet")
	if got["top1"] != want.Top1 {
		t.Errorf("--classnames: got %v, want %+v", got, want)
	}
	code, out, errs := runMope("eval", "--model", model, "--data", root, "--quiet")
	if code != 0 || !strings.Contains(out, "top-1") {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
}

func TestEvalErrors(t *testing.T) {
	model := embedTinyModel(t)
	dir, jsonl := evalFixture(t, 5)
	noImage := filepath.Join(dir, "missing.jsonl")
	os.WriteFile(noImage, []byte(`{"image": "gone.png", "caption": "a cat"}`+"\n"), 0o644)
	names := filepath.Join(dir, "names.txt")
	os.WriteFile(names, []byte("one\n"), 0o644)
	folder := t.TempDir()
	os.MkdirAll(filepath.Join(folder, "a"), 0o755)
	os.MkdirAll(filepath.Join(folder, "b"), 0o755)
	writeTestPNG(t, filepath.Join(folder, "a", "1.png"), 10, 10, 1)
	writeTestPNG(t, filepath.Join(folder, "b", "1.png"), 10, 10, 2)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--data", jsonl}, 2, "--model"},
		{[]string{"--model", model}, 2, "--data"},
		{[]string{"--model", model, "--data", "shapes", "--split", "bogus"}, 2, `unknown split "bogus"`},
		{[]string{"--model", model, "--data", jsonl, "--split", "bogus"}, 1, `no images in split "bogus"`},
		{[]string{"--model", model, "--data", jsonl, "--task", "bogus"}, 2, "--task"},
		{[]string{"--model", model, "--data", jsonl, "--task", "zeroshot"}, 2, "image-folder"},
		{[]string{"--model", model, "--data", folder, "--task", "retrieval"}, 2, "directory"},
		{[]string{"--model", model, "--data", filepath.Join(dir, "nope.json")}, 1, "nope.json"},
		{[]string{"--model", model, "--data", noImage}, 1, "gone.png"},
		{[]string{"--model", filepath.Join(dir, "nomodel"), "--data", jsonl}, 1, "does not exist"},
		{[]string{"--model", model, "--data", folder, "--template", "no placeholder"}, 1, "{}"},
		{[]string{"--model", model, "--data", folder, "--classnames", names}, 1, "1 class names for 2"},
		{[]string{"--model", model, "--data", jsonl, "--template", "a {}"}, 2, "zeroshot"},
		{[]string{"--model", model, "--data", "shapes", "--limit", "-1"}, 2, "--limit"},
		{[]string{"--model", model, "--data", jsonl, "--batch", "0"}, 2, "--batch"},
		{[]string{"--model", model, "--data", jsonl, "--misses"}, 2, "--misses"},
	} {
		code, out, errs := runMope(append([]string{"eval", "--quiet"}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q", c.args, code, c.code, errs)
		}
		if out != "" {
			t.Errorf("%v: printed %q on failure", c.args, out)
		}
	}
}
