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
}

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
		var s float32
		for j, v := range row {
			e := float32(math.Exp(float64(v - m)))
			row[j] = e
			s += e
		}
		inv := 1 / s
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
// pass). out may alias x.
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
		row := x[r*n : (r+1)*n]
		var s float32
		for _, v := range row {
			s += v
		}
		mu := s / float32(n)
		var ss float32
		for _, v := range row {
			d := v - mu
			ss += d * d
		}
		rs := float32(1 / math.Sqrt(float64(ss/float32(n)+eps)))
		o := out[r*n : (r+1)*n]
		for j, v := range row {
			o[j] = (v-mu)*rs*gamma[j] + beta[j]
		}
		if mean != nil {
			mean[r] = mu
		}
		if rstd != nil {
			rstd[r] = rs
		}
	}
}

// GELU computes dst[i] = x[i]·Φ(x[i]) = 0.5·x·(1+erf(x/√2)). dst may alias x.
func GELU(dst, x []float32) {
	checkLen("GELU", len(x), len(dst))
	geluK.Fn()(dst[:len(x)], x)
}

func geluGeneric(dst, x []float32) {
	for i, v := range x {
		dst[i] = float32(0.5 * float64(v) * (1 + math.Erf(float64(v)/math.Sqrt2)))
	}
}

// QuickGELU computes dst[i] = x[i]·σ(1.702·x[i]), CLIP's activation. dst may
// alias x.
func QuickGELU(dst, x []float32) {
	checkLen("QuickGELU", len(x), len(dst))
	quickGeluK.Fn()(dst[:len(x)], x)
}

func quickGeluGeneric(dst, x []float32) {
	for i, v := range x {
		dst[i] = v / (1 + float32(math.Exp(float64(-1.702*v))))
	}
}

// Exp computes dst[i] = exp(x[i]). dst may alias x.
func Exp(dst, x []float32) {
	checkLen("Exp", len(x), len(dst))
	expK.Fn()(dst[:len(x)], x)
}

func expGeneric(dst, x []float32) {
	for i, v := range x {
		dst[i] = float32(math.Exp(float64(v)))
	}
}

// AddBias adds bias to every row of x: x[r*n+j] += bias[j], n = len(bias).
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

// Add computes dst[i] = a[i] + b[i]. dst may alias a or b.
func Add(dst, a, b []float32) {
	checkLen("Add", len(a), len(b), len(dst))
	addK.Fn()(dst[:len(a)], a, b[:len(a)])
}

func addGeneric(dst, a, b []float32) {
	for i := range a {
		dst[i] = a[i] + b[i]
	}
}

// Mul computes dst[i] = a[i] · b[i]. dst may alias a or b.
func Mul(dst, a, b []float32) {
	checkLen("Mul", len(a), len(b), len(dst))
	mulK.Fn()(dst[:len(a)], a, b[:len(a)])
}

func mulGeneric(dst, a, b []float32) {
	for i := range a {
		dst[i] = a[i] * b[i]
	}
}

// Axpy computes y[i] += alpha · x[i].
func Axpy(alpha float32, x, y []float32) {
	checkLen("Axpy", len(x), len(y))
	axpyK.Fn()(alpha, x, y[:len(x)])
}

func axpyGeneric(alpha float32, x, y []float32) {
	for i, v := range x {
		y[i] += alpha * v
	}
}

// Scale computes x[i] *= alpha.
func Scale(alpha float32, x []float32) { scaleK.Fn()(alpha, x) }

func scaleGeneric(alpha float32, x []float32) {
	for i := range x {
		x[i] *= alpha
	}
}

// Sum returns Σ x[i].
func Sum(x []float32) float32 { return sumK.Fn()(x) }

func sumGeneric(x []float32) float32 {
	var s float32
	for _, v := range x {
		s += v
	}
	return s
}

// Max returns max x[i] (-Inf for an empty slice).
func Max(x []float32) float32 { return maxK.Fn()(x) }

func maxGeneric(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

// SumSq returns Σ x[i]².
func SumSq(x []float32) float32 { return sumSqK.Fn()(x) }

func sumSqGeneric(x []float32) float32 {
	var s float32
	for _, v := range x {
		s += v * v
	}
	return s
}

// Dot returns Σ x[i]·y[i].
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
