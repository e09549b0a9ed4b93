package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

func init() {
	register(&command{
		name:    "bench",
		summary: "measure image and text encoder throughput (items/s) and achieved GFLOP/s",
		usage: "--model DIR [--batch N] [--threads T] [--engine fast|ref] [--dtype f32|bf16|int8] [--json]\n\n" +
			"  Each tower encodes a batch of random inputs (texts of the full context length) in\n" +
			"  --rounds timed rounds after --warmup untimed ones; the median round is reported.\n" +
			"  GFLOP/s counts 2 FLOPs per multiply–accumulate of the config (clip.MACs).\n" +
			"  --engine fast (default) runs the packed inference engine (package infer); --engine ref\n" +
			"  the reference forward (clip.Model.EncodeImage/EncodeText), to compare in one run.\n" +
			"  --device cuda|cuda:tf32 (a binary built with -tags cuda: make mope-cuda) runs both towers\n" +
			"  resident on the GPU (package cuda's VisionEncoder/TextEncoder, weights uploaded once);\n" +
			"  each round then includes the upload of the inputs and the download of the embeddings.",
		run: runBench,
	})
}

// benchReport is the --json output.
type benchReport struct {
	Model       string  `json:"model"`
	Batch       int     `json:"batch"`
	Threads     int     `json:"threads"`
	TextLen     int     `json:"text_len"`
	Rounds      int     `json:"rounds"`
	ImagePerS   float64 `json:"image_per_s"`
	TextPerS    float64 `json:"text_per_s"`
	ImageGFLOPs float64 `json:"image_gflops"`
	TextGFLOPs  float64 `json:"text_gflops"`
	// Per-item GFLOP of each tower, from the config.
	ImageGFLOP float64 `json:"image_gflop_per_item"`
	TextGFLOP  float64 `json:"text_gflop_per_item"`
	Kernels    string  `json:"kernels"`
	Engine     string  `json:"engine"`
	DType      string  `json:"dtype"`
	Split      string  `json:"split,omitempty"`
	GOARCH     string  `json:"goarch"`
	// Device is the GPU that ran the towers with --device cuda[:tf32].
	Device string `json:"device,omitempty"`
}

