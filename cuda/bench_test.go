//go:build cuda

package cuda

import (
	_ "embed"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/tensor"
)

// Device benchmarks. Times are device times (CUDA events around b.N
// launches on the context's stream); the reported metrics are ms/op,
// TFLOP/s and the fraction of the nominal peak of the arithmetic used (fp32
// CUDA cores, or TF32 tensor cores), e.g.
//
//	go test -tags cuda -run '^$' -bench . -benchtime 20x ./cuda
//
// devcheck.sh runs them next to PyTorch on the same shapes.

//go:embed attn_shapes.txt
var attnShapesFile string

type attnShape struct {
	name       string
	B, T, H, D int
	causal     bool
}

func attnShapes(tb testing.TB) []attnShape {
	var s []attnShape
	for _, line := range strings.Split(attnShapesFile, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 6 {
			tb.Fatalf("attn_shapes.txt: bad line %q", line)
		}
		var v [5]int
		for i := range v {
			x, err := strconv.Atoi(f[i+1])
			if err != nil {
				tb.Fatalf("attn_shapes.txt: %q: %v", line, err)
			}
			v[i] = x
		}
		s = append(s, attnShape{f[0], v[0], v[1], v[2], v[3], v[4] != 0})
	}
	return s
}

func skipEmulated(b *testing.B) {
	if emulated {
		b.Skip("timings of the CPU emulator mean nothing")
	}
}

// attnFLOPs counts 4·B·H·T²·D (q·kᵀ and p·v), halved under a causal mask.
func attnFLOPs(s attnShape) float64 {
	f := 4 * float64(s.B) * float64(s.H) * float64(s.T) * float64(s.T) * float64(s.D)
	if s.causal {
		f /= 2
	}
	return f
}

// timeDevice runs f b.N times between two events and reports the metrics.
func timeDevice(b *testing.B, flops, peak float64, images int, f func() error) {
	b.Helper()
	if err := f(); err != nil { // warm-up (module JIT, cuBLAS heuristics)
		b.Fatal(err)
	}
	if err := dev.Synchronize(); err != nil {
		b.Fatal(err)
	}
	tm, err := dev.NewTimer()
	if err != nil {
		b.Fatal(err)
	}
	defer tm.Free()
	b.ResetTimer()
	if err := tm.Start(); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if err := f(); err != nil {
			b.Fatal(err)
		}
	}
	ms, err := tm.Stop()
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	per := ms / float64(b.N)
	b.ReportMetric(per, "ms/op")
	if images > 0 {
		b.ReportMetric(float64(images)/(per*1e-3), "img/s")
	}
	if flops > 0 {
		tf := flops / (per * 1e-3) / 1e12
		b.ReportMetric(tf, "TFLOP/s")
		if peak > 0 {
			b.ReportMetric(100*tf/peak, "%peak")
		}
	}
}

func BenchmarkAttention(b *testing.B) {
	skipEmulated(b)
	peak := dev.Info().PeakFP32TFLOPS
	for _, s := range attnShapes(b) {
		n := s.B * s.T * s.H * s.D
		g := tensor.NewRNG(1)
		var bufs []devPtr
		for i := 0; i < 4; i++ {
			p, err := dev.alloc(4 * n)
			if err != nil {
				b.Fatal(err)
			}
			if i < 3 {
				if err := shimHtoD(p, randn(g, n, 1)); err != nil {
					b.Fatal(err)
				}
			}
			bufs = append(bufs, p)
		}
		ld := s.H * s.D
		geo := &attnGeom{B: s.B, T: s.T, H: s.H, D: s.D, ldq: ld, ldk: ld, ldv: ld, ldo: ld, causal: s.causal,
			scale: float32(1 / math.Sqrt(float64(s.D))), Hk: s.H}
		b.Run(s.name+"/flash", func(b *testing.B) {
			timeDevice(b, attnFLOPs(s), peak, 0, func() error { return dev.attnFlash(geo, bufs[0], bufs[1], bufs[2], bufs[3]) })
		})
		b.Run(s.name+"/naive", func(b *testing.B) {
			kept := make([]int32, s.H)
			for h := range kept {
				kept[h] = int32(h)
			}
			kp, err := dev.uploadInts(kept)
			if err != nil {
				b.Fatal(err)
			}
			defer dev.free(kp)
			P, err := dev.alloc(4 * s.B * s.H * s.T * s.T)
			if err != nil {
				b.Skipf("probabilities do not fit: %v", err)
			}
			defer dev.free(P)
			g2 := *geo
			g2.keptHeads = kp
			timeDevice(b, attnFLOPs(s), peak, 0, func() error { return dev.attnNaive(&g2, bufs[0], bufs[1], bufs[2], bufs[3], P) })
		})
		// The tuning candidates next to the default instantiation: D <= 64
		// with vectorised shared-memory reads, D = 128 with 64×16 tiles and
		// K and V sharing shared memory.
		if s.D <= 64 {
			b.Run(s.name+"/flash-v4", func(b *testing.B) {
				timeDevice(b, attnFLOPs(s), peak, 0, func() error { return dev.attnFlashV4(geo, bufs[0], bufs[1], bufs[2], bufs[3]) })
			})
		}
		if flashDMax(s.D) == 128 {
			b.Run(s.name+"/flash-kv1", func(b *testing.B) {
				timeDevice(b, attnFLOPs(s), peak, 0, func() error { return dev.attnFlashKV1(geo, bufs[0], bufs[1], bufs[2], bufs[3]) })
			})
		}
		// Half the heads dropped: the kernel should take about half the time.
		b.Run(s.name+"/flash-halfheads", func(b *testing.B) {
			keep := make([]int32, s.H)
			for h := 0; h < s.H; h += 2 {
				keep[h] = 1
			}
			kp, err := dev.uploadInts(keep)
			if err != nil {
				b.Fatal(err)
			}
			defer dev.free(kp)
			g2 := *geo
			g2.headKeep = kp
			sh := s
			sh.H = (s.H + 1) / 2
			timeDevice(b, attnFLOPs(sh), peak, 0, func() error { return dev.attnFlash(&g2, bufs[0], bufs[1], bufs[2], bufs[3]) })
		})
		for _, p := range bufs {
			dev.free(p)
		}
	}
}

