//go:build cuda

package cuda

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/internal/testutil"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
	"github.com/mopeclip/mopeclip/train"
)

// Bounds of the resident-mode tests (fp32 unless named):
//
//	tolFP32 (1e-5)  loss of one CLIP step; parameters and moments after
//	                clip + AdamW from the same gradients
//	tolGrad (1e-4)  all parameter gradients of one CLIP step, normwise
//	tolLoop (1e-4)  per-step losses of train.Run, relative
//
// (20 distillation steps on the resident backend: mope's
// TestDeviceDistillResident, which imports this package.)
const tolLoop = 1e-4

// residentBackend is a resident Backend with poisoned outputs.
func residentBackend(t *testing.T, opt BackendOptions) *Backend {
	t.Helper()
	opt.Resident = true
	return backend(t, opt)
}

// TestResidentSlices checks the bookkeeping of the resident mode against
// the CPU backend: sub-slices of one allocation (in either order of first
// use, so that entries merge), outputs left on the device until Sync, a host
// write declared with Wrote to part of a device-newer buffer, aliasing, and
// EndStep releasing what is not kept. Each scenario runs through ops'
// helpers (Sync, Wrote, Keep, EndStep), which do nothing on the CPU.
func TestResidentSlices(t *testing.T) {
	type scenario struct {
		name string
		run  func(be ops.Backend, a, b []float32) []float32 // a, b: 1000 inputs
	}
	scenarios := []scenario{
		{"full-then-rows", func(be ops.Backend, a, b []float32) []float32 {
			y := make([]float32, 1000)
			be.Add(y, a, b)
			be.Scale(2, y[100:233])      // part of the entry, on the device
			be.Axpy(0.5, y[:7], y[993:]) // two parts of one entry
			ops.Sync(y[500:501])         // syncs the whole entry
			return y
		}},
		{"rows-then-full-merge", func(be ops.Backend, a, b []float32) []float32 {
			y := make([]float32, 1000)
			be.Add(y[500:533], a[:33], b[:33]) // entry [500, 1000)
			be.Add(y[:65], a[1:66], b[2:67])   // entry [0, 1000): merges
			be.Mul(y, y, a)                    // in-place on the merged entry
			ops.Sync(y)
			return y
		}},
		{"host-write-part", func(be ops.Backend, a, b []float32) []float32 {
			y := make([]float32, 1000)
			be.Add(y, a, b) // device-newer
			for i := 10; i < 20; i++ {
				y[i] = float32(i) // without Sync: Wrote keeps the rest
			}
			ops.Wrote(y[10:20])
			be.Scale(3, y)
			ops.Sync(y)
			return y
		}},
		{"copy-fill-gather", func(be ops.Backend, a, b []float32) []float32 {
			y := make([]float32, 1000)
			be.Fill(y, 7)
			be.Copy(y[1:34], a[100:133])
			be.GatherRows(y[200:265], b, 13, []int{5, 0, 75, 5, 3})
			be.Fill(y[990:], -0.5)
			ops.Sync(y)
			return y
		}},
		{"kept-across-steps", func(be ops.Backend, a, b []float32) []float32 {
			p := append([]float32(nil), a...)
			ops.Keep(p)
			for s := 0; s < 3; s++ {
				tmp := make([]float32, 1000)
				be.Mul(tmp, p, b)
				be.Axpy(-0.25, tmp, p)
				ops.EndStep()
			}
			ops.Sync(p)
			return p
		}},
	}
	g := tensor.NewRNG(91)
	a, b := randn(g, 1000, 1), randn(g, 1000, 1)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			want := sc.run(ops.CPU, clone(a), clone(b))
			be := residentBackend(t, BackendOptions{Gemm: GemmOwn})
			var got []float32
			withBackend(be, func() { got = sc.run(be, clone(a), clone(b)) })
			expect(t, "resident-slices", sc.name, got, want, tolFP32)
			be.EndStep()
			if s := be.ResidentStats(); s.Transient != 0 {
				t.Errorf("%d transient entries after EndStep", s.Transient)
			}
		})
	}
}

