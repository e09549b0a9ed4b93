package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// Tests of the vector kernels. Every test runs once per registered variant
// (generic plus whatever this CPU and build have), compares against float64
// references with the error bound stated next to each check, and surrounds
// every output with guard values to catch out-of-bounds writes.

const vecEps = 1.0 / (1 << 24) // unit roundoff of float32

var vecSizes = []int{0, 1, 7, 15, 16, 17, 33, 65, 127, 1000, 4099}

// vecGuard is the value written around outputs: a NaN with a payload that no
// kernel produces.
var vecGuard = math.Float32frombits(0x7fa5a5a5)

const vecGuardLen = 17

// vecEach runs f once per variant of reg, with that variant active.
func vecEach[F any](t *testing.T, reg *Registry[F], f func(t *testing.T)) {
	t.Helper()
	for _, v := range reg.Variants() {
		restore, ok := reg.Use(v.Name)
		if !ok {
			t.Fatalf("%s: Use(%q) failed", reg.Op, v.Name)
		}
		t.Run(v.Name, f)
		restore()
	}
}

// vecRNG returns a generator seeded from the test name and a case number, so
// each case gets fresh data that is reproducible.
func vecRNG(t *testing.T, c int) *rand.Rand {
	h := uint64(14695981039346656037)
	for _, b := range []byte(t.Name()) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return rand.New(rand.NewPCG(h, uint64(c)))
}

// vecBuf is a slice of n floats with vecGuardLen guard values on both sides.
type vecBuf struct {
	all []float32
	s   []float32
}

func newVecBuf(n int) *vecBuf {
	all := make([]float32, n+2*vecGuardLen)
	for i := range all {
		all[i] = vecGuard
	}
	return &vecBuf{all, all[vecGuardLen : vecGuardLen+n : vecGuardLen+n]}
}

// vecBufOf copies x into a guarded buffer.
func vecBufOf(x []float32) *vecBuf {
	b := newVecBuf(len(x))
	copy(b.s, x)
	return b
}

func (b *vecBuf) check(t *testing.T, what string) {
	t.Helper()
	n := len(b.s)
	for i, v := range b.all {
		if (i < vecGuardLen || i >= vecGuardLen+n) && math.Float32bits(v) != math.Float32bits(vecGuard) {
			t.Fatalf("%s: guard at offset %d (len %d) overwritten with %v", what, i-vecGuardLen, n, v)
		}
	}
}

func vecRand(r *rand.Rand, n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*r.Float64())
	}
	return x
}

// vecULP is the spacing of float32 at |v| (2⁻¹⁴⁹ for denormals).
func vecULP(v float64) float64 {
	a := math.Abs(v)
	if a < 0x1p-126 {
		return 0x1p-149
	}
	if a > math.MaxFloat32 {
		a = math.MaxFloat32
	}
	_, e := math.Frexp(a)
	return math.Ldexp(1, e-24)
}

// vecSame reports whether got matches want exactly, treating all NaNs alike
// and -0 == +0.
func vecSame(got float32, want float64) bool {
	if math.IsNaN(want) {
		return got != got
	}
	return float64(got) == float64(float32(want))
}

// vecCheckClose compares got to want: NaN and ±Inf must match exactly, other
// values must satisfy |got-want| ≤ tol.
func vecCheckClose(t *testing.T, what string, i int, x, got float32, want, tol float64) {
	t.Helper()
	if math.IsNaN(want) || math.IsInf(want, 0) {
		if !vecSame(got, want) {
			t.Fatalf("%s[%d] (x=%v): got %v, want %v", what, i, x, got, want)
		}
		return
	}
	if d := math.Abs(float64(got) - want); !(d <= tol) {
		t.Fatalf("%s[%d] (x=%v): got %v, want %v (err %.3g > tol %.3g)", what, i, x, got, want, d, tol)
	}
}

// ---- exp -----------------------------------------------------------------

// expSpecials are inputs at and around the edges of exp's float32 range.
var expSpecials = []float32{
	0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 1, -1, 0.34657359, -0.34657359,
	10, -10, 80, -80, 87.3, -87.3, 87.33654, -87.33655, 88, -88, 88.7, 88.72283, 88.72284,
	88.73, 89, 89.5, 100, 1e4, 1e30, -100, -103, -103.9, -103.97, -103.98, -104,
	-104.5, -105, -1e4, -1e30, math.MaxFloat32, -math.MaxFloat32, 0x1p-149, -0x1p-149,
	float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
	math.Float32frombits(0xffc00001), // negative NaN
}

// Exp bound: ≤ 2 ulp of the float32 result (for denormal results, 2·2⁻¹⁴⁹);
// overflow to +Inf, underflow to 0 and NaN exactly.
const expULPBound = 2

func checkExp(t *testing.T, x, got []float32) {
	t.Helper()
	for i, v := range x {
		want := math.Exp(float64(v))
		if want > math.MaxFloat32 && !math.IsInf(want, 1) {
			// float32 rounds values within half an ulp of MaxFloat32 down.
			if float32(want) != float32(math.Inf(1)) {
				want = float64(float32(want))
			} else {
				want = math.Inf(1)
			}
		}
		vecCheckClose(t, "Exp", i, v, got[i], want, expULPBound*vecULP(want))
	}
}

