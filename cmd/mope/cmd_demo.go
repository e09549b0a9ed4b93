package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/mope/grid"
)

// DefaultTeacherDir is where the committed shapes teacher lives (relative
// to the repository root, where make demo runs).
const DefaultTeacherDir = "assets/shapes-teacher"

// DeepTeacherDir is where the deep shapes teacher (12 layers per tower,
// preset world.DeepTeacherPreset) is trained by deepTeacherRecipe.
const DeepTeacherDir = "assets/shapes-teacher-deep"

// namedTeacher is a teacher mope demo knows by name (--teacher NAME).
type namedTeacher struct {
	dir    string
	recipe func(out string) pretrainOptions
	// took is the recipe's training time on 2 cores.
	took string
	// autoTrain: mope demo trains it when it is missing; otherwise it
	// stops with the command that trains it.
	autoTrain bool
	// seeds and reductions are the grid's defaults on this teacher (flags
	// given on the command line win).
	seeds      int
	reductions string
}

// gridDefaults sets o's seeds and FLOPs targets: the flags given on the
// command line (set), otherwise t's defaults.
func (t namedTeacher) gridDefaults(o *grid.Options, set map[string]bool, reductions string) error {
	if !set["seeds"] {
		o.Seeds = t.seeds
	}
	if !set["reductions"] {
		reductions = t.reductions
	}
	if reductions == "" {
		return nil
	}
	var err error
	if o.Targets, err = grid.ParseReductions(reductions); err != nil {
		return fmt.Errorf("%w: --reductions: %v", errUsage, err)
	}
	return nil
}

// namedTeachers are the teachers --teacher accepts by name.
var namedTeachers = map[string]namedTeacher{
	"shapes": {dir: DefaultTeacherDir, recipe: teacherRecipe, took: "about 2 h 20 min", autoTrain: true, seeds: 1},
	"deep":   {dir: DeepTeacherDir, recipe: deepTeacherRecipe, took: deepTeacherTime, seeds: 3, reductions: "2"},
}

// resolveTeacher is the teacher of --teacher: a name of namedTeachers or a
// model directory (trained with the default recipe when missing, as
// before).
func resolveTeacher(arg string) namedTeacher {
	if t, ok := namedTeachers[arg]; ok {
		return t
	}
	t := namedTeachers["shapes"]
	t.dir = arg
	return t
}

// teacherRecipe is the exact pretraining run of the committed teacher
// (assets/shapes-teacher/README.md); mope demo reruns it when the teacher is
// missing.
func teacherRecipe(out string) pretrainOptions {
	o := defaultPretrain()
	o.Preset, o.Steps, o.Batch, o.Warmup, o.TrainN, o.Out = world.TeacherPreset, 5600, 256, 200, 100000, out
	o.ValEvery, o.CkptEvery = 400, 100
	return o
}

// deepTeacherRecipe is the pretraining run of the deep teacher
// (docs/claims-2026-12-06.md): the committed teacher's recipe on preset
// world.DeepTeacherPreset, with a longer warm-up for the deeper towers.
func deepTeacherRecipe(out string) pretrainOptions {
	o := teacherRecipe(out)
	o.Preset, o.Warmup = world.DeepTeacherPreset, 400
	return o
}

// deepTeacherTime is deepTeacherRecipe's training time on 2 AVX-512 cores:
// 1 h 29 min measured on a shared Xeon (assets/shapes-teacher-deep/README.md),
// 340 pairs/s, so about 1 h 10 min, while the machine was quiet.
const deepTeacherTime = "about 1 h 10–1 h 30 min"

func init() {
	register(&command{
		name:    "demo",
		summary: "the whole story on the built-in shapes world: teacher, MoPE pruning, distillation, baselines",
		usage: "[--out DIR] [--teacher DIR|shapes|deep] [--limit 1000] [--quick | --no-story] [--seeds N] [story flags]\n\n" +
			"  Loads the shapes teacher (" + DefaultTeacherDir + "; trained first when missing, about\n" +
			"  2 h 20 min), generates the shapes test split, evaluates image–text retrieval\n" +
			"  (TR/IR@1/5/10) and zero-shot classification of single-object images by shape and by\n" +
			"  colour. Then the MoPE-CLIP story (the experiment grid, package mope/grid): the teacher\n" +
			"  pruned to 2× and 4× fewer FLOPs (vision tower; both towers) with MoPE, magnitude,\n" +
			"  Taylor, uni-modal and random importance (width then depth), MoPE in two other orders,\n" +
			"  each distilled from the teacher with the same budget, and models of the pruned sizes\n" +
			"  trained from scratch: 32 models. Prints the tables and writes DIR/results.json,\n" +
			"  DIR/story.json, DIR/REPORT.md with DIR/story.svg and DIR/story.png, and each evaluated\n" +
			"  model as DIR/<name>. A re-run with the same DIR reuses the finished steps (DIR/story).\n" +
			"  --seeds N builds every model with seeds 1…N and decides each claim by a paired\n" +
			"  comparison with a 95% t-interval (DIR/claims.json). --teacher deep: the 12-layer\n" +
			"  teacher (" + DeepTeacherDir + "; prints how to train it when missing).\n" +
			"  docs/grid.md describes the grid and how to read the report.",
		run: runDemo,
	})
}

