//go:build cuda

package cuda

import (
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/internal/testutil"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// The device tests: every kernel against the CPU reference (ops.CPU and
// package tensor) on fresh random inputs of awkward sizes, with outputs
// poisoned with NaN (on the host and, via PoisonOutputs, on the device)
// before the launch so that an unwritten element fails. Errors are
// normwise: max|got-want| / max|want| over the finite reference values (a
// NaN or Inf in the reference must be matched exactly), except reductions,
// measured against Σ|terms|. Bounds:
//
//	tolFP32 = 1e-5   every fp32 kernel, own SGEMM, cuBLAS with COMPUTE_32F,
//	                 CLIP embeddings fp32
//	tolTF32 = 2e-3   a single cuBLAS GEMM with COMPUTE_32F_FAST_TF32
//	tolCLIPTF32 = 1e-3  CLIP embeddings with every GEMM in TF32
//	tolGrad = 1e-4   parameter gradients of a whole transformer block
//	                 (several GEMMs and reductions deep)
//
// Every measured error is printed in a summary at the end of the run.
const (
	tolFP32     = 1e-5
	tolTF32     = 2e-3
	tolCLIPTF32 = 1e-3
	tolGrad     = 1e-4
)

var dev *Context

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run()) // listing needs no device
	}
	var err error
	dev, err = Open(Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cuda tests: cannot open a device: %v\n", err)
		os.Exit(1)
	}
	i := dev.Info()
	fmt.Printf("device: %s, cc %d.%d, %d SMs, %.0f MHz, driver %d, PTX %s, %.1f GiB\n", i.Name, i.Major, i.Minor, i.SMs,
		float64(i.ClockKHz)/1e3, i.DriverVersion, i.PTXArch, float64(i.TotalMemBytes)/(1<<30))
	fmt.Printf("peaks (nominal): fp32 %.1f TFLOP/s, tf32 %.1f TFLOP/s, DRAM %.0f GB/s\n", i.PeakFP32TFLOPS, i.PeakTF32TFLOPS, i.PeakBandwidthGBPerS)
	if dev.HasCublas() {
		fmt.Printf("cuBLAS: %s (version %d)\n", i.CublasPath, i.CublasVersion)
	} else {
		fmt.Printf("cuBLAS: not loaded (%v); cuBLAS and TF32 tests skip\n", CublasError())
	}
	code := m.Run()
	printErrorSummary()
	dev.Close()
	os.Exit(code)
}

// ---- error bookkeeping ----

var (
	errMu  sync.Mutex
	errMax = map[string]float64{}
	errTol = map[string]float64{}
)

func record(kernel string, e, tol float64) {
	errMu.Lock()
	defer errMu.Unlock()
	if e > errMax[kernel] || errMax[kernel] == 0 {
		errMax[kernel] = max(e, errMax[kernel])
	}
	errTol[kernel] = tol
}

func printErrorSummary() {
	if len(errMax) == 0 {
		return
	}
	var ks []string
	for k := range errMax {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	fmt.Println("ERRORS kernel  max-normwise-rel-error  bound")
	for _, k := range ks {
		fmt.Printf("ERRORS %-34s %.3e  %.0e\n", k, errMax[k], errTol[k])
	}
}

// relErr returns max|got-want| / max(scale, max|want|) over the finite
// entries of want; NaN/Inf entries of want must be equal in got (bad counts
// mismatches and non-finite got values).
func relErr(got, want []float32, scale float64) (e float64, bad int, firstBad int) {
	firstBad = -1
	var me, mw float64
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(w) || math.IsInf(w, 0) {
			if !(math.IsNaN(w) && math.IsNaN(g)) && g != w {
				bad++
				if firstBad < 0 {
					firstBad = i
				}
			}
			continue
		}
		if math.IsNaN(g) || math.IsInf(g, 0) {
			bad++
			if firstBad < 0 {
				firstBad = i
			}
			continue
		}
		me = max(me, math.Abs(g-w))
		mw = max(mw, math.Abs(w))
	}
	d := max(mw, scale)
	if d == 0 {
		return me, bad, firstBad
	}
	return me / d, bad, firstBad
}

// expect compares got with want under tol, records the error as kernel.
func expect(t *testing.T, kernel, what string, got, want []float32, tol float64) {
	t.Helper()
	expectScaled(t, kernel, what, got, want, tol, 0)
}

func expectScaled(t *testing.T, kernel, what string, got, want []float32, tol, scale float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s %s: %d values, want %d", kernel, what, len(got), len(want))
	}
	e, bad, fb := relErr(got, want, scale)
	record(kernel, e, tol)
	if bad > 0 {
		t.Errorf("%s %s: %d wrong non-finite values, first at %d: got %v want %v", kernel, what, bad, fb, got[fb], want[fb])
	}
	if !(e <= tol) {
		t.Errorf("%s %s: relative error %.3e > %.0e", kernel, what, e, tol)
	}
}

// ---- inputs ----

func randn(g *tensor.RNG, n int, std float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(g.NormFloat64() * std)
	}
	return x
}

func nans(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	return x
}

func clone(x []float32) []float32 { return append([]float32(nil), x...) }

func backend(t *testing.T, opt BackendOptions) *Backend {
	t.Helper()
	opt.PoisonOutputs = true
	b, err := NewBackend(dev, opt)
	if err != nil {
		t.Skipf("backend %+v: %v", opt, err)
	}
	t.Cleanup(b.Close)
	return b
}

// engines lists the GEMM configurations to test, with their bounds.
func engines() []struct {
	name string
	opt  BackendOptions
	tol  float64
} {
	return []struct {
		name string
		opt  BackendOptions
		tol  float64
	}{
		{"own-fp32", BackendOptions{Gemm: GemmOwn}, tolFP32},
		{"cublas-fp32", BackendOptions{Gemm: GemmCublas}, tolFP32},
		{"cublas-tf32", BackendOptions{Gemm: GemmCublas, Precision: TF32}, tolTF32},
	}
}

// ---- tests ----

func TestDeviceInfo(t *testing.T) {
	i := dev.Info()
	if i.Major < 8 || (i.PTXArch != "sm_80" && i.PTXArch != "sm_90") {
		t.Fatalf("info %+v", i)
	}
	if len(dev.fns) != len(kernelSigs) {
		t.Errorf("%d kernels loaded, %d in kernelSigs", len(dev.fns), len(kernelSigs))
	}
	free, total, err := shimMemInfo()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %.1f of %.1f GiB free", i.Name, float64(free)/(1<<30), float64(total)/(1<<30))
}

