package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/clip/zeroshot"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/internal/atomicfile"
	"github.com/mopeclip/mopeclip/internal/world"
)

// DefaultTeacherDir is where the committed shapes teacher lives (relative
// to the repository root, where make demo runs).
const DefaultTeacherDir = "assets/shapes-teacher"

// teacherRecipe is the exact pretraining run of the committed teacher
// (assets/shapes-teacher/README.md); mope demo reruns it when the teacher is
// missing.
func teacherRecipe(out string) pretrainOptions {
	o := defaultPretrain()
	o.Preset, o.Steps, o.Batch, o.Warmup, o.TrainN, o.Out = world.TeacherPreset, 5600, 256, 200, 100000, out
	o.ValEvery, o.CkptEvery = 400, 100
	return o
}

func init() {
	register(&command{
		name:    "demo",
		summary: "the whole story on the built-in shapes world: teacher, MoPE pruning, distillation, baselines",
		usage: "[--out DIR] [--teacher DIR] [--limit 1000] [--quick | --no-story] [story flags]\n\n" +
			"  Loads the shapes teacher (" + DefaultTeacherDir + "; trained first when missing, about\n" +
			"  2 h 20 min), generates the shapes test split, evaluates image–text retrieval\n" +
			"  (TR/IR@1/5/10) and zero-shot classification of single-object images by shape and by\n" +
			"  colour. Then the MoPE-CLIP story: the teacher pruned to 2× and 4× fewer FLOPs (vision\n" +
			"  tower; both towers) with MoPE, magnitude, Taylor, uni-modal and random importance\n" +
			"  (width then depth), MoPE in two other orders, each distilled from the teacher with\n" +
			"  the same budget, and models of the pruned sizes trained from scratch: 32 models, about\n" +
			"  7 minutes on 2 cores. Prints the tables and writes DIR/results.json, DIR/story.json,\n" +
			"  DIR/REPORT.md with DIR/story.svg, and each evaluated model as DIR/<name>. A re-run\n" +
			"  with the same DIR reuses the finished steps (DIR/story).",
		run: runDemo,
	})
}

// demoResult is one evaluated model in results.json.
type demoResult struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
	zeroshot.RetrievalMetrics
	// R1 is the mean of TR@1 and IR@1 (the demo's headline recall).
	R1 float64 `json:"r1"`
	// ShapeTop1 and ColorTop1 are zero-shot classification top-1 accuracies
	// (percent) on single-object images.
	ShapeTop1  float64 `json:"shape_top1"`
	ColorTop1  float64 `json:"color_top1"`
	Params     int     `json:"params"`
	VisionPara int     `json:"vision_params"`
	TextParams int     `json:"text_params"`
	// GFLOPs of one image and one text (context length) forward pass.
	ImageGFLOPs float64 `json:"image_gflops"`
	TextGFLOPs  float64 `json:"text_gflops"`
	EvalSeconds float64 `json:"eval_seconds"`
}

// demoWorld is the evaluation data of the demo: the retrieval test split and
// the single-object classification set.
type demoWorld struct {
	Test                   *world.Pairs
	Single                 *world.Pairs
	ShapeLabel, ColorLabel []int
}

func newDemoWorld(n, size int) (*demoWorld, error) {
	cfg := shapes.DefaultConfig()
	test, err := world.Split(cfg, "test", n, size)
	if err != nil {
		return nil, err
	}
	one := cfg
	one.MinObjects, one.MaxObjects = 1, 1
	exs, err := shapes.Generate(one, "test", max(n/2, 10))
	if err != nil {
		return nil, err
	}
	d := &demoWorld{Test: test, Single: world.FromExamples(exs, size)}
	for _, e := range exs {
		d.ShapeLabel = append(d.ShapeLabel, int(e.Objects[0].Shape))
		d.ColorLabel = append(d.ColorLabel, int(e.Objects[0].Color))
	}
	return d, nil
}

// Zero-shot prompts follow the captions' "a single <colour> <shape>"
// template; each class averages its prompts over the other attribute.
func shapePrompts() (classes, templates []string) {
	for _, s := range shapes.AllShapes {
		classes = append(classes, s.String())
	}
	for _, c := range shapes.AllColors {
		templates = append(templates, "a single "+c.String()+" {}")
	}
	return classes, templates
}

func colorPrompts() (classes, templates []string) {
	for _, c := range shapes.AllColors {
		classes = append(classes, c.String())
	}
	for _, s := range shapes.AllShapes {
		templates = append(templates, "a single {} "+s.String())
	}
	return classes, templates
}

