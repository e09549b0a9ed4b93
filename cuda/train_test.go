//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"testing"

	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// The training kernels against the CPU reference: the flash attention
// backward (vs ops.CPU's attention backward), the fused bias + activation
// backward, the loss kernels (vs ops.InfoNCE, ops.SoftCrossEntropy and
// ops.MSE on a CPU tape, values and gradients) and the multi-tensor AdamW
// (bit for bit against nn.AdamW after nn.ClipGradNorm). Conventions as in
// cuda_test.go: fresh random inputs of awkward sizes, outputs poisoned with
// NaN, normwise errors recorded for the ERRORS summary.

// tolFlashGrad bounds the flash backward's gradients: P is recomputed from
// the row log-sum-exp and Δ = rowsum(dO⊙O) replaces rowsum(dP⊙P), so the
// rounding differs from the materialised path by a few float32 ulps of the
// largest gradient.
const tolFlashGrad = 1e-5

// flashCases covers T = 1, 7, 33, 50, 65, 77, 129, every instantiation
// (D = 12 and 16 → d16, 32, 64, 80 → d128, 128), causal masks, key lengths
// including 0 and dropped heads (including all of them).
var flashCases = []attnCase{
	{B: 1, T: 1, H: 1, D: 16},
	{B: 1, T: 1, H: 2, D: 128, causal: true},
	{B: 2, T: 7, H: 3, D: 12},
	{B: 2, T: 33, H: 2, D: 16, causal: true},
	{B: 2, T: 65, H: 2, D: 32, keep: []bool{false, true}},
	{B: 3, T: 50, H: 4, D: 64, keyLens: []int{0, 50, 5}},
	{B: 3, T: 50, H: 4, D: 64, causal: true, keyLens: []int{17, 1, 50}, keep: []bool{true, false, true, false}},
	{B: 2, T: 77, H: 2, D: 64, causal: true},
	{B: 1, T: 77, H: 3, D: 64, causal: true, keep: []bool{false, false, false}},
	{B: 2, T: 33, H: 2, D: 128, keyLens: []int{33, 0}},
	{B: 1, T: 129, H: 2, D: 128, causal: true},
	{B: 1, T: 129, H: 1, D: 80, keyLens: []int{100}},
}

func TestAttnSavedLen(t *testing.T) {
	b := backend(t, BackendOptions{})
	for _, c := range append(append([]attnCase(nil), flashCases...), attnCases...) {
		a := c.args()
		got := b.AttnSavedLen(a)
		if flashDMax(c.D) == 0 {
			if got != ops.AttnProbsLen(a) {
				t.Errorf("%v: AttnSavedLen %d, want AttnProbsLen %d above D = 128", c, got, ops.AttnProbsLen(a))
			}
			continue
		}
		if got != flashSavedLen(a) || got == ops.AttnProbsLen(a) {
			t.Errorf("%v: AttnSavedLen %d, want the flash length %d != probs length %d", c, got, flashSavedLen(a), ops.AttnProbsLen(a))
		}
	}
	// T = D + 1: the layouts have different lengths all the same.
	a := attnCase{B: 2, T: 65, H: 3, D: 64}.args()
	if b.AttnSavedLen(a) == ops.AttnProbsLen(a) {
		t.Errorf("T = D+1: saved length %d equals the probs length", b.AttnSavedLen(a))
	}
}

