package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"image"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/internal/atomicfile"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/mope"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/train"
)

// The MoPE-CLIP story of mope demo (issue 7): prune the shapes teacher to a
// FLOPs target with MoPE and with the baseline metrics (same plan, same
// distillation budget), compare pruning orders at the same FLOPs, train a
// model of the pruned size from scratch with the same number of steps, and
// report params, GFLOPs, measured images/s and retrieval for every model.

// storyOptions are the demo's story flags.
type storyOptions struct {
	Skip           bool
	Quick          bool
	Steps, Batch   int
	TrainN, CalibN int
	LR, ScratchLR  float64
	Fresh          bool
	N              int
	// Jobs is the number of models built at once (0: min(2, GOMAXPROCS)).
	Jobs int
}

func (o *storyOptions) jobs() int {
	if o.Jobs > 0 {
		return o.Jobs
	}
	return max(1, min(2, runtime.GOMAXPROCS(0)))
}

func registerStoryFlags(fl *flag.FlagSet) *storyOptions {
	o := &storyOptions{}
	fl.BoolVar(&o.Skip, "no-story", false, "evaluate the teacher only (the issue-5 demo)")
	fl.BoolVar(&o.Quick, "quick", false, "6 models instead of the whole grid: both towers at 2×, MoPE, magnitude and random, the three orders, from scratch")
	fl.Bool("full", true, "the whole grid (the default; kept for older scripts)")
	fl.IntVar(&o.Steps, "story-steps", 100, "distillation (and from-scratch training) steps per model")
	fl.IntVar(&o.Batch, "story-batch", 32, "image–caption pairs per step")
	fl.IntVar(&o.TrainN, "story-train-n", 2000, "training images for distillation and from-scratch training")
	fl.IntVar(&o.CalibN, "calib-n", 200, "calibration images (one caption each) for MoPE, Taylor and uni-modal scoring")
	fl.Float64Var(&o.LR, "story-lr", 5e-4, "peak learning rate of distillation")
	fl.Float64Var(&o.ScratchLR, "scratch-lr", 1e-3, "peak learning rate of from-scratch training (pretraining's)")
	fl.IntVar(&o.N, "story-n", 500, "test images (5 captions each) the story's models are evaluated on")
	fl.IntVar(&o.Jobs, "story-jobs", 0, "models built at once (0: 2 on two or more cores); results are the same for any value")
	fl.BoolVar(&o.Fresh, "fresh", false, "delete the story's cached pipeline steps first (otherwise finished steps are reused and marked cached)")
	return o
}

// storyRow is one model of the story (story.json).
type storyRow struct {
	Name    string     `json:"name"`
	Towers  string     `json:"towers"` // "both", "vision", "-" (teacher)
	Target  float64    `json:"target_flops"`
	Method  string     `json:"method"` // metric, "scratch" or "teacher"
	Order   mope.Order `json:"order"`
	Width   float64    `json:"width,omitempty"`
	Depth   float64    `json:"depth,omitempty"`
	Params  int        `json:"params"`
	GFLOPsI float64    `json:"image_gflops"`
	GFLOPsT float64    `json:"text_gflops"`
	ImgPerS float64    `json:"images_per_s"`
	R1      float64    `json:"mean_r1"`
	R5      float64    `json:"mean_r5"`
	Mean    float64    `json:"mean_recall"`
	// PrunedR1 is mean R@1 of the pruned model before distillation.
	PrunedR1 *float64 `json:"pruned_mean_r1,omitempty"`
	Steps    int      `json:"train_steps"`
	Seconds  float64  `json:"seconds"` // pruning + training time in this run
	Cached   bool     `json:"cached"`
	Dir      string   `json:"dir"`

	prunedDir string
}

// storyCase is one pruned (or scratch) model to build.
type storyCase struct {
	towers string // "both" or "vision"
	target float64
	metric string // a mope.Metric or "scratch" (the row's method)
	order  mope.Order
}

