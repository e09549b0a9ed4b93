package mope

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/internal/atomicfile"
	"github.com/mopeclip/mopeclip/train"
)

// The MoPE-CLIP pipelines (paper, Figure 2), as resumable sequences of steps
// whose outputs stay in the output directory:
//
//	finetune stage (one tower):  score → width prune → distil → rescore layers
//	                             → depth prune → distil
//	pretrain stage (both towers): score → width prune → rescore layers → depth
//	                             prune → distil from the unpruned teacher
//
// Orders other than width-then-depth, for the paper's comparison:
// "depth-width" (drop layers by the teacher's layer scores first, then
// rescore heads and FFN groups on the shallower model and cut width) and
// "width" (width only, solved for the same FLOPs target with all layers).
// The FLOPs target is solved once on the teacher (SolveTarget: width first,
// depth only when width alone would go below MinWidth); every order uses the
// same (width, depth) pair, except width-only.
//
// Each step has a directory NN-name/ holding its model (Hugging Face layout,
// with the teacher's tokenizer) or scores, and step.json (its record),
// written last: a re-run skips steps that have step.json and resumes an
// interrupted distillation from its checkpoint. The budget Distill.Steps is
// the total: the finetune stage gives half to each distillation.

// PipelineOptions configure Pipeline.
type PipelineOptions struct {
	Stage       Stage         // StageFinetune or StagePretrain
	Towers      clip.TowerSet // finetune: one tower; pretrain: both (default)
	Order       Order         // OrderWidthDepth (default), OrderDepthWidth, OrderWidth
	Metric      Metric        // importance metric (default MetricMoPE)
	TargetFLOPs float64       // fraction of the pruned towers' FLOPs to keep
	MinWidth    float64       // smallest width before depth is cut (default 0.5)
	Groups      int           // FFN groups (default DefaultGroups)
	Seed        uint64        // random metric
	ScoreBatch  int
	// GPU, when set, is where scoring runs its towers (Options.GPU) and
	// where the distillations train, on a resident backend (GPU.Training).
	GPU GPU

	// Calib is the calibration set (needed by mope, taylor, unimodal);
	// CalibData and CalibLimit describe it in score files.
	Calib      *Calib
	CalibData  string
	CalibLimit int
	// TeacherScores, when set, are scores of the teacher (heads, FFN groups
	// and layers of the pruned towers, with Metric) computed elsewhere, e.g.
	// shared between the demo's rows.
	TeacherScores *ScoreFile

	Distill DistillOptions // Steps: the total distillation budget (0: no distillation)
	Data    DistillData
	// TeacherDir is copied as the tokenizer of every saved model ("" : none).
	TeacherDir string

	Dir      string // output directory ("" : nothing saved, no resume)
	Log      io.Writer
	Progress io.Writer // scoring progress bars
}

// StepRecord is one step's step.json.
type StepRecord struct {
	Name    string  `json:"name"`
	Kind    string  `json:"kind"` // score, prune, distill
	Dir     string  `json:"dir"`
	Params  int     `json:"params"`
	GFLOPs  float64 `json:"gflops_image"`
	GFLOPsT float64 `json:"gflops_text"`
	Width   float64 `json:"width,omitempty"`
	Depth   float64 `json:"depth,omitempty"`
	Val     *Recall `json:"val,omitempty"`
	Seconds float64 `json:"seconds"`
	Resumed bool    `json:"-"`
}

// PipelineResult is the pipeline's record (DIR/pipeline.json).
type PipelineResult struct {
	Stage       Stage         `json:"stage"`
	Towers      clip.TowerSet `json:"towers"`
	Order       Order         `json:"order"`
	Metric      Metric        `json:"metric"`
	TargetFLOPs float64       `json:"target_flops"`
	Width       float64       `json:"width"`
	Depth       float64       `json:"depth"`
	Steps       []StepRecord  `json:"steps"`
	Seconds     float64       `json:"seconds"`
	// DistillSeconds sums the distillation steps run in this process.
	DistillSeconds float64 `json:"distill_seconds"`
}