func TestAttentionFlashBackward(t *testing.T) {
	g := tensor.NewRNG(21)
	b := backend(t, BackendOptions{})
	for _, c := range flashCases {
		a := c.args()
		n := c.B * c.T * c.H * c.D
		q, k, v := randn(g, n, 1), randn(g, n, 1), randn(g, n, 1)
		out, probs := make([]float32, n), make([]float32, ops.AttnProbsLen(a))
		ops.CPU.AttentionForward(a, q, k, v, out, probs)
		saved := nans(b.AttnSavedLen(a))
		got := nans(n)
		b.AttentionForward(a, q, k, v, got, saved)
		expect(t, "attention-flash-save", c.String(), got, out, tolFP32)
		if tag := math.Float32bits(saved[len(saved)-1]); tag != flashSavedTag {
			t.Errorf("%v: saved buffer tag %#x, want %#x", c, tag, flashSavedTag)
		}
		dOut := randn(g, n, 1)
		// Separate gradients, fresh and accumulating.
		for _, beta := range []float32{0, 1} {
			d0 := [3][]float32{randn(g, n, 1), randn(g, n, 1), randn(g, n, 1)}
			var want, got [3][]float32
			for i := range d0 {
				want[i], got[i] = clone(d0[i]), clone(d0[i])
				if beta == 0 {
					got[i] = nans(n)
				}
			}
			ops.CPU.AttentionBackward(a, q, k, v, probs, dOut, want[0], want[1], want[2], beta, beta, beta)
			b.AttentionBackward(a, q, k, v, saved, dOut, got[0], got[1], got[2], beta, beta, beta)
			for i, name := range []string{"dq", "dk", "dv"} {
				expect(t, "attention-flash-bwd-"+name, fmt.Sprint(c, " beta ", beta), got[i], want[i], tolFlashGrad)
			}
		}
		// Aliased gradients, as ops.Attention asks for them when inputs
		// are shared: q = k = v (dv written, dq and dk added), q = k (dq
		// written, dk added), q = v (dv written, dq added).
		for _, al := range []struct {
			name                string
			q, k, v             int // buffer index per gradient (-1: none)
			betaQ, betaK, betaV float32
		}{
			{"qkv", 0, 0, 0, 1, 1, 0},
			{"qk", 0, 0, 1, 0, 1, 0},
			{"qv", 0, 1, 0, 1, 0, 0},
			{"dq only", 0, -1, -1, 0, 0, 0},
			{"dk only", -1, 0, -1, 0, 0, 0},
			{"dv only", -1, -1, 0, 0, 0, 0},
			{"dk dv", -1, 0, 1, 0, 0, 1},
		} {
			bufsW, bufsG := [][]float32{make([]float32, n), randn(g, n, 1)}, [][]float32{nans(n), nil}
			bufsG[1] = clone(bufsW[1])
			pick := func(bufs [][]float32, i int) []float32 {
				if i < 0 {
					return nil
				}
				return bufs[i]
			}
			ops.CPU.AttentionBackward(a, q, k, v, probs, dOut, pick(bufsW, al.q), pick(bufsW, al.k), pick(bufsW, al.v), al.betaQ, al.betaK, al.betaV)
			b.AttentionBackward(a, q, k, v, saved, dOut, pick(bufsG, al.q), pick(bufsG, al.k), pick(bufsG, al.v), al.betaQ, al.betaK, al.betaV)
			expect(t, "attention-flash-bwd-aliased", c.String()+" "+al.name, bufsG[0], bufsW[0], tolFlashGrad)
			expect(t, "attention-flash-bwd-aliased", c.String()+" "+al.name+" (2nd)", bufsG[1], bufsW[1], tolFlashGrad)
		}
	}
}

// TestAttentionFlashThroughOps runs ops.Attention's forward and backward on
// the device backend with a flash saved buffer, through a tape, against
// the CPU: the layouts agree with what ops passes (the saved buffer is
// allocated by the caller, its length decides the path).
func TestAttentionFlashThroughOps(t *testing.T) {
	g := tensor.NewRNG(22)
	b := backend(t, BackendOptions{})
	c := attnCase{B: 2, T: 50, H: 4, D: 64, causal: true, keyLens: []int{50, 20}, keep: []bool{true, true, false, true}}
	a := c.args()
	n := c.B * c.T * c.H * c.D
	q, k, v, dOut := randn(g, n, 1), randn(g, n, 1), randn(g, n, 1), randn(g, n, 1)
	run := func(be ops.Backend, saved []float32) (out []float32, grads [3][]float32) {
		out = make([]float32, n)
		be.AttentionForward(a, q, k, v, out, saved)
		for i := range grads {
			grads[i] = nans(n)
		}
		be.AttentionBackward(a, q, k, v, saved, dOut, grads[0], grads[1], grads[2], 0, 0, 0)
		return out, grads
	}
	wo, wg := run(ops.CPU, make([]float32, ops.AttnProbsLen(a)))
	go1, gg := run(b, make([]float32, b.AttnSavedLen(a)))
	expect(t, "attention-flash-save", "round trip "+c.String(), go1, wo, tolFP32)
	for i, name := range []string{"dq", "dk", "dv"} {
		expect(t, "attention-flash-bwd-"+name, "round trip "+c.String(), gg[i], wg[i], tolFlashGrad)
	}
	// Deterministic: a second run gives the same bits (no atomics; on a
	// GPU, whatever the block schedule).
	go2, gg2 := run(b, make([]float32, b.AttnSavedLen(a)))
	expect(t, "attention-flash-repeat", "forward "+c.String(), go2, go1, 0)
	for i, name := range []string{"dq", "dk", "dv"} {
		expect(t, "attention-flash-repeat", name+" "+c.String(), gg2[i], gg[i], 0)
	}
	// The probabilities path is still taken for a buffer of AttnProbsLen.
	po, pg := run(b, make([]float32, ops.AttnProbsLen(a)))
	expect(t, "attention-naive", "probs path "+c.String(), po, wo, tolFP32)
	for i, name := range []string{"dq", "dk", "dv"} {
		expect(t, "attention-bwd-"+name, "probs path "+c.String(), pg[i], wg[i], tolFP32)
	}
}