// TestArgsLayout checks the packed argument buffer against the CUDA ABI:
// every value at its natural alignment.
func TestArgsLayout(t *testing.T) {
	a := newArgs().i(1).p(2).f(3).i(4).i(5).q(6).f(7)
	want := []int32{0, 8, 16, 20, 24, 32, 40}
	if fmt.Sprint(a.offsets) != fmt.Sprint(want) || len(a.buf) != 44 || string(a.kinds) != "ipfiiqf" {
		t.Fatalf("offsets %v (want %v), %d bytes, kinds %q", a.offsets, want, len(a.buf), a.kinds)
	}
	if err := dev.launch("ew_add", dim3{1, 1, 1}, dim3{32, 1, 1}, 0, newArgs().p(0).p(0).q(0)); err == nil {
		t.Error("launch with a wrong signature accepted")
	}
}

func TestDeviceBuffer(t *testing.T) {
	g := tensor.NewRNG(1)
	x := randn(g, 1001, 1)
	b, err := dev.Alloc(1001)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	if err := b.Upload(x); err != nil {
		t.Fatal(err)
	}
	y := nans(1001)
	if err := b.Download(y); err != nil {
		t.Fatal(err)
	}
	for i := range x {
		if x[i] != y[i] {
			t.Fatalf("round trip [%d]: %v != %v", i, y[i], x[i])
		}
	}
	if err := b.Upload(make([]float32, 1002)); err == nil {
		t.Error("upload past the end accepted")
	}
	// Poisoning writes NaN.
	if err := dev.poison(b.ptr, 1001); err != nil {
		t.Fatal(err)
	}
	if err := b.Download(y); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(float64(y[1000])) {
		t.Errorf("poison left %v", y[1000])
	}
}

func TestGemm(t *testing.T) {
	g := tensor.NewRNG(2)
	shapes := [][3]int{{1, 1, 1}, {37, 53, 71}, {64, 64, 64}, {129, 65, 257}, {300, 7, 1000}, {5, 300, 3}}
	for _, eng := range engines() {
		t.Run(eng.name, func(t *testing.T) {
			b := backend(t, eng.opt)
			for _, s := range shapes {
				m, n, k := s[0], s[1], s[2]
				for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
					for _, ab := range [][2]float32{{1, 0}, {-0.7, 1}, {1.3, 0.5}} {
						ar, ac := m, k
						if tr[0] {
							ar, ac = k, m
						}
						br, bc := k, n
						if tr[1] {
							br, bc = n, k
						}
						lda, ldb, ldc := ac+3, bc, n+5
						a := randn(g, ar*lda, 1)
						bm := randn(g, br*ldb, 1)
						c0 := randn(g, m*ldc, 1)
						want := clone(c0)
						ops.CPU.Gemm(tr[0], tr[1], m, n, k, ab[0], a, lda, bm, ldb, ab[1], want, ldc)
						got := clone(c0)
						if ab[1] == 0 {
							// beta 0 must ignore C: poison the computed region.
							for i := 0; i < m; i++ {
								copy(got[i*ldc:i*ldc+n], nans(n))
							}
						}
						b.Gemm(tr[0], tr[1], m, n, k, ab[0], a, lda, bm, ldb, ab[1], got, ldc)
						// The gaps between rows (columns n..ldc) must be untouched.
						for i := 0; i < m; i++ {
							for j := n; j < ldc && i*ldc+j < len(got); j++ {
								if got[i*ldc+j] != c0[i*ldc+j] {
									t.Fatalf("gemm %v %v: wrote outside C at (%d,%d)", s, tr, i, j)
								}
							}
						}
						expect(t, "gemm/"+eng.name, fmt.Sprintf("m%d n%d k%d t%v ab%v", m, n, k, tr, ab), got, want, eng.tol)
					}
				}
			}
		})
	}
}

// TestGemmEpilogue checks the fused bias + activation epilogue (own kernel)
// and cuBLAS + bias_act, batched, against CPU Gemm, AddBias, activation.
func TestGemmEpilogue(t *testing.T) {
	g := tensor.NewRNG(3)
	const m, n, k, batch = 77, 130, 96, 3
	for _, eng := range []GemmEngine{GemmOwn, GemmCublas} {
		if eng == GemmCublas && !dev.HasCublas() {
			continue
		}
		for _, act := range []int{actNone, actQuickGELU, actGELU} {
			a, w, bias := randn(g, batch*m*k, 1), randn(g, batch*n*k, 0.3), randn(g, n, 1)
			want := make([]float32, batch*m*n)
			for z := 0; z < batch; z++ {
				cz := want[z*m*n : (z+1)*m*n]
				ops.CPU.Gemm(false, true, m, n, k, 1, a[z*m*k:], k, w[z*n*k:], k, 0, cz, n)
				tensor.AddBias(cz, bias)
				switch act {
				case actQuickGELU:
					tensor.QuickGELU(cz, cz)
				case actGELU:
					tensor.GELU(cz, cz)
				}
			}
			da, dw, db, dc := upload(t, a), upload(t, w), upload(t, bias), upload(t, nans(batch*m*n))
			err := dev.gemm(eng, FP32, gemmCall{transB: true, m: m, n: n, k: k, alpha: 1, a: da, lda: k, sa: int64(m * k),
				b: dw, ldb: k, sb: int64(n * k), c: dc, ldc: n, sc: int64(m * n), batch: batch, bias: db, act: act})
			if err != nil {
				t.Fatal(err)
			}
			expect(t, map[GemmEngine]string{GemmOwn: "gemm-epilogue/own", GemmCublas: "gemm-epilogue/cublas"}[eng], fmt.Sprintf("act %d", act), download(t, dc, batch*m*n), want, tolFP32)
		}
	}
}

func upload(t *testing.T, x []float32) devPtr {
	t.Helper()
	p, err := dev.alloc(4 * max(len(x), 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.free(p) })
	if err := shimHtoD(p, x); err != nil {
		t.Fatal(err)
	}
	return p
}

func download(t *testing.T, p devPtr, n int) []float32 {
	t.Helper()
	x := make([]float32, n)
	if err := shimDtoH(x, p); err != nil {
		t.Fatal(err)
	}
	return x
}

var awkward = []int{1, 7, 33, 1000, 12345, 1 << 20}

