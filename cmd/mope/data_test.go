package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/dataset/shapes"
)

func dataRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDataExportShapes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shapes")
	code, out, errs := dataRun(t, "data", "export", "shapes", "--split", "test", "--out", dir, "--n", "12", "--seed", "5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if lines := strings.Count(out, "\n"); lines != 1 || !strings.Contains(out, "wrote 12 images and 60 captions") {
		t.Errorf("summary %q", out)
	}
	r, err := dataset.Load(filepath.Join(dir, "dataset.json"), "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Images) != 12 || len(r.Captions) != 60 {
		t.Fatalf("read back %d images, %d captions", len(r.Images), len(r.Captions))
	}
	cfg := shapes.DefaultConfig()
	cfg.Seed = 5
	exs, err := shapes.Generate(cfg, "test", 12)
	if err != nil {
		t.Fatal(err)
	}
	if r.Captions[0] != exs[0].Captions[0] {
		t.Errorf("--seed not applied: %q vs %q", r.Captions[0], exs[0].Captions[0])
	}

	// The same command writes the same bytes; flags may come first.
	dir2 := filepath.Join(t.TempDir(), "again")
	if code, _, errs := dataRun(t, "data", "export", "--out", dir2, "--n", "12", "--seed", "5", "shapes"); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, f := range []string{"dataset.json", "test/shapes-test-000000.png", "test/shapes-test-000011.png"} {
		a, _ := os.ReadFile(filepath.Join(dir, f))
		b, _ := os.ReadFile(filepath.Join(dir2, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between identical exports", f)
		}
	}

	// Several splits into one manifest.
	dir3 := filepath.Join(t.TempDir(), "multi")
	if code, _, errs := dataRun(t, "data", "export", "shapes", "--split", "val,calib", "--n", "3", "--out", dir3); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if r, err := dataset.Load(filepath.Join(dir3, "dataset.json"), "calib", 0); err != nil || len(r.Images) != 3 {
		t.Fatalf("calib split: %v %v", r, err)
	}
}

func TestDataExportUsageErrors(t *testing.T) {
	out := t.TempDir()
	for _, args := range [][]string{
		{"data"},
		{"data", "frobnicate"},
		{"data", "export", "--out", out},
		{"data", "export", "coco", "--out", out},
		{"data", "export", "shapes"},
		{"data", "export", "shapes", "--out", out, "--split", "bogus"},
		{"data", "export", "shapes", "--out", out, "--n", "-1"},
		{"data", "export", "shapes", "--out", out, "--max-objects", "9"},
		{"data", "export", "shapes", "--out", out, "--nope"},
		{"data", "preview", "--n", "4"},
		{"data", "preview", "--out", filepath.Join(out, "x.png"), "--split", "train,val"},
		{"data", "inspect"},
	} {
		code, _, errs := dataRun(t, args...)
		if code != 2 || !strings.Contains(errs, "mope data") {
			t.Errorf("%q: exit %d, stderr %q; want a usage error", args, code, errs)
		}
	}
}

func TestDataPreview(t *testing.T) {
	p := filepath.Join(t.TempDir(), "grid.png")
	code, out, errs := dataRun(t, "data", "preview", "--split", "train", "--n", "6", "--scale", "2", "--out", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 3×2 grid of 128-pixel tiles with padding and a label row.
	if b := img.Bounds(); b.Dx() < 3*128 || b.Dy() < 2*128 || b.Dx() > 3*128+40 || b.Dy() > 2*128+60 {
		t.Errorf("contact sheet %v", b)
	}
	exs, err := shapes.Generate(shapes.DefaultConfig(), "train", 6)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range exs {
		if !strings.Contains(out, e.ID) {
			t.Errorf("output lacks %s", e.ID)
		}
		for _, c := range e.Captions {
			if !strings.Contains(out, "    "+c+"\n") {
				t.Errorf("output lacks caption %q", c)
			}
		}
	}
}

func TestDataInspect(t *testing.T) {
	dir := t.TempDir()
	if _, err := shapes.ExportSplits(dir, shapes.DefaultConfig(), shapes.Part{Split: "test", N: 4}); err != nil {
		t.Fatal(err)
	}
	code, out, errs := dataRun(t, "data", "inspect", filepath.Join(dir, "dataset.json"), "--split", "test", "--examples", "1")
	if code != 0 || !strings.Contains(out, "4 images, 20 captions") || !strings.Contains(out, "shapes-test-000000.png") {
		t.Fatalf("exit %d: %s%s", code, out, errs)
	}
	code, out, errs = dataRun(t, "data", "inspect", filepath.Join(dir, "dataset.json"), "--split", "test", "--examples", "1", "--json")
	var rep inspectReport
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || rep.Images != 4 || rep.Captions != 20 || rep.Split != "test" ||
		len(rep.Examples) != 1 || len(rep.Examples[0].Captions) != 5 || !strings.HasSuffix(rep.Examples[0].Image, "shapes-test-000000.png") {
		t.Fatalf("--json: exit %d, %v: %s%s", code, err, out, errs)
	}
	code, _, errs = dataRun(t, "data", "inspect", filepath.Join(dir, "dataset.json"), "--split", "train")
	if code != 1 || !strings.Contains(errs, `no images in split "train"`) {
		t.Errorf("empty split: exit %d, %s", code, errs)
	}
	// An image-folder tree.
	tree := t.TempDir()
	for _, p := range []string{"cat/1.png", "dog/2.jpg", "dog/3.jpg"} {
		os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(tree, p), []byte("x"), 0o644)
	}
	code, out, errs = dataRun(t, "data", "inspect", tree)
	if code != 0 || !strings.Contains(out, "2 classes, 3 images") {
		t.Errorf("image folder: exit %d: %s%s", code, out, errs)
	}
}

func TestDataHelp(t *testing.T) {
	for _, sub := range []string{"export", "preview", "inspect"} {
		code, out, errs := dataRun(t, "data", sub, "--help")
		if code != 0 || !strings.Contains(out, "usage: mope data "+sub) {
			t.Errorf("data %s --help: exit %d, %q", sub, code, errs)
		}
	}
}