// TestAttentionFlashCandidates checks the forward tuning candidates
// (attn_flash_fwd_d128_kv1, attn_flash_fwd_v4_d64) against the CPU.
func TestAttentionFlashCandidates(t *testing.T) {
	g := tensor.NewRNG(28)
	for _, c := range []attnCase{
		{B: 1, T: 1, H: 1, D: 128},
		{B: 2, T: 77, H: 2, D: 128, causal: true, keyLens: []int{77, 30}},
		{B: 2, T: 129, H: 3, D: 80, keyLens: []int{0, 100}, keep: []bool{true, false, true}},
		{B: 1, T: 65, H: 2, D: 128, causal: true, keep: []bool{false, true}},
		{B: 1, T: 1, H: 1, D: 64},
		{B: 2, T: 7, H: 3, D: 12},
		{B: 3, T: 50, H: 4, D: 64, causal: true, keyLens: []int{17, 0, 50}, keep: []bool{true, false, true, true}},
		{B: 2, T: 77, H: 2, D: 64, causal: true},
		{B: 1, T: 129, H: 2, D: 33, keyLens: []int{100}},
		{B: 1, T: 65, H: 2, D: 64, keep: []bool{false, false}},
	} {
		a := c.args()
		n := c.B * c.T * c.H * c.D
		q, k, v := randn(g, n, 1), randn(g, n, 1), randn(g, n, 1)
		want := make([]float32, n)
		ops.CPU.AttentionForward(a, q, k, v, want, nil)
		keyLens, keep, _, _ := attnMasks(a)
		var dl, dk devPtr
		var err error
		if dl, err = dev.uploadInts(keyLens); err != nil {
			t.Fatal(err)
		}
		if dk, err = dev.uploadInts(keep); err != nil {
			t.Fatal(err)
		}
		ld := c.H * c.D
		geo := &attnGeom{B: c.B, T: c.T, H: c.H, D: c.D, ldq: ld, ldk: ld, ldv: ld, ldo: ld, causal: c.causal,
			scale: a.Scale, keyLens: dl, headKeep: dk}
		out := upload(t, nans(n))
		run, kern := dev.attnFlashKV1, "attention-flash-kv1"
		if c.D <= 64 {
			run, kern = dev.attnFlashV4, "attention-flash-v4"
		}
		if err := run(geo, upload(t, q), upload(t, k), upload(t, v), out); err != nil {
			t.Fatal(err)
		}
		expect(t, kern, c.String(), download(t, out, n), want, tolFP32)
		dev.free(dl)
		dev.free(dk)
	}
}