// evalDemoModel evaluates m on the demo world.
func evalDemoModel(name string, m *clip.Model, tok *tokenizer.Tokenizer, d *demoWorld) (*demoResult, error) {
	t0 := time.Now()
	r, err := world.Retrieval(m, tok, d.Test)
	if err != nil {
		return nil, err
	}
	res := &demoResult{Name: name, RetrievalMetrics: r, R1: (r.TR1 + r.IR1) / 2}
	img := clip.Normalize(world.EmbedImages(m, d.Single.Images))
	enc, done, err := world.Encoder(m, tok)
	if err != nil {
		return nil, err
	}
	defer done()
	for _, task := range []struct {
		prompts func() ([]string, []string)
		labels  []int
		out     *float64
	}{{shapePrompts, d.ShapeLabel, &res.ShapeTop1}, {colorPrompts, d.ColorLabel, &res.ColorTop1}} {
		classes, templates := task.prompts()
		ce, err := enc.ClassEmbeddings(classes, templates)
		if err != nil {
			return nil, err
		}
		logits := clip.Similarity(img, ce)
		*task.out = zeroshot.Classification(logits, d.Single.Len(), len(classes), task.labels).Top1
	}
	cfg := m.Config
	res.VisionPara, res.TextParams, res.Params = m.NumParams()
	res.ImageGFLOPs = cfg.VisionMACs().GFLOPs()
	res.TextGFLOPs = cfg.TextMACs(cfg.Text.MaxPositionEmbeddings).GFLOPs()
	res.EvalSeconds = time.Since(t0).Seconds()
	return res, nil
}

func printDemoTable(w io.Writer, rows []*demoResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tparams\tGFLOPs img\tGFLOPs txt\tTR@1\tTR@5\tTR@10\tIR@1\tIR@5\tIR@10\tmean R@1\tshape top1\tcolour top1\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.2fM\t%.3f\t%.3f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", r.Name,
			float64(r.Params)/1e6, r.ImageGFLOPs, r.TextGFLOPs, r.TR1, r.TR5, r.TR10, r.IR1, r.IR5, r.IR10, r.R1, r.ShapeTop1, r.ColorTop1)
	}
	tw.Flush()
}

func runDemo(args []string, stdout, stderr io.Writer) error {
	c := commands["demo"]
	fl := newFlags(c, stderr)
	out := outFlag(fl, "mope-demo", "output `DIR` (results.json and the evaluated models)")
	teacherDir := fl.String("teacher", DefaultTeacherDir, "teacher model `DIR`; trained there with the committed recipe when missing")
	n := limitFlag(fl, 0, "test images (5 captions each; all: 1000)")
	deprecatedFlag(fl, "n", "limit")
	story := registerStoryFlags(fl) // issue 7: the MoPE-CLIP story (demo_story.go)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if err := noArgs(fl); err != nil {
		return err
	}
	if err := checkLimit(*n); err != nil {
		return err
	}
	if *n == 0 {
		*n = 1000
	}
	start := time.Now()
	fmt.Fprintln(stdout, "mope demo: MoPE-CLIP on the built-in shapes world")
	if _, err := os.Stat(filepath.Join(*teacherDir, clip.WeightsFile)); errors.Is(err, fs.ErrNotExist) {
		o := teacherRecipe(*teacherDir)
		o.Resume = true
		fmt.Fprintf(stdout, "teacher %s is missing: training it (about 2 h 20 min on 2 quiet cores; Ctrl-C and rerun resumes) with\n  %s\n", *teacherDir, o.command())
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		_, err := pretrain(ctx, o, stderr)
		stop()
		if err != nil {
			return err
		}
	}
	teacher, err := clip.Load(*teacherDir)
	if err != nil {
		return err
	}
	tok, err := clip.LoadTokenizer(*teacherDir)
	if err != nil {
		return err
	}
	t0 := time.Now()
	d, err := newDemoWorld(*n, teacher.Config.Vision.ImageSize)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "world: %d test images, %d captions; %d single-object images for zero-shot (%s)\n",
		d.Test.Len(), len(flatCaptions(d.Test)), d.Single.Len(), time.Since(t0).Round(time.Millisecond))

	var rows []*demoResult
	evalModel := func(name string, m *clip.Model) error {
		fmt.Fprintf(stdout, "evaluating %s ...\n", name)
		r, err := evalDemoModel(name, m, tok, d)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		dir := filepath.Join(*out, name)
		if err := m.Save(dir); err != nil {
			return err
		}
		if err := clip.CopyTokenizer(*teacherDir, dir); err != nil {
			return err
		}
		r.Dir = dir
		rows = append(rows, r)
		return nil
	}
	if err := evalModel("teacher", teacher); err != nil {
		return err
	}
	// Later stages (MoPE pruning + distillation) add their models here.
	if err := demoStoryHook(story, teacher, *teacherDir, tok, d, *out, &rows, stdout, stderr); err != nil {
		return err
	}

	fmt.Fprintln(stdout)
	printDemoTable(stdout, rows)
	js, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(*out, "results.json"), append(js, '\n')); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nretrieval: %d images × %d captions; recall in percent. Zero-shot: prompts \"a single <colour> <shape>\".\n",
		d.Test.Len(), len(flatCaptions(d.Test)))
	if len(rows) > 1 {
		fmt.Fprintf(stdout, "The rows after the first are evaluated on the first %d test images (teacher@%d is the teacher on them).\n",
			min(story.N, d.Test.Len()), min(story.N, d.Test.Len()))
	}
	fmt.Fprintf(stdout, "wrote %s and %s (%s)\n", filepath.Join(*out, "results.json"),
		strings.Join(dirsOf(rows), ", "), time.Since(start).Round(time.Second))
	return nil
}

func flatCaptions(p *world.Pairs) []string {
	c, _ := p.Flat()
	return c
}

func dirsOf(rows []*demoResult) []string {
	var s []string
	for _, r := range rows {
		s = append(s, r.Dir)
	}
	return s
}
