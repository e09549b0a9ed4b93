// Package grid is the experiment grid of mope demo (the MoPE-CLIP story):
// the shapes teacher pruned to FLOPs targets with MoPE and the baseline
// importance metrics (same plan, same distillation budget), MoPE in other
// pruning orders, and models of the pruned sizes trained from scratch, each
// evaluated on the shapes world and measured for speed.
//
// A Case is one model to build; Run builds the cases (a few at a time,
// reusing the finished pipeline steps cached in the output directory) and
// returns one Row per model. Errors that stop a model are returned; a
// measurement that fails after the model is built (its speed, its recall
// before distillation) is recorded on its Row. The writers of the report
// (story.json, REPORT.md, the plots) are in report.go and plot.go.
package grid

import (
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/mopeclip/mopeclip/mope"
)

// Towers of a case: both towers pruned (pretraining-stage pruning) or the
// vision tower only (fine-tuning stage).
const (
	TowersBoth   = "both"
	TowersVision = "vision"
)

// Methods besides the importance metrics (mope.Metrics).
const (
	// MethodScratch trains a model of the pruned shape from a fresh
	// initialisation with the same step budget.
	MethodScratch = "scratch"
	// MethodTeacher marks the teacher's row.
	MethodTeacher = "teacher"
)

// Case is one model of the grid.
type Case struct {
	Towers string     // TowersBoth or TowersVision
	Target float64    // fraction of the teacher's FLOPs kept (0.5: 2× fewer)
	Method string     // an importance metric (mope.Metrics) or MethodScratch
	Order  mope.Order // mope.OrderWidthDepth, OrderDepthWidth or OrderWidth
}

// Name is the case's name: its output directory and row name, such as
// "both-2x-mope" or "vision-4x-mope-depth-width".
func (c Case) Name() string {
	s := fmt.Sprintf("%s-%gx-%s", c.Towers, 1/c.Target, c.Method)
	if c.Order != mope.OrderWidthDepth && c.Method != MethodScratch {
		s += "-" + string(c.Order)
	}
	return s
}

// setting is a case's tower scope and FLOPs target: the cases compared
// with each other.
type setting struct {
	towers string
	target float64
}

func (c Case) setting() setting { return setting{c.Towers, c.Target} }

// isShapeSource reports whether c is the MoPE width-then-depth case whose
// pruned shape the scratch case of its setting trains.
func (c Case) isShapeSource() bool {
	return c.Method == "mope" && c.Order == mope.OrderWidthDepth
}

// Cases lists the models: the whole grid (32), or the prioritised quick set
// (6: both towers at 2×; MoPE, magnitude and random; the three orders;
// scratch). A scratch case follows the MoPE width-then-depth case of its
// setting.
func Cases(quick bool) []Case {
	if quick {
		return []Case{
			{TowersBoth, 0.5, "mope", mope.OrderWidthDepth},
			{TowersBoth, 0.5, "magnitude", mope.OrderWidthDepth},
			{TowersBoth, 0.5, "random", mope.OrderWidthDepth},
			{TowersBoth, 0.5, "mope", mope.OrderDepthWidth},
			{TowersBoth, 0.5, "mope", mope.OrderWidth},
			{TowersBoth, 0.5, MethodScratch, mope.OrderWidthDepth},
		}
	}
	var cs []Case
	for _, tw := range []string{TowersBoth, TowersVision} {
		for _, t := range []float64{0.5, 0.25} {
			for _, m := range mope.Metrics {
				cs = append(cs, Case{tw, t, string(m), mope.OrderWidthDepth})
			}
			cs = append(cs, Case{tw, t, "mope", mope.OrderDepthWidth}, Case{tw, t, "mope", mope.OrderWidth},
				Case{tw, t, MethodScratch, mope.OrderWidthDepth})
		}
	}
	return cs
}

// Options are the grid's budgets (the demo's story flags).
type Options struct {
	Quick     bool    `json:"quick"`      // Cases(true) instead of the whole grid
	Steps     int     `json:"steps"`      // distillation (and from-scratch) steps per model
	Batch     int     `json:"batch"`      // pairs per step
	TrainN    int     `json:"train_n"`    // training images
	CalibN    int     `json:"calib_n"`    // calibration pairs for scoring
	LR        float64 `json:"lr"`         // peak learning rate of distillation
	ScratchLR float64 `json:"scratch_lr"` // peak learning rate of from-scratch training
	// N is the number of test images the grid's models are evaluated on
	// (the caller's Env.World holds them; reported only).
	N int `json:"n"`
	// Fresh deletes the cached pipeline steps first.
	Fresh bool `json:"fresh"`
	// Jobs is the number of models built at once (0: min(2, GOMAXPROCS);
	// always 1 on a GPU, Env.GPU). The results do not depend on it.
	Jobs int `json:"jobs"`
	// Seeds is the number of seeds every case is built with (seeds 1…Seeds;
	// 0 or 1: seed 1 only, the grid of earlier releases). seeds.go says
	// what a seed controls.
	Seeds int `json:"seeds"`
	// Targets keeps only the cases with these FLOPs targets (0.5: 2×
	// fewer; nil: every case of the grid).
	Targets []float64 `json:"targets,omitempty"`
}