func TestBiasActBackward(t *testing.T) {
	g := tensor.NewRNG(23)
	b := backend(t, BackendOptions{})
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 20, -20, 88, -88, 1e-30, -1e-30,
		float32(math.Inf(1)), 3.4e38, -3.4e38}
	refBwd := map[ops.Activation]func(dx, x, dy []float32, acc bool){
		ops.ActQuickGELU: ops.CPU.QuickGELUBackward,
		ops.ActGELU:      ops.CPU.GELUBackward,
		ops.ActNone: func(dx, _, dy []float32, acc bool) {
			if acc {
				ops.CPU.Axpy(1, dy[:len(dx)], dx)
			} else {
				copy(dx, dy)
			}
		},
	}
	for _, s := range [][2]int{{1, 1}, {7, 33}, {33, 7}, {1000, 65}, {65, 1000}, {3, 12345}} {
		rows, n := s[0], s[1]
		x := randn(g, rows*n, 3)
		copy(x, special)
		dy := randn(g, rows*n, 1)
		for _, act := range []ops.Activation{ops.ActNone, ops.ActQuickGELU, ops.ActGELU} {
			for _, acc := range []bool{false, true} {
				for _, withBias := range []bool{true, false} {
					name := fmt.Sprintf("%dx%d %v acc=%v bias=%v", rows, n, act, acc, withBias)
					d0 := randn(g, rows*n, 1)
					wantDx, gotDx := clone(d0), clone(d0)
					if !acc {
						gotDx = nans(rows * n)
					}
					gr := make([]float32, rows*n)
					refBwd[act](gr, x, dy, false)
					refBwd[act](wantDx, x, dy, acc)
					var wantDb, gotDb []float32
					if withBias {
						db0 := randn(g, n, 1)
						wantDb, gotDb = clone(db0), clone(db0)
						ops.CPU.ColSumAcc(wantDb, gr)
					}
					b.BiasActBackward(gotDx, gotDb, x, dy, act, acc)
					expect(t, "bias-act-bwd", name, gotDx, wantDx, tolFP32)
					if withBias {
						var abs float64
						for _, v := range gr {
							if !math.IsInf(float64(v), 0) && !math.IsNaN(float64(v)) {
								abs = max(abs, math.Abs(float64(v)))
							}
						}
						expectScaled(t, "bias-act-bwd-dbias", name, gotDb, wantDb, tolFP32, float64(rows)*abs)
					}
				}
			}
			// dx aliasing dy (acc false).
			want := make([]float32, rows*n)
			refBwd[act](want, x, dy, false)
			got := clone(dy)
			b.BiasActBackward(got, nil, x, got, act, false)
			expect(t, "bias-act-bwd", fmt.Sprintf("%dx%d %v dx=dy", rows, n, act), got, want, tolFP32)
		}
	}
}

// param returns a tape parameter holding x.
func param(tp *ops.Tape, x []float32, shape ...int) *ops.Var {
	v, err := tensor.FromData(clone(x), shape...)
	if err != nil {
		panic(err)
	}
	return tp.Param(v, nil)
}

func TestInfoNCELogits(t *testing.T) {
	g := tensor.NewRNG(24)
	b := backend(t, BackendOptions{})
	for _, c := range []struct {
		N, D int
		s    float32
	}{{1, 3, 2.3}, {7, 5, 2.3}, {33, 16, 4}, {65, 8, 0.5}, {256, 32, 4.6}} {
		name := fmt.Sprintf("N%d D%d s%.1f", c.N, c.D, c.s)
		img, txt := randn(g, c.N*c.D, 0.5), randn(g, c.N*c.D, 0.5)
		// The CPU op, values and gradients.
		tp := ops.NewTape()
		vi, vt, vs := param(tp, img, c.N, c.D), param(tp, txt, c.N, c.D), param(tp, []float32{c.s}, 1)
		loss := ops.InfoNCE(tp, vi, vt, vs)
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		// The kernel path as the ops dispatch uses it: logits by GEMM,
		// InfoNCELogits, then the two gradient GEMMs.
		scale := float32(math.Exp(float64(c.s)))
		logits := nans(c.N * c.N)
		ops.CPU.Gemm(false, true, c.N, c.N, c.D, scale, img, c.D, txt, c.D, 0, logits, c.N)
		gotLoss, dS := nans(1), nans(1)
		l2 := clone(logits)
		b.InfoNCELogits(gotLoss, nil, l2, c.N) // value only: logits unchanged
		expect(t, "infonce-logits", name+" no grad: logits", l2, logits, 0)
		b.InfoNCELogits(gotLoss, dS, logits, c.N)
		expect(t, "infonce-loss", name, gotLoss, loss.Value.Data, tolFP32)
		gi, gt := make([]float32, c.N*c.D), make([]float32, c.N*c.D)
		ops.CPU.Gemm(false, false, c.N, c.D, c.N, scale, logits, c.N, txt, c.D, 0, gi, c.D)
		ops.CPU.Gemm(true, false, c.N, c.D, c.N, scale, logits, c.N, img, c.D, 0, gt, c.D)
		expect(t, "infonce-grad", name+" dImg", gi, vi.Grad.Data, tolFP32)
		expect(t, "infonce-grad", name+" dTxt", gt, vt.Grad.Data, tolFP32)
		expectScaled(t, "infonce-dscale", name, dS, vs.Grad.Data, tolFP32, 1)
	}
}

