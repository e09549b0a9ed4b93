package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/cuda"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/internal/atomicfile"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/mope"
	"github.com/mopeclip/mopeclip/train"
)

func init() {
	register(&command{
		name:    "distill",
		summary: "distil a pruned CLIP student from its unpruned teacher (MoPE-CLIP's loss)",
		usage: "--teacher DIR --student DIR --data FILE|shapes --out DIR [--steps N] [--resume] [flags]\n\n" +
			"  Loss a·ITC + b·KD + c·feature MSE + d·hidden-state MSE (--itc --kd --feat --hidden, KD\n" +
			"  temperature --temp; see package mope). Writes the distilled student to DIR (loadable\n" +
			"  model directory with the teacher's tokenizer) with curve.csv, curve.png and\n" +
			"  metrics.json. Checkpoints go to DIR/checkpoint every --checkpoint-every steps and on Ctrl-C;\n" +
			"  --resume continues bit-identically. The batch of step s depends only on (--seed, s).",
		run: runDistill,
	})
}

// distillFlags are the flags shared by mope distill and mope pipeline.
type distillFlags struct {
	Data         string
	TrainN, ValN int
	SkipBad      bool
	Opt          mope.DistillOptions
	Device       *cuda.Device // --device
	Quiet        *bool        // --quiet

	DataPtr *string // --data, copied to Data by parsed
	SeedPtr *uint64 // --seed, copied to Opt.Seed by parsed
}

func (d *distillFlags) register(fl *flag.FlagSet) {
	o := mope.DefaultDistillOptions()
	d.Opt = o
	d.Data = "shapes"
	d.TrainN, d.ValN = 4000, 250
	d.DataPtr = dataFlag(fl, d.Data, "\"shapes\" (built-in world) or a dataset `SPEC` (Karpathy .json, .jsonl, .csv/.tsv with train/val splits; webdataset tar shards, streamed; docs/data.md)")
	fl.BoolVar(&d.SkipBad, "skip-bad", false, "skip bad records (missing or undecodable image, no captions, truncated tar) and count them, instead of stopping at the first")
	fl.IntVar(&d.TrainN, "train-n", d.TrainN, "training images (0: the whole train split)")
	fl.IntVar(&d.ValN, "val-n", d.ValN, "validation images (0: no validation)")
	fl.IntVar(&d.Opt.Steps, "steps", o.Steps, "distillation steps")
	fl.IntVar(&d.Opt.Batch, "batch", o.Batch, "image–caption pairs per step")
	fl.IntVar(&d.Opt.Warmup, "warmup", o.Warmup, "linear warm-up steps")
	fl.Float64Var(&d.Opt.LR, "lr", o.LR, "peak learning rate (cosine decay)")
	fl.Float64Var(&d.Opt.MinLR, "min-lr", o.MinLR, "final learning rate")
	fl.Float64Var(&d.Opt.WD, "wd", o.WD, "AdamW weight decay")
	fl.Float64Var(&d.Opt.ClipNorm, "clip", o.ClipNorm, "global gradient-norm clip (0: off)")
	d.SeedPtr = seedFlag(fl, o.Seed, "seed of the data order")
	fl.IntVar(&d.Opt.ValEvery, "val-every", o.ValEvery, "validate every N steps (and at the end)")
	fl.IntVar(&d.Opt.CkptEvery, "checkpoint-every", o.CkptEvery, "write a checkpoint every `N` steps (training counts steps; scoring takes a duration)")
	deprecatedFlag(fl, "ckpt-every", "checkpoint-every")
	fl.Float64Var(&d.Opt.Weights.ITC, "itc", o.Weights.ITC, "weight a of the student's InfoNCE (ITC)")
	fl.Float64Var(&d.Opt.Weights.KD, "kd", o.Weights.KD, "weight b of cross-modal KD (soft CE of similarity distributions, both directions)")
	fl.Float64Var(&d.Opt.Weights.Feat, "feat", o.Weights.Feat, "weight c of the feature MSE on projected embeddings (relative to the teacher's mean square)")
	fl.Float64Var(&d.Opt.Weights.Hidden, "hidden", o.Weights.Hidden, "weight d of the hidden-state MSE (each kept layer vs the teacher layer it came from)")
	fl.Float64Var(&d.Opt.Weights.Temp, "temp", o.Weights.Temp, "KD temperature τ (the term is multiplied by τ²)")
	d.Device = deviceFlag(fl)
	d.Quiet = quietFlag(fl)
}