func TestVecExp(t *testing.T) {
	vecEach(t, expK, func(t *testing.T) {
		for c, n := range vecSizes {
			x := vecRand(vecRNG(t, c), n, -104, 89)
			xb, db := vecBufOf(x), newVecBuf(n)
			Exp(db.s, xb.s)
			db.check(t, "Exp dst")
			xb.check(t, "Exp x")
			checkExp(t, x, db.s)
			Exp(xb.s, xb.s) // in place
			xb.check(t, "Exp in place")
			for i := range x {
				if math.Float32bits(xb.s[i]) != math.Float32bits(db.s[i]) {
					t.Fatalf("in-place Exp differs at %d", i)
				}
			}
		}
		// Every special value in every lane position.
		for shift := 0; shift < 17; shift++ {
			x := make([]float32, shift+len(expSpecials))
			copy(x[shift:], expSpecials)
			db := newVecBuf(len(x))
			Exp(db.s, x)
			db.check(t, "Exp specials")
			checkExp(t, x, db.s)
		}
		// A sweep over float32 bit patterns (all signs, exponents, NaN, Inf,
		// denormals), stride 16411 (TestVecExpExhaustive does them all).
		const stride = 16411
		x := make([]float32, 0, 1<<20)
		for b := uint64(0); b < 1<<32; b += stride {
			x = append(x, math.Float32frombits(uint32(b)))
		}
		got := make([]float32, len(x))
		Exp(got, x)
		checkExp(t, x, got)
	})
}

// TestVecExpExhaustive checks every float32 in [-104, 89] when
// MOPECLIP_VEC_EXHAUSTIVE=1 and reports the largest error in ulp.
func TestVecExpExhaustive(t *testing.T) {
	if os.Getenv("MOPECLIP_VEC_EXHAUSTIVE") == "" {
		t.Skip("set MOPECLIP_VEC_EXHAUSTIVE=1")
	}
	vecEach(t, expK, func(t *testing.T) {
		if expK.Name() == Generic {
			t.Skip("the generic variant is math.Exp rounded (≤ 0.5 ulp)")
		}
		const blk = 1 << 16
		x := make([]float32, blk)
		got := make([]float32, blk)
		var worst float64
		var worstX float32
		for _, rng := range [][2]uint32{{0, math.Float32bits(89)}, {0x80000000, math.Float32bits(-104)}} {
			for b := uint64(rng[0]); b <= uint64(rng[1]); b += blk {
				m := int(min(uint64(blk), uint64(rng[1])-b+1))
				for i := 0; i < m; i++ {
					x[i] = math.Float32frombits(uint32(b) + uint32(i))
				}
				Exp(got[:m], x[:m])
				for i := 0; i < m; i++ {
					want := math.Exp(float64(x[i]))
					if float32(want) == float32(math.Inf(1)) {
						if got[i] != float32(math.Inf(1)) {
							t.Fatalf("exp(%v) = %v, want +Inf", x[i], got[i])
						}
						continue
					}
					e := math.Abs(float64(got[i])-want) / vecULP(want)
					if e > worst {
						worst, worstX = e, x[i]
					}
				}
			}
		}
		t.Logf("max error %.3f ulp at x=%v", worst, worstX)
		if worst > expULPBound {
			t.Fatalf("max error %.3f ulp > %d", worst, expULPBound)
		}
	})
}

// TestVecActivationErrors measures the largest relative error of GELU and
// QuickGELU over every 977th float32 (results ≥ 2⁻¹²⁶) when
// MOPECLIP_VEC_EXHAUSTIVE=1.
func TestVecActivationErrors(t *testing.T) {
	if os.Getenv("MOPECLIP_VEC_EXHAUSTIVE") == "" {
		t.Skip("set MOPECLIP_VEC_EXHAUSTIVE=1")
	}
	var x []float32
	for b := uint64(0); b < 1<<32; b += 977 {
		if f := math.Float32frombits(uint32(b)); f == f && !math.IsInf(float64(f), 0) {
			x = append(x, f)
		}
	}
	got := make([]float32, len(x))
	for _, ac := range actCases {
		t.Run(ac.name, func(t *testing.T) {
			vecEach(t, ac.reg, func(t *testing.T) {
				ac.f(got, x)
				var worst, wx float64
				for i, v := range x {
					want := ac.ref(float64(v))
					if math.Abs(want) < 0x1p-126 {
						continue
					}
					if e := math.Abs(float64(got[i])-want) / math.Abs(want); e > worst {
						worst, wx = e, float64(v)
					}
				}
				t.Logf("max relative error %.3g (%.2f·2⁻²⁴) at x=%g", worst, worst/vecEps, wx)
				if worst > ac.rel {
					t.Fatalf("max relative error %.3g > %.3g", worst, ac.rel)
				}
			})
		})
	}
}

// ---- activations -----------------------------------------------------------

var actSpecials = []float32{
	0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 0x1p-149, -0x1p-149, 0.5, -0.5, 1, -1,
	1.5, -1.5, 3, -3, 5, -5, 8, -8, 10, -10, 13, -13, 14, -14, 14.5, -14.5, 15, -15, 20, -20,
	30, -30, 50, -50, 52, -52, 55, -55, 60, -60, 61, -61, 64, -64, 70, -70, 100, -100,
	1e4, -1e4, 1e30, -1e30, math.MaxFloat32, -math.MaxFloat32,
	float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
}

func quickGeluRef(x float64) float64 {
	if math.IsInf(x, -1) {
		return math.Copysign(0, -1) // the limit, as documented
	}
	// x·σ(1.702x) without overflow for large negative x.
	if x >= 0 {
		return x / (1 + math.Exp(-1.702*x))
	}
	e := math.Exp(1.702 * x)
	return x * e / (1 + e)
}

func geluRef(x float64) float64 {
	if math.IsInf(x, -1) {
		return math.Copysign(0, -1)
	}
	return 0.5 * x * math.Erfc(-x/math.Sqrt2)
}

// Activation bounds: relative error ≤ actRelBound, or absolute error ≤
// actAbsBound for results near the float32 underflow threshold (where the
// float32 result itself has few significant bits).
const (
	quickGeluRelBound = 4e-7
	geluRelBound      = 1e-6
	actAbsBound       = 0x1p-126
)

func checkAct(t *testing.T, what string, ref func(float64) float64, rel float64, x, got []float32) {
	t.Helper()
	for i, v := range x {
		want := ref(float64(v))
		vecCheckClose(t, what, i, v, got[i], want, math.Max(rel*math.Abs(want), actAbsBound))
	}
}

type actCase struct {
	name    string
	reg     *Registry[func(dst, x []float32)]
	biasReg *Registry[func(x, bias []float32)]
	f       func(dst, x []float32)
	bias    func(x, bias []float32)
	ref     func(float64) float64
	rel     float64
}