func TestElementwise(t *testing.T) {
	g := tensor.NewRNG(4)
	b := backend(t, BackendOptions{})
	for _, n := range awkward {
		x, y, z := randn(g, n, 1), randn(g, n, 1), randn(g, n, 1)
		name := fmt.Sprint("n", n)

		got, want := nans(n), make([]float32, n)
		b.Add(got, x, y)
		ops.CPU.Add(want, x, y)
		expect(t, "add", name, got, want, tolFP32)

		got = clone(x) // dst aliases a
		b.Add(got, got, y)
		expect(t, "add", name+" aliased", got, want, tolFP32)

		got, want = nans(n), make([]float32, n)
		b.Mul(got, x, y)
		ops.CPU.Mul(want, x, y)
		expect(t, "mul", name, got, want, tolFP32)

		got, want = clone(z), clone(z)
		b.MulAdd(got, x, y)
		ops.CPU.MulAdd(want, x, y)
		expect(t, "muladd", name, got, want, tolFP32)

		got, want = clone(z), clone(z)
		b.Axpy(-1.25, x, got)
		ops.CPU.Axpy(-1.25, x, want)
		expect(t, "axpy", name, got, want, tolFP32)

		got, want = clone(x), clone(x)
		b.Scale(0.3, got)
		ops.CPU.Scale(0.3, want)
		expect(t, "scale", name, got, want, tolFP32)

		for _, nb := range []int{1, 7, 33} {
			if n%nb != 0 {
				continue
			}
			bias := randn(g, nb, 1)
			got, want = clone(x), clone(x)
			b.AddBias(got, bias)
			ops.CPU.AddBias(want, bias)
			expect(t, "addbias", fmt.Sprint(name, " nb", nb), got, want, tolFP32)
		}
	}
}

func TestReductions(t *testing.T) {
	g := tensor.NewRNG(5)
	b := backend(t, BackendOptions{})
	for _, n := range awkward {
		x, y := randn(g, n, 1), randn(g, n, 1)
		var abs, sq float64
		for i := range x {
			abs += math.Abs(float64(x[i]) * float64(y[i]))
			sq += float64(x[i]) * float64(x[i])
		}
		expectScaled(t, "dot", fmt.Sprint("n", n), []float32{b.Dot(x, y)}, []float32{ops.CPU.Dot(x, y)}, tolFP32, abs)
		expectScaled(t, "sumsq", fmt.Sprint("n", n), []float32{b.SumSq(x)}, []float32{ops.CPU.SumSq(x)}, tolFP32, sq)
	}
	for _, s := range [][2]int{{1, 1}, {3, 7}, {1000, 33}, {12800, 768}, {5, 3000}} {
		rows, n := s[0], s[1]
		x := randn(g, rows*n+n/2, 1) // a partial row at the end is ignored
		d0 := randn(g, n, 1)
		got, want := clone(d0), clone(d0)
		b.ColSumAcc(got, x)
		ops.CPU.ColSumAcc(want, x)
		// Σ|terms| per column is about rows·0.8: scale by it.
		expectScaled(t, "colsum", fmt.Sprint(rows, "x", n), got, want, tolFP32, float64(rows)*0.8)
	}
}

func TestSoftmax(t *testing.T) {
	g := tensor.NewRNG(6)
	b := backend(t, BackendOptions{})
	inf := float32(math.Inf(-1))
	for _, s := range [][2]int{{1, 1}, {5, 7}, {64, 50}, {3, 1000}, {2, 32769}, {1000, 77}} {
		rows, n := s[0], s[1]
		x := randn(g, rows*n, 3)
		if n > 3 {
			x[1] = inf // masked entry
			if rows > 2 {
				for j := 0; j < n; j++ {
					x[2*n+j] = inf // a fully masked row: NaN
				}
			}
		}
		got, want := clone(x), clone(x)
		b.Softmax(got, n)
		ops.CPU.Softmax(want, n)
		name := fmt.Sprint(rows, "x", n)
		expect(t, "softmax", name, got, want, tolFP32)

		// Backward from a clean softmax output.
		y := randn(g, rows*n, 2)
		ops.CPU.Softmax(y, n)
		dy := randn(g, rows*n, 1)
		for _, acc := range []bool{false, true} {
			d0 := randn(g, rows*n, 1)
			got, want := clone(d0), clone(d0)
			if !acc {
				got = nans(rows * n)
			}
			b.SoftmaxBackward(got, y, dy, n, acc)
			ops.CPU.SoftmaxBackward(want, y, dy, n, acc)
			expect(t, "softmax-bwd", fmt.Sprint(name, " acc ", acc), got, want, tolFP32)
		}
		// dx aliasing dy.
		got, want = clone(dy), make([]float32, rows*n)
		b.SoftmaxBackward(got, y, got, n, false)
		ops.CPU.SoftmaxBackward(want, y, dy, n, false)
		expect(t, "softmax-bwd", name+" aliased", got, want, tolFP32)
	}
}

func TestLayerNorm(t *testing.T) {
	g := tensor.NewRNG(7)
	b := backend(t, BackendOptions{})
	for _, s := range [][2]int{{1, 1}, {3, 7}, {50, 768}, {7, 1000}, {1000, 64}, {2, 4099}} {
		rows, n := s[0], s[1]
		name := fmt.Sprint(rows, "x", n)
		x := randn(g, rows*n, 1)
		for i := 0; i < n; i++ { // a row with a large common offset
			x[i] += 1e4
		}
		gamma, beta := randn(g, n, 1), randn(g, n, 1)
		const eps = 1e-5
		want, wm, wr := make([]float32, rows*n), make([]float32, rows), make([]float32, rows)
		ops.CPU.LayerNorm(want, x, gamma, beta, n, eps, wm, wr)
		got, gm, gr := nans(rows*n), nans(rows), nans(rows)
		b.LayerNorm(got, x, gamma, beta, n, eps, gm, gr)
		expect(t, "layernorm", name, got, want, tolFP32)
		expect(t, "layernorm", name+" mean", gm, wm, tolFP32)
		expect(t, "layernorm", name+" rstd", gr, wr, tolFP32)
		got = clone(x) // in place, no statistics
		b.LayerNorm(got, got, gamma, beta, n, eps, nil, nil)
		expect(t, "layernorm", name+" in place", got, want, tolFP32)

		dy := randn(g, rows*n, 1)
		for _, acc := range []bool{false, true} {
			for _, params := range []bool{false, true} {
				dx0, dg0, db0 := randn(g, rows*n, 1), randn(g, n, 1), randn(g, n, 1)
				wdx, wdg, wdb := clone(dx0), clone(dg0), clone(db0)
				gdx, gdg, gdb := clone(dx0), clone(dg0), clone(db0)
				if !acc {
					gdx = nans(rows * n)
				}
				if !params {
					wdg, wdb, gdg, gdb = nil, nil, nil, nil
				}
				ops.CPU.LayerNormBackward(wdx, wdg, wdb, x, dy, gamma, wm, wr, n, acc)
				b.LayerNormBackward(gdx, gdg, gdb, x, dy, gamma, wm, wr, n, acc)
				what := fmt.Sprint(name, " acc ", acc, " params ", params)
				expect(t, "layernorm-bwd-dx", what, gdx, wdx, tolFP32)
				if params {
					// Column sums over rows: scale by Σ|terms| ~ rows.
					expectScaled(t, "layernorm-bwd-dgamma", what, gdg, wdg, tolFP32, float64(rows))
					expectScaled(t, "layernorm-bwd-dbeta", what, gdb, wdb, tolFP32, float64(rows))
				}
			}
		}
		// dx nil: parameter gradients only.
		wdg, gdg := make([]float32, n), make([]float32, n)
		ops.CPU.LayerNormBackward(nil, wdg, nil, x, dy, gamma, wm, wr, n, false)
		b.LayerNormBackward(nil, gdg, nil, x, dy, gamma, wm, wr, n, false)
		expectScaled(t, "layernorm-bwd-dgamma", name+" dx nil", gdg, wdg, tolFP32, float64(rows))
	}
}