// check bounds the numeric flags (usage errors naming the flag); minSteps
// is 1 for distill, 0 for pipeline (0: no distillation).
func (d *distillFlags) check(minSteps int) error {
	o := &d.Opt
	if err := checkInts(intAtLeast{"steps", o.Steps, minSteps}, intAtLeast{"batch", o.Batch, 2}, intAtLeast{"warmup", o.Warmup, 0},
		intAtLeast{"train-n", d.TrainN, 0}, intAtLeast{"val-n", d.ValN, 0}, intAtLeast{"val-every", o.ValEvery, 0},
		intAtLeast{"checkpoint-every", o.CkptEvery, 0}); err != nil {
		return err
	}
	if o.Batch > maxBatch {
		return fmt.Errorf("%w: --batch %d is more than %d pairs per step", errUsage, o.Batch, maxBatch)
	}
	if err := checkOptimiser(o.LR, o.MinLR, o.WD, o.ClipNorm); err != nil {
		return err
	}
	w := o.Weights
	return checkFloats(floatFlag{"itc", w.ITC, nonNegative}, floatFlag{"kd", w.KD, nonNegative}, floatFlag{"feat", w.Feat, nonNegative},
		floatFlag{"hidden", w.Hidden, nonNegative}, floatFlag{"temp", w.Temp, positive})
}

// parsed copies the values of flags registered through helpers into d.
func (d *distillFlags) parsed() {
	d.Data, d.Opt.Seed = *d.DataPtr, *d.SeedPtr
}

// loadDistillData loads training and validation pairs at the model's image
// size; the tokenizer is the teacher's (from its directory).
func loadDistillData(data string, trainN, valN int, skipBad bool, teacherDir string, pc imageproc.Config, log io.Writer) (mope.DistillData, error) {
	size := pc.Size
	t0 := time.Now()
	var d mope.DistillData
	tok, err := clip.LoadTokenizer(teacherDir)
	if err != nil {
		return d, err
	}
	d.Tok = tok
	if dataset.IsShapes(data) {
		sc := shapes.DefaultConfig()
		if d.Train, err = world.Split(sc, "train", trainN, size); err != nil {
			return d, err
		}
		d.Train.Images.Pre = &pc
		if valN > 0 {
			if d.Val, err = world.Split(sc, "val", valN, size); err != nil {
				return d, err
			}
			d.Val.Images.Pre = &pc
		}
	} else if d.Stream, err = streamData(data, trainN, skipBad); err != nil {
		return d, err
	} else if d.Stream != nil {
		d.StreamPre = &pc
		fmt.Fprintf(log, "data %s: streamed from %d tar shards (shuffle buffer 1000)\n", data, len(d.Stream.Spec.Shards))
		return d, nil
	} else if d.Train, d.Val, err = filePairs(data, trainN, valN, pc, skipBad, log); err != nil {
		return d, err
	}
	fmt.Fprintf(log, "data %s: %d training images, %d validation images (%s)\n", data, d.Train.Len(), lenPairs(d.Val),
		time.Since(t0).Round(time.Millisecond))
	return d, nil
}

func runDistill(args []string, stdout, stderr io.Writer) error {
	c := commands["distill"]
	fl := newFlags(c, stderr)
	var df distillFlags
	df.register(fl)
	var teacherDir, studentDir, out string
	var resume, keep bool
	fl.StringVar(&teacherDir, "teacher", "", "unpruned teacher model `DIR`")
	fl.StringVar(&studentDir, "student", "", "pruned student model `DIR` (e.g. from mope prune)")
	fl.StringVar(&out, "out", "", "output model `DIR`")
	fl.BoolVar(&resume, "resume", false, "continue from DIR/checkpoint if present")
	fl.BoolVar(&keep, "keep-checkpoint", false, "keep DIR/checkpoint after a finished run")
	force := fl.Bool("force", false, "write --out although it is the teacher or the student, or holds an unfinished run's checkpoint")
	asJSON := jsonFlag(fl)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if err := noArgs(fl); err != nil {
		return err
	}
	if err := requireFlags(fl, "teacher", "student", "out"); err != nil {
		return err
	}
	df.parsed()
	if err := df.check(1); err != nil {
		return err
	}
	for _, src := range []struct{ flag, dir string }{{"--teacher", teacherDir}, {"--student", studentDir}} {
		if err := refuseSameDir(out, src.dir, src.flag, *force); err != nil {
			return err
		}
	}
	if err := refuseCheckpoint(out, resume, *force); err != nil {
		return err
	}
	_, release, err := claimTrainingOut(out, *df.Device, stderr)
	if err != nil {
		return err
	}
	defer release()
	ctx, stop := signalContext()
	defer stop()
	df.Opt.Resume = resume
	fresh := !exists(out)
	mr, err := distillDirs(ctx, teacherDir, studentDir, out, df, keep, progressTo(stderr, *df.Quiet))
	if err != nil {
		removeEmptyRun(out, fresh, err)
		return reportStop(err, stderr, "distill", args, "--resume", filepath.Join(out, "checkpoint"))
	}
	if *asJSON {
		return writeJSON(stdout, mr)
	}
	fmt.Fprintf(stdout, "%s: distilled %d steps, final loss %.4f%s\n", out, mr.Steps, mr.Loss, fmtRecall(mr.Val))
	return nil
}

