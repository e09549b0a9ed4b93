package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/train"
)

func init() {
	register(&command{
		name:    "pretrain",
		summary: "contrastive CLIP training from scratch (the shapes world or an image–caption file)",
		usage: "--data shapes|FILE --preset NAME --steps N --batch B --out DIR [--resume] [flags]\n\n" +
			"  Writes DIR as a loadable model directory (config.json, model.safetensors, vocab.json,\n" +
			"  merges.txt) plus curve.csv and curve.png. Checkpoints go to DIR/checkpoint/ every\n" +
			"  --checkpoint-every steps (atomically) and on Ctrl-C; --resume continues from there\n" +
			"  bit-identically (same flags and GOMAXPROCS). The batch of step s depends only on\n" +
			"  (--seed, s).",
		run: runPretrain,
	})
}

// pretrainOptions are the flags of mope pretrain (also used by mope demo to
// train the teacher when it is missing).
type pretrainOptions struct {
	Data, Preset, Out, Init string
	Steps, Batch, Warmup    int
	LR, MinLR, WD, ClipNorm float64
	Seed                    uint64
	ValEvery, ValN          int
	CkptEvery               int
	Resume, KeepCheckpoint  bool
	TrainN, StopAt          int
	SkipBad                 bool
}

func defaultPretrain() pretrainOptions {
	return pretrainOptions{Data: "shapes", Preset: world.TeacherPreset, Steps: 1000, Batch: 64, Warmup: 50,
		LR: 1e-3, MinLR: 1e-5, WD: 0.1, ClipNorm: 1, Seed: 1, ValEvery: 100, ValN: 250, CkptEvery: 50}
}

// command returns the mope command line that reproduces o.
func (o pretrainOptions) command() string {
	d := defaultPretrain()
	parts := []string{"mope pretrain", "--data " + o.Data, "--preset " + o.Preset,
		"--steps " + strconv.Itoa(o.Steps), "--batch " + strconv.Itoa(o.Batch)}
	add := func(cond bool, s string) {
		if cond {
			parts = append(parts, s)
		}
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	add(o.Warmup != d.Warmup, "--warmup "+strconv.Itoa(o.Warmup))
	add(o.LR != d.LR, "--lr "+f(o.LR))
	add(o.MinLR != d.MinLR, "--min-lr "+f(o.MinLR))
	add(o.WD != d.WD, "--wd "+f(o.WD))
	add(o.ClipNorm != d.ClipNorm, "--clip "+f(o.ClipNorm))
	add(o.Seed != d.Seed, "--seed "+strconv.FormatUint(o.Seed, 10))
	add(o.TrainN != 0, "--train-n "+strconv.Itoa(o.TrainN))
	add(o.ValEvery != d.ValEvery, "--val-every "+strconv.Itoa(o.ValEvery))
	add(o.CkptEvery != d.CkptEvery, "--checkpoint-every "+strconv.Itoa(o.CkptEvery))
	add(o.Init != "", "--init "+o.Init)
	parts = append(parts, "--out "+o.Out)
	return strings.Join(parts, " ")
}

func runPretrain(args []string, stdout, stderr io.Writer) error {
	c := commands["pretrain"]
	fl := newFlags(c, stderr)
	o := defaultPretrain()
	data := dataFlag(fl, o.Data, "\"shapes\" (the built-in world, generated in memory) or a dataset `SPEC` (.json Karpathy, .jsonl, .csv/.tsv, webdataset tar shards, streamed; docs/data.md)")
	fl.StringVar(&o.Preset, "preset", o.Preset, "architecture `NAME` (one of "+strings.Join(clip.PresetNames(), ", ")+")")
	out := outFlag(fl, "", "output model `DIR`")
	fl.IntVar(&o.Steps, "steps", o.Steps, "optimiser steps")
	fl.IntVar(&o.Batch, "batch", o.Batch, "image–caption pairs per step (the contrastive batch)")
	fl.IntVar(&o.Warmup, "warmup", o.Warmup, "linear warm-up steps before the cosine decay")
	fl.Float64Var(&o.LR, "lr", o.LR, "peak learning rate")
	fl.Float64Var(&o.MinLR, "min-lr", o.MinLR, "final learning rate of the cosine decay")
	fl.Float64Var(&o.WD, "wd", o.WD, "AdamW weight decay (β = 0.9, 0.98, ε = 1e-6, as CLIP)")
	fl.Float64Var(&o.ClipNorm, "clip", o.ClipNorm, "global gradient-norm clip (0: off)")
	seed := seedFlag(fl, o.Seed, "seed of the initialisation and the data order")
	fl.IntVar(&o.ValEvery, "val-every", o.ValEvery, "validate every N steps (and at the end)")
	fl.IntVar(&o.ValN, "val-n", o.ValN, "validation images (their captions too); 0: no validation")
	fl.IntVar(&o.CkptEvery, "checkpoint-every", o.CkptEvery, "write a checkpoint every `N` steps (training counts steps; scoring takes a duration)")
	deprecatedFlag(fl, "ckpt-every", "checkpoint-every")
	fl.IntVar(&o.TrainN, "train-n", 0, "training images (default: the whole train split)")
	fl.StringVar(&o.Init, "init", "", "start from the weights of model `DIR` (same architecture) instead of a random initialisation")
	fl.IntVar(&o.StopAt, "stop-at", 0, "stop (with a checkpoint) before step N, to continue later with --resume")
	fl.BoolVar(&o.Resume, "resume", false, "continue from DIR/checkpoint if present")
	fl.BoolVar(&o.KeepCheckpoint, "keep-checkpoint", false, "keep DIR/checkpoint after a finished run")
	fl.BoolVar(&o.SkipBad, "skip-bad", false, "skip bad records (missing or undecodable image, no captions, truncated tar) and count them, instead of stopping at the first")
	quiet := quietFlag(fl)
	force := fl.Bool("force", false, "start over although DIR/checkpoint holds an unfinished run (it is discarded), or write DIR although it is --init")
	device := deviceFlag(fl)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	o.Data, o.Out, o.Seed = *data, *out, *seed
	if fl.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fl.Arg(0))
	}
	if o.Out == "" {
		return fmt.Errorf("%w: need --out DIR", errUsage)
	}
	if o.Steps <= 0 || o.Batch < 2 {
		return fmt.Errorf("%w: need --steps > 0 and --batch >= 2", errUsage)
	}
	if o.Batch > maxBatch {
		return fmt.Errorf("%w: --batch %d is more than %d pairs per step", errUsage, o.Batch, maxBatch)
	}
	if err := checkInts(intAtLeast{"warmup", o.Warmup, 0}, intAtLeast{"val-every", o.ValEvery, 0}, intAtLeast{"val-n", o.ValN, 0},
		intAtLeast{"checkpoint-every", o.CkptEvery, 0}, intAtLeast{"train-n", o.TrainN, 0}, intAtLeast{"stop-at", o.StopAt, 0}); err != nil {
		return err
	}
	if err := checkOptimiser(o.LR, o.MinLR, o.WD, o.ClipNorm); err != nil {
		return err
	}
	if err := refuseSameDir(o.Out, o.Init, "--init", *force); err != nil {
		return err
	}
	if err := refuseCheckpoint(o.Out, o.Resume, *force); err != nil {
		return err
	}
	_, release, err := claimTrainingOut(o.Out, *device, stderr)
	if err != nil {
		return err
	}
	defer release()
	ctx, stop := signalContext()
	defer stop()
	fresh := !exists(o.Out)
	_, err = pretrain(ctx, o, progressTo(stderr, *quiet))
	removeEmptyRun(o.Out, fresh, err)
	return reportStop(err, stderr, "pretrain", args, "--resume", filepath.Join(o.Out, "checkpoint"))
}

