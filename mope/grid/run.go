package grid

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/internal/progress"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/mope"
)

// Env is what the grid runs on.
type Env struct {
	Teacher    *clip.Model
	TeacherDir string
	Tok        *tokenizer.Tokenizer
	// World is the evaluation data of every row (the teacher's included).
	World *World
	// Out is the output directory: the cached steps go to Out/story.
	Out string
	// TeacherResult is the teacher's evaluation on World.
	TeacherResult *Result
	// Save, when set, stores a built model and returns its directory; rows
	// call it concurrently. Without it a row's Dir is its pipeline step.
	Save func(name string, m *clip.Model) (string, error)
	// Stdout receives the grid's progress lines, Log the rows' pipeline and
	// training logs (each line prefixed with the row's name); nil: none.
	Stdout, Log io.Writer
	// GPU, when set, is where scoring runs its towers (mope.Options.GPU)
	// and where the models train, on a resident backend
	// (mope.GPU.Training); the grid then builds one model at a time
	// (Options.Jobs is taken as 1), as the resident backend replaces the
	// process's ops backend while a model trains.
	GPU mope.GPU
}

// Report is a finished grid.
type Report struct {
	Options Options
	// Rows: the teacher, then one per case in Cases order.
	Rows []*Row
	// Results are the evaluations of the cases' models, in case order.
	Results []*Result
	// Took is the grid's wall time.
	Took time.Duration
}

// teacherCacheBytes bounds the teacher outputs kept for reuse across the
// distillation runs, per seed (the shapes teacher needs about 3 MB a
// batch, 100 batches a seed).
const teacherCacheBytes = 1 << 30

// calibData names the calibration set in score files.
const calibData = "shapes-calib-1cap"