// TestLayerNormFused checks ln_fwd's residual / bias / sum / strided-row
// variants (the VisionEncoder's uses) against tensor.AddLayerNorm.
func TestLayerNormFused(t *testing.T) {
	g := tensor.NewRNG(8)
	const rows, n, ld = 37, 768, 800
	x, r, bias := randn(g, rows*ld, 1), randn(g, rows*n, 1), randn(g, n, 1)
	gamma, beta := randn(g, n, 1), randn(g, n, 1)
	const eps = 1e-5
	// want: sum = x[rows at stride ld] + r + bias; out = LN(sum).
	xs := make([]float32, rows*n)
	for i := 0; i < rows; i++ {
		copy(xs[i*n:(i+1)*n], x[i*ld:i*ld+n])
	}
	rb := clone(r)
	tensor.AddBias(rb, bias)
	wantSum, wantOut := make([]float32, rows*n), make([]float32, rows*n)
	tensor.AddLayerNorm(wantSum, wantOut, xs, rb, gamma, beta, n, eps)

	dx, dr, dbias := upload(t, x), upload(t, r), upload(t, bias)
	dg, db := upload(t, gamma), upload(t, beta)
	dsum, dout := upload(t, nans(rows*n)), upload(t, nans(rows*n))
	if err := dev.lnFwd(dx, ld, dr, n, dbias, dsum, n, dout, n, dg, db, 0, 0, rows, n, eps); err != nil {
		t.Fatal(err)
	}
	expect(t, "layernorm-fused", "sum", download(t, dsum, rows*n), wantSum, tolFP32)
	expect(t, "layernorm-fused", "out", download(t, dout, rows*n), wantOut, tolFP32)
}

func TestActivations(t *testing.T) {
	g := tensor.NewRNG(9)
	b := backend(t, BackendOptions{})
	// -Inf is checked apart: the CPU variants differ there (the generic one
	// gives NaN, as package tensor documents, the AVX ones -0).
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 20, -20, 88, -88, 1e-30, -1e-30,
		float32(math.Inf(1)), 3.4e38, -3.4e38}
	ninf := []float32{float32(math.Inf(-1))}
	for _, f := range []func(dst, x []float32){b.GELU, b.QuickGELU} {
		y := []float32{0}
		f(y, ninf)
		if !math.IsNaN(float64(y[0])) {
			t.Errorf("activation(-Inf) = %v, want NaN (package tensor's definition)", y[0])
		}
	}
	for _, n := range awkward {
		x := randn(g, n, 3)
		copy(x, special)
		dy := randn(g, n, 1)
		name := fmt.Sprint("n", n)
		type actCase struct {
			name     string
			fwd, ref func(dst, x []float32)
			bwd, rb  func(dx, x, dy []float32, acc bool)
		}
		for _, c := range []actCase{
			{"gelu", b.GELU, ops.CPU.GELU, b.GELUBackward, ops.CPU.GELUBackward},
			{"quickgelu", b.QuickGELU, ops.CPU.QuickGELU, b.QuickGELUBackward, ops.CPU.QuickGELUBackward},
		} {
			got, want := nans(n), make([]float32, n)
			c.fwd(got, x)
			c.ref(want, x)
			expect(t, c.name, name, got, want, tolFP32)
			for _, acc := range []bool{false, true} {
				d0 := randn(g, n, 1)
				got, want := clone(d0), clone(d0)
				if !acc {
					got = nans(n)
				}
				c.bwd(got, x, dy, acc)
				c.rb(want, x, dy, acc)
				expect(t, c.name+"-bwd", fmt.Sprint(name, " acc ", acc), got, want, tolFP32)
			}
		}
	}
}

type attnCase struct {
	B, T, H, D int
	causal     bool
	keyLens    []int
	keep       []bool
}

func (c attnCase) String() string {
	return fmt.Sprintf("B%d T%d H%d D%d causal=%v lens=%v keep=%v", c.B, c.T, c.H, c.D, c.causal, c.keyLens, c.keep)
}

func (c attnCase) args() *ops.AttnArgs {
	return &ops.AttnArgs{B: c.B, T: c.T, H: c.H, D: c.D, Causal: c.causal, KeyLens: c.keyLens, HeadKeep: c.keep,
		Scale: float32(1 / math.Sqrt(float64(c.D)))}
}

var attnCases = []attnCase{
	{B: 1, T: 1, H: 1, D: 1},
	{B: 2, T: 7, H: 3, D: 12},
	{B: 3, T: 50, H: 4, D: 64},
	{B: 3, T: 50, H: 4, D: 64, causal: true},
	{B: 3, T: 50, H: 4, D: 64, keyLens: []int{0, 50, 5}},
	{B: 3, T: 50, H: 4, D: 64, causal: true, keyLens: []int{17, 1, 50}, keep: []bool{true, false, true, false}},
	{B: 2, T: 77, H: 8, D: 64, causal: true, keep: []bool{false, false, false, false, false, false, false, false}},
	{B: 2, T: 65, H: 2, D: 16},
	{B: 2, T: 70, H: 3, D: 32, keep: []bool{false, true, true}},
	{B: 2, T: 33, H: 2, D: 80, keyLens: []int{33, 32}},
	{B: 1, T: 129, H: 2, D: 128, causal: true},
	{B: 2, T: 20, H: 2, D: 160, keep: []bool{true, false}}, // above 128: materialising path only
	{B: 1, T: 300, H: 1, D: 64, keyLens: []int{257}},
}