func (c storyCase) name() string {
	s := fmt.Sprintf("%s-%gx-%s", c.towers, 1/c.target, c.metric)
	if c.order != mope.OrderWidthDepth && c.metric != "scratch" {
		s += "-" + string(c.order)
	}
	return s
}

// storyCases lists the models: the whole grid, or the prioritised quick set.
func storyCases(quick bool) []storyCase {
	var cs []storyCase
	if quick {
		return []storyCase{
			{"both", 0.5, "mope", mope.OrderWidthDepth},
			{"both", 0.5, "magnitude", mope.OrderWidthDepth},
			{"both", 0.5, "random", mope.OrderWidthDepth},
			{"both", 0.5, "mope", mope.OrderDepthWidth},
			{"both", 0.5, "mope", mope.OrderWidth},
			{"both", 0.5, "scratch", mope.OrderWidthDepth},
		}
	}
	for _, tw := range []string{"both", "vision"} {
		for _, t := range []float64{0.5, 0.25} {
			for _, m := range mope.Metrics {
				cs = append(cs, storyCase{tw, t, string(m), mope.OrderWidthDepth})
			}
			cs = append(cs, storyCase{tw, t, "mope", mope.OrderDepthWidth}, storyCase{tw, t, "mope", mope.OrderWidth},
				storyCase{tw, t, "scratch", mope.OrderWidthDepth})
		}
	}
	return cs
}

// storyEnv is what the story needs from the demo.
type storyEnv struct {
	Teacher    *clip.Model
	TeacherDir string
	Tok        *tokenizer.Tokenizer
	World      *demoWorld
	Out        string
	// Eval evaluates (and saves) one model; rows call it concurrently.
	Eval func(name string, m *clip.Model) (*demoResult, error)
	// Results, when set, receives the evaluations of the story's models in
	// row order (for results.json).
	Results *[]*demoResult
	// TeacherResult is the demo's evaluation of the teacher.
	TeacherResult *demoResult
	Stdout        io.Writer
	Log           io.Writer
}

// imagesPerSecond measures the image-tower throughput of m on the fast
// inference engine (package infer, the runtime a pruned model is deployed
// with): 256 test images in batches of 64, GOMAXPROCS threads, best of
// three passes after a warm-up pass.
func imagesPerSecond(m *clip.Model, im *world.Images) float64 {
	e, err := infer.New(m, infer.Options{})
	if err != nil {
		return 0
	}
	defer e.Close()
	n := min(256, im.N)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	pix := im.Pixels(idx).Data
	per := e.ImageInputLen()
	out := make([]float32, 64*e.EmbedDim())
	pass := func() {
		for lo := 0; lo < n; lo += 64 {
			hi := min(lo+64, n)
			e.EncodeImages(pix[lo*per:hi*per], hi-lo, out)
		}
	}
	pass()
	best := math.Inf(1)
	for range 3 {
		t := time.Now()
		pass()
		best = min(best, time.Since(t).Seconds())
	}
	return float64(n) / best
}

// storyCalib is the calibration set: the first caption of each of n images
// of the shapes calib split (one caption per image keeps text scoring cheap).
func storyCalib(m *clip.Model, tok *tokenizer.Tokenizer, n int) (*mope.Calib, error) {
	exs, err := shapes.Generate(shapes.DefaultConfig(), "calib", n)
	if err != nil {
		return nil, err
	}
	imgs := make([]image.Image, len(exs))
	caps := make([]string, len(exs))
	ci := make([]int, len(exs))
	for i, e := range exs {
		imgs[i], caps[i], ci[i] = e.Image, e.Captions[0], i
	}
	return mope.NewCalib(m, imgs, caps, ci, tok)
}

// storyTeacherCacheBytes bounds the teacher outputs the story keeps for
// reuse across its distillation runs (the shapes teacher needs about 3 MB
// a batch, 100 batches).
const storyTeacherCacheBytes = 1 << 30