var actCases = []actCase{
	{"QuickGELU", quickGeluK, biasQuickGeluK, QuickGELU, BiasQuickGELU, quickGeluRef, quickGeluRelBound},
	{"GELU", geluK, biasGeluK, GELU, BiasGELU, geluRef, geluRelBound},
}

func TestVecActivations(t *testing.T) {
	for _, ac := range actCases {
		t.Run(ac.name, func(t *testing.T) {
			vecEach(t, ac.reg, func(t *testing.T) {
				for c, n := range vecSizes {
					r := vecRNG(t, c)
					x := vecRand(r, n, -8, 8)
					if n > 20 {
						copy(x[3:], vecRand(r, 10, -100, 100))
					}
					xb, db := vecBufOf(x), newVecBuf(n)
					ac.f(db.s, xb.s)
					db.check(t, ac.name)
					xb.check(t, ac.name+" x")
					checkAct(t, ac.name, ac.ref, ac.rel, x, db.s)
					ac.f(xb.s, xb.s)
					xb.check(t, ac.name+" in place")
					checkAct(t, ac.name+" in place", ac.ref, ac.rel, x, xb.s)
				}
				for shift := 0; shift < 17; shift++ {
					x := make([]float32, shift+len(actSpecials))
					copy(x[shift:], actSpecials)
					db := newVecBuf(len(x))
					ac.f(db.s, x)
					db.check(t, ac.name+" specials")
					checkAct(t, ac.name, ac.ref, ac.rel, x, db.s)
				}
				// Dense sweep of the interesting range, |x| ≤ 160, finer
				// near 0.
				x := make([]float32, 0, 80001)
				for i := -40000; i <= 40000; i++ {
					x = append(x, float32(i)*float32(math.Abs(float64(i)))*1e-7)
				}
				got := make([]float32, len(x))
				ac.f(got, x)
				checkAct(t, ac.name+" sweep", ac.ref, ac.rel, x, got)
			})
		})
		t.Run("Bias"+ac.name, func(t *testing.T) {
			vecEach(t, ac.biasReg, func(t *testing.T) {
				for c, n := range vecSizes[1:] {
					r := vecRNG(t, c)
					rows := 1 + r.IntN(4)
					x := vecRand(r, rows*n, -6, 6)
					bias := vecRand(r, n, -2, 2)
					xb, bb := vecBufOf(x), vecBufOf(bias)
					ac.bias(xb.s, bb.s)
					xb.check(t, "Bias"+ac.name)
					bb.check(t, "Bias"+ac.name+" bias")
					for i, v := range x {
						s := v + bias[i%n]
						want := ac.ref(float64(s))
						vecCheckClose(t, "Bias"+ac.name, i, s, xb.s[i], want, math.Max(ac.rel*math.Abs(want), actAbsBound))
					}
				}
			})
		})
	}
}

// ---- softmax ---------------------------------------------------------------

// softmaxRef is the float64 softmax of one row, with the same conventions as
// SoftmaxRows (+Inf or NaN anywhere, or all -Inf: NaN).
func softmaxRef(row []float32) []float64 {
	m := math.Inf(-1)
	bad := false
	for _, v := range row {
		if v != v || math.IsInf(float64(v), 1) {
			bad = true
		}
		m = math.Max(m, float64(v))
	}
	out := make([]float64, len(row))
	if bad || math.IsInf(m, -1) {
		for i := range out {
			out[i] = math.NaN()
		}
		return out
	}
	var s float64
	for i, v := range row {
		out[i] = math.Exp(float64(v) - m)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

// Softmax bound, per element: relative error ≤ ε·(|x_j - max| + n/4 + 12),
// where ε|x_j-max| is the float32 rounding of the exp argument, n/4+2 bounds
// the summation (≥ 4 lanes), and 10 covers exp (2 ulp), the reciprocal and the
// product; plus 2⁻¹⁴⁸ absolute for denormal results.
func checkSoftmaxRow(t *testing.T, row, got []float32) {
	t.Helper()
	want := softmaxRef(row)
	m := math.Inf(-1)
	for _, v := range row {
		m = math.Max(m, float64(v))
	}
	n := float64(len(row))
	for j, w := range want {
		tol := 0x1p-148
		if w != 0 {
			tol += vecEps * (math.Abs(float64(row[j])-m) + n/4 + 12) * w
		}
		vecCheckClose(t, "SoftmaxRows", j, row[j], got[j], w, tol)
	}
}

func TestVecSoftmax(t *testing.T) {
	vecEach(t, softmaxK, func(t *testing.T) {
		for c, n := range vecSizes[1:] {
			r := vecRNG(t, c)
			rows := 1 + r.IntN(3)
			x := vecRand(r, rows*n, -10, 10)
			xb := vecBufOf(x)
			SoftmaxRows(xb.s, n)
			xb.check(t, "SoftmaxRows")
			for i := 0; i < rows; i++ {
				checkSoftmaxRow(t, x[i*n:(i+1)*n], xb.s[i*n:(i+1)*n])
			}
		}
		// Extreme rows, each at several lengths so the special entries land
		// in the vector body and in the tail.
		inf := float32(math.Inf(1))
		for c, n := range []int{1, 5, 8, 13, 16, 23, 40, 77} {
			r := vecRNG(t, 100+c)
			mk := func(f func(j int) float32) []float32 {
				row := make([]float32, n)
				for j := range row {
					row[j] = f(j)
				}
				return row
			}
			k := r.IntN(n)
			cases := map[string][]float32{
				"±1e4": mk(func(int) float32 { return float32(r.Float64()*2e4 - 1e4) }),
				"one huge": mk(func(j int) float32 {
					if j == k {
						return 1e4
					}
					return float32(r.NormFloat64())
				}),
				"-Inf entries": mk(func(j int) float32 {
					if j%3 == 1 && j != k {
						return -inf
					}
					return float32(r.NormFloat64() * 5)
				}),
				"all -1e4":      mk(func(int) float32 { return -1e4 }),
				"constant":      mk(func(int) float32 { return 3 }),
				"large spread":  mk(func(j int) float32 { return float32(j%7) * -30 }),
				"all -Inf":      mk(func(int) float32 { return -inf }),
				"+Inf":          mk(func(j int) float32 { return map[bool]float32{true: inf, false: 1}[j == k] }),
				"NaN":           mk(func(j int) float32 { return map[bool]float32{true: float32(math.NaN()), false: 1}[j == k] }),
				"near overflow": mk(func(j int) float32 { return math.MaxFloat32 / float32(j+1) }),
			}
			for name, row := range cases {
				xb := vecBufOf(row)
				SoftmaxRows(xb.s, n)
				xb.check(t, "SoftmaxRows "+name)
				t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) { checkSoftmaxRow(t, row, xb.s) })
			}
		}
	})
}