func TestAttentionForward(t *testing.T) {
	g := tensor.NewRNG(10)
	b := backend(t, BackendOptions{})
	for _, c := range attnCases {
		a := c.args()
		n := c.B * c.T * c.H * c.D
		q, k, v := randn(g, n, 1), randn(g, n, 1), randn(g, n, 1)
		want, wp := make([]float32, n), make([]float32, ops.AttnProbsLen(a))
		ops.CPU.AttentionForward(a, q, k, v, want, wp)
		// Fused (no probabilities).
		got := nans(n)
		b.AttentionForward(a, q, k, v, got, nil)
		kern := "attention-flash"
		if flashDMax(c.D) == 0 {
			kern = "attention-naive"
		}
		expect(t, kern, c.String(), got, want, tolFP32)
		// Materialising (probabilities kept for backward).
		got, gp := nans(n), nans(len(wp))
		b.AttentionForward(a, q, k, v, got, gp)
		expect(t, "attention-naive", c.String(), got, want, tolFP32)
		expect(t, "attention-probs", c.String(), gp, wp, tolFP32)
	}
}

// TestAttentionFusedLayout runs the flash kernel on q, k, v that are column
// blocks of one [B·T, 3·H·D] buffer (the VisionEncoder's fused QKV GEMM).
func TestAttentionFusedLayout(t *testing.T) {
	g := tensor.NewRNG(11)
	for _, c := range []attnCase{{B: 3, T: 50, H: 12, D: 64}, {B: 2, T: 37, H: 5, D: 48, keep: []bool{true, false, true, true, false}}} {
		a := c.args()
		inner := c.H * c.D
		rows := c.B * c.T
		qkv := randn(g, rows*3*inner, 1)
		q, k, v := make([]float32, rows*inner), make([]float32, rows*inner), make([]float32, rows*inner)
		for r := 0; r < rows; r++ {
			copy(q[r*inner:], qkv[r*3*inner:r*3*inner+inner])
			copy(k[r*inner:], qkv[r*3*inner+inner:r*3*inner+2*inner])
			copy(v[r*inner:], qkv[r*3*inner+2*inner:r*3*inner+3*inner])
		}
		want := make([]float32, rows*inner)
		ops.CPU.AttentionForward(a, q, k, v, want, nil)
		_, keep, _, _ := attnMasks(a)
		var dkeep devPtr
		if keep != nil {
			var err error
			if dkeep, err = dev.uploadInts(keep); err != nil {
				t.Fatal(err)
			}
			defer dev.free(dkeep)
		}
		d := upload(t, qkv)
		out := upload(t, nans(rows*inner))
		geo := &attnGeom{B: c.B, T: c.T, H: c.H, D: c.D, ldq: 3 * inner, ldk: 3 * inner, ldv: 3 * inner, ldo: inner, scale: a.Scale, headKeep: dkeep}
		if err := dev.attnFlash(geo, d, d+devPtr(4*inner), d+devPtr(8*inner), out); err != nil {
			t.Fatal(err)
		}
		expect(t, "attention-flash", "fused "+c.String(), download(t, out, rows*inner), want, tolFP32)
	}
}

func TestAttentionBackward(t *testing.T) {
	g := tensor.NewRNG(12)
	b := backend(t, BackendOptions{})
	for _, c := range attnCases {
		a := c.args()
		n := c.B * c.T * c.H * c.D
		q, k, v := randn(g, n, 1), randn(g, n, 1), randn(g, n, 1)
		probs := make([]float32, ops.AttnProbsLen(a))
		ops.CPU.AttentionForward(a, q, k, v, make([]float32, n), probs)
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
			b.AttentionBackward(a, q, k, v, probs, dOut, got[0], got[1], got[2], beta, beta, beta)
			for i, name := range []string{"dq", "dk", "dv"} {
				expect(t, "attention-bwd-"+name, fmt.Sprint(c, " beta ", beta), got[i], want[i], tolFP32)
			}
		}
		// One buffer for all three (q = k = v in the caller): dv written,
		// then dq and dk added, as ops.Attention asks.
		want, got := make([]float32, n), nans(n)
		ops.CPU.AttentionBackward(a, q, k, v, probs, dOut, want, want, want, 1, 1, 0)
		b.AttentionBackward(a, q, k, v, probs, dOut, got, got, got, 1, 1, 0)
		expect(t, "attention-bwd-aliased", c.String(), got, want, tolFP32)
		// Only dv.
		want, got = make([]float32, n), nans(n)
		ops.CPU.AttentionBackward(a, q, k, v, probs, dOut, nil, nil, want, 0, 0, 0)
		b.AttentionBackward(a, q, k, v, probs, dOut, nil, nil, got, 0, 0, 0)
		expect(t, "attention-bwd-dv", c.String()+" dv only", got, want, tolFP32)
	}
}

func TestVisionInputKernels(t *testing.T) {
	g := tensor.NewRNG(13)
	const B, Cin, H, W, P, C = 3, 3, 40, 24, 8, 17
	pix := randn(g, B*Cin*H*W, 1)
	gh, gw := H/P, W/P
	N, K := gh*gw, Cin*P*P
	want := make([]float32, B*N*K)
	for b := 0; b < B; b++ {
		for py := 0; py < gh; py++ {
			for px := 0; px < gw; px++ {
				for c := 0; c < Cin; c++ {
					for ky := 0; ky < P; ky++ {
						for kx := 0; kx < P; kx++ {
							want[(b*N+py*gw+px)*K+(c*P+ky)*P+kx] = pix[((b*Cin+c)*H+py*P+ky)*W+px*P+kx]
						}
					}
				}
			}
		}
	}
	dp, dc := upload(t, pix), upload(t, nans(B*N*K))
	if err := dev.patchUnfold(dc, dp, B, Cin, H, W, P); err != nil {
		t.Fatal(err)
	}
	expect(t, "patch-unfold", "", download(t, dc, B*N*K), want, 0)

	// Patch embedding through the GEMM matches ops.PatchEmbed.
	w := randn(g, C*K, 0.1)
	ref := ops.PatchEmbed(nil, ops.Const(testutil.MustTensor(pix, B, Cin, H, W)), ops.Const(testutil.MustTensor(w, C, Cin, P, P)), P).Value.Data
	dw, dpatch := upload(t, w), upload(t, nans(B*N*C))
	if err := dev.gemm(GemmOwn, FP32, gemmCall{transB: true, m: B * N, n: C, k: K, alpha: 1, a: dc, lda: K, b: dw, ldb: K, c: dpatch, ldc: C}); err != nil {
		t.Fatal(err)
	}
	expect(t, "patch-embed", "", download(t, dpatch, B*N*C), ref, tolFP32)

	// vit_embed = PrependToken + position embedding.
	T := N + 1
	cls, pos := randn(g, C, 1), randn(g, T*C, 1)
	x := ops.PrependToken(nil, ops.Const(testutil.MustTensor(ref, B, N, C)), ops.Const(testutil.MustTensor(cls, C))).Value.Data
	for b := 0; b < B; b++ {
		tensor.Add(x[b*T*C:(b+1)*T*C], x[b*T*C:(b+1)*T*C], pos)
	}
	dcls, dpos, dx := upload(t, cls), upload(t, pos), upload(t, nans(B*T*C))
	if err := dev.vitEmbed(dx, dpatch, dcls, dpos, B, T, C); err != nil {
		t.Fatal(err)
	}
	expect(t, "vit-embed", "", download(t, dx, B*T*C), x, tolFP32)
}

