package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/mope"
)

// TestStory runs the story end to end on a tiny random teacher with toy
// budgets: every default row is built, evaluated and reported, a re-run
// reuses the cached steps, and building one model at a time gives the same
// models as building two at once.
func TestStory(t *testing.T) {
	tok, err := world.Tokenizer(shapes.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := clip.Preset(world.TinyPreset)
	teacher, err := clip.New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	tdir := filepath.Join(out, "teacher")
	if err := teacher.Save(tdir); err != nil {
		t.Fatal(err)
	}
	if err := tok.SaveHF(tdir); err != nil {
		t.Fatal(err)
	}
	d, err := newDemoWorld(16, cfg.Vision.ImageSize)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := evalDemoModel("teacher", teacher, tok, d)
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	env := storyEnv{Teacher: teacher, TeacherDir: tdir, Tok: tok, World: d, Out: out, TeacherResult: tr,
		Eval: func(name string, m *clip.Model) (*demoResult, error) {
			r, err := evalDemoModel(name, m, tok, d)
			if err == nil {
				r.Dir = filepath.Join(out, name)
			}
			return r, err
		},
		Stdout: &stdout}
	o := &storyOptions{Quick: true, Steps: 3, Batch: 8, TrainN: 24, CalibN: 8, LR: 1e-3, ScratchLR: 1e-3, Jobs: 2}
	rows, err := runStory(context.Background(), env, o)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if len(rows) != 1+len(storyCases(true)) {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows[1:] {
		if r.GFLOPsI+r.GFLOPsT > 0.5001*(rows[0].GFLOPsI+rows[0].GFLOPsT) && r.Method != "scratch" {
			t.Errorf("%s: %.4g + %.4g GFLOPs, teacher %.4g + %.4g: not 2× fewer", r.Name, r.GFLOPsI, r.GFLOPsT, rows[0].GFLOPsI, rows[0].GFLOPsT)
		}
		if r.ImgPerS <= 0 || r.Cached {
			t.Errorf("%s: images/s %v cached %v", r.Name, r.ImgPerS, r.Cached)
		}
	}
	for _, f := range []string{"story.json", "story.svg", "REPORT.md"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	rep, _ := os.ReadFile(filepath.Join(out, "REPORT.md"))
	if !strings.Contains(string(rep), "MoPE ≥ other importance metrics") {
		t.Errorf("report without claims:\n%s", rep)
	}
	stdout.Reset()
	rows2, err := runStory(context.Background(), env, o)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows2[1:] {
		if !r.Cached || r.R1 != rows[i+1].R1 {
			t.Errorf("re-run of %s: cached %v, R@1 %v vs %v", r.Name, r.Cached, r.R1, rows[i+1].R1)
		}
	}
	t.Log(stdout.String())

	serial := *o
	serial.Jobs = 1
	env.Out = t.TempDir()
	rows3, err := runStory(context.Background(), env, &serial)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows3 {
		if r.Cached || r.R1 != rows[i].R1 || r.R5 != rows[i].R5 || fmtPruned(r) != fmtPruned(rows[i]) {
			t.Errorf("%s built alone: cached %v, R@1 %v R@5 %v before distillation %s; two at once: R@1 %v R@5 %v, %s",
				r.Name, r.Cached, r.R1, r.R5, fmtPruned(r), rows[i].R1, rows[i].R5, fmtPruned(rows[i]))
		}
		a, err1 := clip.Load(filepath.Join(env.Out, "story", r.Name, "final"))
		b, err2 := clip.Load(filepath.Join(out, "story", r.Name, "final"))
		if r.Method != "teacher" && r.Method != "scratch" && (err1 != nil || err2 != nil || mope.Fingerprint(a) != mope.Fingerprint(b)) {
			t.Errorf("%s: weights differ between one and two models at a time (%v, %v)", r.Name, err1, err2)
		}
	}
}

// TestPrefixWriter: whole lines only, each with its writer's prefix, also
// when a line arrives in pieces and two writers share one output.
func TestPrefixWriter(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	a, b := newPrefixWriter(&out, &mu, "a: "), newPrefixWriter(&out, &mu, "b: ")
	for _, w := range []struct {
		w io.Writer
		s string
	}{{a, "step 1"}, {b, "x\ny"}, {a, "/2\nstep 2\n"}, {b, "\n"}} {
		if n, err := io.WriteString(w.w, w.s); n != len(w.s) || err != nil {
			t.Fatalf("wrote %d of %q: %v", n, w.s, err)
		}
	}
	want := "b: x\na: step 1/2\na: step 2\nb: y\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	if newPrefixWriter(nil, &mu, "c: ") != nil {
		t.Errorf("a prefixWriter of no output is not nil")
	}
}