// TestResidentSyncOnce: an input is uploaded once while the host does not
// change it, an output is downloaded only on Sync, and once.
func TestResidentSyncOnce(t *testing.T) {
	be := residentBackend(t, BackendOptions{Gemm: GemmOwn})
	g := tensor.NewRNG(92)
	x, y := randn(g, 257, 1), make([]float32, 257)
	t0 := be.Transfers()
	be.Add(y, x, x)
	be.Add(y, y, x)
	d := be.Transfers().Sub(t0)
	if d.Uploads != 1 || d.UploadBytes != 4*257 || d.Downloads != 0 {
		t.Errorf("two Adds: %+v, want one upload of x and no download", d)
	}
	be.Sync(y)
	be.Sync(y)
	d = be.Transfers().Sub(t0)
	if d.Downloads != 1 || d.DownloadBytes != 4*257 {
		t.Errorf("after two Syncs: %+v, want one download of y", d)
	}
	for i := range y {
		if y[i] != 3*x[i] {
			t.Fatalf("y[%d] = %v, want %v", i, y[i], 3*x[i])
		}
	}
}

// paramGrads returns the concatenated gradients, values or moments of
// params.
func concat(xs [][]float32) []float32 {
	var out []float32
	for _, x := range xs {
		out = append(out, x...)
	}
	return out
}

func gradsOf(m *clip.Model) (gs [][]float32) {
	for _, p := range m.Params() {
		gs = append(gs, clone(p.Grad.Data))
	}
	return gs
}

func valuesOf(m *clip.Model) (vs [][]float32) {
	for _, p := range m.Params() {
		vs = append(vs, clone(p.Value.Data))
	}
	return vs
}

func momentsOf(o *nn.AdamW) (ms [][]float32) {
	for i := range o.Params() {
		m, v := o.Moments(i)
		ms = append(ms, clone(m), clone(v))
	}
	return ms
}

// TestResidentPretrainStep runs one CLIP pretraining step (the tiny preset:
// both towers, InfoNCE, tape backward, gradient clipping, AdamW) on the
// resident backend and on the CPU: the loss and every parameter gradient
// must match the CPU's; the parameters and moments after clip + AdamW must
// match a CPU AdamW applied to the device's gradients (so that the
// optimiser is checked apart from the gradients' rounding).
func TestResidentPretrainStep(t *testing.T) {
	cfg, err := clip.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	const seed = 41 // every copy of the model: clip.New(cfg, seed)
	const B, T = 4, 12
	S := cfg.Vision.ImageSize
	pixels := randomPixels(cfg, B, 42)
	text := randomTexts(cfg, []int{5, 9, 3, 12}, T, 43)
	pix := func() *tensor.Tensor { return testutil.MustTensor(clone(pixels), B, 3, S, S) }
	adam := nn.AdamWConfig{Beta1: 0.9, Beta2: 0.98, Eps: 1e-6, WeightDecay: 0.1}
	const lr, maxNorm = 1e-3, 0.5

	mc := newTiny(t, seed)
	lossCPU, err := mc.ContrastiveStep(ops.NewTape(), pix(), text)
	if err != nil {
		t.Fatal(err)
	}
	for _, eng := range engines()[:2] {
		t.Run(eng.name, func(t *testing.T) {
			be := residentBackend(t, eng.opt)
			md := newTiny(t, seed)
			opt := nn.NewAdamW(md.Params(), adam)
			var lossDev, normDev float64
			var gradsDev [][]float32
			withBackend(be, func() {
				ops.Keep(opt.State()...)
				opt.ZeroGrad()
				var err error
				if lossDev, err = md.ContrastiveStep(ops.NewTape(), pix(), text); err != nil {
					t.Fatal(err)
				}
				for _, p := range md.Params() {
					ops.Sync(p.Grad.Data)
				}
				gradsDev = gradsOf(md)
				normDev = nn.ClipGradNorm(md.Params(), maxNorm)
				opt.Step(lr)
				ops.Sync(opt.State()...)
				ops.EndStep()
			})
			expect(t, "resident-clip-step/loss", "", []float32{float32(lossDev)}, []float32{float32(lossCPU)}, tolFP32)
			expect(t, "resident-clip-step/gradients", "", concat(gradsDev), concat(gradsOf(mc)), tolGrad)

			// The CPU optimiser from the device's gradients.
			mr := newTiny(t, seed)
			for i, p := range mr.Params() {
				copy(p.Grad.Data, gradsDev[i])
			}
			ref := nn.NewAdamW(mr.Params(), adam)
			normRef := nn.ClipGradNorm(mr.Params(), maxNorm)
			ref.Step(lr)
			if normRef <= maxNorm {
				t.Fatalf("gradient norm %v does not exceed the clip %v: the test does not clip", normRef, maxNorm)
			}
			expect(t, "resident-clip-step/grad-norm", "", []float32{float32(normDev)}, []float32{float32(normRef)}, tolFP32)
			expect(t, "resident-adamw/parameters", "", concat(valuesOf(md)), concat(valuesOf(mr)), tolFP32)
			expect(t, "resident-adamw/moments", "", concat(momentsOf(opt)), concat(momentsOf(ref)), tolFP32)
			if s := be.ResidentStats(); s.Transient != 0 || s.Kept == 0 {
				t.Errorf("after EndStep: %+v, want kept entries only", s)
			}
		})
	}
}

