package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/mope/grid"
)

// TestDemoNoStoryFullDeprecated: demo --no-story evaluates the committed
// teacher only and writes results.json; the old --full is accepted with a
// deprecation warning on stderr.
func TestDemoNoStoryFullDeprecated(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"--full", "--no-story", "--limit", "16", "--out", out, "--teacher", filepath.Join("..", "..", DefaultTeacherDir)}
	if err := runDemo(args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "--full is deprecated") {
		t.Errorf("no deprecation warning: %q", stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Name string  `json:"name"`
		R1   float64 `json:"r1"`
	}
	if err := json.Unmarshal(b, &rows); err != nil || len(rows) != 1 || rows[0].Name != "teacher" || rows[0].R1 <= 0 {
		t.Errorf("results.json: %v %+v", err, rows)
	}
	if !strings.Contains(stdout.String(), "mean R@1") {
		t.Errorf("no results table:\n%s", stdout.String())
	}
}

// TestDemoDeepTeacher: --teacher deep without the trained deep teacher
// stops with one line that gives the command training it; once the
// directory holds a model, --teacher deep uses it.
func TestDemoDeepTeacher(t *testing.T) {
	src, err := filepath.Abs(filepath.Join("..", "..", DefaultTeacherDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	var stdout, stderr bytes.Buffer
	err = runDemo([]string{"--teacher", "deep", "--no-story", "--limit", "8", "--out", "out"}, &stdout, &stderr)
	want := "GOMAXPROCS=2 mope pretrain --data shapes --preset shapes-teacher-deep --steps 5600 --batch 256 --warmup 400 --train-n 100000 " +
		"--val-every 400 --checkpoint-every 100 --out " + DeepTeacherDir + " --resume"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), DeepTeacherDir+" is not trained yet") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("missing deep teacher: %v\nwant the command %s", err, want)
	}
	m, err := clip.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := clip.LoadTokenizer(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SaveWith(DeepTeacherDir, clip.SaveOptions{Tokenizer: tok}); err != nil {
		t.Fatal(err)
	}
	if err := runDemo([]string{"--teacher", "deep", "--no-story", "--limit", "8", "--out", "out"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "wrote out/results.json") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

// TestDemoGridFlagErrors: --seeds, --reductions and the story budgets out of
// range are usage errors naming the flag.
func TestDemoGridFlagErrors(t *testing.T) {
	for _, c := range []struct{ args []string }{
		{[]string{"--seeds", "0"}},
		{[]string{"--seeds", "21"}},
		{[]string{"--reductions", "3"}},
		{[]string{"--reductions", "2,"}},
		{[]string{"--story-steps", "-5"}},
		{[]string{"--story-steps", "0"}},
		{[]string{"--story-batch", "100000"}},
		{[]string{"--story-train-n", "999999999"}},
		{[]string{"--calib-n", "0"}},
		{[]string{"--story-lr", "NaN"}},
		{[]string{"--scratch-lr", "-1"}},
		{[]string{"--story-n", "0"}},
		{[]string{"--story-jobs", "-1"}},
	} {
		var stdout, stderr bytes.Buffer
		err := runDemo(append(c.args, "--no-story", "--out", t.TempDir(), "--teacher", filepath.Join("..", "..", DefaultTeacherDir)), &stdout, &stderr)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), c.args[0]) {
			t.Errorf("%v: %v", c.args, err)
		}
	}
}

// TestDemoRefusesTeacherAsOut: --out equal to the teacher directory is a
// usage error, and the teacher directory is left as it was.
func TestDemoRefusesTeacherAsOut(t *testing.T) {
	teacher := filepath.Join("..", "..", DefaultTeacherDir)
	before, err := os.ReadDir(teacher)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err = runDemo([]string{"--no-story", "--limit", "8", "--out", teacher, "--teacher", teacher}, &stdout, &stderr)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--teacher") {
		t.Fatalf("err = %v", err)
	}
	after, err := os.ReadDir(teacher)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("teacher directory changed: %d entries before, %d after", len(before), len(after))
	}
}