func TestSoftCrossEntropyKernel(t *testing.T) {
	g := tensor.NewRNG(25)
	b := backend(t, BackendOptions{})
	for _, c := range []struct {
		rows, m int
		temp    float32
	}{{1, 1, 1}, {7, 33, 2}, {33, 7, 0.5}, {65, 1000, 4}, {256, 256, 1}} {
		name := fmt.Sprintf("%dx%d T%.1f", c.rows, c.m, c.temp)
		s, te := randn(g, c.rows*c.m, 3), randn(g, c.rows*c.m, 3)
		tp := ops.NewTape()
		vs := param(tp, s, c.rows, c.m)
		tv, _ := tensor.FromData(clone(te), c.rows, c.m)
		loss := ops.SoftCrossEntropy(tp, vs, ops.Const(tv), c.temp)
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		gotLoss, grad := nans(1), nans(c.rows*c.m)
		b.SoftCrossEntropy(gotLoss, grad, s, te, c.m, c.temp)
		expect(t, "soft-ce-loss", name, gotLoss, loss.Value.Data, tolFP32)
		expect(t, "soft-ce-grad", name, grad, vs.Grad.Data, tolFP32)
		gotLoss2 := nans(1)
		b.SoftCrossEntropy(gotLoss2, nil, s, te, c.m, c.temp)
		expect(t, "soft-ce-loss-nograd-repeat", name, gotLoss2, gotLoss, 0)
	}
}

func TestMSEKernels(t *testing.T) {
	g := tensor.NewRNG(26)
	b := backend(t, BackendOptions{})
	for _, n := range awkward {
		name := fmt.Sprint("n", n)
		x, y := randn(g, n, 1), randn(g, n, 1)
		tp := ops.NewTape()
		va, vb := param(tp, x, n), param(tp, y, n)
		loss := ops.MSE(tp, va, vb)
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		gotLoss := nans(1)
		b.MSE(gotLoss, x, y)
		expect(t, "mse-loss", name, gotLoss, loss.Value.Data, tolFP32)
		// The backward is float32 element arithmetic: bit-identical.
		for _, acc := range []bool{false, true} {
			dy := []float32{0.75}
			a0, b0 := randn(g, n, 1), randn(g, n, 1)
			wa, wb := make([]float32, n), make([]float32, n)
			c := 2 * dy[0] / float32(n)
			for i := range x {
				wa[i], wb[i] = c*(x[i]-y[i]), -c*(x[i]-y[i])
				if acc {
					wa[i] += a0[i]
					wb[i] += b0[i]
				}
			}
			ga, gb := nans(n), nans(n)
			if acc {
				ga, gb = clone(a0), clone(b0)
			}
			b.MSEBackward(ga, gb, x, y, dy, acc, acc)
			expect(t, "mse-bwd", fmt.Sprint(name, " acc ", acc, " da"), ga, wa, 0)
			expect(t, "mse-bwd", fmt.Sprint(name, " acc ", acc, " db"), gb, wb, 0)
		}
		// With the tape's seed 1 the gradients equal the op's.
		ga, gb := nans(n), nans(n)
		b.MSEBackward(ga, gb, x, y, []float32{1}, false, false)
		expect(t, "mse-bwd", name+" vs ops.MSE", ga, va.Grad.Data, 0)
		expect(t, "mse-bwd", name+" vs ops.MSE", gb, vb.Grad.Data, 0)
	}
}

