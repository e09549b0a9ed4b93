package mope

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/train"
)

func distillRunFixture(t *testing.T) (teacher, student *clip.Model, data DistillData) {
	t.Helper()
	sc := shapes.DefaultConfig()
	tok, err := world.Tokenizer(sc)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := clip.Preset(world.TinyPreset)
	teacher, err = clip.New(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	student, err = Apply(teacher, &Plan{Vision: &TowerPlan{Heads: [][]int{{0}, nil}, Layers: []int{0}}})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := world.Split(sc, "train", 24, cfg.Vision.ImageSize)
	if err != nil {
		t.Fatal(err)
	}
	val, err := world.Split(sc, "val", 8, cfg.Vision.ImageSize)
	if err != nil {
		t.Fatal(err)
	}
	return teacher, student, DistillData{Train: tr, Val: val, Tok: tok}
}

// TestDistillResume: 6 straight steps and 3 + resume + 3 give bit-identical
// students, and the loss goes down on a fixed batch budget.
func TestDistillResume(t *testing.T) {
	teacher, student, data := distillRunFixture(t)
	o := DefaultDistillOptions()
	o.Steps, o.Batch, o.Warmup, o.CkptEvery, o.ValEvery, o.LR = 6, 8, 1, 3, 3, 2e-3

	a := CloneModel(student)
	ra, err := Distill(context.Background(), a, teacher, data, o)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Val == nil || ra.Val["mean"] <= 0 {
		t.Errorf("no validation metrics: %v", ra.Val)
	}

	// Interrupted after step 3 (the context is cancelled when step 3's
	// validation is logged), then resumed in a fresh process (a fresh
	// copy of the start model).
	dir := filepath.Join(t.TempDir(), "ck")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := CloneModel(student)
	o1 := o
	o1.Dir = dir
	o1.Log = cancelOn{"step 3/6 validation", cancel}
	if _, err := Distill(ctx, b, teacher, data, o1); !errors.Is(err, train.ErrInterrupted) {
		t.Fatalf("interrupted run: %v", err)
	}
	c := CloneModel(student)
	o2 := o
	o2.Dir, o2.Resume = dir, true
	rc, err := Distill(context.Background(), c, teacher, data, o2)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Start != 3 {
		t.Errorf("resumed at step %d, want 3", rc.Start)
	}
	if Fingerprint(c) != Fingerprint(a) {
		t.Errorf("interrupted + resumed run differs from the straight run")
	}
	// Other settings refuse to resume.
	o3 := o2
	o3.Weights.KD = 0.5
	if _, err := Distill(context.Background(), CloneModel(student), teacher, data, o3); err == nil {
		t.Errorf("resume with other weights accepted")
	}
}

// cancelOn calls cancel when a log line contains s.
type cancelOn struct {
	s      string
	cancel func()
}

func (c cancelOn) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.s) {
		c.cancel()
	}
	return len(p), nil
}

// TestDistillStreamResume: distillation from tar shards read as a stream
// (shuffle buffer, 20 records, so the interruption after 3 steps of 8 is in
// the middle of the second epoch) resumes bit-identically: the stream
// position is in the checkpoint.
func TestDistillStreamResume(t *testing.T) {
	teacher, student, mem := distillRunFixture(t)
	dir := t.TempDir()
	exs, err := shapes.Generate(shapes.DefaultConfig(), "train", 20)
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < 3; s++ {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for i := s * 20 / 3; i < (s+1)*20/3; i++ {
			var img bytes.Buffer
			png.Encode(&img, exs[i].Image)
			for _, m := range []struct {
				ext  string
				data []byte
			}{{"png", img.Bytes()}, {"txt", []byte(strings.Join(exs[i].Captions, "\n"))}} {
				tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%05d.%s", i, m.ext), Mode: 0o644, Size: int64(len(m.data)), Typeflag: tar.TypeReg})
				tw.Write(m.data)
			}
		}
		tw.Close()
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("s-%d.tar", s)), buf.Bytes(), 0o644)
	}
	d, err := dataset.Open(filepath.Join(dir, "s-{0..2}.tar"), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := DistillData{Stream: d, ShuffleBuffer: 6, Tok: mem.Tok, Val: mem.Val}
	o := DefaultDistillOptions()
	o.Steps, o.Batch, o.Warmup, o.CkptEvery, o.ValEvery, o.LR = 6, 8, 1, 3, 3, 2e-3

	a := CloneModel(student)
	if _, err := Distill(context.Background(), a, teacher, data, o); err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(t.TempDir(), "ck")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o1 := o
	o1.Dir = ck
	o1.Log = cancelOn{"step 3/6 validation", cancel}
	if _, err := Distill(ctx, CloneModel(student), teacher, data, o1); !errors.Is(err, train.ErrInterrupted) {
		t.Fatalf("interrupted run: %v", err)
	}
	c := CloneModel(student)
	o2 := o
	o2.Dir, o2.Resume = ck, true
	rc, err := Distill(context.Background(), c, teacher, data, o2)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Start != 3 || Fingerprint(c) != Fingerprint(a) {
		t.Errorf("resumed at %d; same as the straight run: %v", rc.Start, Fingerprint(c) == Fingerprint(a))
	}
	// The in-memory run differs (another order): the stream was really used.
	m := CloneModel(student)
	if _, err := Distill(context.Background(), m, teacher, DistillData{Train: mem.Train, Tok: mem.Tok}, o); err != nil {
		t.Fatal(err)
	}
	if Fingerprint(m) == Fingerprint(a) {
		t.Error("the streamed run equals the in-memory one")
	}
}
