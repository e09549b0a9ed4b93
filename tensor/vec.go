package tensor

import (
	"fmt"
	"math"
)

// Vector kernels. Each public function checks its arguments and calls the
// active variant of its registry; the generic variant here is the portable
// pure-Go twin of the assembly ones.

var (
	softmaxK   = NewRegistry[func(x []float32, n int)]("softmax")
	layerNormK = NewRegistry[func(out, x, gamma, beta []float32, n int, eps float32, mean, rstd []float32)]("layernorm")
	geluK      = NewRegistry[func(dst, x []float32)]("gelu")
	quickGeluK = NewRegistry[func(dst, x []float32)]("quickgelu")
	expK       = NewRegistry[func(dst, x []float32)]("exp")
	addBiasK   = NewRegistry[func(x, bias []float32)]("addbias")
	addK       = NewRegistry[func(dst, a, b []float32)]("add")
	mulK       = NewRegistry[func(dst, a, b []float32)]("mul")
	axpyK      = NewRegistry[func(alpha float32, x, y []float32)]("axpy")
	scaleK     = NewRegistry[func(alpha float32, x []float32)]("scale")
	sumK       = NewRegistry[func(x []float32) float32]("sum")
	maxK       = NewRegistry[func(x []float32) float32]("max")
	sumSqK     = NewRegistry[func(x []float32) float32]("sumsq")
	dotK       = NewRegistry[func(x, y []float32) float32]("dot")

	addLayerNormK  = NewRegistry[func(sum, out, x, r, gamma, beta []float32, n int, eps float32)]("addlayernorm")
	biasGeluK      = NewRegistry[func(x, bias []float32)]("biasgelu")
	biasQuickGeluK = NewRegistry[func(x, bias []float32)]("biasquickgelu")
	quickGeluBwdK  = NewRegistry[func(dx, x, dy []float32)]("quickgelubackward")
	geluBwdK       = NewRegistry[func(dx, x, dy []float32)]("gelubackward")
	softmaxBwdK    = NewRegistry[func(dx, y, dy []float32, n int)]("softmaxbackward")
	layerNormBwdK  = NewRegistry[func(dx, dgamma, dbeta, x, dy, gamma, mean, rstd []float32, n int)]("layernormbackward")
)

func init() {
	softmaxK.Register(Generic, softmaxGeneric)
	layerNormK.Register(Generic, layerNormGeneric)
	geluK.Register(Generic, geluGeneric)
	quickGeluK.Register(Generic, quickGeluGeneric)
	expK.Register(Generic, expGeneric)
	addBiasK.Register(Generic, addBiasGeneric)
	addK.Register(Generic, addGeneric)
	mulK.Register(Generic, mulGeneric)
	axpyK.Register(Generic, axpyGeneric)
	scaleK.Register(Generic, scaleGeneric)
	sumK.Register(Generic, sumGeneric)
	maxK.Register(Generic, maxGeneric)
	sumSqK.Register(Generic, sumSqGeneric)
	dotK.Register(Generic, dotGeneric)

	addLayerNormK.Register(Generic, addLayerNormGeneric)
	biasGeluK.Register(Generic, biasGeluGeneric)
	biasQuickGeluK.Register(Generic, biasQuickGeluGeneric)
	quickGeluBwdK.Register(Generic, quickGeluBackwardGeneric)
	geluBwdK.Register(Generic, geluBackwardGeneric)
	softmaxBwdK.Register(Generic, softmaxBackwardGeneric)
	layerNormBwdK.Register(Generic, layerNormBackwardGeneric)
}

var (
	negInf32  = float32(math.Inf(-1))
	negZero32 = float32(math.Copysign(0, -1))
)

func checkRows(op string, l, n int) {
	if n <= 0 || l%n != 0 {
		panic(fmt.Sprintf("tensor.%s: length %d is not a multiple of row length %d", op, l, n))
	}
}

func checkLen(op string, want int, got ...int) {
	for _, g := range got {
		if g < want {
			panic(fmt.Sprintf("tensor.%s: slice of length %d, need %d", op, g, want))
		}
	}
}

