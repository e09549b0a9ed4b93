package grid

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/mope"
)

// TestTQuantile checks the Student-t quantiles against a printed table
// (97.5 %, two-sided 95 %).
func TestTQuantile(t *testing.T) {
	for _, c := range []struct {
		dof  int
		want float64
	}{{1, 12.706}, {2, 4.303}, {3, 3.182}, {4, 2.776}, {9, 2.262}, {29, 2.045}, {120, 1.980}} {
		if got := TQuantile(0.975, c.dof); math.Abs(got-c.want) > 1e-3 {
			t.Errorf("t(0.975, %d) = %.4f, want %.3f", c.dof, got, c.want)
		}
	}
}

func TestStatOf(t *testing.T) {
	for _, c := range []struct {
		xs       []float64
		mean, sd float64
		str      string
	}{
		{nil, 0, 0, "0.0"},
		{[]float64{7}, 7, 0, "7.0"},
		{[]float64{1, 2, 3}, 2, 1, "2.0 ± 1.0"},
		{[]float64{2, 4, 4, 4, 5, 5, 7, 9}, 5, math.Sqrt(32.0 / 7), "5.0 ± 2.1"},
	} {
		s := StatOf(c.xs)
		if s.N != len(c.xs) || math.Abs(s.Mean-c.mean) > 1e-12 || math.Abs(s.SD-c.sd) > 1e-12 || s.String() != c.str {
			t.Errorf("StatOf(%v) = %+v %q, want mean %v sd %v %q", c.xs, s, s.String(), c.mean, c.sd, c.str)
		}
	}
}

func TestSeeds(t *testing.T) {
	if s := SeedList(0); len(s) != 1 || s[0] != 1 {
		t.Errorf("SeedList(0) = %v", s)
	}
	if s := SeedList(3); len(s) != 3 || s[0] != 1 || s[2] != 3 {
		t.Errorf("SeedList(3) = %v", s)
	}
	if SeedSuffix(1) != "" || SeedSuffix(12) != "-seed12" {
		t.Errorf("suffixes %q %q", SeedSuffix(1), SeedSuffix(12))
	}
	// Seed-major: seed 1's jobs are the single-seed grid, in case order,
	// so its rows and results.json are those of the single-seed grid.
	js := jobs(Cases(true), SeedList(2))
	if len(js) != 12 || js[0].name() != "both-2x-mope" || js[6].name() != "both-2x-mope-seed2" || js[11].name() != "both-2x-scratch-seed2" {
		t.Errorf("jobs: %d, %v", len(js), js)
	}
	for i, c := range Cases(true) {
		if js[i].c != c || js[i].seed != 1 {
			t.Errorf("job %d = %+v, want case %+v seed 1", i, js[i], c)
		}
	}
}

// seededRows are hand-built rows of three seeds (a few cases have fewer)
// whose comparisons are known: see TestCompare.
func seededRows() []*Row {
	mk := func(c Case, seed uint64, r1 float64) *Row {
		order := c.Order
		if c.Method == MethodScratch {
			order = "-"
		}
		return &Row{Name: c.Name() + SeedSuffix(seed), Towers: c.Towers, Target: c.Target, Method: c.Method, Order: order, Seed: seed, R1: r1, R5: 2 * r1, GFLOPsI: 0.015}
	}
	ref := Case{TowersBoth, 0.5, "mope", mope.OrderWidthDepth}
	mag := Case{TowersBoth, 0.5, "magnitude", mope.OrderWidthDepth}
	rnd := Case{TowersBoth, 0.5, "random", mope.OrderWidthDepth}
	dw := Case{TowersBoth, 0.5, "mope", mope.OrderDepthWidth}
	w := Case{TowersBoth, 0.5, "mope", mope.OrderWidth}
	sc := Case{TowersBoth, 0.5, MethodScratch, mope.OrderWidthDepth}
	vis := Case{TowersVision, 0.5, "magnitude", mope.OrderWidthDepth}
	rows := []*Row{{Name: "teacher", Method: MethodTeacher, Towers: "-", Target: 1, Order: "-", R1: 80, GFLOPsI: 0.03}}
	for i, s := range []uint64{1, 2, 3} {
		rows = append(rows,
			mk(ref, s, []float64{30, 32, 34}[i]),
			mk(mag, s, []float64{20, 21, 22}[i]), // d = 10, 11, 12: holds
			mk(rnd, s, []float64{29, 33, 33}[i]), // d = 1, −1, 1: within noise
			mk(dw, s, []float64{40, 42, 44}[i]),  // d = −10 each: does not hold
			mk(vis, s, 5))                        // no MoPE row in its setting: no comparison
		if s <= 2 {
			rows = append(rows, mk(w, s, []float64{31, 30}[i])) // d = −1, 2 (2 seeds): within noise
		}
		if s == 1 {
			rows = append(rows, mk(sc, s, 1)) // one seed: untested
		}
	}
	return rows
}