func (o *PipelineOptions) defaults() error {
	if o.Stage == "" {
		o.Stage = StagePretrain
	}
	if o.Order == "" {
		o.Order = OrderWidthDepth
	}
	if o.Metric == "" {
		o.Metric = "mope"
	}
	if o.MinWidth == 0 {
		o.MinWidth = 0.5
	}
	if o.Groups <= 0 {
		o.Groups = DefaultGroups
	}
	switch o.Stage {
	case StagePretrain:
		if o.Towers == 0 {
			o.Towers = clip.BothTowers
		}
	case StageFinetune:
		if len(o.Towers.Towers()) != 1 {
			return fmt.Errorf("mope: the finetune stage prunes one tower (vision or text), got %q", o.Towers.String())
		}
	default:
		return fmt.Errorf("mope: unknown stage %q (finetune, pretrain)", o.Stage)
	}
	switch o.Order {
	case OrderWidthDepth, OrderDepthWidth, OrderWidth:
	default:
		return fmt.Errorf("mope: unknown order %q (width-depth, depth-width, width)", o.Order)
	}
	if _, err := ParseMetric(string(o.Metric)); err != nil {
		return fmt.Errorf("mope: %w", err)
	}
	if !(o.TargetFLOPs > 0 && o.TargetFLOPs <= 1) {
		return fmt.Errorf("mope: target FLOPs %v outside (0,1]", o.TargetFLOPs)
	}
	if o.Metric != "magnitude" && o.Metric != "random" && o.Calib == nil {
		return fmt.Errorf("mope: metric %s needs calibration data", o.Metric)
	}
	return nil
}

// pipe runs the steps of one pipeline.
type pipe struct {
	o       *PipelineOptions
	teacher *clip.Model
	res     *PipelineResult
	n       int
	t0      time.Time
}

func (p *pipe) logf(format string, a ...any) {
	if p.o.Log != nil {
		fmt.Fprintf(p.o.Log, format, a...)
	}
}

func (p *pipe) stepDir(name string) string {
	p.n++
	if p.o.Dir == "" {
		return ""
	}
	return filepath.Join(p.o.Dir, fmt.Sprintf("%02d-%s", p.n, name))
}

// done returns the record of a finished step in dir, if any.
func done(dir string) (*StepRecord, bool) {
	if dir == "" {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(dir, "step.json"))
	if err != nil {
		return nil, false
	}
	var r StepRecord
	if json.Unmarshal(b, &r) != nil {
		return nil, false
	}
	return &r, true
}

func (p *pipe) record(r StepRecord, m *clip.Model) error {
	if m != nil {
		_, _, r.Params = m.NumParams()
		r.GFLOPs = m.Config.VisionMACs().GFLOPs()
		r.GFLOPsT = m.Config.TextMACs(0).GFLOPs()
	}
	p.res.Steps = append(p.res.Steps, r)
	if r.Dir == "" {
		return nil
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(r.Dir, "step.json"), append(b, '\n')); err != nil {
		return err
	}
	return p.writeSummary()
}

func (p *pipe) writeSummary() error {
	if p.o.Dir == "" {
		return nil
	}
	p.res.Seconds = time.Since(p.t0).Seconds()
	b, _ := json.MarshalIndent(p.res, "", "  ")
	return atomicfile.WriteFile(filepath.Join(p.o.Dir, "pipeline.json"), append(b, '\n'))
}

func (p *pipe) saveModel(m *clip.Model, dir string) error {
	if dir == "" {
		return nil
	}
	return m.SaveWith(dir, clip.SaveOptions{From: p.o.TeacherDir})
}

func (p *pipe) val(m *clip.Model) *Recall {
	if p.o.Data.Val == nil || p.o.Data.Tok == nil {
		return nil
	}
	v, err := RetrievalRecall(m, p.o.Data.Tok, p.o.Data.Val)
	if err != nil {
		return nil
	}
	return &v
}