// SoftmaxRows replaces each row of length n of x by its softmax, subtracting
// the row maximum first:
//
//	for each row r: m := max(r); r[j] = exp(r[j]-m) / Σ exp(r[i]-m)
//
// -Inf entries get 0; a row that is all -Inf, or holds +Inf or NaN, becomes
// NaN (as in PyTorch). Relative error per element: within ε·(|x[j]-m| + n/4 +
// 12), ε = 2⁻²⁴ (the first term is the float32 rounding of x[j]-m).
func SoftmaxRows(x []float32, n int) {
	if len(x) == 0 {
		return
	}
	checkRows("SoftmaxRows", len(x), n)
	softmaxK.Fn()(x, n)
}

func softmaxGeneric(x []float32, n int) {
	for r := 0; r+n <= len(x); r += n {
		row := x[r : r+n]
		m := float32(math.Inf(-1))
		for _, v := range row {
			m = max(m, v)
		}
		var s float64
		for j, v := range row {
			e := float32(math.Exp(float64(v - m)))
			row[j] = e
			s += float64(e)
		}
		inv := float32(1 / s)
		for j := range row {
			row[j] *= inv
		}
	}
}

// LayerNorm normalises each row of length n of x:
//
//	mu := mean(row); v := mean((row-mu)²); rs := 1/sqrt(v+eps)
//	out[j] = (row[j]-mu)*rs*gamma[j] + beta[j]
//
// mean and rstd, when non-nil, receive mu and rs per row (for the backward
// pass). out may alias x. The generic variant accumulates in float64; the
// assembly ones shift each row by its first element before summing and use
// the corrected two-pass variance, so rows with a large common offset
// (1e4 + noise) keep their precision, and need Σ(x-mean)² below MaxFloat32.
// Their error per element is within ε·(16+n/4)·(|gamma|·(|x̂|+D)+|beta|),
// ε = 2⁻²⁴, D = max|x-x[0]|·rstd (see TestVecLayerNorm).
func LayerNorm(out, x, gamma, beta []float32, n int, eps float32, mean, rstd []float32) {
	if len(x) == 0 {
		return
	}
	checkRows("LayerNorm", len(x), n)
	checkLen("LayerNorm", len(x), len(out))
	checkLen("LayerNorm", n, len(gamma), len(beta))
	rows := len(x) / n
	if mean != nil {
		checkLen("LayerNorm", rows, len(mean))
	}
	if rstd != nil {
		checkLen("LayerNorm", rows, len(rstd))
	}
	layerNormK.Fn()(out, x, gamma, beta, n, eps, mean, rstd)
}

func layerNormGeneric(out, x, gamma, beta []float32, n int, eps float32, mean, rstd []float32) {
	for r := 0; r*n < len(x); r++ {
		mu, rs := layerNormRowGeneric(out[r*n:(r+1)*n], x[r*n:(r+1)*n], gamma, beta, eps)
		if mean != nil {
			mean[r] = mu
		}
		if rstd != nil {
			rstd[r] = rs
		}
	}
}

// layerNormRowGeneric normalises one row (float64 accumulation) and returns
// its mean and 1/sqrt(var+eps).
func layerNormRowGeneric(o, row, gamma, beta []float32, eps float32) (mean, rstd float32) {
	n := len(row)
	var s float64
	for _, v := range row {
		s += float64(v)
	}
	mu := s / float64(n)
	var ss float64
	for _, v := range row {
		d := float64(v) - mu
		ss += d * d
	}
	rs := 1 / math.Sqrt(ss/float64(n)+float64(eps))
	o = o[:n]
	for j, v := range row {
		o[j] = float32((float64(v)-mu)*rs*float64(gamma[j]) + float64(beta[j]))
	}
	return float32(mu), float32(rs)
}