// withBackend runs f with ops' backend set to be, restoring the CPU one.
func withBackend(be ops.Backend, f func()) {
	prev := ops.CurrentBackend()
	ops.SetBackend(be)
	defer ops.SetBackend(prev)
	f()
}

// TestTransformerBlockOps runs a whole pre-LN block forward and backward
// through ops with the CUDA backend and with the CPU backend.
func TestTransformerBlockOps(t *testing.T) {
	cases := []struct {
		name string
		act  nn.Activation
		mask nn.AttnMask
		keep []bool
	}{
		{"vision", nn.ActQuickGELU, nn.AttnMask{}, nil},
		{"text-causal-pruned", nn.ActGELU, nn.AttnMask{Causal: true, KeyLens: []int{9, 13}}, []bool{true, false, true, true}},
	}
	for _, eng := range engines()[:2] {
		for _, tc := range cases {
			t.Run(eng.name+"/"+tc.name, func(t *testing.T) {
				be := backend(t, eng.opt)
				const B, T, C, H, D, hidden = 2, 13, 64, 4, 16, 150
				rng := tensor.NewRNG(14)
				blk := nn.NewBlock("blk", nn.BlockConfig{Width: C, Heads: H, HeadDim: D, Hidden: hidden, Act: tc.act, Eps: 1e-5},
					nn.InitCLIP(C, 2), rng)
				blk.SelfAttn.HeadKeep = tc.keep
				x0 := randn(rng, B*T*C, 1)
				r := randn(rng, B*T*C, 1)
				run := func() (out, dx []float32, grads [][]float32) {
					params := blk.Params()
					nn.ZeroGrads(params)
					tp := ops.NewTape()
					x := tp.Param(testutil.MustTensor(clone(x0), B*T, C), nil)
					y := blk.Forward(tp, x, B, T, tc.mask)
					loss := ops.Sum(tp, ops.Mul(tp, y, ops.Const(testutil.MustTensor(r, B*T, C))))
					if err := tp.Backward(loss); err != nil {
						t.Fatal(err)
					}
					for _, p := range params {
						grads = append(grads, clone(p.Grad.Data))
					}
					return clone(y.Value.Data), clone(x.Grad.Data), grads
				}
				wo, wdx, wg := run()
				var go_, gdx []float32
				var gg [][]float32
				withBackend(be, func() { go_, gdx, gg = run() })
				expect(t, "block-fwd/"+eng.name, tc.name, go_, wo, eng.tol)
				expect(t, "block-bwd-dx/"+eng.name, tc.name, gdx, wdx, tolGrad)
				// Normwise over all parameter gradients: some are zero up to
				// rounding (k_proj.bias: softmax ignores a shift of every
				// score of a row), so each is measured against the largest.
				var gmax float64
				for _, w := range wg {
					for _, v := range w {
						gmax = max(gmax, math.Abs(float64(v)))
					}
				}
				for i, p := range blk.Params() {
					expectScaled(t, "block-bwd-params/"+eng.name, tc.name+" "+p.Name, gg[i], wg[i], tolGrad, gmax)
				}
			})
		}
	}
}

func randomPixels(cfg *clip.Config, B int, seed uint64) []float32 {
	v := cfg.Vision
	return randn(tensor.NewRNG(seed), B*3*v.ImageSize*v.ImageSize, 1)
}

func cpuEmbeddings(m *clip.Model, pixels []float32, B int) []float32 {
	S := m.Config.Vision.ImageSize
	return m.EncodeImage(nil, ops.Const(testutil.MustTensor(clone(pixels), B, 3, S, S))).Value.Data
}

// prunedConfig halves the heads and the MLP width of every layer of a preset.
func prunedConfig(t testing.TB, name string) *clip.Config {
	cfg, err := clip.Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	v := &cfg.Vision
	v.LayerHeads = make([]int, v.NumHiddenLayers)
	v.LayerIntermediate = make([]int, v.NumHiddenLayers)
	for l := range v.LayerHeads {
		v.LayerHeads[l] = v.NumAttentionHeads / 2
		v.LayerIntermediate[l] = v.IntermediateSize / 2
	}
	return cfg
}

// pruneEdit drops heads in one layer, skips one, removes an MLP and an
// attention branch elsewhere (as far as the depth allows).
func pruneEdit(m *clip.Model) {
	enc := m.Vision.Encoder
	L := len(enc.Layers)
	a := enc.Layers[1%L].SelfAttn
	a.HeadKeep = make([]bool, a.Heads)
	for h := range a.HeadKeep {
		a.HeadKeep[h] = h%3 != 1
	}
	enc.Skip = make([]bool, L)
	if L >= 3 {
		enc.Skip[L/2] = true
	}
	enc.Layers[(L-1+L)%L].MLP = nil
	if L >= 4 {
		enc.Layers[L-2].SelfAttn = nil
	}
}

// modelCase is one model an encoder test runs: a config and an edit of the
// built model (nil: none).
type modelCase struct {
	name string
	cfg  *clip.Config
	edit func(*clip.Model)
}

// towerCases are the models an encoder test runs for one tower: ViT-B/32
// dense and pruned (pruned builds the pruned config, edit edits the model)
// on a device; the tiny preset cut to 4 layers in the emulator (same code
// paths, a thousandth of the arithmetic), whose pruned layers get 2 heads
// and mlp neurons. tower picks the tower config to cut.
func towerCases(t *testing.T, tower func(*clip.Config) *clip.TowerConfig, pruned func(testing.TB, string) *clip.Config,
	edit func(*clip.Model), mlp int) []modelCase {
	name := "ViT-B/32"
	if emulated {
		name = "tiny"
	}
	dense, err := clip.Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	pc := pruned(t, name)
	if emulated {
		for _, c := range []*clip.Config{dense, pc} {
			tc := tower(c)
			tc.NumHiddenLayers = 4
			if len(tc.LayerHeads) > 0 {
				tc.LayerHeads = []int{2, 2, 2, 2}
				tc.LayerIntermediate = []int{mlp, mlp, mlp, mlp}
			}
		}
	}
	return []modelCase{{name, dense, nil}, {name + "-pruned", pc, edit}}
}

// visionCases are the models TestVisionEncoder runs.
func visionCases(t *testing.T) []modelCase {
	return towerCases(t, func(c *clip.Config) *clip.TowerConfig { return &c.Vision }, prunedConfig, pruneEdit, 128)
}