// score scores kinds of the towers of m (a step: scores.json in its dir).
func (p *pipe) score(m *clip.Model, name string, kinds []string) (*ScoreFile, error) {
	dir := p.stepDir(name)
	if r, ok := done(dir); ok {
		f, err := ReadScores(filepath.Join(dir, "scores.json"))
		if err == nil {
			r.Resumed = true
			p.res.Steps = append(p.res.Steps, *r)
			p.logf("[%s] done earlier: %s\n", name, dir)
			return f, nil
		}
	}
	t := time.Now()
	so := Options{Metric: p.o.Metric, Towers: p.o.Towers, Kinds: kinds, Groups: p.o.Groups, Batch: p.o.ScoreBatch, Seed: p.o.Seed,
		Data: p.o.CalibData, Limit: p.o.CalibLimit, Progress: p.o.Progress, GPU: p.o.GPU}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		so.Checkpoint = filepath.Join(dir, "scores.json")
		if prev, err := ReadScores(so.Checkpoint); err == nil && !prev.Complete {
			so.Resume = prev
		}
	}
	f, err := Score(m, p.o.Calib, so)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		if err := WriteScores(filepath.Join(dir, "scores.json"), f); err != nil {
			return nil, err
		}
	}
	p.logf("[%s] %d modules scored with %s in %s\n", name, len(f.Scores), p.o.Metric, time.Since(t).Round(time.Millisecond))
	return f, p.record(StepRecord{Name: name, Kind: "score", Dir: dir, Seconds: time.Since(t).Seconds()}, nil)
}

// prune applies plan to m (a step: the pruned model in its dir).
func (p *pipe) prune(m *clip.Model, name string, plan func() (*Plan, error), w, d float64) (*clip.Model, error) {
	dir := p.stepDir(name)
	if r, ok := done(dir); ok {
		if pm, err := clip.Load(dir); err == nil {
			r.Resumed = true
			p.res.Steps = append(p.res.Steps, *r)
			p.logf("[%s] done earlier: %s\n", name, dir)
			return pm, nil
		}
	}
	t := time.Now()
	pl, err := plan()
	if err != nil {
		return nil, err
	}
	pm, err := Apply(m, pl)
	if err != nil {
		return nil, err
	}
	if err := p.saveModel(pm, dir); err != nil {
		return nil, err
	}
	if dir != "" {
		b, _ := json.MarshalIndent(pl, "", " ")
		if err := atomicfile.WriteFile(filepath.Join(dir, "plan.json"), append(b, '\n')); err != nil {
			return nil, err
		}
	}
	r := StepRecord{Name: name, Kind: "prune", Dir: dir, Width: w, Depth: d, Val: p.val(pm), Seconds: time.Since(t).Seconds()}
	p.logf("[%s] %s → %.3f GFLOPs/image, %.3f GFLOPs/text; val %s\n", name, describeShape(pm), pm.Config.VisionMACs().GFLOPs(),
		pm.Config.TextMACs(0).GFLOPs(), fmtVal(r.Val))
	return pm, p.record(r, pm)
}