// Run builds, evaluates and measures every case of o, o.JobCount() at a
// time. The first error that stops a model cancels the others and is
// returned (ctx's cancellation, by the user, wins); measurements that fail
// are recorded on their rows.
func Run(ctx context.Context, env Env, o Options) (*Report, error) {
	t0 := time.Now()
	if env.GPU.Ctx != nil && o.JobCount() > 1 {
		if o.Jobs > 1 {
			printf(env.Stdout, "the device trains one model at a time: %d jobs taken as 1\n", o.Jobs)
		}
		o.Jobs = 1
	}
	dir := filepath.Join(env.Out, "story")
	if o.Fresh {
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
	if err := prepareCache(dir, o.cacheKey(mope.Fingerprint(env.Teacher)), env.Stdout); err != nil {
		return nil, err
	}
	r, err := newRunner(env, o, dir)
	if err != nil {
		return nil, err
	}
	rows, results, models, err := r.buildAll(ctx)
	r.meter.Finish("")
	if err != nil {
		return nil, err
	}
	if n, b := r.data.TeacherCache.Len(); n > 0 {
		printf(env.Stdout, "teacher outputs of %d distillation batches computed once and reused (%.0f MB)\n", n, float64(b)/1e6)
	}
	// Speed is measured after every model is built, one model at a time, so
	// no measurement shares the cores with another row's work.
	printf(env.Stdout, "measuring images/s of %d models ...\n", len(rows)+1)
	teacherRow := &Row{Name: "teacher", Towers: "-", Target: 1, Method: MethodTeacher, Order: "-", Dir: env.TeacherDir}
	teacherRow.fill(env.TeacherResult)
	measureSpeed(teacherRow, env.Teacher, env.World.Test.Images)
	for i, row := range rows {
		measureSpeed(row, models[i], env.World.Test.Images)
	}
	return &Report{Options: o, Rows: append([]*Row{teacherRow}, rows...), Results: results, Took: time.Since(t0)}, nil
}

func measureSpeed(r *Row, m *clip.Model, im *world.Images) {
	v, err := ImagesPerSecond(m, im)
	if err != nil {
		r.fail("images/s", err)
		return
	}
	r.ImgPerS = v
}

// runner holds what the rows share.
type runner struct {
	env Env
	o   Options
	dir string
	// jobs are the models to build: every case with every seed, seed-major
	// (seed 1's rows first, in case order).
	jobs  []job
	train *world.Pairs
	cal   *mope.Calib
	data  mope.DistillData
	dopt  mope.DistillOptions
	// scores are the teacher's scores per metric.
	scores *scoreCache
	// shapes: the pruned config of each setting's MoPE width-then-depth
	// row, which that setting's scratch row trains.
	shapes map[setting]*shape
	// meter counts the finished models on env.Log; the rows' logs go
	// through it (above its bar on a terminal).
	meter *progress.Meter
	// narrate prints the grid's own lines through the meter when stdout
	// and the log are both terminals (so they do not break the bar).
	narrate bool
	outMu   sync.Mutex
	logMu   sync.Mutex
}

// shape is a pruned config, published once by closing done.
type shape struct {
	cfg  *clip.Config
	done chan struct{}
}

// job is one model: a case built with a seed.
type job struct {
	c    Case
	seed uint64
}

// name is the job's row name and directory: the case's name with the
// seed's suffix.
func (j job) name() string { return j.c.Name() + SeedSuffix(j.seed) }

// jobs lists every case of cases with every seed, seed-major.
func jobs(cases []Case, seeds []uint64) []job {
	var js []job
	for _, s := range seeds {
		for _, c := range cases {
			js = append(js, job{c, s})
		}
	}
	return js
}

func newRunner(env Env, o Options, dir string) (*runner, error) {
	seeds := SeedList(o.Seeds)
	r := &runner{env: env, o: o, dir: dir, jobs: jobs(o.Cases(), seeds), shapes: map[setting]*shape{}}
	r.meter = progress.New(env.Log, "story", len(r.jobs), progress.Options{Unit: "models/min", Scale: 60})
	r.narrate = r.meter.Mode() == progress.Bar && progress.IsTerminal(env.Stdout)
	seedNote := ""
	if len(seeds) > 1 {
		seedNote = fmt.Sprintf(" (%d cases × %d seeds)", len(o.Cases()), len(seeds))
	}
	printf(env.Stdout, "\nMoPE-CLIP story: %d pruned/scratch models%s, %d at a time; budget per model %d steps × %d pairs (%d training images), calibration %d pairs\n",
		len(r.jobs), seedNote, o.JobCount(), o.Steps, o.Batch, o.TrainN, o.CalibN)
	t := time.Now()
	var err error
	if r.train, err = world.Split(shapes.DefaultConfig(), "train", o.TrainN, env.Teacher.Config.Vision.ImageSize); err != nil {
		return nil, err
	}
	if r.cal, err = calibration(env.Teacher, env.Tok, o.CalibN); err != nil {
		return nil, err
	}
	printf(env.Stdout, "story data: %d training images, %d calibration pairs (%s)\n", r.train.Len(), r.cal.NImg, time.Since(t).Round(time.Millisecond))
	// Every distillation run of a seed draws batches 0, 1, … of the same
	// data, batch size and seed, so the teacher's outputs of a batch are
	// computed once per seed and reused by every later run of that seed
	// (bit-identical to recomputing them; the cache is keyed by the seed).
	r.data = mope.DistillData{Train: r.train, Tok: env.Tok,
		TeacherCache: mope.NewTeacherCache(env.Teacher, int64(len(seeds))*teacherCacheBytes)}
	r.dopt = mope.DefaultDistillOptions()
	r.dopt.Steps, r.dopt.Batch, r.dopt.LR, r.dopt.Warmup, r.dopt.ValEvery, r.dopt.CkptEvery = o.Steps, o.Batch, o.LR, max(1, o.Steps/10), 0, 50
	r.scores = &scoreCache{dir: dir, teacher: env.Teacher, cal: r.cal, limit: o.CalibN, gpu: env.GPU, say: r.say, files: map[string]*mope.ScoreFile{}}
	for _, j := range r.jobs {
		if c := j.c; c.isShapeSource() {
			r.shapes[c.setting()] = &shape{done: make(chan struct{})}
		}
	}
	return r, nil
}

// calibration is the calibration set: the first caption of each of n
// images of the shapes calib split (one caption per image keeps text
// scoring cheap).
func calibration(m *clip.Model, tok *tokenizer.Tokenizer, n int) (*mope.Calib, error) {
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

func (r *runner) say(format string, a ...any) {
	if r.narrate {
		r.meter.Print(fmt.Sprintf(format, a...))
		return
	}
	r.outMu.Lock()
	defer r.outMu.Unlock()
	printf(r.env.Stdout, format, a...)
}

// buildAll builds the cases on o.JobCount() workers, in case order. The
// first error cancels the other rows.
func (r *runner) buildAll(ctx context.Context) ([]*Row, []*Result, []*clip.Model, error) {
	n := len(r.jobs)
	rows, results, models, errs := make([]*Row, n), make([]*Result, n), make([]*clip.Model, n), make([]error, n)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range r.o.JobCount() {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || wctx.Err() != nil {
					return
				}
				if rows[i], results[i], models[i], errs[i] = r.build(wctx, i); errs[i] != nil {
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	// The error that stopped the grid: the first one that is not another
	// row's cancellation (an interruption by the user cancels every row).
	for _, err := range errs {
		if err != nil && (ctx.Err() != nil || !errors.Is(err, context.Canceled)) {
			return nil, nil, nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	return rows, results, models, nil
}

// build makes, evaluates and saves job i.
func (r *runner) build(ctx context.Context, i int) (*Row, *Result, *clip.Model, error) {
	j := r.jobs[i]
	c, name := j.c, j.name()
	r.say("[%d/%d] %s ...\n", i+1, len(r.jobs), name)
	var log io.Writer
	if r.env.Log != nil {
		log = newPrefixWriter(r.meter.Writer(), &r.logMu, name+": ")
	}
	t := time.Now()
	row := &Row{Name: name, Towers: c.Towers, Target: c.Target, Method: c.Method, Order: c.Order, Seed: j.seed, Steps: r.o.Steps}
	var m *clip.Model
	var err error
	if c.Method == MethodScratch {
		m, err = r.buildScratch(ctx, j, row, log)
	} else {
		m, err = r.buildPruned(ctx, j, row, log)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	row.Seconds = time.Since(t).Seconds()
	res, err := Evaluate(name, m, r.env.Tok, r.env.World)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	if r.env.Save != nil {
		if res.Dir, err = r.env.Save(name, m); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if row.prunedDir != "" {
		r.measurePruned(row)
	}
	row.fill(res)
	r.meter.Add(1, name+" done")
	r.say("    %s: %.2fM params, %.4f GFLOPs/image, mean R@1 %.1f, R@5 %.1f (%s%s)\n", name, float64(row.Params)/1e6,
		row.GFLOPsI, row.R1, row.R5, time.Duration(row.Seconds*float64(time.Second)).Round(time.Second), cachedNote(row.Cached))
	return row, res, m, nil
}

// buildScratch trains the scratch case of j once its setting's MoPE
// width-then-depth row has published its pruned shape.
func (r *runner) buildScratch(ctx context.Context, j job, row *Row, log io.Writer) (*clip.Model, error) {
	c := j.c
	row.Order = "-"
	sh := r.shapes[c.setting()]
	if sh == nil {
		return nil, fmt.Errorf("grid: no pruned shape for %s (scratch must follow a MoPE width-depth case of %s %g)", c.Name(), c.Towers, c.Target)
	}
	select {
	case <-sh.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	m, cached, err := trainScratch(ctx, sh.cfg, r.train, r.env.Tok, r.o, j.seed, filepath.Join(r.dir, j.name()), r.env.GPU, log)
	row.Cached = cached
	return m, err
}

// buildPruned runs the pruning pipeline (score, prune, distil) of job j:
// the seed sets the random metric's scores and the distillation batches.
func (r *runner) buildPruned(ctx context.Context, j job, row *Row, log io.Writer) (*clip.Model, error) {
	c, name := j.c, j.name()
	ts, err := r.scores.get(c.Method, j.seed)
	if err != nil {
		return nil, err
	}
	dopt := r.dopt
	dopt.Seed = j.seed
	po := mope.PipelineOptions{Stage: mope.StagePretrain, Order: c.Order, Metric: mope.Metric(c.Method), TargetFLOPs: c.Target,
		Calib: r.cal, CalibData: calibData, CalibLimit: r.o.CalibN, TeacherScores: ts, Seed: j.seed,
		Distill: dopt, Data: r.data, TeacherDir: r.env.TeacherDir, Dir: filepath.Join(r.dir, name), Log: log, GPU: r.env.GPU}
	if c.Towers == TowersVision {
		po.Stage, po.Towers = mope.StageFinetune, clip.VisionOnly
	}
	m, res, err := mope.Pipeline(ctx, r.env.Teacher, po)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	row.Width, row.Depth = res.Width, res.Depth
	for _, st := range res.Steps {
		if st.Resumed {
			row.Cached = true
		}
		if st.Kind == "prune" && st.Dir != "" {
			row.prunedDir = st.Dir
		}
	}
	if sh := r.shapes[c.setting()]; sh != nil && c.isShapeSource() && j.seed == 1 {
		sh.cfg = m.Config
		close(sh.done)
	}
	return m, nil
}

// measurePruned records mean R@1 of the row's pruned model before
// distillation (or why it could not be measured).
func (r *runner) measurePruned(row *Row) {
	pm, err := clip.Load(row.prunedDir)
	if err != nil {
		row.fail("R@1 before distillation", err)
		return
	}
	enc, done, err := infer.NewEncoder(pm, r.env.Tok)
	if err != nil {
		row.fail("R@1 before distillation", err)
		return
	}
	defer done()
	m, err := world.Retrieval(enc, r.env.World.Test)
	if err != nil {
		row.fail("R@1 before distillation", err)
		return
	}
	r1 := (m.TR1 + m.IR1) / 2
	row.PrunedR1 = &r1
}

func cachedNote(c bool) string {
	if c {
		return ", reused cached steps"
	}
	return ""
}

func printf(w io.Writer, format string, a ...any) {
	if w != nil {
		fmt.Fprintf(w, format, a...)
	}
}