// TestVisionEncoder compares the device-resident encoder with the CPU
// model, dense and pruned (halved heads and MLP, plus a dropped-head mask, a
// skipped layer and removed branches), fp32 on both GEMM engines, and TF32.
func TestVisionEncoder(t *testing.T) {
	for _, mc := range visionCases(t) {
		m, err := clip.New(mc.cfg, 21)
		if err != nil {
			t.Fatal(err)
		}
		if mc.edit != nil {
			mc.edit(m)
		}
		const B = 3
		pixels := randomPixels(mc.cfg, B, 22)
		want := cpuEmbeddings(m, pixels, B)
		for _, eo := range []struct {
			name string
			opt  EncoderOptions
			tol  float64
		}{
			{"own-fp32", EncoderOptions{Gemm: GemmOwn, MaxBatch: 4}, tolFP32},
			{"cublas-fp32", EncoderOptions{Gemm: GemmCublas, MaxBatch: 4}, tolFP32},
			{"cublas-tf32", EncoderOptions{Gemm: GemmCublas, Precision: TF32, MaxBatch: 4}, tolCLIPTF32},
		} {
			t.Run(strings.ReplaceAll(mc.name, "/", "")+"/"+eo.name, func(t *testing.T) {
				if eo.opt.Gemm == GemmCublas && !dev.HasCublas() {
					t.Skip("no cuBLAS")
				}
				enc, err := NewVisionEncoder(dev, m, eo.opt)
				if err != nil {
					t.Fatal(err)
				}
				defer enc.Close()
				got, err := enc.EncodeImage(pixels, B)
				if err != nil {
					t.Fatal(err)
				}
				expect(t, "clip-vision/"+eo.name, mc.name, got, want, eo.tol)
				// A smaller batch reuses the buffers.
				got1, err := enc.EncodeImage(pixels[:len(pixels)/B], 1)
				if err != nil {
					t.Fatal(err)
				}
				expect(t, "clip-vision/"+eo.name, mc.name+" B=1", got1, want[:len(want)/B], eo.tol)
			})
		}
	}
}

// TestModelThroughBackend runs the tiny CLIP image and text towers through
// ops with the CUDA backend (pinned weights) against the CPU backend.
func TestModelThroughBackend(t *testing.T) {
	cfg, err := clip.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := clip.New(cfg, 23)
	if err != nil {
		t.Fatal(err)
	}
	const B = 2
	pixels := randomPixels(cfg, B, 24)
	want := cpuEmbeddings(m, pixels, B)
	ids := make([]int, B*cfg.Text.MaxPositionEmbeddings)
	g := tensor.NewRNG(25)
	for i := range ids {
		ids[i] = g.IntN(cfg.Text.VocabSize)
	}
	batch := &clip.TextBatch{IDs: ids, B: B, T: cfg.Text.MaxPositionEmbeddings,
		EOTPos: clip.EOTPositions(ids, B, cfg.Text.MaxPositionEmbeddings, cfg.Text.EOSTokenID)}
	wantText := clone(m.EncodeText(nil, batch).Value.Data)
	be := backend(t, BackendOptions{})
	var vals [][]float32
	for _, p := range m.Params() {
		vals = append(vals, p.Value.Data)
	}
	if err := be.Pin(vals...); err != nil {
		t.Fatal(err)
	}
	var got, gotText []float32
	withBackend(be, func() {
		got = clone(cpuEmbeddings(m, pixels, B))
		gotText = clone(m.EncodeText(nil, batch).Value.Data)
	})
	expect(t, "clip-through-backend", "image", got, want, tolFP32)
	expect(t, "clip-through-backend", "text", gotText, wantText, tolFP32)
	if !strings.HasPrefix(be.Name(), "cuda") {
		t.Error(be.Name())
	}
}

// randomTexts makes B tokenised texts of the given lengths (SOT, random
// ids, EOT; zero padding after) in rows of T tokens, with the EOT positions
// of the config's rule.
func randomTexts(cfg *clip.Config, lens []int, T int, seed uint64) *clip.TextBatch {
	tc := cfg.Text
	g := tensor.NewRNG(seed)
	B := len(lens)
	ids := make([]int, B*T)
	for b, L := range lens {
		row := ids[b*T : (b+1)*T]
		row[0] = tc.BOSTokenID
		for j := 1; j < L-1; j++ {
			row[j] = 3 + g.IntN(min(tc.BOSTokenID, tc.EOSTokenID)-3)
		}
		row[L-1] = tc.EOSTokenID
	}
	return &clip.TextBatch{IDs: ids, B: B, T: T, EOTPos: clip.EOTPositions(ids, B, T, tc.EOSTokenID)}
}

// textPrunedConfig halves the heads and the MLP width of every text layer
// and switches the activation to GELU (erf).
func textPrunedConfig(t testing.TB, name string) *clip.Config {
	cfg, err := clip.Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	tc := &cfg.Text
	tc.HiddenAct = "gelu"
	tc.LayerHeads = make([]int, tc.NumHiddenLayers)
	tc.LayerIntermediate = make([]int, tc.NumHiddenLayers)
	for l := range tc.LayerHeads {
		tc.LayerHeads[l] = tc.NumAttentionHeads / 2
		tc.LayerIntermediate[l] = tc.IntermediateSize / 2
	}
	return cfg
}

// textPruneEdit applies pruneEdit's dropped heads, skipped layer and removed
// branches to the text tower.
func textPruneEdit(m *clip.Model) {
	v := m.Vision.Encoder
	m.Vision.Encoder = m.Text.Encoder
	pruneEdit(m)
	m.Vision.Encoder = v
}

// textCases are the models TestTextEncoder runs (the text tower).
func textCases(t *testing.T) []modelCase {
	return towerCases(t, func(c *clip.Config) *clip.TowerConfig { return &c.Text }, textPrunedConfig, textPruneEdit, 96)
}