// BenchmarkGemm times the fc1 GEMM of ViT-B/32 at batch 256
// (12800×3072×768) on each engine.
func BenchmarkGemm(b *testing.B) {
	skipEmulated(b)
	const m, n, k = 256 * 50, 3072, 768
	g := tensor.NewRNG(2)
	var p [3]devPtr
	for i, sz := range []int{m * k, n * k, m * n} {
		var err error
		if p[i], err = dev.alloc(4 * sz); err != nil {
			b.Fatal(err)
		}
		defer dev.free(p[i])
		if i < 2 {
			if err := shimHtoD(p[i], randn(g, sz, 1)); err != nil {
				b.Fatal(err)
			}
		}
	}
	info := dev.Info()
	for _, e := range []struct {
		name string
		eng  GemmEngine
		prec Precision
		peak float64
	}{
		{"own-fp32", GemmOwn, FP32, info.PeakFP32TFLOPS},
		{"cublas-fp32", GemmCublas, FP32, info.PeakFP32TFLOPS},
		{"cublas-tf32", GemmCublas, TF32, info.PeakTF32TFLOPS},
	} {
		b.Run(e.name, func(b *testing.B) {
			if e.eng == GemmCublas && !dev.HasCublas() {
				b.Skip("no cuBLAS")
			}
			call := gemmCall{transB: true, m: m, n: n, k: k, alpha: 1, a: p[0], lda: k, b: p[1], ldb: k, c: p[2], ldc: n}
			timeDevice(b, 2*float64(m)*float64(n)*float64(k), e.peak, 0, func() error { return dev.gemm(e.eng, e.prec, call) })
		})
	}
}

// BenchmarkVisionEncoder reports images/s of the ViT-B/32 image tower
// (device time of Forward, the pixels already on the device), dense and
// pruned (heads and MLP halved), fp32 and TF32, at batch 1 and 256.
func BenchmarkVisionEncoder(b *testing.B) {
	skipEmulated(b)
	dense, err := clip.Preset("ViT-B/32")
	if err != nil {
		b.Fatal(err)
	}
	info := dev.Info()
	for _, mc := range []struct {
		name string
		cfg  *clip.Config
	}{{"dense", dense}, {"pruned", prunedConfig(b, "ViT-B/32")}} {
		m, err := clip.New(mc.cfg, 1)
		if err != nil {
			b.Fatal(err)
		}
		flopsPerImage := 2 * float64(mc.cfg.VisionMACs().Total())
		for _, pc := range []struct {
			name string
			opt  EncoderOptions
			peak float64
		}{
			{"fp32", EncoderOptions{Precision: FP32}, info.PeakFP32TFLOPS},
			{"tf32", EncoderOptions{Precision: TF32}, info.PeakTF32TFLOPS},
		} {
			if pc.opt.Precision == TF32 && !dev.HasCublas() {
				continue
			}
			opt := pc.opt
			opt.MaxBatch = 256
			enc, err := NewVisionEncoder(dev, m, opt)
			if err != nil {
				b.Fatal(err)
			}
			for _, B := range []int{1, 256} {
				if err := enc.Upload(randomPixels(mc.cfg, B, 3), B); err != nil {
					b.Fatal(err)
				}
				b.Run(fmt.Sprintf("%s/%s/B=%d", mc.name, pc.name, B), func(b *testing.B) {
					timeDevice(b, flopsPerImage*float64(B), pc.peak, B, func() error { return enc.Forward(B) })
				})
			}
			enc.Close()
		}
	}
}