// distill distils m (in place) for steps steps (a step: the model in its dir).
func (p *pipe) distill(ctx context.Context, m *clip.Model, name string, steps int) (*clip.Model, error) {
	dir := p.stepDir(name)
	if r, ok := done(dir); ok {
		if dm, err := clip.Load(dir); err == nil {
			r.Resumed = true
			p.res.Steps = append(p.res.Steps, *r)
			p.logf("[%s] done earlier: %s\n", name, dir)
			return dm, nil
		}
	}
	if steps <= 0 {
		return m, nil
	}
	t := time.Now()
	o := p.o.Distill
	o.Steps = steps
	o.Warmup = min(o.Warmup, steps/5)
	o.Log = p.o.Log
	if dir != "" {
		o.Dir, o.Resume = filepath.Join(dir, "checkpoint"), true
	}
	if p.o.GPU.Ctx != nil {
		p.logf("[%s] distilling on the device-resident backend (%s)\n", name, p.o.GPU.engine())
	}
	var res *train.Result
	err := p.o.GPU.Training(m.Params(), func() (err error) {
		res, err = Distill(ctx, m, p.teacher, p.o.Data, o)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := p.saveModel(m, dir); err != nil {
		return nil, err
	}
	if dir != "" {
		if err := res.Curve.Write(filepath.Join(dir, "curve.csv")); err != nil {
			return nil, err
		}
		if err := train.PlotCurve(res.Curve, filepath.Join(dir, "curve.png"), name); err != nil {
			return nil, fmt.Errorf("mope: distill %s: %w", name, err)
		}
		os.RemoveAll(o.Dir)
	}
	p.res.DistillSeconds += time.Since(t).Seconds()
	r := StepRecord{Name: name, Kind: "distill", Dir: dir, Seconds: time.Since(t).Seconds()}
	if v, ok := RecallFromScalars(res.Val); ok {
		r.Val = v
	} else {
		r.Val = p.val(m)
	}
	p.logf("[%s] %d steps in %s; val %s\n", name, steps, time.Since(t).Round(time.Millisecond), fmtVal(r.Val))
	return m, p.record(r, m)
}

func describeShape(m *clip.Model) string {
	s := ""
	for _, tw := range []struct {
		n string
		c *clip.TowerConfig
	}{{"vision", &m.Config.Vision}, {"text", &m.Config.Text}} {
		heads, inter := 0, 0
		for l := 0; l < tw.c.NumHiddenLayers; l++ {
			heads += tw.c.Heads(l)
			inter += tw.c.Intermediate(l)
		}
		s += fmt.Sprintf("%s %d layers/%d heads/%d neurons ", tw.n, tw.c.NumHiddenLayers, heads, inter)
	}
	return s
}

func fmtVal(v *Recall) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("R@1 %.1f R@5 %.1f mean %.1f", v.R1, v.R5, v.Mean)
}

// kindsOf returns the score kinds of a file covering towers, or nil when it
// lacks one.
func hasKinds(f *ScoreFile, towers clip.TowerSet, kinds []string) bool {
	if f == nil {
		return false
	}
	for _, tw := range towers.Towers() {
		for _, k := range kinds {
			if !f.Has(tw, k) {
				return false
			}
		}
	}
	return true
}

// Pipeline prunes a copy of teacher as o says and distils it from teacher.
// It returns the final model and the record of every step. Cancelling ctx
// stops the distillation under way with a checkpoint (rerun to resume).
func Pipeline(ctx context.Context, teacher *clip.Model, o PipelineOptions) (*clip.Model, *PipelineResult, error) {
	if err := o.defaults(); err != nil {
		return nil, nil, err
	}
	p := &pipe{o: &o, teacher: teacher, t0: time.Now(),
		res: &PipelineResult{Stage: o.Stage, Towers: o.Towers, Order: o.Order, Metric: o.Metric, TargetFLOPs: o.TargetFLOPs}}
	if o.Dir != "" {
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return nil, nil, err
		}
		if err := checkRunKey(o.Dir, runKey(teacher, &o)); err != nil {
			return nil, nil, err
		}
	}
	all := []string{KindHead, KindFFN, KindLayer}
	ts := o.TeacherScores
	if !hasKinds(ts, o.Towers, all) || (ts != nil && ts.Settings.Metric != o.Metric) {
		var err error
		if ts, err = p.score(teacher, "scores", all); err != nil {
			return nil, nil, err
		}
	}
	// Solve the target once, on the teacher.
	minW := o.MinWidth
	if o.Order == OrderWidth {
		minW = 0.01
	}
	w, d, err := SolveTarget(teacher, ts, o.Towers, o.TargetFLOPs, false, false, minW)
	if err != nil {
		return nil, nil, err
	}
	if o.Order == OrderWidth && d < 1 {
		return nil, nil, fmt.Errorf("mope: width alone cannot reach %.3g of the FLOPs", o.TargetFLOPs)
	}
	p.res.Width, p.res.Depth = w, d
	p.logf("pipeline %s/%s/%s on %v: target %.3g of the FLOPs → width %.2f, depth %.2f\n", o.Stage, o.Order, o.Metric, o.Towers.Names(),
		o.TargetFLOPs, w, d)
	budget := o.Distill.Steps
	first, second := 0, budget
	if o.Stage == StageFinetune && d < 1 && o.Order != OrderWidth {
		first, second = budget/2, budget-budget/2
	}
	if first > 0 && o.Data.TeacherCache == nil {
		// Two distillation runs on the same batches 0, 1, …: the second
		// reuses the teacher's outputs of the first (within this bound).
		o.Data.TeacherCache = NewTeacherCache(teacher, pipelineTeacherCacheBytes)
	}
	m := teacher
	widthStep := func(m *clip.Model, scores *ScoreFile) (*clip.Model, error) {
		return p.prune(m, "width", func() (*Plan, error) {
			return WidthPlan(m, scores, WidthOptions{Ratio: w, Towers: o.Towers})
		}, w, 1)
	}
	switch o.Order {
	case OrderWidth, OrderWidthDepth:
		if m, err = widthStep(m, ts); err != nil {
			return nil, nil, err
		}
		if d < 1 {
			if m, err = p.distill(ctx, m, "distill-width", first); err != nil {
				return nil, nil, err
			}
			ls, err := p.score(m, "layer-scores", []string{KindLayer})
			if err != nil {
				return nil, nil, err
			}
			cur := m
			if m, err = p.prune(cur, "depth", func() (*Plan, error) { return DepthPlan(cur, ls.Lookup(), d, o.Towers) }, w, d); err != nil {
				return nil, nil, err
			}
		}
	case OrderDepthWidth:
		if d < 1 {
			cur := m
			if m, err = p.prune(cur, "depth", func() (*Plan, error) { return DepthPlan(cur, ts.Lookup(), d, o.Towers) }, 1, d); err != nil {
				return nil, nil, err
			}
			if m, err = p.distill(ctx, m, "distill-depth", first); err != nil {
				return nil, nil, err
			}
			ws, err := p.score(m, "width-scores", []string{KindHead, KindFFN})
			if err != nil {
				return nil, nil, err
			}
			if m, err = widthStep(m, ws); err != nil {
				return nil, nil, err
			}
		} else if m, err = widthStep(m, ts); err != nil {
			return nil, nil, err
		}
	}
	if m == teacher {
		m = CloneModel(teacher)
	}
	if m, err = p.distill(ctx, m, "distill", second); err != nil {
		return nil, nil, err
	}
	if err := p.writeSummary(); err != nil {
		return nil, nil, err
	}
	if o.Dir != "" {
		if err := p.saveModel(m, filepath.Join(o.Dir, "final")); err != nil {
			return nil, nil, err
		}
	}
	return m, p.res, nil
}

