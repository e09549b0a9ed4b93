package grid

import (
	"bytes"
	"context"
	"errors"
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

// tinyEnv is a random tiny teacher on a 16-image world, saved in a
// temporary directory.
func tinyEnv(t *testing.T) (Env, *bytes.Buffer) {
	t.Helper()
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
	d, err := NewWorld(16, cfg.Vision.ImageSize)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Evaluate("teacher", teacher, tok, d)
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	return Env{Teacher: teacher, TeacherDir: tdir, Tok: tok, World: d, Out: out, TeacherResult: tr, Stdout: &stdout}, &stdout
}

func toyOptions() Options {
	return Options{Quick: true, Steps: 3, Batch: 8, TrainN: 24, CalibN: 8, LR: 1e-3, ScratchLR: 1e-3, N: 16, Jobs: 2}
}

// TestRun runs the quick grid end to end on a tiny random teacher with toy
// budgets: every row is built, evaluated, measured and reported; a re-run
// reuses the cached steps; building one model at a time gives the same
// models as building two at once.
func TestRun(t *testing.T) {
	env, stdout := tinyEnv(t)
	var log bytes.Buffer
	env.Log = &log
	o := toyOptions()
	rep, err := Run(context.Background(), env, o)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	// The rows' logs arrive whole, prefixed with the row's name, as
	// timestamped progress lines without carriage returns.
	if l := log.String(); !strings.Contains(l, "both-2x-scratch: 20") || !strings.Contains(l, "step 3/3 (100%)") || strings.ContainsRune(l, '\r') {
		t.Errorf("log:\n%s", l)
	}
	rows := rep.Rows
	if len(rows) != 1+len(Cases(true)) || len(rep.Results) != len(Cases(true)) {
		t.Fatalf("%d rows, %d results", len(rows), len(rep.Results))
	}
	for _, r := range rows[1:] {
		if r.GFLOPsI+r.GFLOPsT > 0.5001*(rows[0].GFLOPsI+rows[0].GFLOPsT) && r.Method != MethodScratch {
			t.Errorf("%s: %.4g + %.4g GFLOPs, teacher %.4g + %.4g: not 2× fewer", r.Name, r.GFLOPsI, r.GFLOPsT, rows[0].GFLOPsI, rows[0].GFLOPsT)
		}
		if r.ImgPerS <= 0 || r.Cached || len(r.Errors) > 0 {
			t.Errorf("%s: images/s %v cached %v errors %v", r.Name, r.ImgPerS, r.Cached, r.Errors)
		}
		if (r.PrunedR1 == nil) != (r.Method == MethodScratch) {
			t.Errorf("%s: recall before distillation %v", r.Name, r.PrunedR1)
		}
	}
	if err := rep.Write(env.Out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{StoryJSON, PlotBase + ".svg", PlotBase + ".png", ReportFile} {
		if st, err := os.Stat(filepath.Join(env.Out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	rep1, _ := os.ReadFile(filepath.Join(env.Out, ReportFile))
	if !strings.Contains(string(rep1), "MoPE ≥ other importance metrics") || strings.Contains(string(rep1), "failed") {
		t.Errorf("report:\n%s", rep1)
	}

	stdout.Reset()
	rep2, err := Run(context.Background(), env, o)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rep2.Rows[1:] {
		if !r.Cached || r.R1 != rows[i+1].R1 {
			t.Errorf("re-run of %s: cached %v, R@1 %v vs %v", r.Name, r.Cached, r.R1, rows[i+1].R1)
		}
	}

	serial := o
	serial.Jobs = 1
	first := env.Out
	env.Out = t.TempDir()
	rep3, err := Run(context.Background(), env, serial)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rep3.Rows {
		if r.Cached || r.R1 != rows[i].R1 || r.R5 != rows[i].R5 || fmtPruned(r) != fmtPruned(rows[i]) {
			t.Errorf("%s built alone: cached %v, R@1 %v R@5 %v before distillation %s; two at once: R@1 %v R@5 %v, %s",
				r.Name, r.Cached, r.R1, r.R5, fmtPruned(r), rows[i].R1, rows[i].R5, fmtPruned(rows[i]))
		}
		a, err1 := clip.Load(filepath.Join(env.Out, "story", r.Name, "final"))
		b, err2 := clip.Load(filepath.Join(first, "story", r.Name, "final"))
		if r.Method != MethodTeacher && r.Method != MethodScratch && (err1 != nil || err2 != nil || mope.Fingerprint(a) != mope.Fingerprint(b)) {
			t.Errorf("%s: weights differ between one and two models at a time (%v, %v)", r.Name, err1, err2)
		}
	}
}

// TestRunErrors: a failing save stops the grid with the row's error; a
// cancelled context stops it with the context's error.
func TestRunErrors(t *testing.T) {
	env, _ := tinyEnv(t)
	boom := errors.New("disk full")
	env.Save = func(name string, m *clip.Model) (string, error) { return "", boom }
	if _, err := Run(context.Background(), env, toyOptions()); !errors.Is(err, boom) || !strings.Contains(err.Error(), "both-2x-") {
		t.Errorf("failing save: %v", err)
	}
	env.Save = nil
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, env, toyOptions()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestMeasurementErrorsOnRow: a pruned model that cannot be read back and a
// model the engine rejects leave their errors on the row, not a zero.
func TestMeasurementErrorsOnRow(t *testing.T) {
	env, _ := tinyEnv(t)
	r := &runner{env: env}
	row := &Row{Name: "x", prunedDir: filepath.Join(t.TempDir(), "missing")}
	r.measurePruned(row)
	if row.PrunedR1 != nil || len(row.Errors) != 1 || !strings.Contains(row.Errors[0], "before distillation") {
		t.Errorf("missing pruned model: %v %v", row.PrunedR1, row.Errors)
	}
	empty := &world.Images{}
	measureSpeed(row, env.Teacher, empty)
	if row.ImgPerS != 0 || len(row.Errors) != 2 || fmtSpeed(row) != "error" {
		t.Errorf("no images: %v %v", row.ImgPerS, row.Errors)
	}
	var b bytes.Buffer
	if err := PrintTable(&b, []*Row{row}); err != nil || !strings.Contains(b.String(), "x: images/s:") {
		t.Errorf("table does not show the error: %v\n%s", err, b.String())
	}
	md := (&Report{Rows: []*Row{row}}).Markdown()
	if !strings.Contains(md, "## Measurements that failed") {
		t.Errorf("report does not show the error:\n%s", md)
	}
}

// TestClaims checks the verdicts against rows written out by hand.
func TestClaims(t *testing.T) {
	mk := func(name, method string, order mope.Order, r1 float64) *Row {
		return &Row{Name: name, Towers: TowersBoth, Target: 0.5, Method: method, Order: order, R1: r1}
	}
	rows := []*Row{
		{Name: "teacher", Method: MethodTeacher, Towers: "-", Target: 1, R1: 80},
		mk("m", "mope", mope.OrderWidthDepth, 30),
		mk("mag", "magnitude", mope.OrderWidthDepth, 30), // a tie holds
		mk("rnd", "random", mope.OrderWidthDepth, 10),
		mk("dw", "mope", mope.OrderDepthWidth, 31),
		mk("w", "mope", mope.OrderWidth, 40),
		mk("s", MethodScratch, "-", 1),
		{Name: "v", Towers: TowersVision, Target: 0.5, Method: "magnitude", Order: mope.OrderWidthDepth}, // no MoPE row: no claim
	}
	got := Claims(rows)
	want := []string{
		"both, 2×↓: MoPE ≥ other importance metrics (mean R@1 30.0 vs mag 30.0, rnd 10.0): holds.",
		"both, 2×↓: width-then-depth ≥ other orders (mean R@1 30.0 vs dw 31.0, w 40.0): does not hold for 2 of 2.",
		"both, 2×↓: pruned + distilled ≥ trained from scratch (mean R@1 30.0 vs s 1.0): holds.",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCases: names are unique, every scratch case follows its setting's
// MoPE width-then-depth case, and the grid has 32 models, the quick one 6.
func TestCases(t *testing.T) {
	for _, quick := range []bool{false, true} {
		cs := Cases(quick)
		if want := map[bool]int{false: 32, true: 6}[quick]; len(cs) != want {
			t.Errorf("quick %v: %d cases, want %d", quick, len(cs), want)
		}
		seen, src := map[string]bool{}, map[setting]bool{}
		for _, c := range cs {
			if seen[c.Name()] {
				t.Errorf("duplicate %s", c.Name())
			}
			seen[c.Name()] = true
			if c.isShapeSource() {
				src[c.setting()] = true
			}
			if c.Method == MethodScratch && !src[c.setting()] {
				t.Errorf("%s comes before its shape", c.Name())
			}
		}
	}
	if n := (Case{TowersVision, 0.25, "mope", mope.OrderDepthWidth}).Name(); n != "vision-4x-mope-depth-width" {
		t.Errorf("name %q", n)
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