// TestTeacherGridDefaults: --teacher deep defaults to 3 seeds at 2×, a
// directory to the grid's own (1 seed, every reduction); flags given win.
func TestTeacherGridDefaults(t *testing.T) {
	for _, c := range []struct {
		teacher    string
		set        map[string]bool
		reductions string
		seeds      int
		targets    []float64
	}{
		{"deep", nil, "", 3, []float64{0.5}},
		{"deep", map[string]bool{"seeds": true, "reductions": true}, "2,4", 5, []float64{0.5, 0.25}},
		{"shapes", nil, "", 1, nil},
		{"some/dir", map[string]bool{"reductions": true}, "4", 1, []float64{0.25}},
	} {
		o := grid.DefaultOptions()
		o.Seeds = 5
		if err := resolveTeacher(c.teacher).gridDefaults(&o, c.set, c.reductions); err != nil {
			t.Fatal(err)
		}
		if o.Seeds != c.seeds || !slices.Equal(o.Targets, c.targets) {
			t.Errorf("%s %v: seeds %d targets %v, want %d %v", c.teacher, c.set, o.Seeds, o.Targets, c.seeds, c.targets)
		}
	}
	if d := resolveTeacher("some/dir"); d.dir != "some/dir" || !d.autoTrain {
		t.Errorf("a directory: %+v", d)
	}
}

// TestDemoJSON: with --json, stdout is one JSON document naming the teacher
// and the settings, with every evaluated model; the tables go to stderr.
func TestDemoJSON(t *testing.T) {
	out := t.TempDir()
	teacher := filepath.Join("..", "..", DefaultTeacherDir)
	var stdout, stderr bytes.Buffer
	if err := runDemo([]string{"--no-story", "--limit", "16", "--json", "--out", out, "--teacher", teacher}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var doc struct {
		Model   string `json:"model"`
		Out     string `json:"out"`
		Limit   int    `json:"limit"`
		NoStory bool   `json:"no_story"`
		Results []struct {
			Name string  `json:"name"`
			R1   float64 `json:"r1"`
		} `json:"results"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout.String())
	}
	if doc.Model != teacher || doc.Out != out || doc.Limit != 16 || !doc.NoStory || len(doc.Results) != 1 ||
		doc.Results[0].Name != "teacher" || doc.Results[0].R1 <= 0 {
		t.Errorf("demo --json: %+v", doc)
	}
	if !strings.Contains(stderr.String(), "mean R@1") {
		t.Errorf("the results table should go to stderr with --json:\n%s", stderr.String())
	}
}

// TestScoreRescoreUsage: --rescore is refused where it cannot apply (float32
// scores, metrics other than MoPE) and when malformed, before any work.
func TestScoreRescoreUsage(t *testing.T) {
	teacher := filepath.Join("..", "..", DefaultTeacherDir)
	for _, c := range []struct{ extra []string }{
		{[]string{"--metric", "magnitude", "--rescore", "plan"}},
		{[]string{"--metric", "mope", "--rescore", "plan"}},
		{[]string{"--metric", "mope", "--dtype", "int8", "--rescore", "bogus"}},
		{[]string{"--metric", "mope", "--dtype", "int8", "--rescore", "width=7"}},
	} {
		out := filepath.Join(t.TempDir(), "s.json")
		args := append([]string{"score", "--model", teacher, "--data", "shapes", "--tower", "vision", "--modules", "layers", "--quiet", "--out", out}, c.extra...)
		code, _, errs := runMope(args...)
		if code != 2 || !strings.Contains(errs, "--rescore") {
			t.Errorf("%v: exit %d, stderr %q", c.extra, code, errs)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%v: wrote %s", c.extra, out)
		}
	}
}