// pretrainData is the training and validation data of a run.
type pretrainData struct {
	Train, Val *world.Pairs
	Stream     *dataset.Dataset // tar shards, read as a stream (Train nil)
	Tok        *tokenizer.Tokenizer
}

func loadPretrainData(o pretrainOptions, pc imageproc.Config, log io.Writer) (*pretrainData, error) {
	size := pc.Size
	t0 := time.Now()
	d := &pretrainData{}
	if dataset.IsShapes(o.Data) {
		sc := shapes.DefaultConfig()
		tok, err := world.Tokenizer(sc)
		if err != nil {
			return nil, err
		}
		d.Tok = tok
		if d.Train, err = world.Split(sc, "train", o.TrainN, size); err != nil {
			return nil, err
		}
		d.Train.Images.Pre = &pc
		if o.ValN > 0 {
			if d.Val, err = world.Split(sc, "val", o.ValN, size); err != nil {
				return nil, err
			}
			d.Val.Images.Pre = &pc
		}
	} else {
		var err error
		if d.Stream, err = streamData(o.Data, o.TrainN, o.SkipBad); err != nil {
			return nil, err
		}
		var caps []string
		if d.Stream != nil {
			caps, err = firstCaptions(d.Stream, world.VocabImages)
		} else if d.Train, d.Val, err = filePairs(o.Data, o.TrainN, o.ValN, pc, o.SkipBad, log); err == nil {
			caps, _ = d.Train.Flat()
		}
		if err != nil {
			return nil, err
		}
		if d.Tok, err = world.TokenizerFrom(caps, world.VocabSize); err != nil {
			return nil, err
		}
		if d.Stream != nil {
			fmt.Fprintf(log, "data %s: streamed from %d tar shards (shuffle buffer 1000), vocabulary %d from the first %d images' captions (%s)\n",
				o.Data, len(d.Stream.Spec.Shards), d.Tok.VocabSize(), world.VocabImages, time.Since(t0).Round(time.Millisecond))
			return d, nil
		}
	}
	fmt.Fprintf(log, "data %s: %d training images, %d validation images, vocabulary %d (%s)\n",
		o.Data, d.Train.Len(), lenPairs(d.Val), d.Tok.VocabSize(), time.Since(t0).Round(time.Millisecond))
	return d, nil
}