func runStory(ctx context.Context, env storyEnv, o *storyOptions) ([]*storyRow, error) {
	t0 := time.Now()
	dir := filepath.Join(env.Out, "story")
	if o.Fresh {
		os.RemoveAll(dir)
	}
	teacher := env.Teacher
	if err := storyCache(dir, teacher, o, env.Stdout); err != nil {
		return nil, err
	}
	cases := storyCases(o.Quick)
	jobs := o.jobs()
	fmt.Fprintf(env.Stdout, "\nMoPE-CLIP story: %d pruned/scratch models, %d at a time; budget per model %d steps × %d pairs (%d training images), calibration %d pairs\n",
		len(cases), jobs, o.Steps, o.Batch, o.TrainN, o.CalibN)
	tw := time.Now()
	trainPairs, err := world.Split(shapes.DefaultConfig(), "train", o.TrainN, teacher.Config.Vision.ImageSize)
	if err != nil {
		return nil, err
	}
	cal, err := storyCalib(teacher, env.Tok, o.CalibN)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(env.Stdout, "story data: %d training images, %d calibration pairs (%s)\n", trainPairs.Len(), cal.NImg, time.Since(tw).Round(time.Millisecond))
	// Every distillation run draws batches 0, 1, … of the same data, batch
	// size and seed, so the teacher's outputs of a batch are computed once
	// and reused by every later run (bit-identical to recomputing them).
	data := mope.DistillData{Train: trainPairs, Tok: env.Tok, TeacherCache: mope.NewTeacherCache(teacher, storyTeacherCacheBytes)}

	// Teacher scores per metric (heads, FFN groups, layers of both towers),
	// shared by every row with that metric.
	var scoreMu sync.Mutex
	teacherScores := map[string]*mope.ScoreFile{}
	scoresFor := func(metric string) (*mope.ScoreFile, error) {
		scoreMu.Lock()
		defer scoreMu.Unlock()
		if f, ok := teacherScores[metric]; ok {
			return f, nil
		}
		path := filepath.Join(dir, "teacher-scores-"+metric+".json")
		if f, err := mope.ReadScores(path); err == nil && f.Complete && f.Settings.Model == mope.Fingerprint(teacher) {
			fmt.Fprintf(env.Stdout, "  %s scores of the teacher: cached in %s\n", metric, path)
			teacherScores[metric] = f
			return f, nil
		}
		t := time.Now()
		f, err := mope.Score(teacher, cal, mope.Options{Metric: mope.Metric(metric), Towers: []string{mope.Vision, mope.Text},
			Kinds: []string{mope.KindHead, mope.KindFFN, mope.KindLayer}, Data: "shapes-calib-1cap", Limit: o.CalibN, Seed: 1})
		if err != nil {
			return nil, err
		}
		if err := mope.WriteScores(path, f); err != nil {
			return nil, err
		}
		fmt.Fprintf(env.Stdout, "  %s scores of the teacher: %d modules in %s\n", metric, len(f.Scores), time.Since(t).Round(time.Millisecond))
		teacherScores[metric] = f
		return f, nil
	}

	dopt := mope.DefaultDistillOptions()
	dopt.Steps, dopt.Batch, dopt.LR, dopt.Warmup, dopt.ValEvery, dopt.CkptEvery = o.Steps, o.Batch, o.LR, max(1, o.Steps/10), 0, 50
	// A scratch row trains the shape of the MoPE width-then-depth row of its
	// setting, which comes earlier in the list: shapeOf[key] is closed once
	// that row has set its config.
	type shape struct {
		cfg  *clip.Config
		done chan struct{}
	}
	shapeOf := map[string]*shape{}
	key := func(c storyCase) string { return fmt.Sprintf("%s-%g", c.towers, c.target) }
	for _, c := range cases {
		if c.metric == "mope" && c.order == mope.OrderWidthDepth {
			shapeOf[key(c)] = &shape{done: make(chan struct{})}
		}
	}
	var outMu, logMu sync.Mutex
	say := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(env.Stdout, format, a...)
	}
	build := func(ctx context.Context, i int, c storyCase) (*storyRow, *demoResult, *clip.Model, error) {
		name := c.name()
		say("[%d/%d] %s ...\n", i+1, len(cases), name)
		log := newPrefixWriter(env.Log, &logMu, name+": ")
		t := time.Now()
		row := &storyRow{Name: name, Towers: c.towers, Target: c.target, Method: c.metric, Order: c.order, Steps: o.Steps}
		var m *clip.Model
		if c.metric == "scratch" {
			row.Order = "-"
			sh := shapeOf[key(c)]
			if sh == nil {
				return nil, nil, nil, fmt.Errorf("story: no pruned shape for %s (scratch must follow a MoPE width-depth row)", key(c))
			}
			select {
			case <-sh.done:
			case <-ctx.Done():
				return nil, nil, nil, ctx.Err()
			}
			var cached bool
			var err error
			if m, cached, err = storyScratch(ctx, sh.cfg, data, o, filepath.Join(dir, name), log); err != nil {
				return nil, nil, nil, err
			}
			row.Cached = cached
		} else {
			ts, err := scoresFor(c.metric)
			if err != nil {
				return nil, nil, nil, err
			}
			po := mope.PipelineOptions{Stage: mope.StagePretrain, Order: c.order, Metric: mope.Metric(c.metric), TargetFLOPs: c.target,
				Calib: cal, CalibData: "shapes-calib-1cap", CalibLimit: o.CalibN, TeacherScores: ts, Seed: 1,
				Distill: dopt, Data: data, TeacherDir: env.TeacherDir, Dir: filepath.Join(dir, name), Log: log, Context: ctx}
			if c.towers == "vision" {
				po.Stage, po.Towers = mope.StageFinetune, []string{mope.Vision}
			}
			pm, res, err := mope.Pipeline(teacher, po)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("%s: %w", name, err)
			}
			m = pm
			row.Width, row.Depth = res.Width, res.Depth
			for _, st := range res.Steps {
				if st.Resumed {
					row.Cached = true
				}
				if st.Kind == "prune" && st.Dir != "" {
					row.prunedDir = st.Dir
				}
			}
			if sh := shapeOf[key(c)]; sh != nil && c.metric == "mope" && c.order == mope.OrderWidthDepth {
				sh.cfg = m.Config
				close(sh.done)
			}
		}
		row.Seconds = time.Since(t).Seconds()
		r, err := env.Eval(name, m)
		if err != nil {
			return nil, nil, nil, err
		}
		if row.prunedDir != "" {
			if pm, err := clip.Load(row.prunedDir); err == nil {
				if v, err := mope.RetrievalScalars(pm, env.Tok, env.World.Test); err == nil {
					r1 := v["r1"]
					row.PrunedR1 = &r1
				}
			}
		}
		rowFrom(row, r)
		say("    %s: %.2fM params, %.4f GFLOPs/image, mean R@1 %.1f, R@5 %.1f (%s%s)\n", name, float64(row.Params)/1e6,
			row.GFLOPsI, row.R1, row.R5, time.Duration(row.Seconds*float64(time.Second)).Round(time.Second), cachedNote(row.Cached))
		return row, r, m, nil
	}

	rows := make([]*storyRow, len(cases))
	results := make([]*demoResult, len(cases))
	models := make([]*clip.Model, len(cases))
	errs := make([]error, len(cases))
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range jobs {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(cases) || wctx.Err() != nil {
					return
				}
				if rows[i], results[i], models[i], errs[i] = build(wctx, i, cases[i]); errs[i] != nil {
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	// The error that stopped the story: the first one that is not another
	// row's cancellation (an interruption by the user cancels every row).
	for _, err := range errs {
		if err != nil && (ctx.Err() != nil || !errors.Is(err, context.Canceled)) {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n, b := data.TeacherCache.Len(); n > 0 {
		fmt.Fprintf(env.Stdout, "teacher outputs of %d distillation batches computed once and reused (%.0f MB)\n", n, float64(b)/1e6)
	}

	// Speed is measured after every model is built, one model at a time, so
	// no measurement shares the cores with another row's work.
	fmt.Fprintf(env.Stdout, "measuring images/s of %d models ...\n", len(cases)+1)
	teacherRow := &storyRow{Name: "teacher", Towers: "-", Target: 1, Method: "teacher", Order: "-", Dir: env.TeacherDir}
	rowFrom(teacherRow, env.TeacherResult)
	teacherRow.ImgPerS = imagesPerSecond(teacher, env.World.Test.Images)
	for i, r := range rows {
		r.ImgPerS = imagesPerSecond(models[i], env.World.Test.Images)
	}
	rows = append([]*storyRow{teacherRow}, rows...)
	if env.Results != nil {
		*env.Results = append(*env.Results, results...)
	}
	fmt.Fprintln(env.Stdout)
	printStoryTable(env.Stdout, rows)
	if err := writeStory(env.Out, rows, o, time.Since(t0)); err != nil {
		return nil, err
	}
	fmt.Fprintf(env.Stdout, "story: %s; report %s\n", time.Since(t0).Round(time.Second), filepath.Join(env.Out, "REPORT.md"))
	return rows, nil
}

func cachedNote(c bool) string {
	if c {
		return ", reused cached steps"
	}
	return ""
}

// rowFrom fills row's size and recall columns from its evaluation r.
func rowFrom(row *storyRow, r *demoResult) {
	row.Params = r.Params
	row.GFLOPsI, row.GFLOPsT = r.ImageGFLOPs, r.TextGFLOPs
	row.R1 = (r.TR1 + r.IR1) / 2
	row.R5 = (r.TR5 + r.IR5) / 2
	row.Mean = r.Mean()
	if row.Dir == "" {
		row.Dir = r.Dir
	}
}

// storyScratch trains a model of shape cfg (widths and depths of a pruned
// model, fresh initialisation) contrastively for the story's step budget.
func storyScratch(ctx context.Context, pruned *clip.Config, data mope.DistillData, o *storyOptions, dir string, log io.Writer) (*clip.Model, bool, error) {
	if m, err := clip.Load(dir); err == nil {
		return m, true, nil
	}
	cfg := pruned.Clone()
	cfg.Vision.TeacherLayers, cfg.Text.TeacherLayers = nil, nil
	m, err := clip.New(cfg, 1)
	if err != nil {
		return nil, false, err
	}
	opt := nn.NewAdamW(m.Params(), nn.AdamWConfig{Beta1: 0.9, Beta2: 0.98, Eps: 1e-6, WeightDecay: 0.1})
	sampler := &world.Sampler{Pairs: data.Train, Tok: data.Tok, Batch: o.Batch, Seed: 1}
	tp := ops.NewTape()
	step := func(s int) (float64, map[string]float64, error) {
		b, err := sampler.Get(s)
		if err != nil {
			return 0, nil, err
		}
		loss, err := m.ContrastiveStep(tp, b.Pixels, b.Text)
		return loss, nil, err
	}
	tc := train.Config{Steps: o.Steps, Warmup: max(1, o.Steps/10), LR: o.ScratchLR, MinLR: 1e-5, ClipNorm: 1, Items: o.Batch,
		Dir: filepath.Join(dir, "checkpoint"), CkptEvery: 50, Resume: true, Log: log, Context: ctx,
		Extra: map[string]string{"scratch": fmt.Sprintf("steps=%d batch=%d lr=%g", o.Steps, o.Batch, o.ScratchLR)}}
	if _, err := train.Run(tc, m.Params(), opt, step, nil); err != nil {
		return nil, false, err
	}
	if err := m.Save(dir); err != nil {
		return nil, false, err
	}
	os.RemoveAll(tc.Dir)
	return m, false, nil
}

func printStoryTable(w io.Writer, rows []*storyRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\ttowers\tFLOPs\tmethod\torder\tparams\tGFLOPs img\tGFLOPs txt\timages/s\tmean R@1\tmean R@5\tR@1 pruned\tsteps\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.3fM\t%.4f\t%.4f\t%.0f\t%.1f\t%.1f\t%s\t%s\t\n", r.Name, r.Towers, fmtTarget(r.Target), r.Method,
			r.Order, float64(r.Params)/1e6, r.GFLOPsI, r.GFLOPsT, r.ImgPerS, r.R1, r.R5, fmtPruned(r), fmtSteps(r))
	}
	tw.Flush()
}

func fmtTarget(t float64) string {
	if t >= 1 {
		return "1×"
	}
	return fmt.Sprintf("%g×↓", 1/t)
}

func fmtPruned(r *storyRow) string {
	if r.PrunedR1 == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *r.PrunedR1)
}