// GELU computes dst[i] = x[i]·Φ(x[i]) = 0.5·x·(1+erf(x/√2)). dst may alias x.
//
//	for i, v := range x {
//		dst[i] = 0.5 * v * math.Erfc(-v/math.Sqrt2) // in float64
//	}
//
// (the erfc form keeps relative accuracy for negative x). GELU(±Inf) is the
// limit: +Inf and -0. The fast variants use exp(-x²/2)·P(|x|)/Q(|x|), a
// rational fit of the Mills ratio, for Φ(-|x|): relative error ≤ 1e-6
// (3.5e-7 measured over every 977th float32) for results ≥ 2⁻¹²⁶.
func GELU(dst, x []float32) {
	checkLen("GELU", len(x), len(dst))
	geluK.Fn()(dst[:len(x)], x)
}

func geluGeneric(dst, x []float32) {
	for i, v := range x {
		dst[i] = geluScalar(v)
	}
}

func geluScalar(v float32) float32 {
	if math.IsInf(float64(v), -1) {
		return negZero32
	}
	return float32(0.5 * float64(v) * math.Erfc(-float64(v)/math.Sqrt2))
}

// QuickGELU computes dst[i] = x[i]·σ(1.702·x[i]), CLIP's activation. dst may
// alias x.
//
//	for i, v := range x {
//		dst[i] = v / (1 + math.Exp(-1.702*v)) // in float64
//	}
//
// QuickGELU(±Inf) is the limit: +Inf and -0. The fast variants are within
// 4e-7 relative (2.0e-7 measured over every 977th float32) for results
// ≥ 2⁻¹²⁶.
func QuickGELU(dst, x []float32) {
	checkLen("QuickGELU", len(x), len(dst))
	quickGeluK.Fn()(dst[:len(x)], x)
}

func quickGeluGeneric(dst, x []float32) {
	for i, v := range x {
		dst[i] = quickGeluScalar(v)
	}
}

func quickGeluScalar(v float32) float32 {
	if math.IsInf(float64(v), -1) {
		return negZero32
	}
	return float32(float64(v) / (1 + math.Exp(-1.702*float64(v))))
}

// Exp computes dst[i] = exp(x[i]). dst may alias x.
//
//	for i, v := range x {
//		dst[i] = float32(math.Exp(float64(v)))
//	}
//
// The fast variants are within 2 ulp (1.04 ulp measured over every float32
// in [-104, 89]; denormal results within 2·2⁻¹⁴⁹); x > 88.73 gives +Inf,
// x < -103.98 gives 0, NaN stays NaN.
func Exp(dst, x []float32) {
	checkLen("Exp", len(x), len(dst))
	expK.Fn()(dst[:len(x)], x)
}

func expGeneric(dst, x []float32) {
	for i, v := range x {
		dst[i] = float32(math.Exp(float64(v)))
	}
}

// AddBias adds bias to every row of x (n = len(bias)):
//
//	for i := range x {
//		x[i] += bias[i%n]
//	}
func AddBias(x, bias []float32) {
	if len(x) == 0 {
		return
	}
	checkRows("AddBias", len(x), len(bias))
	addBiasK.Fn()(x, bias)
}

func addBiasGeneric(x, bias []float32) {
	n := len(bias)
	for r := 0; r < len(x); r += n {
		row := x[r : r+n]
		for j, b := range bias {
			row[j] += b
		}
	}
}

// Add computes dst = a + b. dst may alias a or b.
//
//	for i := range a {
//		dst[i] = a[i] + b[i]
//	}
func Add(dst, a, b []float32) {
	checkLen("Add", len(a), len(b), len(dst))
	addK.Fn()(dst[:len(a)], a, b[:len(a)])
}

func addGeneric(dst, a, b []float32) {
	for i := range a {
		dst[i] = a[i] + b[i]
	}
}

// Mul computes dst = a ⊙ b. dst may alias a or b.
//
//	for i := range a {
//		dst[i] = a[i] * b[i]
//	}
func Mul(dst, a, b []float32) {
	checkLen("Mul", len(a), len(b), len(dst))
	mulK.Fn()(dst[:len(a)], a, b[:len(a)])
}

func mulGeneric(dst, a, b []float32) {
	for i := range a {
		dst[i] = a[i] * b[i]
	}
}

