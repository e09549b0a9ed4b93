package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/mope"
)

func init() {
	register(&command{
		name:    "pipeline",
		summary: "MoPE-CLIP end to end: score, prune width then depth to a FLOPs target, distil (resumable)",
		usage: "--stage finetune|pretrain --teacher DIR --data FILE|shapes --target-flops R --out DIR [flags]\n\n" +
			"  finetune: one tower (--tower): MoPE width pruning → distil → MoPE layer rescoring → depth\n" +
			"            pruning → distil (the --steps budget split in half);\n" +
			"  pretrain: both towers: width → layer rescoring → depth, then distil from the unpruned teacher.\n" +
			"  --order depth-width|width compares other orders at the same FLOPs. Every step's model,\n" +
			"  scores and metrics stay in DIR/NN-step/ (step.json); a re-run skips finished steps and\n" +
			"  resumes an interrupted distillation. DIR/final is the result, DIR/pipeline.json the record.",
		run: runPipeline,
	})
}

// pipelineFlags are mope pipeline's options.
type pipelineFlags struct {
	Stage            mope.Stage
	Tower            *clip.TowerSet
	Order            mope.Order
	Metric           mope.Metric
	Teacher, Out     string
	Target, MinWidth float64
	CalibN, Groups   int
	CalibSplit       string
	Seed             uint64
	D                distillFlags
	// GPU is the opened --device scoring runs on (zero on the CPU).
	GPU mope.GPU
}

func runPipeline(args []string, stdout, stderr io.Writer) error {
	c := commands["pipeline"]
	fl := newFlags(c, stderr)
	var pf pipelineFlags
	pf.D.register(fl)
	pf.Stage, pf.Order, pf.Metric = mope.StagePretrain, mope.OrderWidthDepth, mope.MetricMoPE
	fl.Var(&pf.Stage, "stage", "`finetune|pretrain`")
	pf.Tower = towerFlag(fl, clip.VisionOnly, "tower pruned by the finetune stage (`vision|text`; pretrain prunes both)")
	fl.Var(&pf.Order, "order", "`width-depth|depth-width|width`")
	fl.Var(&pf.Metric, "metric", "importance metric: `mope|magnitude|taylor|random|unimodal`")
	fl.StringVar(&pf.Teacher, "teacher", "", "unpruned teacher model `DIR`")
	fl.StringVar(&pf.Out, "out", "", "output `DIR` (steps, final model, pipeline.json)")
	fl.Float64Var(&pf.Target, "target-flops", 0.5, "fraction `R` of the pruned towers' FLOPs to keep (0.5: 2×, 0.25: 4×)")
	fl.Float64Var(&pf.MinWidth, "min-width", 0.5, "smallest width ratio before layers are dropped")
	fl.IntVar(&pf.CalibN, "calib-n", 250, "calibration images (their captions too) for MoPE scoring")
	fl.StringVar(&pf.CalibSplit, "calib-split", "val", "dataset split of the calibration pairs (files; shapes uses its calib split)")
	fl.IntVar(&pf.Groups, "groups", mope.DefaultGroups, "FFN neuron groups per layer")
	asJSON := jsonFlag(fl)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if err := noArgs(fl); err != nil {
		return err
	}
	if err := requireFlags(fl, "teacher", "out"); err != nil {
		return err
	}
	pf.D.parsed()
	pf.Seed = pf.D.Opt.Seed // one --seed: the data order and the random metric
	if err := pf.D.check(0); err != nil {
		return err
	}
	if err := checkInts(intAtLeast{"calib-n", pf.CalibN, 0}, intAtLeast{"groups", pf.Groups, 0}); err != nil {
		return err
	}
	if err := checkFloats(floatFlag{"target-flops", pf.Target, ratio}, floatFlag{"min-width", pf.MinWidth, ratio}); err != nil {
		return err
	}
	if pf.Stage == mope.StageFinetune && (*pf.Tower == clip.BothTowers || *pf.Tower == 0) {
		return fmt.Errorf("%w: --stage finetune prunes one tower: --tower vision or --tower text", errUsage)
	}
	sess, release, err := claimOut(pf.Out, *pf.D.Device, stderr)
	if err != nil {
		return err
	}
	defer release()
	if err := refuseSource(pf.Out, pf.Teacher, "--teacher", ""); err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	log := progressTo(stderr, *pf.D.Quiet)
	pf.GPU = sess.gpu()
	m, res, err := pipelineDirs(ctx, pf, log, log)
	if err != nil {
		return reportStop(err, stderr, "pipeline", args, "", pf.Out+" (finished steps are kept; the same command skips them)")
	}
	final := filepath.Join(pf.Out, "final")
	if *asJSON {
		return writeJSON(stdout, pipelineReport{Model: final, Teacher: pf.Teacher, Data: pf.D.Data, Seed: pf.Seed,
			Steps: pf.D.Opt.Steps, PipelineResult: res, Params: params(m)})
	}
	fmt.Fprintf(stdout, "%s: %s %s %s, width %.2f depth %.2f, %d parameters\n", final, res.Stage, res.Order, res.Metric,
		res.Width, res.Depth, params(m))
	return nil
}