func lenPairs(p *world.Pairs) int {
	if p == nil {
		return 0
	}
	return p.Len()
}

// noteTruncated says once how many training captions are longer than the
// model's context (they are truncated as CLIP does, end-of-text kept).
func noteTruncated(log io.Writer, tok *tokenizer.Tokenizer, p *dataset.Pairs, context int) {
	if n := world.Truncated(tok, p, context); n > 0 {
		fmt.Fprintf(log, "%d training captions are longer than the model's context of %d tokens: truncated as CLIP does (end-of-text kept)\n", n, context)
	}
}

// streamData opens spec for streaming when it is webdataset tar shards
// (too large to hold, read in order): nil for other data.
func streamData(spec string, limit int, skipBad bool) (*dataset.Dataset, error) {
	s, err := dataset.ParseSpec(spec)
	if err != nil || s.Format != dataset.WebDataset {
		return nil, nil // other formats (and errors) go through filePairs
	}
	return dataset.OpenSpec(s, dataset.Options{Limit: limit, SkipBad: skipBad})
}

// firstCaptions returns the captions of the first n records of d.
func firstCaptions(d *dataset.Dataset, n int) ([]string, error) {
	var caps []string
	seen := 0
	errEnough := errors.New("enough")
	err := d.Each(context.Background(), func(r dataset.Record) error {
		caps = append(caps, r.Captions...)
		if seen++; seen >= n {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return caps, nil
}

// filePairs reads the training pairs (split "train" where the data has
// splits, the first trainN images; 0: all) and, when valN > 0 and the data
// has a "val" split, the validation pairs, as 8-bit crops at size×size
// (dataset.LoadPairs: images are decoded and cropped one at a time, never
// held at full resolution).
func filePairs(spec string, trainN, valN int, pc imageproc.Config, skipBad bool, log io.Writer) (train, val *dataset.Pairs, err error) {
	ctx := context.Background()
	d, err := dataset.Open(spec, dataset.Options{Split: "train", Limit: trainN, SkipBad: skipBad})
	if err != nil {
		return nil, nil, err
	}
	if train, err = dataset.LoadPairsWith(ctx, d, pc); err != nil {
		return nil, nil, err
	}
	if n, first := d.Skipped(); n > 0 {
		fmt.Fprintf(log, "skipped %d bad training records (first: %s)\n", n, first[0])
	}
	if valN > 0 && d.Split() != "" {
		if v, err := dataset.Open(spec, dataset.Options{Split: "val", Limit: valN, SkipBad: skipBad}); err == nil {
			if val, err = dataset.LoadPairsWith(ctx, v, pc); err != nil {
				return nil, nil, err
			}
		}
	}
	return train, val, nil
}

// pretrain runs a whole pretraining run and writes o.Out.
func pretrain(ctx context.Context, o pretrainOptions, log io.Writer) (*train.Result, error) {
	cfg, err := clip.Preset(o.Preset)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	// The images are preprocessed as the --init model expects, if any.
	pc := imageproc.DefaultConfig(cfg.Vision.ImageSize)
	if o.Init != "" {
		if pc, err = clip.LoadPreprocess(o.Init); err != nil {
			return nil, err
		}
		if pc.Size != cfg.Vision.ImageSize {
			return nil, fmt.Errorf("--init %s has image size %d, preset %s %d", o.Init, pc.Size, o.Preset, cfg.Vision.ImageSize)
		}
	}
	data, err := loadPretrainData(o, pc, log)
	if err != nil {
		return nil, err
	}
	if data.Train != nil {
		if err := checkBatch(o.Batch, data.Train.Len()); err != nil {
			return nil, err
		}
	}
	if cfg.Text.VocabSize != data.Tok.VocabSize() || cfg.Text.EOSTokenID != data.Tok.EOT() {
		// Presets not made for the world (e.g. tiny) take its vocabulary.
		cfg.Text.VocabSize, cfg.Text.EOSTokenID, cfg.Text.BOSTokenID = data.Tok.VocabSize(), data.Tok.EOT(), data.Tok.SOT()
		cfg.Text.MaxPositionEmbeddings = world.Context
	}
	m, err := clip.New(cfg, o.Seed)
	if err != nil {
		return nil, err
	}
	m.Preprocess = &pc
	if o.Init != "" {
		src, err := openModelAs("--init", o.Init, log)
		if err != nil {
			return nil, err
		}
		if err := copyParams(m, src); err != nil {
			return nil, fmt.Errorf("--init %s: %w", o.Init, err)
		}
	}
	_, _, total := m.NumParams()
	fmt.Fprintf(log, "model %s: %.2fM parameters, %.3f GFLOPs/image, %.3f GFLOPs/text; GOMAXPROCS %d\n",
		o.Preset, float64(total)/1e6, cfg.VisionMACs().GFLOPs(), cfg.TextMACs(world.Context).GFLOPs(), runtime.GOMAXPROCS(0))
	ac := nn.AdamWConfig{Beta1: 0.9, Beta2: 0.98, Eps: 1e-6, WeightDecay: o.WD}
	opt := nn.NewAdamW(m.Params(), ac)
	var get func(s int) (*world.Batch, error)
	var stream *world.StreamSampler
	if data.Train != nil {
		sampler := &world.Sampler{Pairs: data.Train, Tok: data.Tok, Batch: o.Batch, Seed: o.Seed, Context: cfg.Text.MaxPositionEmbeddings}
		noteTruncated(log, data.Tok, data.Train, cfg.Text.MaxPositionEmbeddings)
		get = sampler.Get
	} else {
		stream = &world.StreamSampler{Data: data.Stream, Tok: data.Tok, Batch: o.Batch, Seed: o.Seed,
			Size: cfg.Vision.ImageSize, Pre: &pc, Context: cfg.Text.MaxPositionEmbeddings}
		defer stream.Close()
		get = func(s int) (*world.Batch, error) { return stream.Get(ctx, s) }
	}
	tp := ops.NewTape()
	step := func(s int) (float64, map[string]float64, error) {
		b, err := get(s)
		if err != nil {
			return 0, nil, err
		}
		loss, err := m.ContrastiveStep(tp, b.Pixels, b.Text)
		return loss, map[string]float64{"logit_scale": m.Temperature()}, err
	}
	var val train.ValFunc
	if data.Val != nil {
		val = func(int) (map[string]float64, error) {
			enc, done, err := infer.NewEncoder(m, data.Tok)
			if err != nil {
				return nil, err
			}
			defer done()
			r, err := world.Retrieval(enc, data.Val)
			if err != nil {
				return nil, err
			}
			return map[string]float64{"tr1": r.TR1, "ir1": r.IR1, "r1": (r.TR1 + r.IR1) / 2, "tr5": r.TR5, "ir5": r.IR5}, nil
		}
	}
	ckDir := filepath.Join(o.Out, "checkpoint")
	tc := train.Config{
		Steps: o.Steps, Warmup: o.Warmup, LR: o.LR, MinLR: o.MinLR, ClipNorm: o.ClipNorm, Items: o.Batch,
		Dir: ckDir, CkptEvery: o.CkptEvery, ValEvery: o.ValEvery, Resume: o.Resume, StopAt: o.StopAt, Log: log,
		Extra: map[string]string{"command": o.command(), "gomaxprocs": strconv.Itoa(runtime.GOMAXPROCS(0))},
	}
	if stream != nil {
		tc.Data = stream
	}
	res, err := train.Run(ctx, tc, m.Params(), opt, step, val)
	if stream != nil {
		if n, first := data.Stream.Skipped(); n > 0 {
			fmt.Fprintf(log, "skipped %d bad training records (first: %s)\n", n, first[0])
		}
	}
	if err != nil {
		return res, err
	}
	if err := m.SaveWith(o.Out, clip.SaveOptions{Tokenizer: data.Tok}); err != nil {
		return res, err
	}
	if err := res.Curve.Write(filepath.Join(o.Out, "curve.csv")); err != nil {
		return res, err
	}
	if err := train.PlotCurve(res.Curve, filepath.Join(o.Out, "curve.png"), o.Preset+" on "+o.Data); err != nil {
		return res, err
	}
	if !o.KeepCheckpoint {
		os.RemoveAll(ckDir)
	}
	fmt.Fprintf(log, "trained %d steps in %s (this process: %d); model written to %s\n", o.Steps,
		res.Elapsed.Round(time.Second), o.Steps-res.Start, o.Out)
	return res, nil
}

// copyParams copies src's parameter values into m (same names and shapes).
func copyParams(m, src *clip.Model) error {
	byName := map[string]*nn.Param{}
	for _, p := range src.Params() {
		byName[p.Name] = p
	}
	for _, p := range m.Params() {
		q, ok := byName[p.Name]
		if !ok || len(q.Value.Data) != len(p.Value.Data) {
			return fmt.Errorf("parameter %s missing or of another shape", p.Name)
		}
		copy(p.Value.Data, q.Value.Data)
	}
	return nil
}