// ---- layer norm ------------------------------------------------------------

// layerNormRef returns the float64 normalised row x̂ and the mean and rstd.
func layerNormRef(row []float32, eps float32) (xhat []float64, mu, rs float64) {
	for _, v := range row {
		mu += float64(v)
	}
	mu /= float64(len(row))
	var ss float64
	for _, v := range row {
		ss += (float64(v) - mu) * (float64(v) - mu)
	}
	rs = 1 / math.Sqrt(ss/float64(len(row))+float64(eps))
	xhat = make([]float64, len(row))
	for j, v := range row {
		xhat[j] = (float64(v) - mu) * rs
	}
	return xhat, mu, rs
}

// Layer norm bound, per element: |out_j - ref_j| ≤ ε·(16 + n/4)·(|γ_j|·(|x̂_j| +
// D) + |β_j|), D = max_k |x_k - x_0|·rstd (the spread of the row around the
// element the assembly variants shift by, in output units): the summations
// err by at most (n/4+4)ε relative to Σ|x_k-x_0|, the rest are a few
// roundings. mean within ε(4+n/4)·(|mean| + D/rstd); rstd within ε(16+n/4)·
// rstd·(1+D) relative (rstd only counts when var ≫ eps).
func checkLayerNormRow(t *testing.T, what string, row, gamma, beta, got []float32, eps float32, mean, rstd float32) {
	t.Helper()
	xhat, mu, rs := layerNormRef(row, eps)
	var spread float64
	for _, v := range row {
		spread = math.Max(spread, math.Abs(float64(v)-float64(row[0])))
	}
	D := spread * rs
	k := vecEps * (16 + float64(len(row))/4)
	for j := range row {
		want := xhat[j]*float64(gamma[j]) + float64(beta[j])
		tol := k * (math.Abs(float64(gamma[j]))*(math.Abs(xhat[j])+D) + math.Abs(float64(beta[j])))
		vecCheckClose(t, what, j, row[j], got[j], want, tol)
	}
	if d := math.Abs(float64(mean) - mu); d > k*(math.Abs(mu)+spread)+0x1p-149 {
		t.Fatalf("%s: mean %v, want %v", what, mean, mu)
	}
	if d := math.Abs(float64(rstd) - rs); d > k*rs*(1+D) {
		t.Fatalf("%s: rstd %v, want %v", what, rstd, rs)
	}
}

// layerNormRows are the row generators: random, constant, a large offset with
// small noise, and a large-magnitude row.
var layerNormRows = []struct {
	name string
	f    func(r *rand.Rand, n int) []float32
}{
	{"random", func(r *rand.Rand, n int) []float32 { return vecRand(r, n, -3, 3) }},
	{"constant", func(r *rand.Rand, n int) []float32 {
		v := float32(r.NormFloat64() * 100)
		x := make([]float32, n)
		for i := range x {
			x[i] = v
		}
		return x
	}},
	{"1e4+noise", func(r *rand.Rand, n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(1e4 + 0.01*r.NormFloat64())
		}
		return x
	}},
	{"-3e5+noise", func(r *rand.Rand, n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(-3e5 + r.NormFloat64())
		}
		return x
	}},
	{"outlier first", func(r *rand.Rand, n int) []float32 {
		x := vecRand(r, n, -1, 1)
		x[0] = 1e3
		return x
	}},
	// Large but with Σ(x-mean)² < MaxFloat32, as the fast variants need.
	{"large", func(r *rand.Rand, n int) []float32 { return vecRand(r, n, -1e15, 1e15) }},
}

func TestVecLayerNorm(t *testing.T) {
	vecEach(t, layerNormK, func(t *testing.T) {
		for _, gen := range layerNormRows {
			for c, n := range vecSizes[1:] {
				r := vecRNG(t, c)
				rows := 1 + r.IntN(3)
				var x []float32
				for i := 0; i < rows; i++ {
					x = append(x, gen.f(r, n)...)
				}
				gamma, beta := vecRand(r, n, -2, 2), vecRand(r, n, -1, 1)
				eps := float32(1e-5)
				xb, ob := vecBufOf(x), newVecBuf(len(x))
				mb, rb := newVecBuf(rows), newVecBuf(rows)
				LayerNorm(ob.s, xb.s, gamma, beta, n, eps, mb.s, rb.s)
				for _, b := range []*vecBuf{xb, ob, mb, rb} {
					b.check(t, "LayerNorm "+gen.name)
				}
				for i := 0; i < rows; i++ {
					what := fmt.Sprintf("LayerNorm %s n=%d row %d", gen.name, n, i)
					row, out := x[i*n:(i+1)*n], ob.s[i*n:(i+1)*n]
					checkLayerNormRow(t, what, row, gamma, beta, out, eps, mb.s[i], rb.s[i])
					if gen.name == "constant" {
						for j := range out {
							if out[j] != beta[j] {
								t.Fatalf("%s: constant row gives %v at %d, want beta %v", what, out[j], j, beta[j])
							}
						}
					}
				}
				// In place, without mean/rstd.
				LayerNorm(xb.s, xb.s, gamma, beta, n, eps, nil, nil)
				xb.check(t, "LayerNorm in place")
				for i := range x {
					if math.Float32bits(xb.s[i]) != math.Float32bits(ob.s[i]) {
						t.Fatalf("in-place LayerNorm differs at %d: %v vs %v", i, xb.s[i], ob.s[i])
					}
				}
			}
		}
	})
}

