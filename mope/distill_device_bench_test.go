//go:build cuda

package mope

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/cuda"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// BenchmarkDistillStepDevice times one whole distillation step on the GPU
// (issue 17's target; cuda/torch_distill.py is PyTorch's peer with the same
// shapes): the teacher's forward, the student's forward and backward, global
// norm clipping and AdamW, on the resident device backend (as mope distill
// --device cuda: parameters, gradients, optimiser state and the teacher's
// weights kept on the device, every other copy released at the step's end),
// in fp32 and TF32. Teacher: a random MOPECLIP_BENCH_PRESET (default ViT-B/32); student:
// half the heads and half the MLP neurons of every layer of both towers.
// MOPECLIP_BENCH_BATCH pairs per step (default 256) of random pixels and
// random token ids (EOT at position 12 of the full context). Reports pairs/s.
func BenchmarkDistillStepDevice(b *testing.B) {
	preset := envOr("MOPECLIP_BENCH_PRESET", "ViT-B/32")
	B, err := strconv.Atoi(envOr("MOPECLIP_BENCH_BATCH", "256"))
	if err != nil || B < 2 {
		b.Fatalf("MOPECLIP_BENCH_BATCH: want an integer ≥ 2")
	}
	cfg, err := clip.Preset(preset)
	if err != nil {
		b.Fatal(err)
	}
	teacher, err := clip.New(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	student, err := Apply(teacher, halfPlan(teacher))
	if err != nil {
		b.Fatal(err)
	}
	S, T := cfg.Vision.ImageSize, cfg.Text.MaxPositionEmbeddings
	pix := tensor.New(B, 3, S, S).Normal(tensor.NewRNG(1), 0, 1)
	ids := make([]int, B*T)
	eot := min(12, T-1)
	for i := 0; i < B; i++ {
		for j := 0; j < eot; j++ {
			ids[i*T+j] = 1 + (i*7+j*13)%(cfg.Text.VocabSize-2)
		}
		ids[i*T+eot] = cfg.Text.EOSTokenID
	}
	tb := &clip.TextBatch{IDs: ids, EOTPos: clip.EOTPositions(ids, B, T, cfg.Text.EOSTokenID), B: B, T: T}
	ctx, err := cuda.Open(cuda.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer ctx.Close()
	for _, prec := range []cuda.Precision{cuda.FP32, cuda.TF32} {
		b.Run(fmt.Sprintf("%s/%s/B%d", benchName(preset), prec, B), func(b *testing.B) {
			if prec == cuda.TF32 && !ctx.HasCublas() {
				b.Skip("SKIP: TF32 needs cuBLAS, not loaded")
			}
			be, err := cuda.NewBackend(ctx, cuda.BackendOptions{Precision: prec, Resident: true})
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			prev := ops.CurrentBackend()
			ops.SetBackend(be)
			defer ops.SetBackend(prev)
			params := student.Params()
			opt := nn.NewAdamW(params, nn.AdamWConfig{Beta1: 0.9, Beta2: 0.98, Eps: 1e-6, WeightDecay: 0.05})
			ops.Wrote(opt.State()...) // as train.Run and mope.Distill do
			ops.Keep(opt.State()...)
			for _, p := range teacher.Params() {
				ops.Keep(p.Value.Data)
			}
			tp := ops.NewTape()
			step := func() {
				// train.Run's step: the norm it logs, then clipping and AdamW.
				opt.ZeroGrad()
				if _, _, err := DistillStep(tp, student, teacher, pix, tb, DefaultDistillWeights()); err != nil {
					b.Fatal(err)
				}
				if norm := nn.GradNorm(params); math.IsNaN(norm) || math.IsInf(norm, 0) {
					b.Fatalf("gradient norm %v", norm)
				}
				nn.ClipGradNorm(params, 1)
				opt.Step(1e-5)
				ops.EndStep()
			}
			step() // warm-up: allocations, PTX JIT, cuBLAS handles
			if err := ctx.Synchronize(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				step()
			}
			if err := ctx.Synchronize(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(B*b.N)/b.Elapsed().Seconds(), "pairs/s")
		})
	}
}

// halfPlan keeps the first half of the heads and of the MLP neurons of
// every layer of both towers.
func halfPlan(m *clip.Model) *Plan {
	tower := func(tc clip.TowerConfig) *TowerPlan {
		p := &TowerPlan{}
		for range tc.NumHiddenLayers {
			var h, n []int
			for i := 0; i < tc.NumAttentionHeads/2; i++ {
				h = append(h, i)
			}
			for i := 0; i < tc.IntermediateSize/2; i++ {
				n = append(n, i)
			}
			p.Heads, p.Neurons = append(p.Heads, h), append(p.Neurons, n)
		}
		return p
	}
	return &Plan{Vision: tower(m.Config.Vision), Text: tower(m.Config.Text)}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// benchName makes a preset name usable in a benchmark name (no slashes).
func benchName(preset string) string {
	out := []rune(preset)
	for i, r := range out {
		if r == '/' {
			out[i] = '-'
		}
	}
	return string(out)
}