// pipelineTeacherCacheBytes bounds the teacher outputs a pipeline keeps
// between its distillation runs (DistillData.TeacherCache).
const pipelineTeacherCacheBytes = 512 << 20

// ErrStaleRun is returned by Pipeline when its output directory holds steps
// of a run with another teacher or other settings, which it must not reuse.
var ErrStaleRun = errors.New("mope: the output directory holds a pipeline run of another teacher or other settings")

// runKeyFile records, in a pipeline's directory, what its steps were made
// from; a re-run resumes only when it matches.
const runKeyFile = "run-key.txt"

// runKey describes everything a pipeline's steps depend on: the teacher's
// fingerprint and the options that change results.
func runKey(teacher *clip.Model, o *PipelineOptions) string {
	d, w := o.Distill, o.Distill.Weights
	n := 0
	if o.Data.Train != nil {
		n = o.Data.Train.Len()
	}
	return fmt.Sprintf("teacher %s\nstage %s towers %v order %s metric %s target %g min-width %g groups %d seed %d\n"+
		"calib %s %d\ndistill steps %d batch %d warmup %d lr %g min-lr %g wd %g clip %g seed %d\n"+
		"weights itc %g kd %g feat %g hidden %g temp %g\ntraining images %d\n",
		Fingerprint(teacher), o.Stage, o.Towers.Names(), o.Order, o.Metric, o.TargetFLOPs, o.MinWidth, o.Groups, o.Seed,
		o.CalibData, o.CalibLimit, d.Steps, d.Batch, d.Warmup, d.LR, d.MinLR, d.WD, d.ClipNorm, d.Seed,
		w.ITC, w.KD, w.Feat, w.Hidden, w.Temp, n)
}

// checkRunKey writes key to dir, or checks it against the key already
// there. A directory with finished steps but no key (an older run) is stale.
func checkRunKey(dir, key string) error {
	path := filepath.Join(dir, runKeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil && string(b) == key:
		return nil
	case err == nil:
		return fmt.Errorf("%w: %s differs (use another output directory or delete %s)", ErrStaleRun, path, dir)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("mope: %w", err)
	}
	if steps, _ := filepath.Glob(filepath.Join(dir, "*", "step.json")); len(steps) > 0 {
		return fmt.Errorf("%w: %s has finished steps but no %s (use another output directory or delete it)", ErrStaleRun, dir, runKeyFile)
	}
	return atomicfile.WriteFile(path, []byte(key))
}