func TestFusedAdamW(t *testing.T) {
	b := backend(t, BackendOptions{})
	sizes := []int{1, 7, 33, 4096, 4097, 12345, 65, 1000}
	for _, c := range []struct {
		name    string
		maxNorm float64 // 0: no clipping
		gradStd float64
		nanStep int // step whose gradients hold a NaN (0: none)
	}{
		{"no clip", 0, 1, 0},
		{"clip inactive", 1e9, 1, 0},
		{"clipped", 1, 1, 0},
		{"non-finite norm skipped", 1, 1, 2},
	} {
		g := tensor.NewRNG(27)
		cfg := nn.DefaultAdamW()
		var ref, dv []*nn.Param
		for i, n := range sizes {
			p := nn.NewParam(fmt.Sprint("p", i), n)
			copy(p.Value.Data, randn(g, n, 1))
			p.NoDecay = i%3 == 1
			ref = append(ref, p)
			q := nn.NewParam(p.Name, n)
			copy(q.Value.Data, p.Value.Data)
			q.NoDecay = p.NoDecay
			dv = append(dv, q)
		}
		opt := nn.NewAdamW(ref, cfg)
		ms, vs := make([][]float32, len(sizes)), make([][]float32, len(sizes))
		for i, n := range sizes {
			ms[i], vs[i] = make([]float32, n), make([]float32, n)
		}
		step := 0
		for s := 1; s <= 3; s++ {
			lr := 1e-3 * float64(s)
			for i := range sizes {
				gr := randn(g, sizes[i], c.gradStd)
				if s == c.nanStep && i == 3 {
					gr[17] = float32(math.NaN())
				}
				copy(ref[i].Grad.Data, gr)
				copy(dv[i].Grad.Data, gr)
			}
			// CPU: the training loop's order (norm, skip, clip, step).
			norm := nn.GradNorm(ref)
			skip := math.IsNaN(norm) || math.IsInf(norm, 0)
			if !skip {
				if c.maxNorm > 0 {
					nn.ClipGradNorm(ref, c.maxNorm)
				}
				opt.Step(lr)
			}
			// Device: GradNormSq, then one AdamWStep reading the norm.
			normSq := nans(2)
			grads := make([][]float32, len(dv))
			for i, p := range dv {
				grads[i] = p.Grad.Data
			}
			b.GradNormSq(normSq, grads)
			gotNorm := ops.GradNormFromSq(normSq)
			if skip != (math.IsNaN(gotNorm) || math.IsInf(gotNorm, 0)) {
				t.Fatalf("%s step %d: norm %v, CPU %v", c.name, s, gotNorm, norm)
			}
			if !skip {
				if e := math.Abs(gotNorm-norm) / norm; e > 1e-12 {
					t.Errorf("%s step %d: norm %.17g, CPU %.17g (rel %.1e)", c.name, s, gotNorm, norm, e)
				}
				record("grad-norm", math.Abs(gotNorm-norm)/norm, 1e-12)
				step++
			}
			// The factors as a caller forms them (ops.NewAdamWConsts,
			// ops.AdamWDecay): the comparison below checks they are nn's.
			k := ops.NewAdamWConsts(cfg.Beta1, cfg.Beta2, cfg.Eps, lr, max(step, 1))
			ts := make([]ops.AdamWTensor, len(dv))
			for i, p := range dv {
				ts[i] = ops.AdamWTensor{P: p.Value.Data, G: p.Grad.Data, M: ms[i], V: vs[i], Decay: ops.AdamWDecay(lr, cfg.WeightDecay, p.NoDecay)}
			}
			var ns []float32
			if c.maxNorm > 0 || skip {
				ns = normSq
			}
			b.AdamWStep(ts, k, ns, c.maxNorm)
			for i := range sizes {
				rm, rv := opt.Moments(i)
				name := fmt.Sprintf("%s step %d tensor %d", c.name, s, i)
				expect(t, "adamw", name+" p", dv[i].Value.Data, ref[i].Value.Data, 0)
				expect(t, "adamw", name+" g", dv[i].Grad.Data, ref[i].Grad.Data, 0)
				expect(t, "adamw", name+" m", ms[i], rm, 0)
				expect(t, "adamw", name+" v", vs[i], rv, 0)
				if t.Failed() {
					t.FailNow()
				}
			}
		}
	}
	// No tensors: the norm is 0 and a step is a no-op.
	normSq := nans(2)
	b.GradNormSq(normSq, nil)
	if normSq[0] != 0 || normSq[1] != 0 {
		t.Errorf("GradNormSq of nothing = %v", normSq)
	}
	b.AdamWStep(nil, ops.AdamWConsts{}, normSq, 1)
}