func TestVecAddLayerNorm(t *testing.T) {
	vecEach(t, addLayerNormK, func(t *testing.T) {
		for _, gen := range layerNormRows {
			for c, n := range vecSizes[1:] {
				r := vecRNG(t, c)
				rows := 1 + r.IntN(3)
				var x []float32
				for i := 0; i < rows; i++ {
					x = append(x, gen.f(r, n)...)
				}
				res := vecRand(r, len(x), -1, 1)
				gamma, beta := vecRand(r, n, -2, 2), vecRand(r, n, -1, 1)
				eps := float32(1e-5)
				xb, rb, sb, ob := vecBufOf(x), vecBufOf(res), newVecBuf(len(x)), newVecBuf(len(x))
				AddLayerNorm(sb.s, ob.s, xb.s, rb.s, gamma, beta, n, eps)
				for _, b := range []*vecBuf{xb, rb, sb, ob} {
					b.check(t, "AddLayerNorm "+gen.name)
				}
				for i := range x {
					if s := x[i] + res[i]; math.Float32bits(sb.s[i]) != math.Float32bits(s) {
						t.Fatalf("AddLayerNorm sum[%d] = %v, want %v", i, sb.s[i], s)
					}
				}
				// Compare with LayerNorm's own bound on the rounded sum
				// (mean and rstd are not returned: check the outputs only).
				for i := 0; i < rows; i++ {
					row := sb.s[i*n : (i+1)*n]
					_, mu, rs := layerNormRef(row, eps)
					checkLayerNormRow(t, fmt.Sprintf("AddLayerNorm %s n=%d row %d", gen.name, n, i),
						row, gamma, beta, ob.s[i*n:(i+1)*n], eps, float32(mu), float32(rs))
				}
				// Aliased: sum into x, out into r.
				AddLayerNorm(xb.s, rb.s, xb.s, rb.s, gamma, beta, n, eps)
				for i := range x {
					if math.Float32bits(xb.s[i]) != math.Float32bits(sb.s[i]) || math.Float32bits(rb.s[i]) != math.Float32bits(ob.s[i]) {
						t.Fatalf("aliased AddLayerNorm differs at %d", i)
					}
				}
				xb.check(t, "AddLayerNorm aliased")
				rb.check(t, "AddLayerNorm aliased")
			}
		}
	})
}

// ---- reductions ------------------------------------------------------------

// Reduction bound: |got - Σ| ≤ n·ε·Σ|terms|, valid for any summation order
// (FMA only removes roundings). Max is exact.
func TestVecReductions(t *testing.T) {
	type red struct {
		name string
		reg  *Registry[func(x []float32) float32]
		f    func(x []float32) float32
		term func(v float64) float64
	}
	for _, rd := range []red{
		{"Sum", sumK, Sum, func(v float64) float64 { return v }},
		{"SumSq", sumSqK, SumSq, func(v float64) float64 { return v * v }},
	} {
		t.Run(rd.name, func(t *testing.T) {
			vecEach(t, rd.reg, func(t *testing.T) {
				for c, n := range vecSizes {
					x := vecRand(vecRNG(t, c), n, -2, 3)
					xb := vecBufOf(x)
					got := rd.f(xb.s)
					xb.check(t, rd.name)
					var want, abs float64
					for _, v := range x {
						want += rd.term(float64(v))
						abs += math.Abs(rd.term(float64(v)))
					}
					if d := math.Abs(float64(got) - want); d > float64(n)*vecEps*abs {
						t.Fatalf("%s n=%d: got %v, want %v", rd.name, n, got, want)
					}
					vecCheckDeterministic(t, x, func(x []float32) float32 { return rd.f(x) })
				}
				if got := rd.f([]float32{1, float32(math.NaN()), 2}); got == got {
					t.Fatalf("%s with NaN = %v", rd.name, got)
				}
			})
		})
	}
	t.Run("Dot", func(t *testing.T) {
		vecEach(t, dotK, func(t *testing.T) {
			for c, n := range vecSizes {
				r := vecRNG(t, c)
				x, y := vecRand(r, n, -2, 2), vecRand(r, n+3, -2, 2)
				xb, yb := vecBufOf(x), vecBufOf(y)
				got := Dot(xb.s, yb.s)
				xb.check(t, "Dot")
				yb.check(t, "Dot")
				var want, abs float64
				for i, v := range x {
					want += float64(v) * float64(y[i])
					abs += math.Abs(float64(v) * float64(y[i]))
				}
				if d := math.Abs(float64(got) - want); d > float64(n)*vecEps*abs {
					t.Fatalf("Dot n=%d: got %v, want %v", n, got, want)
				}
				vecCheckDeterministic(t, x, func(x []float32) float32 { return Dot(x, y) })
			}
		})
	})
	t.Run("Max", func(t *testing.T) {
		vecEach(t, maxK, func(t *testing.T) {
			for c, n := range vecSizes {
				r := vecRNG(t, c)
				x := vecRand(r, n, -1e6, -1e3) // all negative: a zero fill would show
				want := math.Inf(-1)
				for _, v := range x {
					want = math.Max(want, float64(v))
				}
				xb := vecBufOf(x)
				if got := Max(xb.s); float64(got) != want {
					t.Fatalf("Max n=%d: got %v, want %v", n, got, want)
				}
				xb.check(t, "Max")
				if n > 0 {
					for _, pos := range []int{0, n / 2, n - 1} {
						y := append([]float32(nil), x...)
						y[pos] = float32(math.NaN())
						if got := Max(y); got == got {
							t.Fatalf("Max with NaN at %d of %d = %v", pos, n, got)
						}
						y[pos] = float32(math.Inf(1))
						if got := Max(y); !math.IsInf(float64(got), 1) {
							t.Fatalf("Max with +Inf at %d of %d = %v", pos, n, got)
						}
					}
				}
			}
		})
	})
}