// TestTextEncoder compares the device-resident text encoder with the CPU
// model (clip.Model.EncodeText), dense and pruned (halved heads and MLP,
// GELU, a dropped-head mask, a skipped layer, removed branches), fp32 on
// both GEMM engines and TF32, on texts of different lengths in a batch cut
// to its longest text and in one padded to the full context.
func TestTextEncoder(t *testing.T) {
	for _, mc := range textCases(t) {
		m, err := clip.New(mc.cfg, 31)
		if err != nil {
			t.Fatal(err)
		}
		if mc.edit != nil {
			mc.edit(m)
		}
		ctx := mc.cfg.Text.MaxPositionEmbeddings
		lens := []int{7, 20, 2}
		batches := []*clip.TextBatch{randomTexts(mc.cfg, lens, 20, 32), randomTexts(mc.cfg, lens, ctx, 32),
			randomTexts(mc.cfg, []int{ctx}, ctx, 33)}
		var wants [][]float32
		for _, b := range batches {
			if err := m.Text.Check(b); err != nil {
				t.Fatal(err)
			}
			wants = append(wants, clone(m.EncodeText(nil, b).Value.Data))
		}
		for _, eo := range []struct {
			name string
			opt  EncoderOptions
			tol  float64
		}{
			{"own-fp32", EncoderOptions{Gemm: GemmOwn, MaxBatch: 4}, tolFP32},
			{"cublas-fp32", EncoderOptions{Gemm: GemmCublas, MaxBatch: 4}, tolFP32},
			{"cublas-tf32", EncoderOptions{Gemm: GemmCublas, Precision: TF32, MaxBatch: 4}, tolCLIPTF32},
		} {
			t.Run(strings.ReplaceAll(mc.name, "/", "")+"/"+eo.name, func(t *testing.T) {
				if eo.opt.Gemm == GemmCublas && !dev.HasCublas() {
					t.Skip("no cuBLAS")
				}
				enc, err := NewTextEncoder(dev, m, eo.opt)
				if err != nil {
					t.Fatal(err)
				}
				defer enc.Close()
				for i, b := range batches {
					got, err := enc.EncodeText(b)
					if err != nil {
						t.Fatal(err)
					}
					expect(t, "clip-text/"+eo.name, fmt.Sprintf("%s B=%d T=%d", mc.name, b.B, b.T), got, wants[i], eo.tol)
				}
			})
		}
	}
}

// TestTextEncoderErrors checks that bad batches are refused before any
// device work, and that a refused Upload invalidates the previous one.
func TestTextEncoderErrors(t *testing.T) {
	cfg, err := clip.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := clip.New(cfg, 34)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := NewTextEncoder(dev, m, EncoderOptions{Gemm: GemmOwn, MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	if enc.MaxBatch() != 2 || enc.Ctx != 77 || enc.V != cfg.Text.VocabSize {
		t.Fatalf("MaxBatch %d, Ctx %d, V %d", enc.MaxBatch(), enc.Ctx, enc.V)
	}
	good := randomTexts(cfg, []int{5, 3}, 6, 35)
	bad := func(edit func(b *clip.TextBatch)) *clip.TextBatch {
		b := &clip.TextBatch{IDs: clone32(good.IDs), EOTPos: append([]int(nil), good.EOTPos...), B: good.B, T: good.T}
		edit(b)
		return b
	}
	for name, b := range map[string]*clip.TextBatch{
		"nil":           nil,
		"id-negative":   bad(func(b *clip.TextBatch) { b.IDs[3] = -1 }),
		"id-vocab":      bad(func(b *clip.TextBatch) { b.IDs[7] = cfg.Text.VocabSize }),
		"eot-negative":  bad(func(b *clip.TextBatch) { b.EOTPos[1] = -1 }),
		"eot-past-T":    bad(func(b *clip.TextBatch) { b.EOTPos[0] = b.T }),
		"short-ids":     bad(func(b *clip.TextBatch) { b.IDs = b.IDs[:len(b.IDs)-1] }),
		"batch-too-big": randomTexts(cfg, []int{2, 2, 2}, 2, 36),
		"T-past-ctx":    randomTexts(cfg, []int{78}, 78, 37),
	} {
		if err := enc.Upload(good); err != nil {
			t.Fatal(err)
		}
		if _, err := enc.EncodeText(b); err == nil {
			t.Errorf("%s: no error", name)
		}
		if err := enc.Forward(good.B, good.T); err == nil {
			t.Errorf("%s: Forward after a refused Upload did not fail", name)
		}
	}
	if err := enc.Upload(good); err != nil {
		t.Fatal(err)
	}
	if err := enc.Forward(good.B, good.T+1); err == nil {
		t.Error("Forward with another T than the Upload did not fail")
	}
	if err := enc.Download(make([]float32, 3), good.B); err == nil {
		t.Error("Download into a short slice did not fail")
	}
	var nilEnc *TextEncoder
	if err := nilEnc.Close(); err != nil {
		t.Error(err)
	}
}

func clone32(x []int) []int { return append([]int(nil), x...) }

// TestTextInputKernels checks text_embed and gather_rows against plain
// loops at awkward sizes, with NaN-poisoned outputs and, for the gather,
// padded row strides whose gaps must stay untouched.
func TestTextInputKernels(t *testing.T) {
	g := tensor.NewRNG(38)
	for _, sz := range []struct{ B, T, C, V int }{{1, 1, 1, 1}, {3, 7, 33, 50}, {2, 77, 65, 1000}} {
		B, T, C, V := sz.B, sz.T, sz.C, sz.V
		tok, pos := randn(g, V*C, 1), randn(g, (T+3)*C, 1)
		ids := make([]int32, B*T)
		want := make([]float32, B*T*C)
		for i := range ids {
			ids[i] = int32(g.IntN(V))
			for c := 0; c < C; c++ {
				want[i*C+c] = tok[int(ids[i])*C+c] + pos[(i%T)*C+c]
			}
		}
		dids, err := dev.uploadInts(ids)
		if err != nil {
			t.Fatal(err)
		}
		dtok, dpos, dx := upload(t, tok), upload(t, pos), upload(t, nans(B*T*C))
		if err := dev.textEmbed(dx, dids, dtok, dpos, B, T, C); err != nil {
			t.Fatal(err)
		}
		expect(t, "text-embed", fmt.Sprint(sz), download(t, dx, B*T*C), want, 0)
		dev.free(dids)

		// Gather rows (lds = C+2, ldd = C+5) of a [B·T, C+2] source.
		rows, lds, ldd := B+2, C+2, C+5
		src := randn(g, B*T*lds, 1)
		idx := make([]int32, rows)
		dst := make([]float32, rows*ldd)
		for i := range dst {
			dst[i] = 7 // the gaps must keep it
		}
		wantG := clone(dst)
		for r := range idx {
			idx[r] = int32(g.IntN(B * T))
			copy(wantG[r*ldd:r*ldd+C], src[int(idx[r])*lds:int(idx[r])*lds+C])
			for j := 0; j < C; j++ {
				dst[r*ldd+j] = float32(math.NaN())
			}
		}
		didx, err := dev.uploadInts(idx)
		if err != nil {
			t.Fatal(err)
		}
		dsrc, ddst := upload(t, src), upload(t, dst)
		if err := dev.gatherRows(ddst, ldd, dsrc, lds, didx, rows, C); err != nil {
			t.Fatal(err)
		}
		expect(t, "gather-rows", fmt.Sprint(sz), download(t, ddst, rows*ldd), wantG, 0)
		dev.free(didx)
	}
}
