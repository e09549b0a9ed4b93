package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
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
	Opt          mope.DistillOptions
	Device       *string // --device

	DataPtr *string // --data, copied to Data by parsed
	SeedPtr *uint64 // --seed, copied to Opt.Seed by parsed
}

func (d *distillFlags) register(fl *flag.FlagSet) {
	o := mope.DefaultDistillOptions()
	d.Opt = o
	d.Data = "shapes"
	d.TrainN, d.ValN = 4000, 250
	d.DataPtr = dataFlag(fl, d.Data, "\"shapes\" (built-in world) or a dataset `FILE` (Karpathy .json, .jsonl, .csv; train/val splits)")
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
}

// parsed copies the values of flags registered through helpers into d.
func (d *distillFlags) parsed() {
	d.Data, d.Opt.Seed = *d.DataPtr, *d.SeedPtr
}

// loadDistillData loads training and validation pairs at the model's image
// size; the tokenizer is the teacher's (from its directory).
func loadDistillData(data string, trainN, valN int, teacherDir string, pc imageproc.Config, log io.Writer) (mope.DistillData, error) {
	size := pc.Size
	t0 := time.Now()
	var d mope.DistillData
	tok, err := clip.LoadTokenizer(teacherDir)
	if err != nil {
		return d, err
	}
	d.Tok = tok
	if strings.EqualFold(data, "shapes") {
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
	} else {
		r, err := dataset.Load(data, "train", trainN)
		if err != nil {
			return d, err
		}
		if d.Train, err = filePairs(r, pc); err != nil {
			return d, err
		}
		if valN > 0 {
			if v, err := dataset.Load(data, "val", valN); err == nil {
				if d.Val, err = filePairs(v, pc); err != nil {
					return d, err
				}
			}
		}
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
	release, err := useDevice(*df.Device, stderr)
	if err != nil {
		return err
	}
	defer release()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	df.Opt.Context = ctx
	df.Opt.Resume = resume
	_, err = distillDirs(teacherDir, studentDir, out, df, keep, stderr)
	if errors.Is(err, train.ErrInterrupted) {
		fmt.Fprintf(stderr, "resume with the same command and --resume\n")
	}
	return err
}

// distillResult is DIR/metrics.json of a distillation.
type distillResult struct {
	Teacher  string             `json:"teacher"`
	Student  string             `json:"student"`
	Settings string             `json:"settings"`
	Steps    int                `json:"steps"`
	Seconds  float64            `json:"seconds"`
	Loss     float64            `json:"final_loss"`
	Val      map[string]float64 `json:"val,omitempty"`
}

// distillDirs loads teacher and student, distils, and writes out.
func distillDirs(teacherDir, studentDir, out string, df distillFlags, keep bool, log io.Writer) (*train.Result, error) {
	teacher, err := openModel(teacherDir, log)
	if err != nil {
		return nil, err
	}
	student, err := openModel(studentDir, log)
	if err != nil {
		return nil, err
	}
	data, err := loadDistillData(df.Data, df.TrainN, df.ValN, teacherDir, teacher.ImageConfig(), log)
	if err != nil {
		return nil, err
	}
	o := df.Opt
	o.Dir = filepath.Join(out, "checkpoint")
	o.Log = log
	o.Extra = map[string]string{"data": df.Data, "train_n": strconv.Itoa(df.TrainN)}
	_, _, tn := teacher.NumParams()
	_, _, sn := student.NumParams()
	fmt.Fprintf(log, "distilling %s (%.2fM params, %.3f GFLOPs/image) from %s (%.2fM, %.3f): %s\n", studentDir, float64(sn)/1e6,
		student.Config.VisionMACs().GFLOPs(), teacherDir, float64(tn)/1e6, teacher.Config.VisionMACs().GFLOPs(), o.Signature())
	res, err := mope.Distill(student, teacher, data, o)
	if err != nil {
		return res, err
	}
	if err := student.SaveWith(out, clip.SaveOptions{From: teacherDir}); err != nil {
		return res, err
	}
	if err := res.Curve.Write(filepath.Join(out, "curve.csv")); err != nil {
		return res, err
	}
	if err := train.PlotCurve(res.Curve, filepath.Join(out, "curve.png"), "distillation"); err != nil {
		return res, err
	}
	mr := distillResult{Teacher: teacherDir, Student: studentDir, Settings: o.Signature(), Steps: o.Steps,
		Seconds: res.Elapsed.Seconds(), Loss: res.Loss, Val: res.Val}
	b, _ := json.MarshalIndent(mr, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(out, "metrics.json"), append(b, '\n')); err != nil {
		return res, err
	}
	if !keep {
		os.RemoveAll(o.Dir)
	}
	fmt.Fprintf(log, "distilled %d steps in %s (this process: %d); student written to %s\n", o.Steps,
		res.Elapsed.Round(time.Second), o.Steps-res.Start, out)
	return res, nil
}