// vecCheckDeterministic checks that f gives bit-identical results for the same
// values at every alignment.
func vecCheckDeterministic(t *testing.T, x []float32, f func([]float32) float32) {
	t.Helper()
	want := f(x)
	buf := make([]float32, len(x)+16)
	for off := 1; off < 16; off += 3 {
		y := buf[off : off+len(x)]
		copy(y, x)
		if got := f(y); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("result depends on alignment: %v at offset %d vs %v", got, off, want)
		}
	}
}

// ---- simple elementwise ----------------------------------------------------

// Add, Mul, Scale and AddBias are exact (one float32 operation); Axpy within
// 2ε·(|αx|+|y|) (one rounding with FMA, two without).
func TestVecElementwise(t *testing.T) {
	t.Run("Add", func(t *testing.T) { vecBinary(t, addK, Add, func(a, b float32) float32 { return a + b }) })
	t.Run("Mul", func(t *testing.T) { vecBinary(t, mulK, Mul, func(a, b float32) float32 { return a * b }) })
	t.Run("Scale", func(t *testing.T) {
		vecEach(t, scaleK, func(t *testing.T) {
			for c, n := range vecSizes {
				r := vecRNG(t, c)
				x := vecRand(r, n, -5, 5)
				alpha := float32(r.NormFloat64())
				xb := vecBufOf(x)
				Scale(alpha, xb.s)
				xb.check(t, "Scale")
				for i, v := range x {
					if xb.s[i] != alpha*v {
						t.Fatalf("Scale[%d] = %v, want %v", i, xb.s[i], alpha*v)
					}
				}
			}
		})
	})
	t.Run("Axpy", func(t *testing.T) {
		vecEach(t, axpyK, func(t *testing.T) {
			for c, n := range vecSizes {
				r := vecRNG(t, c)
				x, y := vecRand(r, n, -5, 5), vecRand(r, n, -5, 5)
				alpha := float32(r.NormFloat64())
				xb, yb := vecBufOf(x), vecBufOf(y)
				Axpy(alpha, xb.s, yb.s)
				xb.check(t, "Axpy x")
				yb.check(t, "Axpy y")
				for i, v := range x {
					ax := float64(alpha) * float64(v)
					want := ax + float64(y[i])
					vecCheckClose(t, "Axpy", i, v, yb.s[i], want, 2*vecEps*(math.Abs(ax)+math.Abs(float64(y[i]))))
				}
			}
		})
	})
	t.Run("AddBias", func(t *testing.T) {
		vecEach(t, addBiasK, func(t *testing.T) {
			for c, n := range vecSizes[1:] {
				r := vecRNG(t, c)
				rows := 1 + r.IntN(4)
				x, bias := vecRand(r, rows*n, -5, 5), vecRand(r, n, -5, 5)
				xb := vecBufOf(x)
				AddBias(xb.s, bias)
				xb.check(t, "AddBias")
				for i, v := range x {
					if xb.s[i] != v+bias[i%n] {
						t.Fatalf("AddBias[%d] = %v, want %v", i, xb.s[i], v+bias[i%n])
					}
				}
			}
		})
	})
}

func vecBinary(t *testing.T, reg *Registry[func(dst, a, b []float32)], f func(dst, a, b []float32), op func(a, b float32) float32) {
	vecEach(t, reg, func(t *testing.T) {
		for c, n := range vecSizes {
			r := vecRNG(t, c)
			a, b := vecRand(r, n, -5, 5), vecRand(r, n, -5, 5)
			ab, bb, db := vecBufOf(a), vecBufOf(b), newVecBuf(n)
			f(db.s, ab.s, bb.s)
			for _, g := range []*vecBuf{ab, bb, db} {
				g.check(t, reg.Op)
			}
			for i := range a {
				if db.s[i] != op(a[i], b[i]) {
					t.Fatalf("%s[%d] = %v, want %v", reg.Op, i, db.s[i], op(a[i], b[i]))
				}
			}
			f(ab.s, ab.s, bb.s) // dst aliases a
			ab.check(t, reg.Op+" in place")
			for i := range a {
				if ab.s[i] != db.s[i] {
					t.Fatalf("in-place %s differs at %d", reg.Op, i)
				}
			}
		}
	})
}

// ---- backward kernels ------------------------------------------------------

// vecSample returns the indices 0..n-1 when n ≤ 65, else 40 random ones
// (each finite-difference probe costs O(n)).
func vecSample(r *rand.Rand, n int) []int {
	if n <= 65 {
		s := make([]int, n)
		for i := range s {
			s[i] = i
		}
		return s
	}
	s := make([]int, 40)
	for i := range s {
		s[i] = r.IntN(n)
	}
	return s
}

// vecNumGrad is the central-difference derivative of f at x (float64).
func vecNumGrad(f func(float64) float64, x float64) float64 {
	h := 1e-6 * math.Max(1, math.Abs(x))
	return (f(x+h) - f(x-h)) / (2 * h)
}