// distillResult is DIR/metrics.json of a distillation (and distill --json).
type distillResult struct {
	Model    string       `json:"model"` // the distilled student (--out)
	Teacher  string       `json:"teacher"`
	Student  string       `json:"student"`
	Settings string       `json:"settings"`
	Steps    int          `json:"steps"`
	Seconds  float64      `json:"seconds"`
	Loss     float64      `json:"final_loss"`
	Val      *mope.Recall `json:"val,omitempty"` // last validation
}

// distillDirs loads teacher and student, distils, and writes out.
func distillDirs(ctx context.Context, teacherDir, studentDir, out string, df distillFlags, keep bool, log io.Writer) (*distillResult, error) {
	teacher, err := openModelAs("--teacher", teacherDir, log)
	if err != nil {
		return nil, err
	}
	student, err := openModelAs("--student", studentDir, log)
	if err != nil {
		return nil, err
	}
	data, err := loadDistillData(df.Data, df.TrainN, df.ValN, df.SkipBad, teacherDir, teacher.ImageConfig(), log)
	if err != nil {
		return nil, err
	}
	if data.Train != nil {
		noteTruncated(log, data.Tok, data.Train, teacher.Config.Text.MaxPositionEmbeddings)
	}
	o := df.Opt
	o.Dir = filepath.Join(out, "checkpoint")
	o.Log = log
	o.Extra = map[string]string{"data": df.Data, "train_n": strconv.Itoa(df.TrainN)}
	_, _, tn := teacher.NumParams()
	_, _, sn := student.NumParams()
	fmt.Fprintf(log, "distilling %s (%.2fM params, %.3f GFLOPs/image) from %s (%.2fM, %.3f): %s\n", studentDir, float64(sn)/1e6,
		student.Config.VisionMACs().GFLOPs(), teacherDir, float64(tn)/1e6, teacher.Config.VisionMACs().GFLOPs(), o.Signature())
	res, err := mope.Distill(ctx, student, teacher, data, o)
	if err != nil {
		return nil, err
	}
	if err := student.SaveWith(out, clip.SaveOptions{From: teacherDir, Tokenizer: data.Tok}); err != nil {
		return nil, err
	}
	if err := res.Curve.Write(filepath.Join(out, "curve.csv")); err != nil {
		return nil, err
	}
	if err := train.PlotCurve(res.Curve, filepath.Join(out, "curve.png"), "distillation"); err != nil {
		return nil, err
	}
	mr := &distillResult{Model: out, Teacher: teacherDir, Student: studentDir, Settings: o.Signature(), Steps: o.Steps,
		Seconds: res.Elapsed.Seconds(), Loss: res.Loss}
	mr.Val, _ = mope.RecallFromScalars(res.Val)
	b, err := json.MarshalIndent(mr, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("%s: metrics.json: %w", out, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(out, "metrics.json"), append(b, '\n')); err != nil {
		return nil, err
	}
	if !keep {
		os.RemoveAll(o.Dir)
	}
	fmt.Fprintf(log, "distilled %d steps in %s (this process: %d); student written to %s\n", o.Steps,
		res.Elapsed.Round(time.Second), o.Steps-res.Start, out)
	return mr, nil
}

// fmtRecall is ", val mean R@1 …" or "" without a validation.
func fmtRecall(r *mope.Recall) string {
	if r == nil {
		return ""
	}
	return ", validation " + r.String()
}
