package prune

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mopeclip/mopeclip/clip"
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

// blockModel returns a 1-layer ViT-B/32-width vision tower inside a model,
// so that mope.Apply and mope.Mask can edit it.
func blockModel(b *testing.B) *clip.Model {
	cfg, _ := clip.Preset("ViT-B/32")
	cfg.Vision.NumHiddenLayers = 1
	cfg.Text.NumHiddenLayers = 1
	m, err := clip.New(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	return m
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
	m := blockModel(b)
	ed, err := mope.Apply(m, halfPlan())
	if err != nil {
		b.Fatal(err)
	}
	mk, err := mope.Mask(m, halfPlan())
	if err != nil {
		b.Fatal(err)
	}
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
				for n := 0; n < b.N; n++ {
					v.blk.Forward(nil, ops.Const(x), B, T, nn.AttnMask{})
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				b.ReportMetric(float64(B), "items/op")
			})
		}
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
// "prefix" is mope.Score (prefix cache), "naive" removes the layer with
// mope.Apply and re-encodes every image from the pixels. One op = all 12
// layers; evals/s is reported.
func BenchmarkScoreLayers(b *testing.B) {
	m, cal := scoringSetup(b, benchImages())
	L := m.Config.Vision.NumHiddenLayers
	b.Run("prefix", func(b *testing.B) {
		for n := 0; n < b.N; n++ {
			if _, err := mope.Score(m, cal, mope.Options{Metric: "mope", Towers: []string{mope.Vision}, Kinds: []string{mope.KindLayer}}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(L*b.N)/b.Elapsed().Seconds(), "evals/s")
	})
	b.Run("naive", func(b *testing.B) {
		px := tensor.New(cal.NImg, 3, cal.Size, cal.Size)
		copy(px.Data, cal.Pixels)
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
		f, err := mope.Score(m, cal, mope.Options{Metric: "mope", Towers: []string{mope.Vision}, Kinds: []string{kind}, Progress: os.Stderr})
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