func runBench(args []string, stdout, stderr io.Writer) error {
	c := commands["bench"]
	fl := newFlags(c, stderr)
	model := modelFlag(fl, "")
	batch := fl.Int("batch", 1, "items per forward pass")
	threads := threadsFlag(fl, "GOMAXPROCS while measuring")
	rounds := fl.Int("rounds", 5, "timed rounds per tower (the median is reported)")
	warmup := fl.Int("warmup", 1, "untimed rounds before timing")
	towers := towerFlag(fl, clip.BothTowers, "towers to measure: `vision|text|both`")
	textLen := fl.Int("text-len", 0, "tokens per text (0: the context length, max_position_embeddings)")
	asJSON := jsonFlag(fl)
	eng := engineFlag(fl)
	dtype := fl.String("dtype", "f32", "weight type of the fast engine: f32, bf16 (bfloat16 weights and activations, float32 sums) or int8 (int8 weights per output channel, activations per row, int32 sums)")
	splitName := fl.String("parallel", "auto", "fast engine's parallel split: `auto|gemm|items` (gemm splits each product, items the batch)")
	deprecatedFlag(fl, "split", "parallel")
	chunk := fl.Int("chunk", 0, "fast engine: most items per forward pass (0: the engine's default)")
	device := deviceFlag(fl)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	onGPU, _, err := parseDevice(*device)
	if err != nil {
		return err
	}
	engine := new(string)
	*engine = string(cpuEngine(*eng))
	switch {
	case fl.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fl.Arg(0))
	case *model == "":
		return fmt.Errorf("%w: need --model DIR", errUsage)
	case *batch < 1:
		return fmt.Errorf("%w: --batch must be at least 1", errUsage)
	case *threads < 0:
		return fmt.Errorf("%w: --threads must be 0 (GOMAXPROCS) or positive", errUsage)
	case *rounds < 1 || *warmup < 0:
		return fmt.Errorf("%w: want --rounds >= 1 and --warmup >= 0", errUsage)
	case *towers == 0:
		return fmt.Errorf("%w: --tower: want vision, text or both", errUsage)
	case *dtype != "f32" && *dtype != "bf16" && *dtype != "int8":
		return fmt.Errorf("%w: --dtype %q: want f32, bf16 or int8", errUsage, *dtype)
	case *dtype != "f32" && (*engine != "fast" || onGPU):
		return fmt.Errorf("%w: --dtype %s needs the fast CPU engine (--engine fast, --device cpu)", errUsage, *dtype)
	case *chunk < 0:
		return fmt.Errorf("%w: --chunk must not be negative", errUsage)
	}
	if onGPU {
		// Both towers run device-resident (cuda.VisionEncoder, cuda.TextEncoder).
		*engine = "cuda"
	}
	dt, err := infer.ParseDType(*dtype)
	if err != nil {
		return fmt.Errorf("%w: --dtype: %v", errUsage, err)
	}
	split, err := infer.ParseSplit(*splitName)
	if err != nil {
		return fmt.Errorf("%w: --parallel: %v", errUsage, err)
	}
	m, err := openModel(*model, stderr)
	if err != nil {
		return err
	}
	cfg := m.Config
	T := *textLen
	if T == 0 {
		T = cfg.Text.MaxPositionEmbeddings
	}
	if T < 2 || T > cfg.Text.MaxPositionEmbeddings {
		return fmt.Errorf("%w: --text-len %d outside [2, %d]", errUsage, T, cfg.Text.MaxPositionEmbeddings)
	}
	if *threads > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(*threads))
	}
	B := *batch
	rep := benchReport{Model: *model, Batch: B, Threads: runtime.GOMAXPROCS(0), TextLen: T, Rounds: *rounds, GOARCH: runtime.GOARCH,
		ImageGFLOP: cfg.VisionMACs().GFLOPs(), TextGFLOP: cfg.TextMACs(T).GFLOPs(), Engine: *engine, DType: *dtype}

	// Inputs: random pixels, and random texts SOT … EOT filling T tokens.
	rng := tensor.NewRNG(1)
	S := cfg.Vision.ImageSize
	pixels := ops.Const(tensor.New(B, 3, S, S).Normal(rng, 0, 1))
	tb := &clip.TextBatch{IDs: make([]int, B*T), B: B, T: T}
	V, eos := cfg.Text.VocabSize, cfg.Text.EOSTokenID
	for b := 0; b < B; b++ {
		row := tb.IDs[b*T : (b+1)*T]
		for j := range row {
			row[j] = rng.IntN(max(1, min(V, eos)))
		}
		row[T-1] = eos
	}
	tb.EOTPos = clip.EOTPositions(tb.IDs, B, T, eos)
	if err := m.Text.Check(tb); err != nil {
		return err
	}

	measure := func(name string, f func()) float64 {
		for range *warmup {
			f()
		}
		secs := make([]float64, *rounds)
		for i := range secs {
			t0 := time.Now()
			f()
			secs[i] = time.Since(t0).Seconds()
		}
		slices.Sort(secs)
		med := secs[len(secs)/2]
		if len(secs)%2 == 0 {
			med = (secs[len(secs)/2-1] + secs[len(secs)/2]) / 2
		}
		if !*asJSON {
			fmt.Fprintf(stderr, "%s: rounds %.3f–%.3f s, median %.3f s\n", name, secs[0], secs[len(secs)-1], med)
		}
		return float64(B) / med
	}
	vis, txt, _ := m.NumParams() // before the fast engine releases the model's matrices
	encImage := func() { m.EncodeImage(nil, pixels) }
	encText := func() { m.EncodeText(nil, tb) }
	if *engine == "fast" {
		// The engine keeps its own packed copy of the weight matrices.
		e, err := infer.New(m, infer.Options{Split: split, Chunk: *chunk, ReleaseWeights: true, DType: dt})
		if err != nil {
			return err
		}
		defer e.Close()
		e.Warm(B)
		rep.Split = e.SplitFor(B).String()
		imgOut := make([]float32, B*e.EmbedDim())
		txtOut := make([]float32, B*e.EmbedDim())
		encImage = func() { e.EncodeImages(pixels.Value.Data, B, imgOut) }
		encText = func() { e.EncodeTexts(tb.IDs, tb.EOTPos, B, T, txtOut) }
	}
	var gpuErr error
	if onGPU {
		g, err := openGPUTowers(*device, m, B, towers.Has(clip.VisionTower), towers.Has(clip.TextTower))
		if err != nil {
			return err
		}
		defer g.Close()
		rep.Device = *device + ": " + g.Desc
		encImage, encText = g.benchFuncs(pixels.Value.Data, B, tb, &gpuErr)
	}
	if towers.Has(clip.VisionTower) {
		rep.ImagePerS = measure("image", encImage)
		rep.ImageGFLOPs = rep.ImagePerS * rep.ImageGFLOP
	}
	if towers.Has(clip.TextTower) {
		rep.TextPerS = measure("text", encText)
		rep.TextGFLOPs = rep.TextPerS * rep.TextGFLOP
	}
	if gpuErr != nil {
		return gpuErr
	}
	rep.Kernels = tensor.KernelReport()

	if *asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	engineDesc := "reference forward"
	if *engine == "fast" {
		engineDesc = "fast engine, " + *dtype + ", split " + rep.Split
	}
	if onGPU {
		engineDesc = "GPU-resident towers on " + rep.Device + ", host-device copies included"
	}
	fmt.Fprintf(stdout, "%s: batch %d, %d threads (GOMAXPROCS), %s, %s, median of %d rounds after %d warm-up\n",
		*model, B, rep.Threads, runtime.GOARCH, engineDesc, *rounds, *warmup)
	if towers.Has(clip.VisionTower) {
		fmt.Fprintf(stdout, "  image encoder: %8.2f images/s  %7.1f GFLOP/s  (%.3g GFLOP/image, %.1fM params)\n",
			rep.ImagePerS, rep.ImageGFLOPs, rep.ImageGFLOP, float64(vis)/1e6)
	}
	if towers.Has(clip.TextTower) {
		fmt.Fprintf(stdout, "  text encoder:  %8.2f texts/s   %7.1f GFLOP/s  (%.3g GFLOP/text of %d tokens, %.1fM params)\n",
			rep.TextPerS, rep.TextGFLOPs, rep.TextGFLOP, T, float64(txt)/1e6)
	}
	fmt.Fprintf(stdout, "  kernels: %s\n", rep.Kernels)
	return nil
}
