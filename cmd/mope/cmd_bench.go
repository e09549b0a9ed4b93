package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/infer"
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
	onGPU := device.GPU
	engine := new(string)
	*engine = string(cpuEngine(*eng))
	switch {
	case fl.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fl.Arg(0))
	case *model == "":
		return fmt.Errorf("%w: need --model DIR", errUsage)
	case *batch < 1 || *batch > maxBenchBatch:
		return fmt.Errorf("%w: --batch %d: want 1 to %d items per forward pass", errUsage, *batch, maxBenchBatch)
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
	if *textLen != 0 && (*textLen < 2 || *textLen > m.Config.Text.MaxPositionEmbeddings) {
		return fmt.Errorf("%w: --text-len %d outside [2, %d]", errUsage, *textLen, m.Config.Text.MaxPositionEmbeddings)
	}
	o := infer.BenchOptions{Batch: *batch, Rounds: *rounds, Warmup: *warmup, TextLen: *textLen, Towers: *towers,
		Threads: *threads, Ref: *engine == "ref",
		// The engine keeps its own packed copy of the weight matrices.
		Engine: infer.Options{Split: split, Chunk: *chunk, ReleaseWeights: true, DType: dt}}
	if !*asJSON {
		o.Report = func(name string, secs []float64, med float64) {
			fmt.Fprintf(stderr, "%s: rounds %.3f–%.3f s, median %.3f s\n", name, secs[0], secs[len(secs)-1], med)
		}
	}
	var gpuDesc string
	if onGPU {
		o.Funcs = func(pixels []float32, tb *clip.TextBatch) (image, text func() error, done func(), err error) {
			g, err := openGPUTowers(*device, m, *batch, towers.Has(clip.VisionTower), towers.Has(clip.TextTower))
			if err != nil {
				return nil, nil, nil, err
			}
			gpuDesc = device.String() + ": " + g.Desc
			var gpuErr error
			img, txt := g.benchFuncs(pixels, *batch, tb, &gpuErr)
			image = func() error { img(); return gpuErr }
			text = func() error { txt(); return gpuErr }
			return image, text, g.Close, nil
		}
	}
	res, err := infer.Bench(context.Background(), m, o)
	if err != nil {
		return err
	}
	rep := benchReport{Model: *model, Batch: res.Batch, Threads: res.Threads, TextLen: res.TextLen, Rounds: res.Rounds,
		ImagePerS: res.ImagePerS, TextPerS: res.TextPerS, ImageGFLOPs: res.ImageGFLOPs, TextGFLOPs: res.TextGFLOPs,
		ImageGFLOP: res.ImageGFLOP, TextGFLOP: res.TextGFLOP, Kernels: res.Kernels, Engine: *engine, DType: *dtype,
		Split: res.Split, GOARCH: runtime.GOARCH, Device: gpuDesc}
	vis, txt := res.VisionParams, res.TextParams
	B := rep.Batch
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
			rep.TextPerS, rep.TextGFLOPs, rep.TextGFLOP, rep.TextLen, float64(txt)/1e6)
	}
	fmt.Fprintf(stdout, "  kernels: %s\n", rep.Kernels)
	return nil
}
