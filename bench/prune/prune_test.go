package prune

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/internal/cputime"
	"github.com/mopeclip/mopeclip/mope"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

const (
	width   = 768
	heads   = 12
	headDim = 64
	mlp     = 3072
)

// blockModels returns a model with a 1-layer ViT-B/32-width vision tower
// (image size imageSize; 0 keeps ViT-B/32's), the same model with half its
// heads and FFN neurons removed by edit (mope.Apply), and by mask
// (mope.Mask).
func blockModels(b *testing.B, imageSize int) (dense, edited, masked *clip.Model) {
	cfg, _ := clip.Preset("ViT-B/32")
	cfg.Vision.NumHiddenLayers = 1
	cfg.Text.NumHiddenLayers = 1
	if imageSize > 0 {
		cfg.Vision.ImageSize = imageSize
	}
	dense, err := clip.New(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	if edited, err = mope.Apply(dense, halfPlan()); err != nil {
		b.Fatal(err)
	}
	if masked, err = mope.Mask(dense, halfPlan()); err != nil {
		b.Fatal(err)
	}
	return dense, edited, masked
}

func halfPlan() *mope.Plan {
	hs := []int{}
	for h := 0; h < heads; h += 2 {
		hs = append(hs, h)
	}
	ns := []int{}
	for i := 0; i < mlp; i += 2 {
		ns = append(ns, i)
	}
	return &mope.Plan{Vision: &mope.TowerPlan{Heads: [][]int{hs}, Neurons: [][]int{ns}}}
}

func batchFor(T int) int {
	if T >= 400 {
		return 2
	}
	return 16
}

// BenchmarkBlock compares dense, edited and masked blocks.
func BenchmarkBlock(b *testing.B) {
	m, ed, mk := blockModels(b, 0)
	for _, T := range []int{50, 400} {
		B := batchFor(T)
		x := tensor.New(B*T, width)
		x.Normal(tensor.NewRNG(2), 0, 1)
		for _, v := range []struct {
			name string
			blk  *nn.Block
			h, i int
		}{
			{"dense", m.Vision.Encoder.Layers[0], heads, mlp},
			{"edit-half", ed.Vision.Encoder.Layers[0], heads / 2, mlp / 2},
			{"mask-half", mk.Vision.Encoder.Layers[0], heads / 2, mlp / 2},
		} {
			b.Run(fmt.Sprintf("T=%d/%s", T, v.name), func(b *testing.B) {
				flops := 2 * float64(clip.LayerMACs(T, width, v.h, headDim, v.i)) * float64(B)
				v.blk.Forward(nil, ops.Const(x), B, T, nn.AttnMask{}) // warm up
				b.ResetTimer()
				cpu0 := cputime.Process().Seconds()
				for n := 0; n < b.N; n++ {
					v.blk.Forward(nil, ops.Const(x), B, T, nn.AttnMask{})
				}
				reportCPU(b, flops, cpu0)
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				b.ReportMetric(float64(B), "items/op")
			})
		}
	}
}

// BenchmarkBlockFast runs the same three blocks on the fast inference
// engine (package infer: packed weights, fused q/k/v and epilogues, kept
// heads only; the masked block still computes its zeroed FFN neurons), one
// thread, as infer.Engine.RunLayers over a residual stream of B·T rows. The
// model's image size is raised to 640 (401 tokens) so that T=400 fits its
// position table.
func BenchmarkBlockFast(b *testing.B) {
	m, ed, mk := blockModels(b, 640)
	for _, T := range []int{50, 400} {
		B := batchFor(T)
		x := tensor.New(B*T, width)
		x.Normal(tensor.NewRNG(2), 0, 1)
		dst := make([]float32, len(x.Data))
		for _, v := range []struct {
			name  string
			model *clip.Model
			h, i  int
		}{
			{"dense", m, heads, mlp},
			{"edit-half", ed, heads / 2, mlp / 2},
			{"mask-half", mk, heads / 2, mlp / 2},
		} {
			b.Run(fmt.Sprintf("T=%d/%s", T, v.name), func(b *testing.B) {
				e, err := infer.New(v.model, infer.Options{Threads: 1})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				ls, err := e.Layers(infer.TowerVision)
				if err != nil {
					b.Fatal(err)
				}
				flops := 2 * float64(clip.LayerMACs(T, width, v.h, headDim, v.i)) * float64(B)
				if err := e.RunLayers(infer.TowerVision, x.Data, B, T, ls, dst); err != nil { // warm up
					b.Fatal(err)
				}
				b.ResetTimer()
				cpu0 := cputime.Process().Seconds()
				for n := 0; n < b.N; n++ {
					e.RunLayers(infer.TowerVision, x.Data, B, T, ls, dst)
				}
				reportCPU(b, flops, cpu0)
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				b.ReportMetric(float64(B), "items/op")
			})
		}
	}
}

// reportCPU reports the process's CPU time per op and the GFLOP/s over it
// (steadier than the wall clock on a shared machine; run with -cpu 1).
func reportCPU(b *testing.B, flops, cpu0 float64) {
	if c := cputime.Process().Seconds() - cpu0; c > 0 {
		b.ReportMetric(c/float64(b.N)*1e9, "cpu-ns/op")
		b.ReportMetric(flops*float64(b.N)/c/1e9, "cpuGFLOP/s")
	}
}

// scoringSetup returns a random ViT-B/32 (vision layers as in the preset,
// text tower shortened: it is encoded once) and a calibration set of n
// shapes images.
func scoringSetup(b testing.TB, n int) (*clip.Model, *mope.Calib) {
	cfg, _ := clip.Preset("ViT-B/32")
	if l := os.Getenv("MOPE_BENCH_LAYERS"); l != "" {
		cfg.Vision.NumHiddenLayers, _ = strconv.Atoi(l)
	}
	m, err := clip.New(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	vocab := os.Getenv("MOPECLIP_VOCAB")
	if vocab == "" {
		vocab = "/work/shared/clip/bpe_simple_vocab_16e6.txt.gz"
	}
	tok, err := mope.LoadTokenizer("", vocab)
	if err != nil {
		b.Skipf("no OpenAI vocabulary (set MOPECLIP_VOCAB): %v", err)
	}
	cal, err := mope.LoadCalib(m, "shapes", "", n, tok)
	if err != nil {
		b.Fatal(err)
	}
	return m, cal
}

func benchImages() int {
	if s := os.Getenv("MOPE_BENCH_IMAGES"); s != "" {
		n, _ := strconv.Atoi(s)
		return n
	}
	return 16
}

// BenchmarkScoreLayers scores every vision layer of ViT-B/32 with MoPE:
// "prefix-ref" and "prefix-fast" are mope.Score (prefix cache) with each
// engine, "naive" removes the layer with mope.Apply and re-encodes every
// image from the pixels with the reference forward (so prefix-ref/naive is
// the prefix cache's own speed-up). One op = all 12 layers; evals/s and CPU
// seconds per evaluation are reported.
func BenchmarkScoreLayers(b *testing.B) {
	m, cal := scoringSetup(b, benchImages())
	L := m.Config.Vision.NumHiddenLayers
	for _, eng := range []mope.Engine{mope.EngineRef, mope.EngineFast} {
		b.Run("prefix-"+string(eng), func(b *testing.B) {
			cpu0 := cputime.Process().Seconds()
			for n := 0; n < b.N; n++ {
				if _, err := mope.Score(m, cal, mope.Options{Metric: "mope", Towers: clip.VisionOnly, Kinds: []string{mope.KindLayer}, Engine: eng}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(L*b.N)/b.Elapsed().Seconds(), "evals/s")
			b.ReportMetric((cputime.Process().Seconds()-cpu0)/float64(L*b.N), "cpu-s/eval")
		})
	}
	b.Run("naive", func(b *testing.B) {
		cpu0 := cputime.Process().Seconds()
		defer func() { b.ReportMetric((cputime.Process().Seconds()-cpu0)/float64(L*b.N), "cpu-s/eval") }()
		px := tensor.New(cal.NImg, 3, cal.Size, cal.Size)
		cal.PixelsInto(px.Data, 0, cal.NImg)
		for n := 0; n < b.N; n++ {
			for l := 0; l < L; l++ {
				var keep []int
				for k := 0; k < L; k++ {
					if k != l {
						keep = append(keep, k)
					}
				}
				ed, err := mope.Apply(m, &mope.Plan{Vision: &mope.TowerPlan{Layers: keep}})
				if err != nil {
					b.Fatal(err)
				}
				for lo := 0; lo < cal.NImg; lo += 32 {
					hi := min(cal.NImg, lo+32)
					x := tensor.New(hi-lo, 3, cal.Size, cal.Size)
					copy(x.Data, px.Data[lo*3*cal.Size*cal.Size:hi*3*cal.Size*cal.Size])
					ed.EncodeImage(nil, ops.Const(x))
				}
			}
		}
		b.ReportMetric(float64(L*b.N)/b.Elapsed().Seconds(), "evals/s")
	})
}

// BenchmarkScoreModules scores shard MOPE_BENCH_SHARD (default "0/29":
// 12 of the 348 vision modules of ViT-B/32, 5 heads and 7 FFN groups spread
// evenly over layers 0–10) with MoPE on MOPE_BENCH_IMAGES images (default
// 16), with each scoring engine. One op = one such Score call (the baseline
// and the prefix states included); evals/s counts the modules scored. The
// full target (all 12·12 heads, 12·16 FFN groups and 12 layers = 348
// evaluations on 1,000 images) then takes about
//
//	348 / (evals/s) · 1000 / images  seconds
//
// (linear in the images; it overestimates a little, as every shard run
// pays the baseline and prefix passes once). On a shared machine use
// cpu-s/eval instead: 348 · cpu-s/eval · 1000/images / cores; better still,
// subtract the fixed part (a run with MOPE_BENCH_SHARD=347/348 scores one
// trivial module) and scale by layer-passes (bench/README.md).
func BenchmarkScoreModules(b *testing.B) {
	m, cal := scoringSetup(b, benchImages())
	shard := os.Getenv("MOPE_BENCH_SHARD")
	if shard == "" {
		shard = "0/29"
	}
	for _, eng := range []mope.Engine{mope.EngineRef, mope.EngineFast} {
		b.Run("engine="+string(eng), func(b *testing.B) {
			o := mope.Options{Metric: "mope", Towers: clip.VisionOnly, Kinds: []string{mope.KindHead, mope.KindFFN, mope.KindLayer}, Shard: shard, Engine: eng}
			n := 0
			cpu0 := cputime.Process().Seconds()
			for i := 0; i < b.N; i++ {
				f, err := mope.Score(m, cal, o)
				if err != nil {
					b.Fatal(err)
				}
				n += len(f.Scores)
			}
			rate := float64(n) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "evals/s")
			b.ReportMetric(348/rate*1000/float64(cal.NImg)/3600, "target-h")
			// On a shared machine the process's CPU time is steadier than
			// the wall clock: cpu-s/eval is CPU seconds per evaluation.
			b.ReportMetric((cputime.Process().Seconds()-cpu0)/float64(n), "cpu-s/eval")
		})
	}
}

// TestScoringThroughput (MOPE_BENCH_SCORE=1) scores every vision head, FFN
// group and layer of ViT-B/32 on MOPE_BENCH_IMAGES images and logs the
// evaluations/s per kind and the projected time for 1,000 images.
func TestScoringThroughput(t *testing.T) {
	if os.Getenv("MOPE_BENCH_SCORE") == "" {
		t.Skip("set MOPE_BENCH_SCORE=1")
	}
	m, cal := scoringSetup(t, benchImages())
	for _, kind := range []string{mope.KindHead, mope.KindFFN, mope.KindLayer} {
		start := time.Now()
		f, err := mope.Score(m, cal, mope.Options{Metric: "mope", Towers: clip.VisionOnly, Kinds: []string{kind}, Progress: os.Stderr})
		if err != nil {
			t.Fatal(err)
		}
		el := time.Since(start)
		rate := float64(len(f.Scores)) / el.Seconds()
		t.Logf("%s: %d evaluations on %d images in %s: %.3f evals/s; at 1000 images ≈ %s",
			kind, len(f.Scores), cal.NImg, el.Round(time.Millisecond), rate,
			time.Duration(float64(el)*1000/float64(cal.NImg)).Round(time.Second))
	}
}