// pipelineReport is pipeline --json: the final model, the settings and the
// steps' records (pipeline.json).
type pipelineReport struct {
	Model   string `json:"model"`
	Teacher string `json:"teacher"`
	Data    string `json:"data"`
	Seed    uint64 `json:"seed"`
	Steps   int    `json:"distill_steps"`
	Params  int    `json:"params"`
	*mope.PipelineResult
}

// params is a model's parameter count.
func params(m *clip.Model) int {
	_, _, n := m.NumParams()
	return n
}

// pipelineDirs loads the teacher, data and calibration set and runs the pipeline.
func pipelineDirs(ctx context.Context, pf pipelineFlags, log, progress io.Writer) (*clip.Model, *mope.PipelineResult, error) {
	teacher, err := openModelAs("--teacher", pf.Teacher, log)
	if err != nil {
		return nil, nil, err
	}
	var towers clip.TowerSet
	switch pf.Stage {
	case mope.StageFinetune:
		if *pf.Tower != clip.VisionOnly && *pf.Tower != clip.TextOnly {
			return nil, nil, fmt.Errorf("%w: --tower must be vision or text", errUsage)
		}
		towers = *pf.Tower
	case mope.StagePretrain:
	default:
		return nil, nil, fmt.Errorf("%w: --stage must be finetune or pretrain", errUsage)
	}
	data, err := loadDistillData(pf.D.Data, pf.D.TrainN, pf.D.ValN, pf.D.SkipBad, pf.Teacher, teacher.ImageConfig(), log)
	if err != nil {
		return nil, nil, err
	}
	var cal *mope.Calib
	if pf.Metric.NeedsData() {
		t := time.Now()
		split := pf.CalibSplit
		if dataset.IsShapes(pf.D.Data) {
			split = ""
		}
		if cal, err = mope.LoadCalib(teacher, pf.D.Data, split, pf.CalibN, data.Tok); err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(log, "calibration: %d images, %d captions (%s)\n", cal.NImg, cal.NTxt, time.Since(t).Round(time.Millisecond))
	}
	o := mope.PipelineOptions{Stage: pf.Stage, Towers: towers, Order: pf.Order, Metric: pf.Metric, TargetFLOPs: pf.Target,
		MinWidth: pf.MinWidth, Groups: pf.Groups, Seed: pf.Seed, Calib: cal, CalibData: pf.D.Data, CalibLimit: pf.CalibN,
		Distill: pf.D.Opt, Data: data, TeacherDir: pf.Teacher, Dir: pf.Out, Log: log, Progress: progress, GPU: pf.GPU}
	m, res, err := mope.Pipeline(ctx, teacher, o)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(log, "pipeline done in %s: %s; final model in %s\n", time.Duration(res.Seconds*float64(time.Second)).Round(time.Second),
		describeFinal(m, teacher), filepath.Join(pf.Out, "final"))
	return m, res, nil
}

func describeFinal(m, teacher *clip.Model) string {
	_, _, n := m.NumParams()
	_, _, tn := teacher.NumParams()
	return fmt.Sprintf("%.2fM params (teacher %.2fM), %.3f GFLOPs/image (teacher %.3f), %.3f GFLOPs/text (teacher %.3f)",
		float64(n)/1e6, float64(tn)/1e6, m.Config.VisionMACs().GFLOPs(), teacher.Config.VisionMACs().GFLOPs(),
		m.Config.TextMACs(0).GFLOPs(), teacher.Config.TextMACs(0).GFLOPs())
}