// Activation gradients: |dx - dy·f'(x)| ≤ 2e-6·|dy|·scale + 1e-30, where
// scale is the sum of the magnitudes of the derivative's terms, checked
// against central differences of the float64 forward function.
func TestVecActivationBackward(t *testing.T) {
	type bwd struct {
		name  string
		reg   *Registry[func(dx, x, dy []float32)]
		f     func(dx, x, dy []float32)
		fwd   func(float64) float64
		scale func(x float64) float64
	}
	sig := func(z float64) float64 { return 1 / (1 + math.Exp(-z)) }
	for _, b := range []bwd{
		{"QuickGELU", quickGeluBwdK, QuickGELUBackward, quickGeluRef, func(x float64) float64 {
			s := sig(1.702 * x)
			return s + math.Abs(1.702*x*s*(1-s))
		}},
		{"GELU", geluBwdK, GELUBackward, geluRef, func(x float64) float64 {
			return 0.5*math.Erfc(-x/math.Sqrt2) + math.Abs(x)*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi)
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			vecEach(t, b.reg, func(t *testing.T) {
				for c, n := range vecSizes {
					r := vecRNG(t, c)
					x, dy := vecRand(r, n, -7, 7), vecRand(r, n, -2, 2)
					xb, dyb, dxb := vecBufOf(x), vecBufOf(dy), newVecBuf(n)
					b.f(dxb.s, xb.s, dyb.s)
					for _, g := range []*vecBuf{xb, dyb, dxb} {
						g.check(t, b.name+"Backward")
					}
					for i, v := range x {
						want := float64(dy[i]) * vecNumGrad(b.fwd, float64(v))
						tol := 2e-6*math.Abs(float64(dy[i]))*b.scale(float64(v)) + 1e-30
						vecCheckClose(t, b.name+"Backward", i, v, dxb.s[i], want, tol)
					}
					b.f(dyb.s, xb.s, dyb.s) // dx aliases dy
					for i := range x {
						if dyb.s[i] != dxb.s[i] {
							t.Fatalf("aliased %sBackward differs at %d", b.name, i)
						}
					}
				}
				// Large |x|: the gradient tends to 1 (x → +∞) and 0 (x → -∞).
				x := []float32{100, -100, 1e4, -1e4, float32(math.Inf(1)), float32(math.Inf(-1))}
				dx := make([]float32, len(x))
				b.f(dx, x, []float32{1, 1, 1, 1, 1, 1})
				for i, want := range []float32{1, 0, 1, 0, 1, 0} {
					if dx[i] != want {
						t.Fatalf("%sBackward(%v) = %v, want %v", b.name, x[i], dx[i], want)
					}
				}
			})
		})
	}
}

// Softmax gradient: with L(z) = Σ w_j softmax(z)_j, SoftmaxBackwardRows(y,
// dy=w) must match ∂L/∂z by central differences within 1e-5·(Σ|y_j w_j| +
// y_k·|w_k|) per element.
func TestVecSoftmaxBackward(t *testing.T) {
	vecEach(t, softmaxBwdK, func(t *testing.T) {
		for c, n := range vecSizes[1:] {
			r := vecRNG(t, c)
			rows := 1 + r.IntN(3)
			z := make([]float64, rows*n)
			for i := range z {
				z[i] = r.NormFloat64() * 2
			}
			y := make([]float32, len(z))
			for i := 0; i < rows; i++ {
				row := make([]float32, n)
				for j := range row {
					row[j] = float32(z[i*n+j])
					z[i*n+j] = float64(row[j])
				}
				for j, p := range softmaxRef(row) {
					y[i*n+j] = float32(p)
				}
			}
			w := vecRand(r, len(z), -1, 1)
			yb, wb, dxb := vecBufOf(y), vecBufOf(w), newVecBuf(len(y))
			SoftmaxBackwardRows(dxb.s, yb.s, wb.s, n)
			for _, g := range []*vecBuf{yb, wb, dxb} {
				g.check(t, "SoftmaxBackwardRows")
			}
			for i := 0; i < rows; i++ {
				zr := z[i*n : (i+1)*n]
				loss := func(k int, v float64) float64 {
					old := zr[k]
					zr[k] = v
					m := math.Inf(-1)
					for _, u := range zr {
						m = math.Max(m, u)
					}
					var s, l float64
					for _, u := range zr {
						s += math.Exp(u - m)
					}
					for j, u := range zr {
						l += float64(w[i*n+j]) * math.Exp(u-m) / s
					}
					zr[k] = old
					return l
				}
				var scale float64
				for j := 0; j < n; j++ {
					scale += math.Abs(float64(y[i*n+j]) * float64(w[i*n+j]))
				}
				for _, k := range vecSample(r, n) {
					want := vecNumGrad(func(v float64) float64 { return loss(k, v) }, zr[k])
					tol := 1e-5*(scale+math.Abs(float64(y[i*n+k]*w[i*n+k]))) + 1e-9
					vecCheckClose(t, "SoftmaxBackwardRows", i*n+k, float32(zr[k]), dxb.s[i*n+k], want, tol)
				}
			}
			// dx may alias y or dy.
			for _, alias := range []string{"y", "dy"} {
				ya, wa := append([]float32(nil), y...), append([]float32(nil), w...)
				dst := ya
				if alias == "dy" {
					dst = wa
				}
				SoftmaxBackwardRows(dst, ya, wa, n)
				for k := range dst {
					if dst[k] != dxb.s[k] {
						t.Fatalf("SoftmaxBackwardRows with dx aliasing %s differs at %d", alias, k)
					}
				}
			}
		}
	})
}