// registerGridFlags adds the grid's budget flags to fl.
func registerGridFlags(fl *flag.FlagSet) (o *grid.Options, noGrid *bool) {
	d := grid.DefaultOptions()
	o = &d
	noGrid = fl.Bool("no-story", false, "evaluate the teacher only")
	fl.BoolVar(&o.Quick, "quick", false, "6 models instead of the whole grid: both towers at 2×, MoPE, magnitude and random, the three orders, from scratch")
	fl.Bool("full", true, "deprecated and ignored: the whole grid is the default (removed in the next release)")
	fl.IntVar(&o.Steps, "story-steps", d.Steps, "distillation (and from-scratch training) steps per model")
	fl.IntVar(&o.Batch, "story-batch", d.Batch, "image–caption pairs per step")
	fl.IntVar(&o.TrainN, "story-train-n", d.TrainN, "training images for distillation and from-scratch training")
	fl.IntVar(&o.CalibN, "calib-n", d.CalibN, "calibration images (one caption each) for MoPE, Taylor and uni-modal scoring")
	fl.Float64Var(&o.LR, "story-lr", d.LR, "peak learning rate of distillation")
	fl.Float64Var(&o.ScratchLR, "scratch-lr", d.ScratchLR, "peak learning rate of from-scratch training (pretraining's)")
	fl.IntVar(&o.N, "story-n", d.N, "test images (5 captions each) the story's models are evaluated on")
	fl.IntVar(&o.Jobs, "story-jobs", 0, "models built at once (0: 2 on two or more cores; 1 with --device cuda, which trains one model at a time on the device-resident backend); results are the same for any value")
	fl.IntVar(&o.Seeds, "seeds", 1, "seeds per model (1, 2, …, N): N ≥ 2 reports mean ± sd per case and paired comparisons of the claims")
	fl.BoolVar(&o.Fresh, "fresh", false, "delete the story's cached pipeline steps first (otherwise finished steps are reused and marked cached)")
	return o, noGrid
}

// warnDeprecated prints a warning for each deprecated flag that was set.
func warnDeprecated(fl *flag.FlagSet, stderr io.Writer) {
	fl.Visit(func(f *flag.Flag) {
		if f.Name == "full" {
			fmt.Fprintf(stderr, "mope %s: --full is deprecated and ignored (the whole grid is the default); it will be removed in the next release\n", fl.Name())
		}
	})
}

func runDemo(args []string, stdout, stderr io.Writer) error {
	c := commands["demo"]
	fl := newFlags(c, stderr)
	out := outFlag(fl, "mope-demo", "output `DIR` (results.json and the evaluated models)")
	teacherArg := fl.String("teacher", DefaultTeacherDir, "teacher model `DIR`, or a name: shapes ("+DefaultTeacherDir+"; trained with the committed recipe when missing), "+
		"deep ("+DeepTeacherDir+", 12 layers per tower; grid defaults --seeds 3 --reductions 2)")
	reductions := fl.String("reductions", "", "FLOPs reductions of the grid, comma-separated: 2, 4 or 2,4 (default: the grid's, both)")
	n := limitFlag(fl, 0, "test images (5 captions each; all: 1000)")
	deprecatedFlag(fl, "n", "limit")
	gridOpts, noGrid := registerGridFlags(fl)
	device := deviceFlag(fl)
	asJSON := jsonFlag(fl)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if err := noArgs(fl); err != nil {
		return err
	}
	// With --json, stdout carries one JSON document: the tables and the
	// run's narration go to stderr.
	human := stdout
	if *asJSON {
		human = stderr
	}
	sess, err := useDevice(*device, stderr)
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := checkLimit(*n); err != nil {
		return err
	}
	if gridOpts.Seeds < 1 || gridOpts.Seeds > grid.MaxSeeds {
		return fmt.Errorf("%w: --seeds must be 1 to %d, got %d", errUsage, grid.MaxSeeds, gridOpts.Seeds)
	}
	if *n == 0 {
		*n = 1000
	}
	if err := gridOpts.Check(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if gridOpts.N < 1 {
		return fmt.Errorf("%w: --story-n must be at least 1 (more than --limit evaluates on all --limit images), got %d", errUsage, gridOpts.N)
	}
	warnDeprecated(fl, stderr)
	teach := resolveTeacher(*teacherArg)
	teacherDir := &teach.dir
	if err := refuseSource(*out, *teacherDir, "--teacher", ""); err != nil {
		return err
	}
	set := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := teach.gridDefaults(gridOpts, set, *reductions); err != nil {
		return err
	}
	start := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(human, "mope demo: MoPE-CLIP on the built-in shapes world")
	if err := ensureTeacher(ctx, teach, human, stderr); err != nil {
		return err
	}
	teacher, err := openModelAs("--teacher", *teacherDir, stderr)
	if err != nil {
		return err
	}
	tok, err := clip.LoadTokenizer(*teacherDir)
	if err != nil {
		return err
	}
	d, err := grid.RunDemo(ctx, grid.DemoConfig{Teacher: teacher, TeacherDir: *teacherDir, Tok: tok, Out: *out, N: *n,
		NoGrid: *noGrid, Grid: *gridOpts, Stdout: human, Log: stderr, GPU: sess.gpu()})
	if err != nil {
		return err
	}
	took := time.Since(start)
	if err := printDemo(human, d, *out, took); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, demoSummary(d, *teacherDir, *out, *n, *noGrid, *gridOpts, took))
	}
	return nil
}