// TestCompare: hand-built rows give the known differences, intervals and
// verdicts, one setting at a time, claims in the paper's order.
func TestCompare(t *testing.T) {
	t2, t1 := TQuantile(0.975, 2), TQuantile(0.975, 1)
	want := []struct {
		claim          Claim
		other          string
		seeds          int
		mean, sd, half float64
		verdict        Verdict
	}{
		{ClaimMetric, "both-2x-magnitude", 3, 11, 1, t2 / math.Sqrt(3), VerdictHolds},
		{ClaimMetric, "both-2x-random", 3, 1.0 / 3, math.Sqrt(4.0 / 3), t2 * math.Sqrt(4.0/3) / math.Sqrt(3), VerdictNoise},
		{ClaimOrder, "both-2x-mope-depth-width", 3, -10, 0, 0, VerdictFails},
		{ClaimOrder, "both-2x-mope-width", 2, 0.5, math.Sqrt(4.5), t1 * math.Sqrt(4.5) / math.Sqrt(2), VerdictNoise},
		{ClaimScratch, "both-2x-scratch", 1, 29, 0, 0, VerdictUntested},
	}
	got := Compare(seededRows())
	if len(got) != len(want) {
		t.Fatalf("%d comparisons, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		c := got[i]
		if c.Claim != w.claim || c.Other != w.other || c.Ref != "both-2x-mope" || c.Towers != TowersBoth || c.Target != 0.5 || len(c.Seeds) != w.seeds ||
			math.Abs(c.Mean-w.mean) > 1e-9 || math.Abs(c.SD-w.sd) > 1e-9 ||
			math.Abs(c.Lo-(w.mean-w.half)) > 1e-9 || math.Abs(c.Hi-(w.mean+w.half)) > 1e-9 || c.Verdict != w.verdict {
			t.Errorf("comparison %d: got %+v, want %+v", i, c, w)
		}
	}
}

// TestSummarize: one summary per case in first-appearance order, with its
// seeds, mean ± sd and the seeds' errors.
func TestSummarize(t *testing.T) {
	rows := seededRows()
	rows[1].Errors = []string{"images/s: boom"}
	pr := 3.0
	rows[1].PrunedR1 = &pr
	ss := Summarize(rows)
	var names []string
	for _, s := range ss {
		names = append(names, s.Name)
	}
	if want := "both-2x-mope both-2x-magnitude both-2x-random both-2x-mope-depth-width vision-2x-magnitude both-2x-mope-width both-2x-scratch"; strings.Join(names, " ") != want {
		t.Errorf("cases %q, want %q", strings.Join(names, " "), want)
	}
	m := ss[0]
	if len(m.Seeds) != 3 || m.R1.Mean != 32 || m.R1.SD != 2 || m.R5.Mean != 64 || m.PrunedR1 == nil || m.PrunedR1.N != 1 ||
		len(m.Errors) != 1 || m.Errors[0] != "seed 1: images/s: boom" {
		t.Errorf("summary %+v", m)
	}
}

// TestSeededReport: with several seeds REPORT.md has the mean ± sd table,
// the rule, every comparison's verdict and every model; claims.json reads
// back; one seed keeps the single-seed report.
func TestSeededReport(t *testing.T) {
	rep := &Report{Options: Options{Seeds: 3}, Rows: seededRows()}
	md := rep.Markdown()
	for _, s := range []string{"| both-2x-mope | both | 2×↓ | mope | width-depth | 3 |", "32.0 ± 2.0", "Rule: ", "**holds**", "**within noise**",
		"**does not hold**", "**untested (one seed)**", "| +10.0, +11.0, +12.0 | +11.0 | 1.0 | [+8.5, +13.5] |", "## Every model", "both-2x-mope-seed3"} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q:\n%s", s, md)
		}
	}
	js, err := json.Marshal(rep.Claims())
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Comparisons []struct {
			Claim, Verdict string
		}
	}
	if err := json.Unmarshal(js, &back); err != nil || len(back.Comparisons) != 5 || back.Comparisons[0].Verdict != "holds" ||
		back.Comparisons[2].Claim != "width-then-depth ≥ other orders" {
		t.Errorf("claims.json: %v %s", err, js)
	}
	out := t.TempDir()
	if err := rep.Write(out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{StoryJSON, ClaimsJSON, ReportFile, PlotBase + ".svg", PlotBase + ".png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if n := len(plotRows(rep.Rows)); n != 1+7 {
		t.Errorf("the plot shows %d rows, want the teacher and 7 cases", n)
	}
	var b bytes.Buffer
	if err := PrintClaims(&b, rep.Rows); err != nil || !strings.Contains(b.String(), "both-2x-mope-depth-width  -10.0") {
		t.Errorf("PrintClaims: %v\n%s", err, b.String())
	}
	one := &Report{Rows: []*Row{rep.Rows[0], rep.Rows[1], rep.Rows[2]}}
	if md := one.Markdown(); !strings.Contains(md, "## The paper's claims in this run") || strings.Contains(md, "Rule:") {
		t.Errorf("single-seed report:\n%s", md)
	}
	b.Reset()
	if err := PrintClaims(&b, one.Rows); err != nil || b.Len() != 0 {
		t.Errorf("PrintClaims of one seed: %v %q", err, b.String())
	}
}