// BenchmarkTextEncoder times ViT-B/32's text tower (77 tokens per text)
// dense and with the text heads and MLP halved, fp32 and TF32, at batch 1
// and 256 ("img/s" is texts/s here).
func BenchmarkTextEncoder(b *testing.B) {
	skipEmulated(b)
	dense, err := clip.Preset("ViT-B/32")
	if err != nil {
		b.Fatal(err)
	}
	pruned := textPrunedConfig(b, "ViT-B/32")
	pruned.Text.HiddenAct = dense.Text.HiddenAct
	info := dev.Info()
	for _, mc := range []struct {
		name string
		cfg  *clip.Config
	}{{"dense", dense}, {"pruned", pruned}} {
		m, err := clip.New(mc.cfg, 1)
		if err != nil {
			b.Fatal(err)
		}
		T := mc.cfg.Text.MaxPositionEmbeddings
		flopsPerText := 2 * float64(mc.cfg.TextMACs(T).Total())
		for _, pc := range []struct {
			name string
			opt  EncoderOptions
			peak float64
		}{
			{"fp32", EncoderOptions{Precision: FP32}, info.PeakFP32TFLOPS},
			{"tf32", EncoderOptions{Precision: TF32}, info.PeakTF32TFLOPS},
		} {
			if pc.opt.Precision == TF32 && !dev.HasCublas() {
				continue
			}
			opt := pc.opt
			opt.MaxBatch = 256
			enc, err := NewTextEncoder(dev, m, opt)
			if err != nil {
				b.Fatal(err)
			}
			for _, B := range []int{1, 256} {
				lens := make([]int, B)
				for i := range lens {
					lens[i] = T
				}
				if err := enc.Upload(randomTexts(mc.cfg, lens, T, 3)); err != nil {
					b.Fatal(err)
				}
				b.Run(fmt.Sprintf("%s/%s/B=%d", mc.name, pc.name, B), func(b *testing.B) {
					timeDevice(b, flopsPerText*float64(B), pc.peak, B, func() error { return enc.Forward(B, T) })
				})
			}
			enc.Close()
		}
	}
}

// BenchmarkAttentionTrain times the training path of the attention on the
// shapes of attn_shapes.txt: fwd-save (the flash forward that also writes
// the row log-sum-exps and output rows for the backward) and bwd (the flash
// backward: dq kernel, then dk/dv kernel, fresh gradients). TFLOP/s count
// the forward as attnFLOPs and the backward as 2.5× that (five T×T×D
// products: S recomputed, dP, dV, dQ, dK; FlashAttention's convention),
// comparable with torch_attn.py --bwd.
func BenchmarkAttentionTrain(b *testing.B) {
	skipEmulated(b)
	peak := dev.Info().PeakFP32TFLOPS
	for _, s := range attnShapes(b) {
		if flashDMax(s.D) == 0 {
			continue
		}
		n := s.B * s.T * s.H * s.D
		rows := s.B * s.H * s.T
		g := tensor.NewRNG(1)
		// q, k, v, out, dO, dq, dk, dv; lse, osave, delta.
		sizes := []int{n, n, n, n, n, n, n, n, rows, rows * s.D, rows}
		var bufs []devPtr
		for i, sz := range sizes {
			p, err := dev.alloc(4 * sz)
			if err != nil {
				b.Fatal(err)
			}
			defer dev.free(p)
			if i < 3 || i == 4 {
				if err := shimHtoD(p, randn(g, sz, 1)); err != nil {
					b.Fatal(err)
				}
			}
			bufs = append(bufs, p)
		}
		q, k, v, out, dO, dq, dk, dv, lse, osave, delta := bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], bufs[5], bufs[6], bufs[7], bufs[8], bufs[9], bufs[10]
		ld := s.H * s.D
		geo := &attnGeom{B: s.B, T: s.T, H: s.H, D: s.D, ldq: ld, ldk: ld, ldv: ld, ldo: ld, causal: s.causal,
			scale: float32(1 / math.Sqrt(float64(s.D))), Hk: s.H}
		fwd := func() error { return dev.attnFlashSave(geo, q, k, v, out, lse, osave) }
		if err := fwd(); err != nil {
			b.Fatal(err)
		}
		b.Run(s.name+"/fwd-save", func(b *testing.B) {
			timeDevice(b, attnFLOPs(s), peak, 0, fwd)
		})
		b.Run(s.name+"/bwd", func(b *testing.B) {
			timeDevice(b, 2.5*attnFLOPs(s), peak, 0, func() error {
				return dev.attnFlashBackward(geo, q, k, v, dO, ld, lse, osave, delta, flashGrads{dq: dq, dk: dk, dv: dv})
			})
		})
	}
}