func fmtSteps(r *storyRow) string {
	if r.Method == "teacher" {
		return "-"
	}
	s := strconv.Itoa(r.Steps)
	if r.Cached {
		s += "*"
	}
	return s
}

// writeStory writes story.json, story.svg and REPORT.md.
func writeStory(out string, rows []*storyRow, o *storyOptions, took time.Duration) error {
	js, _ := json.MarshalIndent(rows, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(out, "story.json"), append(js, '\n')); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(out, "story.svg"), storySVG(rows)); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# MoPE-CLIP on the shapes world — demo report\n\n")
	fmt.Fprintf(&b, "Generated by `mope demo%s` in %s (story part). Every number below was measured in that run", map[bool]string{true: " --quick"}[o.Quick], took.Round(time.Second))
	fmt.Fprintf(&b, " (rows marked * reused pipeline steps cached by an earlier demo run in the same output directory).\n\n")
	fmt.Fprintf(&b, "Budgets (chosen to fit ≤ 10 minutes on 2 cores): calibration %d image–caption pairs of the shapes calib split (one caption each); "+
		"every pruned model distilled for %d steps × %d pairs from %d training images (lr %g); the from-scratch model trained with the same "+
		"steps and batch (lr %g). Retrieval on the first %d images of the shapes test split (5 captions each); mean R@1 = (TR@1 + IR@1)/2, mean R@5 likewise. "+
		"Models are built %d at a time (the results do not depend on it). images/s: image tower on the fast inference engine (package infer), "+
		"batch 64, best of 3 passes over 256 images, this machine, this run, measured after every model was built, one model at a time.\n\n",
		o.CalibN, o.Steps, o.Batch, o.TrainN, o.LR, o.ScratchLR, o.N, o.jobs())
	b.WriteString("| model | towers | FLOPs | method | order | width | depth | params | GFLOPs/img | GFLOPs/txt | images/s | mean R@1 | mean R@5 | mean R@1 before distillation |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		star := ""
		if r.Cached {
			star = "*"
		}
		fmt.Fprintf(&b, "| %s%s | %s | %s | %s | %s | %s | %s | %.3fM | %.4f | %.4f | %.0f | %.1f | %.1f | %s |\n", r.Name, star, r.Towers, fmtTarget(r.Target),
			r.Method, r.Order, fmtRatio(r.Width), fmtRatio(r.Depth), float64(r.Params)/1e6, r.GFLOPsI, r.GFLOPsT, r.ImgPerS, r.R1, r.R5, fmtPruned(r))
	}
	b.WriteString("\n![mean R@1 against image GFLOPs](story.svg)\n\n")
	b.WriteString("## The paper's claims in this run\n\n")
	for _, l := range storyClaims(rows) {
		b.WriteString("- " + l + "\n")
	}
	return atomicfile.WriteFile(filepath.Join(out, "REPORT.md"), []byte(b.String()))
}