// newTiny returns the tiny preset's model initialised from seed (the same
// weights for the same seed).
func newTiny(t *testing.T, seed uint64) *clip.Model {
	t.Helper()
	cfg, err := clip.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := clip.New(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// pretrainBatches are fixed-shape CLIP batches (same text lengths, other
// ids), so that every step moves the same bytes.
func pretrainBatches(cfg *clip.Config, B, T, n int) (pixels []*tensor.Tensor, texts []*clip.TextBatch) {
	lens := []int{5, 9, 3, 12, 7, 2, 11, 4}[:B]
	S := cfg.Vision.ImageSize
	for s := 0; s < n; s++ {
		pixels = append(pixels, testutil.MustTensor(randomPixels(cfg, B, uint64(100+s)), B, 3, S, S))
		texts = append(texts, randomTexts(cfg, lens, T, uint64(200+s)))
	}
	return pixels, texts
}

// TestResidentTrainLoop runs 5 steps of train.Run (CLIP pretraining of the
// tiny preset) on the resident backend and on the CPU, and checks:
//   - the losses follow the CPU's;
//   - after the first step, what crosses the bus per step is the same every
//     step, none of it is a parameter, gradient or optimiser moment (the
//     slices named by Keep) except the one logit-scale value the loss
//     head reads, and it is the batch plus what the host-side heads move
//     (transferBudget);
//   - the device memory (blocks in use and cached) does not grow from step
//     to step, and no transient copy outlives its step.
func TestResidentTrainLoop(t *testing.T) {
	cfg, err := clip.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	const seed = 51
	const B, T, steps = 4, 12, 5
	pixels, texts := pretrainBatches(cfg, B, T, steps)
	tc := train.Config{Steps: steps, Warmup: 1, LR: 1e-3, MinLR: 1e-4, ClipNorm: 1, Items: B, LogEvery: 1}
	adam := nn.AdamWConfig{Beta1: 0.9, Beta2: 0.98, Eps: 1e-6, WeightDecay: 0.1}
	run := func(md *clip.Model, hook func(s int)) []float64 {
		opt := nn.NewAdamW(md.Params(), adam)
		tp := ops.NewTape()
		res, err := train.Run(context.Background(), tc, md.Params(), opt, func(s int) (float64, map[string]float64, error) {
			hook(s)
			l, err := md.ContrastiveStep(tp, pixels[s], texts[s])
			return l, nil, err
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, losses := res.Curve.Series("loss")
		return losses
	}
	want := run(newTiny(t, seed), func(int) {})

	be := residentBackend(t, BackendOptions{Gemm: GemmOwn})
	var xfer []Transfers
	var stats []ResidentStats
	var got []float64
	withBackend(be, func() {
		got = run(newTiny(t, seed), func(int) {
			xfer = append(xfer, be.Transfers())
			stats = append(stats, be.ResidentStats())
		})
	})
	xfer = append(xfer, be.Transfers())
	stats = append(stats, be.ResidentStats())
	if len(got) != steps || len(want) != steps {
		t.Fatalf("%d / %d losses, want %d", len(got), len(want), steps)
	}
	for s := range got {
		expect(t, "resident-train-loop", fmt.Sprintf("loss %d", s), []float32{float32(got[s])}, []float32{float32(want[s])}, tolLoop)
	}

	params := int64(0)
	for _, p := range newTiny(t, seed).Params() {
		params += 4 * int64(p.Value.Len())
	}
	budget := transferBudget(cfg, B, T)
	for s := 0; s < steps; s++ {
		d := xfer[s+1].Sub(xfer[s])
		t.Logf("step %d: up %d copies %d B (kept %d B), down %d copies %d B (kept %d B), %d scalars; device %d B (%d kept entries %d B, %d transient)",
			s, d.Uploads, d.UploadBytes, d.KeptUploadBytes, d.Downloads, d.DownloadBytes, d.KeptDownloadBytes, d.Scalars,
			stats[s+1].DeviceBytes, stats[s+1].Kept, stats[s+1].KeptBytes, stats[s+1].Transient)
		if s == 0 {
			if d.KeptUploadBytes < params {
				t.Errorf("step 0 uploaded %d B of kept slices, less than the %d B of parameters", d.KeptUploadBytes, params)
			}
			continue
		}
		if p := xfer[s].Sub(xfer[s-1]); s > 1 && s < steps-1 && p != d {
			t.Errorf("step %d moved %+v, step %d %+v: not a steady state", s, d, s-1, p)
		}
		if s == steps-1 {
			// train.Run ends with a Sync of the parameters and moments.
			if d.KeptUploadBytes != 0 || d.KeptDownloadBytes < 3*params || d.KeptDownloadBytes > 3*params+3*params/100 {
				t.Errorf("last step moved kept slices: up %d B, down %d B (want 0 and the parameters and moments, 3×%d B)", d.KeptUploadBytes, d.KeptDownloadBytes, params)
			}
			continue
		}
		// The logit scale is the only kept value that comes out (8 B: its
		// one-float allocation has room for two): InfoNCE's GEMM takes
		// exp(s) as its alpha.
		if d.KeptUploadBytes != 0 || d.KeptDownloadBytes > 8 {
			t.Errorf("step %d moved kept slices: up %d B, down %d B (want 0 and at most 8 B)", s, d.KeptUploadBytes, d.KeptDownloadBytes)
		}
		if batch := int64(4 * B * 3 * cfg.Vision.ImageSize * cfg.Vision.ImageSize); d.UploadBytes-d.KeptUploadBytes < batch {
			t.Errorf("step %d uploaded %d B, less than the pixels (%d B)", s, d.UploadBytes-d.KeptUploadBytes, batch)
		}
		if up, down := d.UploadBytes-d.KeptUploadBytes, d.DownloadBytes-d.KeptDownloadBytes; up > budget.up || down > budget.down {
			t.Errorf("step %d: up %d B, down %d B of step slices; the batch and the host heads need at most %d B up, %d B down (parameters: %d B)",
				s, up, down, budget.up, budget.down, params)
		}
		if stats[s+1].DeviceBytes != stats[s].DeviceBytes && s > 1 {
			t.Errorf("device memory grew from %d B to %d B in step %d", stats[s].DeviceBytes, stats[s+1].DeviceBytes, s)
		}
		if stats[s+1].Transient != 0 {
			t.Errorf("%d transient entries at the start of step %d", stats[s+1].Transient, s+1)
		}
	}
}

type budget struct{ up, down int64 }

// transferBudget bounds the bytes of step slices (not kept) one CLIP
// pretraining step of B pairs of T tokens moves after the first. In: the
// pixels, the token ids and EOT positions (int32), and what the host-side
// L2Normalize writes (the two normalised embeddings and their gradients).
// Out: what it reads (the embeddings before normalisation and the gradients
// of the normalised ones), the loss, the loss gradient InfoNCE's backward
// GEMMs take as alpha, and the gradient norm (two floats). No term grows
// with the parameters.
func transferBudget(cfg *clip.Config, B, T int) budget {
	S, E := cfg.Vision.ImageSize, cfg.ProjectionDim
	up := int64(4*B*3*S*S) + int64(4*(B*T+B)) + int64(4*(2*B*E+2*B*E))
	down := int64(4*(2*B*E+2*B*E)) + 4 + 4 + 8 + 16 // + small slices' spare capacity
	return budget{up, down}
}

func clipParams(cfg *clip.Config) []*nn.Param {
	m, err := clip.New(cfg, 1)
	if err != nil {
		panic(err)
	}
	return m.Params()
}

// TestDataMovement checks the data-movement methods of ops.Backend (Copy,
// Fill, GatherRows, PatchUnfold) against the CPU backend at awkward sizes,
// per call and resident, with NaN-poisoned outputs.
func TestDataMovement(t *testing.T) {
	g := tensor.NewRNG(93)
	type call struct {
		name string
		run  func(be ops.Backend) []float32
	}
	var calls []call
	for _, n := range []int{1, 7, 33, 1000, 12345} {
		src := randn(g, n+3, 1)
		calls = append(calls,
			call{fmt.Sprintf("copy/%d", n), func(be ops.Backend) []float32 {
				dst := nans(n + 5)
				be.Copy(dst[2:], src[3:])
				ops.Sync(dst)
				return dst
			}},
			call{fmt.Sprintf("fill/%d", n), func(be ops.Backend) []float32 {
				dst := nans(n + 2)
				be.Fill(dst[1:n+1], -1.5)
				be.Fill(dst[:1], 0)
				ops.Sync(dst)
				return dst
			}})
	}
	for _, sz := range []struct{ rows, n, out int }{{1, 1, 1}, {7, 3, 9}, {33, 65, 40}, {1000, 7, 1000}} {
		src := randn(g, sz.rows*sz.n, 1)
		idx := make([]int, sz.out)
		for i := range idx {
			idx[i] = g.IntN(sz.rows)
		}
		calls = append(calls, call{fmt.Sprintf("gather/%dx%d→%d", sz.rows, sz.n, sz.out), func(be ops.Backend) []float32 {
			dst := nans(sz.out * sz.n)
			be.GatherRows(dst, src, sz.n, idx)
			ops.Sync(dst)
			return dst
		}})
	}
	for _, p := range []struct{ B, Cin, H, W, P int }{{1, 1, 1, 1, 1}, {2, 3, 14, 7, 7}, {3, 3, 32, 32, 8}, {1, 3, 65, 13, 13}} {
		pix := randn(g, p.B*p.Cin*p.H*p.W, 1)
		calls = append(calls, call{fmt.Sprintf("unfold/%v", p), func(be ops.Backend) []float32 {
			cols := nans(len(pix))
			be.PatchUnfold(cols, pix, p.B, p.Cin, p.H, p.W, p.P)
			ops.Sync(cols)
			return cols
		}})
	}
	for _, resident := range []bool{false, true} {
		be := backend(t, BackendOptions{Gemm: GemmOwn, Resident: resident})
		for _, c := range calls {
			want := c.run(ops.CPU)
			var got []float32
			withBackend(be, func() { got = c.run(be) })
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
					t.Errorf("resident=%v %s: [%d] = %v, want %v", resident, c.name, i, got[i], want[i])
					break
				}
			}
			be.EndStep()
		}
	}
}