// Axpy computes y += alpha·x (the fast variants round once, with FMA):
//
//	for i, v := range x {
//		y[i] += alpha * v
//	}
func Axpy(alpha float32, x, y []float32) {
	checkLen("Axpy", len(x), len(y))
	axpyK.Fn()(alpha, x, y[:len(x)])
}

func axpyGeneric(alpha float32, x, y []float32) {
	for i, v := range x {
		y[i] += alpha * v
	}
}

// Scale computes x *= alpha:
//
//	for i := range x {
//		x[i] *= alpha
//	}
func Scale(alpha float32, x []float32) { scaleK.Fn()(alpha, x) }

func scaleGeneric(alpha float32, x []float32) {
	for i := range x {
		x[i] *= alpha
	}
}

// Sum returns Σ x[i]:
//
//	var s float32
//	for _, v := range x {
//		s += v
//	}
//	return s
//
// The fast variants add in a fixed, length-determined order (several vector
// accumulators, then a fixed tree), so results are reproducible for a given
// variant and length, whatever the alignment, but may differ between
// variants; the same holds for SumSq and Dot. All stay within the n·ε·Σ|x[i]|
// bound of any summation order (ε = 2⁻²⁴).
func Sum(x []float32) float32 { return sumK.Fn()(x) }

func sumGeneric(x []float32) float32 {
	var s float32
	for _, v := range x {
		s += v
	}
	return s
}

// Max returns the largest element:
//
//	m := float32(math.Inf(-1))
//	for _, v := range x {
//		m = max(m, v)
//	}
//	return m
//
// (-Inf for an empty slice, NaN if any x[i] is NaN; the sign of a zero
// maximum is unspecified).
func Max(x []float32) float32 { return maxK.Fn()(x) }