// demoJSON is what mope demo --json prints: the teacher, the settings, every
// evaluated model (results.json's rows), the grid's rows with their
// per-case summaries and the claims' paired comparisons.
type demoJSON struct {
	Model       string            `json:"model"`
	Out         string            `json:"out"`
	Limit       int               `json:"limit"`
	NoStory     bool              `json:"no_story"`
	Settings    *grid.Options     `json:"settings,omitempty"`
	Results     []*grid.Result    `json:"results"`
	Rows        []*grid.Row       `json:"rows,omitempty"`
	Summaries   []*grid.Summary   `json:"summaries,omitempty"`
	Comparisons []grid.Comparison `json:"comparisons,omitempty"`
	Seconds     float64           `json:"seconds"`
}

// demoSummary collects demoJSON from a finished run.
func demoSummary(d *grid.Demo, teacher, out string, n int, noGrid bool, o grid.Options, took time.Duration) demoJSON {
	j := demoJSON{Model: teacher, Out: out, Limit: n, NoStory: noGrid, Results: d.Results, Seconds: took.Seconds()}
	if d.Grid != nil {
		j.Settings = &o
		j.Rows = d.Grid.Rows
		j.Summaries = grid.Summarize(d.Grid.Rows)
		j.Comparisons = grid.Compare(d.Grid.Rows)
	}
	return j
}

// ensureTeacher trains the teacher with its recipe when its directory has
// no weights, or, for a teacher not trained automatically, returns the
// one-line error that says how to train it.
func ensureTeacher(ctx context.Context, t namedTeacher, stdout, stderr io.Writer) error {
	if _, err := os.Stat(filepath.Join(t.dir, clip.WeightsFile)); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	o := t.recipe(t.dir)
	o.Resume = true
	if !t.autoTrain {
		return fmt.Errorf("teacher %s is not trained yet; train it first (%s on 2 quiet cores; Ctrl-C and the same command resume): GOMAXPROCS=2 %s --resume",
			t.dir, t.took, o.command())
	}
	fmt.Fprintf(stdout, "teacher %s is missing: training it (%s on 2 quiet cores; Ctrl-C and rerun resumes) with\n  %s\n", t.dir, t.took, o.command())
	_, err := pretrain(ctx, o, stderr)
	return err
}

// printDemo prints the grid's table, the results table and where they went.
func printDemo(w io.Writer, d *grid.Demo, out string, took time.Duration) error {
	if d.Grid != nil {
		fmt.Fprintln(w)
		if err := grid.PrintTable(w, d.Grid.Rows); err != nil {
			return err
		}
		if err := grid.PrintClaims(w, d.Grid.Rows); err != nil {
			return err
		}
		fmt.Fprintf(w, "story: %s; report %s\n", d.Grid.Took.Round(time.Second), filepath.Join(out, grid.ReportFile))
	}
	fmt.Fprintln(w)
	if err := grid.PrintResults(w, d.Results); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nretrieval: %d images × %d captions; recall in percent. Zero-shot: prompts \"a single <colour> <shape>\".\n",
		d.World.Test.Len(), d.World.Captions())
	if len(d.Results) > 1 {
		k := d.GridWorld.Test.Len()
		fmt.Fprintf(w, "The rows after the first are evaluated on the first %d test images (teacher@%d is the teacher on them).\n", k, k)
	}
	var dirs []string
	for _, r := range d.Results {
		dirs = append(dirs, r.Dir)
	}
	_, err := fmt.Fprintf(w, "wrote %s and %s (%s)\n", filepath.Join(out, grid.ResultsFile), strings.Join(dirs, ", "), took.Round(time.Second))
	return err
}