// Limits of the grid's budgets (Options.Check): beyond them a run would
// exhaust memory or time rather than answer anything.
const (
	MaxSteps  = 1_000_000
	MaxBatch  = 4096
	MaxTrainN = 1_000_000
	MaxCalibN = 100_000
)

// Check returns an error naming the first budget of o that is out of range
// (the flag names are the demo's story flags).
func (o *Options) Check() error {
	ints := []struct {
		name   string
		v, max int
	}{
		{"story-steps", o.Steps, MaxSteps},
		{"story-batch", o.Batch, MaxBatch},
		{"story-train-n", o.TrainN, MaxTrainN},
		{"calib-n", o.CalibN, MaxCalibN},
	}
	for _, c := range ints {
		if c.v < 1 || c.v > c.max {
			return fmt.Errorf("--%s must be 1 to %d, got %d", c.name, c.max, c.v)
		}
	}
	for _, c := range []struct {
		name string
		v    float64
	}{{"story-lr", o.LR}, {"scratch-lr", o.ScratchLR}} {
		if !(c.v > 0 && c.v <= 1) {
			return fmt.Errorf("--%s must be in (0, 1], got %g", c.name, c.v)
		}
	}
	if o.Jobs < 0 {
		return fmt.Errorf("--story-jobs must be 0 (automatic) or more, got %d", o.Jobs)
	}
	if o.Seeds < 0 || o.Seeds > MaxSeeds {
		return fmt.Errorf("--seeds must be 1 to %d, got %d", MaxSeeds, o.Seeds)
	}
	return nil
}

// Cases are the cases of o: Cases(o.Quick) with o.Targets.
func (o *Options) Cases() []Case {
	var cs []Case
	for _, c := range Cases(o.Quick) {
		if len(o.Targets) == 0 || slices.Contains(o.Targets, c.Target) {
			cs = append(cs, c)
		}
	}
	return cs
}

// ParseReductions parses a comma-separated list of FLOPs reductions of
// the grid ("2", "2,4") into Options.Targets.
func ParseReductions(s string) ([]float64, error) {
	var ts []float64
	for f := range strings.SplitSeq(s, ",") {
		switch strings.TrimSpace(f) {
		case "2":
			ts = append(ts, 0.5)
		case "4":
			ts = append(ts, 0.25)
		default:
			return nil, fmt.Errorf("grid: FLOPs reduction %q is not one of the grid's (2, 4)", f)
		}
	}
	return ts, nil
}

// DefaultOptions are the demo's budgets (≤ 10 minutes on 2 cores).
func DefaultOptions() Options {
	return Options{Steps: 100, Batch: 32, TrainN: 2000, CalibN: 200, LR: 5e-4, ScratchLR: 1e-3, N: 500}
}

// JobCount is the number of models built at once.
func (o *Options) JobCount() int {
	if o.Jobs > 0 {
		return o.Jobs
	}
	return max(1, min(2, runtime.GOMAXPROCS(0)))
}

// cacheKey identifies what the cached steps were made with.
func (o *Options) cacheKey(teacherFingerprint string) string {
	return fmt.Sprintf("teacher %s\nsteps %d batch %d train-n %d calib-n %d lr %g scratch-lr %g\n",
		teacherFingerprint, o.Steps, o.Batch, o.TrainN, o.CalibN, o.LR, o.ScratchLR)
}

// Row is one model of the grid (story.json).
type Row struct {
	Name   string     `json:"name"`
	Towers string     `json:"towers"` // "both", "vision", "-" (teacher)
	Target float64    `json:"target_flops"`
	Method string     `json:"method"` // metric, "scratch" or "teacher"
	Order  mope.Order `json:"order"`
	// Seed is the seed the model was built with (0 in story.json files of
	// earlier releases: seed 1).
	Seed    uint64  `json:"seed,omitempty"`
	Width   float64 `json:"width,omitempty"`
	Depth   float64 `json:"depth,omitempty"`
	Params  int     `json:"params"`
	GFLOPsI float64 `json:"image_gflops"`
	GFLOPsT float64 `json:"text_gflops"`
	ImgPerS float64 `json:"images_per_s"`
	R1      float64 `json:"mean_r1"`
	R5      float64 `json:"mean_r5"`
	Mean    float64 `json:"mean_recall"`
	// PrunedR1 is mean R@1 of the pruned model before distillation.
	PrunedR1 *float64 `json:"pruned_mean_r1,omitempty"`
	Steps    int      `json:"train_steps"`
	Seconds  float64  `json:"seconds"` // pruning + training time in this run
	Cached   bool     `json:"cached"`
	Dir      string   `json:"dir"`
	// Errors are the measurements of this row that failed (its images/s,
	// its recall before distillation); the row's other numbers stand.
	Errors []string `json:"errors,omitempty"`

	prunedDir string
}

// fail records a failed measurement on the row.
func (r *Row) fail(what string, err error) {
	r.Errors = append(r.Errors, fmt.Sprintf("%s: %v", what, err))
}

// fill sets the row's size and recall columns from its evaluation.
func (r *Row) fill(res *Result) {
	r.Params = res.Params
	r.GFLOPsI, r.GFLOPsT = res.ImageGFLOPs, res.TextGFLOPs
	r.R1 = (res.TR1 + res.IR1) / 2
	r.R5 = (res.TR5 + res.IR5) / 2
	r.Mean = res.Mean()
	if r.Dir == "" {
		r.Dir = res.Dir
	}
}