// Layer norm gradients: L = Σ w_j·LayerNorm(x)_j; dx, dgamma, dbeta against
// central differences of the float64 forward pass, within 1e-4·(scale) where
// scale sums the magnitudes of the terms (mean and rstd come in as float32,
// which limits the agreement to ~1e-6 relative; 1e-4 leaves room for the
// finite differences).
func TestVecLayerNormBackward(t *testing.T) {
	vecEach(t, layerNormBwdK, func(t *testing.T) {
		for c, n := range vecSizes[1:] {
			r := vecRNG(t, c)
			rows := 1 + r.IntN(3)
			x := vecRand(r, rows*n, -3, 3)
			gamma, beta := vecRand(r, n, -2, 2), vecRand(r, n, -1, 1)
			w := vecRand(r, rows*n, -1, 1)
			eps := float32(1e-5)
			mean, rstd := make([]float32, rows), make([]float32, rows)
			for i := 0; i < rows; i++ {
				_, mu, rs := layerNormRef(x[i*n:(i+1)*n], eps)
				mean[i], rstd[i] = float32(mu), float32(rs)
			}
			dg0, db0 := vecRand(r, n, -1, 1), vecRand(r, n, -1, 1)
			xb, wb, dxb := vecBufOf(x), vecBufOf(w), newVecBuf(len(x))
			dgb, dbb := vecBufOf(dg0), vecBufOf(db0)
			LayerNormBackward(dxb.s, dgb.s, dbb.s, xb.s, wb.s, gamma, mean, rstd, n)
			for _, g := range []*vecBuf{xb, wb, dxb, dgb, dbb} {
				g.check(t, "LayerNormBackward")
			}
			// float64 forward of row i as a function of its x, and of γ/β.
			xf := make([]float64, len(x))
			for i, v := range x {
				xf[i] = float64(v)
			}
			gf, bf := make([]float64, n), make([]float64, n)
			for j := range gf {
				gf[j], bf[j] = float64(gamma[j]), float64(beta[j])
			}
			loss := func(i int) float64 {
				row := xf[i*n : (i+1)*n]
				var mu, ss float64
				for _, v := range row {
					mu += v
				}
				mu /= float64(n)
				for _, v := range row {
					ss += (v - mu) * (v - mu)
				}
				rs := 1 / math.Sqrt(ss/float64(n)+float64(eps))
				var l float64
				for j, v := range row {
					l += float64(w[i*n+j]) * ((v-mu)*rs*gf[j] + bf[j])
				}
				return l
			}
			at := func(p *float64, i int) func(float64) float64 {
				return func(v float64) float64 {
					old := *p
					*p = v
					l := loss(i)
					*p = old
					return l
				}
			}
			for i := 0; i < rows; i++ {
				var scale float64
				for j := 0; j < n; j++ {
					scale += math.Abs(float64(w[i*n+j] * gamma[j]))
				}
				scale = scale/float64(n) + 1
				for _, j := range vecSample(r, n) {
					k := i*n + j
					want := vecNumGrad(at(&xf[k], i), xf[k])
					tol := 1e-4 * float64(rstd[i]) * (math.Abs(float64(w[k]*gamma[j])) + 3*scale)
					vecCheckClose(t, "LayerNormBackward dx", k, x[k], dxb.s[k], want, tol)
				}
			}
			for _, j := range vecSample(r, n) {
				wantG, wantB := float64(dg0[j]), float64(db0[j])
				var sg, sb float64
				for i := 0; i < rows; i++ {
					wantG += vecNumGrad(at(&gf[j], i), gf[j])
					wantB += vecNumGrad(at(&bf[j], i), bf[j])
					sg += math.Abs(float64(w[i*n+j]))
					sb += math.Abs(float64(w[i*n+j]))
				}
				vecCheckClose(t, "LayerNormBackward dgamma", j, gamma[j], dgb.s[j], wantG, 1e-4*(sg*4+math.Abs(float64(dg0[j]))))
				vecCheckClose(t, "LayerNormBackward dbeta", j, beta[j], dbb.s[j], wantB, 1e-5*(sb+math.Abs(float64(db0[j]))))
			}
			// nil outputs are skipped; dx may alias dy.
			LayerNormBackward(wb.s, nil, nil, xb.s, wb.s, gamma, mean, rstd, n)
			for i := range x {
				if wb.s[i] != dxb.s[i] {
					t.Fatalf("aliased LayerNormBackward differs at %d", i)
				}
			}
		}
	})
}

// ---- misc ------------------------------------------------------------------

func TestVecEmptyAndPanics(t *testing.T) {
	SoftmaxRows(nil, 0)
	LayerNorm(nil, nil, nil, nil, 0, 1e-5, nil, nil)
	AddLayerNorm(nil, nil, nil, nil, nil, nil, 0, 1e-5)
	BiasGELU(nil, nil)
	BiasQuickGELU(nil, nil)
	SoftmaxBackwardRows(nil, nil, nil, 0)
	LayerNormBackward(nil, nil, nil, nil, nil, nil, nil, nil, 0)
	if Max(nil) != float32(math.Inf(-1)) || Sum(nil) != 0 || Dot(nil, nil) != 0 || SumSq(nil) != 0 {
		t.Fatal("empty reductions")
	}
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	x := make([]float32, 10)
	mustPanic("SoftmaxRows", func() { SoftmaxRows(x, 3) })
	mustPanic("AddLayerNorm short r", func() { AddLayerNorm(x, x, x, x[:5], x, x, 5, 1e-5) })
	mustPanic("BiasGELU", func() { BiasGELU(x, x[:3]) })
	mustPanic("QuickGELUBackward", func() { QuickGELUBackward(x[:5], x, x) })
	mustPanic("LayerNormBackward", func() { LayerNormBackward(x, x, x, x, x, x, x[:1], x, 5) })
}

// TestVecVariantsRegistered checks that the variants this build and CPU should
// have are registered for the ops that have assembly.
func TestVecVariantsRegistered(t *testing.T) {
	want := vecExpectedVariants()
	names := func(vs []string) map[string]bool {
		m := map[string]bool{}
		for _, v := range vs {
			m[v] = true
		}
		return m
	}
	ops := map[string][]string{
		"exp": variantNames(expK), "softmax": variantNames(softmaxK), "layernorm": variantNames(layerNormK),
		"gelu": variantNames(geluK), "quickgelu": variantNames(quickGeluK), "dot": variantNames(dotK),
		"addlayernorm": variantNames(addLayerNormK), "biasgelu": variantNames(biasGeluK),
		"quickgelubackward": variantNames(quickGeluBwdK), "layernormbackward": variantNames(layerNormBwdK),
		"softmaxbackward": variantNames(softmaxBwdK),
	}
	for op, have := range ops {
		h := names(have)
		for _, w := range want {
			if !h[w] {
				t.Errorf("%s: variant %s not registered (have %v)", op, w, have)
			}
		}
	}
}

func variantNames[F any](r *Registry[F]) []string {
	var s []string
	for _, v := range r.Variants() {
		s = append(s, v.Name)
	}
	return s
}