func maxGeneric(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

// SumSq returns Σ x[i]²:
//
//	var s float32
//	for _, v := range x {
//		s += v * v
//	}
//	return s
func SumSq(x []float32) float32 { return sumSqK.Fn()(x) }

func sumSqGeneric(x []float32) float32 {
	var s float32
	for _, v := range x {
		s += v * v
	}
	return s
}

// Dot returns Σ x[i]·y[i]:
//
//	var s float32
//	for i, v := range x {
//		s += v * y[i]
//	}
//	return s
func Dot(x, y []float32) float32 {
	checkLen("Dot", len(x), len(y))
	return dotK.Fn()(x, y[:len(x)])
}

func dotGeneric(x, y []float32) float32 {
	var s float32
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

// Fused inference kernels.

// AddLayerNorm adds the residual r to x and normalises the sum, row by row:
//
//	for each row: sum[j] = x[j] + r[j]
//	              out = LayerNorm(sum)   (as LayerNorm, mean and rstd dropped)
//
// sum and out may each alias x or r (the very same slice), and out may alias
// sum (the sum is then lost); partial overlaps are not allowed.
func AddLayerNorm(sum, out, x, r, gamma, beta []float32, n int, eps float32) {
	if len(x) == 0 {
		return
	}
	checkRows("AddLayerNorm", len(x), n)
	checkLen("AddLayerNorm", len(x), len(r), len(sum), len(out))
	checkLen("AddLayerNorm", n, len(gamma), len(beta))
	addLayerNormK.Fn()(sum[:len(x)], out[:len(x)], x, r[:len(x)], gamma[:n], beta[:n], n, eps)
}

func addLayerNormGeneric(sum, out, x, r, gamma, beta []float32, n int, eps float32) {
	for i := 0; i < len(x); i += n {
		s := sum[i : i+n]
		for j := range s {
			s[j] = x[i+j] + r[i+j]
		}
		layerNormRowGeneric(out[i:i+n], s, gamma, beta, eps)
	}
}

// BiasGELU adds bias to every row of x and applies GELU in place:
//
//	x[r*n+j] = GELU(x[r*n+j] + bias[j]), n = len(bias)
func BiasGELU(x, bias []float32) {
	if len(x) == 0 {
		return
	}
	checkRows("BiasGELU", len(x), len(bias))
	biasGeluK.Fn()(x, bias)
}

func biasGeluGeneric(x, bias []float32) {
	n := len(bias)
	for r := 0; r < len(x); r += n {
		row := x[r : r+n]
		for j, b := range bias {
			row[j] = geluScalar(row[j] + b)
		}
	}
}

// BiasQuickGELU adds bias to every row of x and applies QuickGELU in place:
//
//	x[r*n+j] = QuickGELU(x[r*n+j] + bias[j]), n = len(bias)
func BiasQuickGELU(x, bias []float32) {
	if len(x) == 0 {
		return
	}
	checkRows("BiasQuickGELU", len(x), len(bias))
	biasQuickGeluK.Fn()(x, bias)
}

func biasQuickGeluGeneric(x, bias []float32) {
	n := len(bias)
	for r := 0; r < len(x); r += n {
		row := x[r : r+n]
		for j, b := range bias {
			row[j] = quickGeluScalar(row[j] + b)
		}
	}
}

// Backward kernels (generic only: they are not on the inference path).

// QuickGELUBackward computes the gradient of QuickGELU:
//
//	for i, v := range x {
//		s := σ(1.702*v)
//		dx[i] = dy[i] * (s + 1.702*v*s*(1-s))
//	}
//
// dx may alias x or dy.
func QuickGELUBackward(dx, x, dy []float32) {
	checkLen("QuickGELUBackward", len(x), len(dy), len(dx))
	quickGeluBwdK.Fn()(dx[:len(x)], x, dy[:len(x)])
}

func quickGeluBackwardGeneric(dx, x, dy []float32) {
	for i, v := range x {
		xv := float64(v)
		// s = σ(a·x) and 1-s = σ(-a·x), each without cancellation.
		e := math.Exp(-1.702 * math.Abs(xv))
		s, t := 1/(1+e), e/(1+e)
		if xv < 0 {
			s, t = t, s
		}
		d := s + 1.702*xv*s*t
		if math.IsInf(xv, 0) {
			d = s // x·s·t → 0
		}
		dx[i] = float32(float64(dy[i]) * d)
	}
}

// GELUBackward computes the gradient of GELU:
//
//	for i, v := range x {
//		dx[i] = dy[i] * (Φ(v) + v*φ(v)) // φ(v) = exp(-v²/2)/√(2π)
//	}
//
// dx may alias x or dy.
func GELUBackward(dx, x, dy []float32) {
	checkLen("GELUBackward", len(x), len(dy), len(dx))
	geluBwdK.Fn()(dx[:len(x)], x, dy[:len(x)])
}

func geluBackwardGeneric(dx, x, dy []float32) {
	const invSqrt2Pi = 0.3989422804014327
	for i, v := range x {
		xv := float64(v)
		var d float64
		if math.IsInf(xv, 0) {
			d = 0.5 * math.Erfc(-xv/math.Sqrt2) // Φ; x·φ(x) → 0
		} else {
			d = 0.5*math.Erfc(-xv/math.Sqrt2) + xv*invSqrt2Pi*math.Exp(-0.5*xv*xv)
		}
		dx[i] = float32(float64(dy[i]) * d)
	}
}

// SoftmaxBackwardRows computes the gradient of SoftmaxRows from its output y:
//
//	for each row: d := Σ y[j]*dy[j]; dx[j] = y[j] * (dy[j] - d)
//
// dx may alias y or dy.
func SoftmaxBackwardRows(dx, y, dy []float32, n int) {
	if len(y) == 0 {
		return
	}
	checkRows("SoftmaxBackwardRows", len(y), n)
	checkLen("SoftmaxBackwardRows", len(y), len(dy), len(dx))
	softmaxBwdK.Fn()(dx[:len(y)], y, dy[:len(y)], n)
}

func softmaxBackwardGeneric(dx, y, dy []float32, n int) {
	for r := 0; r < len(y); r += n {
		yr, dyr, dxr := y[r:r+n], dy[r:r+n], dx[r:r+n]
		var d float64
		for j, p := range yr {
			d += float64(p) * float64(dyr[j])
		}
		for j, p := range yr {
			dxr[j] = float32(float64(p) * (float64(dyr[j]) - d))
		}
	}
}

// LayerNormBackward computes the gradients of LayerNorm from the mean and rstd
// it saved. Per row, with x̂[j] = (x[j]-mean)*rstd and g[j] = dy[j]*gamma[j]:
//
//	dgamma[j] += dy[j]*x̂[j]
//	dbeta[j] += dy[j]
//	dx[j] = rstd * (g[j] - mean_k(g[k]) - x̂[j]*mean_k(g[k]*x̂[k]))
//
// dx is overwritten; dgamma and dbeta are accumulated over the rows. Any of
// dx, dgamma, dbeta may be nil to skip it. dx may alias x or dy.
func LayerNormBackward(dx, dgamma, dbeta, x, dy, gamma, mean, rstd []float32, n int) {
	if len(x) == 0 {
		return
	}
	checkRows("LayerNormBackward", len(x), n)
	checkLen("LayerNormBackward", len(x), len(dy))
	if dx != nil {
		checkLen("LayerNormBackward", len(x), len(dx))
		dx = dx[:len(x)]
	}
	checkLen("LayerNormBackward", n, len(gamma))
	if dgamma != nil {
		checkLen("LayerNormBackward", n, len(dgamma))
		dgamma = dgamma[:n]
	}
	if dbeta != nil {
		checkLen("LayerNormBackward", n, len(dbeta))
		dbeta = dbeta[:n]
	}
	rows := len(x) / n
	checkLen("LayerNormBackward", rows, len(mean), len(rstd))
	layerNormBwdK.Fn()(dx, dgamma, dbeta, x, dy[:len(x)], gamma[:n], mean[:rows], rstd[:rows], n)
}

func layerNormBackwardGeneric(dx, dgamma, dbeta, x, dy, gamma, mean, rstd []float32, n int) {
	for r := 0; r*n < len(x); r++ {
		xr, dyr := x[r*n:(r+1)*n], dy[r*n:(r+1)*n]
		mu, rs := float64(mean[r]), float64(rstd[r])
		var sg, sgx float64
		for j, v := range xr {
			xh := (float64(v) - mu) * rs
			g := float64(dyr[j]) * float64(gamma[j])
			sg += g
			sgx += g * xh
			if dgamma != nil {
				dgamma[j] += float32(float64(dyr[j]) * xh)
			}
			if dbeta != nil {
				dbeta[j] += dyr[j]
			}
		}
		if dx == nil {
			continue
		}
		sg /= float64(n)
		sgx /= float64(n)
		dxr := dx[r*n : (r+1)*n]
		for j, v := range xr {
			xh := (float64(v) - mu) * rs
			dxr[j] = float32(rs * (float64(dyr[j])*float64(gamma[j]) - sg - xh*sgx))
		}
	}
}

// quickGeluBackwardVia returns a QuickGELU backward kernel computed in
// float32 on chunks, with exp taken by the given (vectorised) exp kernel:
//
//	e := exp(-1.702·|x|); s, t := 1/(1+e), e/(1+e) (swapped for x < 0)
//	dx = dy · (s + ((1.702·x)·s)·t)   (x·s·t taken as 0 once e underflows)
//
// each operation rounded to float32 (the conversions forbid fused
// multiply-adds). It is the reference of the fused assembly kernels
// (quickGeluBwdAVX2 and its AVX-512 and NEON twins), which compute exactly
// these steps and are tested equal to it bit for bit.
func quickGeluBackwardVia(exp func(dst, x []float32)) func(dx, x, dy []float32) {
	return func(dx, x, dy []float32) {
		var buf [256]float32
		for off := 0; off < len(x); off += len(buf) {
			xs := x[off:min(off+len(buf), len(x))]
			e := buf[:len(xs)]
			for i, v := range xs {
				e[i] = -1.702 * math.Float32frombits(math.Float32bits(v)&^(1<<31))
			}
			exp(e, e)
			for i, v := range xs {
				ei := e[i]
				s := 1 / (1 + ei)
				t := ei * s
				if v < 0 {
					s, t = t, s
				}
				d := s
				if ei != 0 {
					d = s + float32(float32(float32(1.702*v)*s)*t)
				}
				dx[off+i] = dy[off+i] * d
			}
		}
	}
}