func TestClaimVerdictStrings(t *testing.T) {
	if ClaimScratch.String() != "pruned + distilled ≥ trained from scratch" || Claim(9).String() != "Claim(9)" ||
		VerdictNoise.String() != "within noise" || Verdict(-1).String() != "Verdict(-1)" {
		t.Errorf("strings")
	}
}

// TestRunSeeds runs the quick grid with two seeds on a tiny teacher: seed
// 1's rows are the single-seed grid's models weight for weight (the seeds
// of earlier releases are seed 1), seed 2's distilled models differ from
// them (another batch order), its random row has its own scores, and the
// teacher's outputs are cached per seed.
func TestRunSeeds(t *testing.T) {
	env, stdout := tinyEnv(t)
	o := toyOptions()
	one, err := Run(context.Background(), env, o)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	first := env.Out
	env.Out = t.TempDir()
	stdout.Reset()
	o.Seeds = 2
	two, err := Run(context.Background(), env, o)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	n := len(Cases(true))
	if len(two.Rows) != 1+2*n || len(two.Results) != 2*n {
		t.Fatalf("%d rows, %d results", len(two.Rows), len(two.Results))
	}
	if !strings.Contains(stdout.String(), fmt.Sprintf("teacher outputs of %d distillation batches", 2*o.Steps)) {
		t.Errorf("teacher cache is not per seed:\n%s", stdout)
	}
	for i, r := range two.Rows[1 : 1+n] {
		want := one.Rows[1+i]
		if r.Name != want.Name || r.Seed != 1 || r.R1 != want.R1 || r.R5 != want.R5 {
			t.Errorf("seed 1 row %s (seed %d) R@1 %v R@5 %v; single-seed grid %s R@1 %v R@5 %v", r.Name, r.Seed, r.R1, r.R5, want.Name, want.R1, want.R5)
		}
		s2 := two.Rows[1+n+i]
		if s2.Name != r.Name+"-seed2" || s2.Seed != 2 {
			t.Errorf("row %d of seed 2: %s seed %d", i, s2.Name, s2.Seed)
		}
		if r.Method == MethodScratch {
			continue
		}
		a, err1 := clip.Load(filepath.Join(env.Out, "story", r.Name, "final"))
		b, err2 := clip.Load(filepath.Join(first, "story", r.Name, "final"))
		c, err3 := clip.Load(filepath.Join(env.Out, "story", s2.Name, "final"))
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		if mope.Fingerprint(a) != mope.Fingerprint(b) {
			t.Errorf("%s: seed 1 of two seeds differs from the single-seed grid", r.Name)
		}
		if mope.Fingerprint(a) == mope.Fingerprint(c) {
			t.Errorf("%s: seeds 1 and 2 give the same model", r.Name)
		}
	}
	r1, err1 := mope.ReadScores(filepath.Join(env.Out, "story", "teacher-scores-random.json"))
	r2, err2 := mope.ReadScores(filepath.Join(env.Out, "story", "teacher-scores-random-seed2.json"))
	if err1 != nil || err2 != nil || r1.Settings.Seed != 1 || r2.Settings.Seed != 2 {
		t.Errorf("random scores per seed: %v %v", err1, err2)
	}
	cs := Compare(two.Rows)
	if len(cs) != n-1 {
		t.Errorf("%d comparisons, want %d", len(cs), n-1)
	}
	for _, c := range cs {
		if len(c.Seeds) != 2 || c.Verdict == VerdictUntested {
			t.Errorf("comparison %+v", c)
		}
	}
}