func fmtRatio(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// storyClaims compares rows of the same setting for the paper's claims.
func storyClaims(rows []*storyRow) []string {
	type key struct {
		towers string
		target float64
	}
	groups := map[key][]*storyRow{}
	var keys []key
	for _, r := range rows {
		if r.Method == "teacher" {
			continue
		}
		k := key{r.Towers, r.Target}
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []string
	for _, k := range keys {
		g := groups[k]
		var ref *storyRow
		for _, r := range g {
			if r.Method == "mope" && r.Order == mope.OrderWidthDepth {
				ref = r
			}
		}
		if ref == nil {
			continue
		}
		var others, orders, scratch []string
		for _, r := range g {
			if r == ref {
				continue
			}
			cmp := fmt.Sprintf("%s %.1f", r.Name, r.R1)
			switch {
			case r.Method == "scratch":
				scratch = append(scratch, cmp)
			case r.Method == "mope":
				orders = append(orders, cmp)
			default:
				others = append(others, cmp)
			}
		}
		verdict := func(names []string, what string) {
			if len(names) == 0 {
				return
			}
			worse := 0
			for _, r := range g {
				if r != ref && contains(names, fmt.Sprintf("%s %.1f", r.Name, r.R1)) && r.R1 <= ref.R1 {
					worse++
				}
			}
			holds := "holds"
			if worse < len(names) {
				holds = fmt.Sprintf("does not hold for %d of %d", len(names)-worse, len(names))
			}
			out = append(out, fmt.Sprintf("%s, %s: %s (mean R@1 %.1f vs %s): %s.", k.towers, fmtTarget(k.target), what, ref.R1, strings.Join(names, ", "), holds))
		}
		verdict(others, "MoPE ≥ other importance metrics")
		verdict(orders, "width-then-depth ≥ other orders")
		verdict(scratch, "pruned + distilled ≥ trained from scratch")
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// storySVG plots mean R@1 against image GFLOPs, one marker per model.
func storySVG(rows []*storyRow) []byte {
	const W, H, L, R, T, B = 900, 520, 70, 260, 40, 50
	maxX, maxY := 0.0, 0.0
	for _, r := range rows {
		maxX, maxY = math.Max(maxX, r.GFLOPsI), math.Max(maxY, r.R1)
	}
	maxX *= 1.1
	maxY = math.Max(10, math.Ceil(maxY/10)*10)
	px := func(x float64) float64 { return L + x/maxX*(W-L-R) }
	py := func(y float64) float64 { return H - B - y/maxY*(H-T-B) }
	colors := map[string]string{"teacher": "#000000", "mope": "#d62728", "magnitude": "#1f77b4", "taylor": "#2ca02c",
		"unimodal": "#9467bd", "random": "#7f7f7f", "scratch": "#ff7f0e"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15">mean R@1 (%%) vs image-tower GFLOPs — shapes test split</text>`+"\n", L)
	for i := 0; i <= 5; i++ {
		y := maxY * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n",
			L, W-R, py(y), py(y), L-6, py(y)+4, y)
		x := maxX * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle">%.4f</text>`+"\n",
			px(x), px(x), T, H-B, px(x), H-B+16, x)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">GFLOPs per image</text>`+"\n", (L+W-R)/2, H-12)
	sorted := append([]*storyRow(nil), rows...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].R1 > sorted[j].R1 })
	for i, r := range sorted {
		c := colors[r.Method]
		if c == "" {
			c = "#333"
		}
		shape := fmt.Sprintf(`<circle cx="%.1f" cy="%.1f" r="6" fill="%s"/>`, px(r.GFLOPsI), py(r.R1), c)
		switch r.Order {
		case mope.OrderDepthWidth:
			shape = fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="11" height="11" fill="%s"/>`, px(r.GFLOPsI)-5.5, py(r.R1)-5.5, c)
		case mope.OrderWidth:
			shape = fmt.Sprintf(`<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`, px(r.GFLOPsI), py(r.R1)-7, px(r.GFLOPsI)-6, py(r.R1)+5,
				px(r.GFLOPsI)+6, py(r.R1)+5, c)
		}
		b.WriteString(shape + "\n")
		ly := T + 14 + 16*i
		fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="5" fill="%s"/><text x="%d" y="%d">%s (%.1f)</text>`+"\n", W-R+15, ly-4, c, W-R+25, ly,
			html.EscapeString(r.Name), r.R1)
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// demoStoryHook is mope demo's entry into the story (cmd_demo.go calls it
// after evaluating the teacher): rows holds the demo's results so far (the
// teacher first); the story's models are appended in row order.
func demoStoryHook(o *storyOptions, teacher *clip.Model, teacherDir string, tok *tokenizer.Tokenizer, d *demoWorld, out string,
	rows *[]*demoResult, stdout, stderr io.Writer) error {
	if o.Skip {
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The story's models are evaluated on the first --story-n test images
	// (the teacher again too, so its row is comparable); they go into
	// results.json like every evaluated model.
	sd := d
	if o.N > 0 && o.N < d.Test.Len() {
		var err error
		if sd, err = newDemoWorld(o.N, teacher.Config.Vision.ImageSize); err != nil {
			return err
		}
	}
	// eval evaluates and saves one model; the story calls it from several
	// rows at once.
	eval := func(name string, m *clip.Model) (*demoResult, error) {
		r, err := evalDemoModel(name, m, tok, sd)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		r.Dir = filepath.Join(out, name)
		if err := m.Save(r.Dir); err != nil {
			return nil, err
		}
		if err := clip.CopyTokenizer(teacherDir, r.Dir); err != nil {
			return nil, err
		}
		return r, nil
	}
	tr := (*rows)[0]
	if sd != d {
		fmt.Fprintf(stdout, "evaluating the teacher on the first %d test images ...\n", sd.Test.Len())
		var err error
		if tr, err = evalDemoModel(fmt.Sprintf("teacher@%d", sd.Test.Len()), teacher, tok, sd); err != nil {
			return err
		}
		tr.Dir = teacherDir
		*rows = append(*rows, tr)
	}
	env := storyEnv{Teacher: teacher, TeacherDir: teacherDir, Tok: tok, World: sd, Out: out, TeacherResult: tr,
		Eval: eval, Results: rows, Stdout: stdout, Log: stderr}
	_, err := runStory(ctx, env, o)
	return err
}

// prefixWriter writes whole lines to w, each starting with prefix (one row's
// log among the story's concurrent rows). Lines of all prefixWriters on one
// w are written one at a time.
type prefixWriter struct {
	w      io.Writer
	mu     *sync.Mutex // shared by the prefixWriters of w
	prefix string
	buf    []byte
}

func newPrefixWriter(w io.Writer, mu *sync.Mutex, prefix string) io.Writer {
	if w == nil {
		return nil
	}
	return &prefixWriter{w: w, mu: mu, prefix: prefix}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		p.mu.Lock()
		_, err := fmt.Fprintf(p.w, "%s%s", p.prefix, p.buf[:i+1])
		p.mu.Unlock()
		p.buf = p.buf[i+1:]
		if err != nil {
			return len(b), err
		}
	}
}

// storyCache prepares dir, the story's cache of pipeline steps: it keeps
// the steps only when they were made from this teacher with these story
// settings (story/key.txt), and otherwise deletes them first.
func storyCache(dir string, teacher *clip.Model, o *storyOptions, w io.Writer) error {
	key := fmt.Sprintf("teacher %s\nsteps %d batch %d train-n %d calib-n %d lr %g scratch-lr %g\n",
		mope.Fingerprint(teacher), o.Steps, o.Batch, o.TrainN, o.CalibN, o.LR, o.ScratchLR)
	path := filepath.Join(dir, "key.txt")
	if b, err := os.ReadFile(path); err == nil && string(b) == key {
		return nil
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		fmt.Fprintf(w, "cached story steps in %s were made from another teacher or other settings: deleting them\n", dir)
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, []byte(key))
}
