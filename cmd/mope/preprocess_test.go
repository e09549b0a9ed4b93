package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip/imageproc"
)

func writeTestPNG(t *testing.T, path string, w, h int, seed uint8) {
	t.Helper()
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetNRGBA(x, y, color.NRGBA{uint8(x*5) + seed, uint8(y * 9), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runMope(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func preprocessFixture(t *testing.T) (dir, a, b string) {
	dir = t.TempDir()
	a = filepath.Join(dir, "a.png")
	b = filepath.Join(dir, "b.png")
	writeTestPNG(t, a, 40, 30, 0)
	writeTestPNG(t, b, 17, 50, 100)
	return
}

// wantBatch is what the library gives for the same files and config.
func wantBatch(t *testing.T, cfg imageproc.Config, paths ...string) []float32 {
	t.Helper()
	var all []float32
	for _, p := range paths {
		v, err := imageproc.LoadPreprocessed(p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, v...)
	}
	return all
}

func TestPreprocessSize(t *testing.T) {
	dir, a, b := preprocessFixture(t)
	out := filepath.Join(dir, "x.npy")
	// --image flags and trailing arguments, in command-line order.
	code, stdout, stderr := runMope("preprocess", "--size", "16", "--image", a, "--out", out, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, out) {
		t.Errorf("stdout: %q", stdout)
	}
	data, shape, err := imageproc.ReadNPY(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shape, []int{2, 3, 16, 16}) {
		t.Fatalf("shape %v", shape)
	}
	if !slices.Equal(data, wantBatch(t, imageproc.DefaultConfig(16), a, b)) {
		t.Fatal("output differs from imageproc.LoadPreprocessed")
	}

	// Squash differs from resize-crop on non-square inputs.
	code, _, stderr = runMope("preprocess", "--size", "16", "--mode", "squash", "--image", b, "--out", out)
	if code != 0 {
		t.Fatalf("squash: exit %d: %s", code, stderr)
	}
	sq, _, _ := imageproc.ReadNPY(out)
	cfg := imageproc.DefaultConfig(16)
	cfg.Mode = imageproc.Squash
	if !slices.Equal(sq, wantBatch(t, cfg, b)) {
		t.Fatal("squash output differs from the library")
	}
	if slices.Equal(sq, data[3*16*16:]) {
		t.Fatal("squash equals resize-crop on a 17×50 image")
	}
}

func TestPreprocessModel(t *testing.T) {
	dir, a, b := preprocessFixture(t)
	model := filepath.Join(dir, "model")
	os.Mkdir(model, 0o755)
	os.WriteFile(filepath.Join(model, "config.json"),
		[]byte(`{"architectures": ["CLIPModel"], "text_config": {"hidden_size": 8}, "vision_config": {"image_size": 20, "patch_size": 4}}`), 0o644)
	out := filepath.Join(dir, "m.npy")

	// config.json alone: CLIP mean/std, size 20.
	code, _, stderr := runMope("preprocess", "--model", model, "--image", a, "--image", b, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, shape, _ := imageproc.ReadNPY(out)
	if !slices.Equal(shape, []int{2, 3, 20, 20}) || !slices.Equal(got, wantBatch(t, imageproc.DefaultConfig(20), a, b)) {
		t.Fatalf("config.json only: shape %v or values differ", shape)
	}

	// With a preprocessor_config.json: its mean/std and shortest edge.
	os.WriteFile(filepath.Join(model, "preprocessor_config.json"), []byte(`{
		"crop_size": {"height": 20, "width": 20}, "do_center_crop": true,
		"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.5, 1.0],
		"size": {"shortest_edge": 24}, "image_processor_type": "CLIPImageProcessor"}`), 0o644)
	code, _, stderr = runMope("preprocess", "--model", model, "--image", a, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, _, _ = imageproc.ReadNPY(out)
	cfg := imageproc.Config{Size: 20, Resize: 24, Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.25, 0.5, 1}}
	if !slices.Equal(got, wantBatch(t, cfg, a)) {
		t.Fatal("preprocessor_config.json values not applied")
	}

	// A crop size that contradicts the model is an error.
	os.WriteFile(filepath.Join(model, "preprocessor_config.json"), []byte(`{"crop_size": 224}`), 0o644)
	if code, _, stderr = runMope("preprocess", "--model", model, "--image", a, "--out", out); code != 1 || !strings.Contains(stderr, "crop_size") {
		t.Fatalf("mismatched crop_size: exit %d, %s", code, stderr)
	}
}

func TestPreprocessErrors(t *testing.T) {
	dir, a, _ := preprocessFixture(t)
	out := filepath.Join(dir, "e.npy")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--image", a, "--out", out}, 2, "--model DIR or --size S"},
		{[]string{"--size", "8", "--model", dir, "--image", a, "--out", out}, 2, "not both"},
		{[]string{"--size", "8", "--image", a}, 2, "--out"},
		{[]string{"--size", "8", "--out", out}, 2, "--image"},
		{[]string{"--size", "8", "--mode", "stretch", "--image", a, "--out", out}, 2, "stretch"},
		{[]string{"--size", "-3", "--image", a, "--out", out}, 2, "positive"},
		{[]string{"--size", "8", "--bogus", "--image", a, "--out", out}, 2, "bogus"},
		{[]string{"--size", "8", "--image", filepath.Join(dir, "missing.jpg"), "--out", out}, 1, "missing.jpg"},
		{[]string{"--model", filepath.Join(dir, "nomodel"), "--image", a, "--out", out}, 1, "config.json"},
	} {
		code, _, stderr := runMope(append([]string{"preprocess"}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", c.args, code, c.code, stderr, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed run left an output file")
	}
}
