package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkVec/<op>/<variant>/<shape> times every variant of every vector
// kernel at the shapes CLIP uses: 768 and 3072 (ViT-B width and MLP width),
// softmax rows of 50×50 (ViT-B/32 tokens) and 77×77 (text tokens), and layer
// norm over 77 rows of 768. It reports MB/s (bytes read + written) and
// elements/s. Compare variants within one run: the machine is shared.
func BenchmarkVec(b *testing.B) {
	type shape struct {
		name       string
		rows, cols int
	}
	vecShapes := []shape{{"768", 1, 768}, {"3072", 1, 3072}}
	softmaxShapes := []shape{{"50x50", 50, 50}, {"77x77", 77, 77}}
	lnShapes := []shape{{"768", 1, 768}, {"3072", 1, 3072}, {"77x768", 77, 768}}

	r := rand.New(rand.NewPCG(1, 2))
	data := func(n int, lo, hi float64) []float32 { return vecRand(r, n, lo, hi) }

	// run benchmarks fn for every variant of reg at every shape; streams is
	// the number of n-float arrays read or written per call.
	run := func(b *testing.B, op string, variants []string, use func(string) func(), shapes []shape, streams int, fn func(s shape) func()) {
		b.Run(op, func(b *testing.B) {
			for _, v := range variants {
				b.Run(v, func(b *testing.B) {
					restore := use(v)
					defer restore()
					for _, s := range shapes {
						b.Run(s.name, func(b *testing.B) {
							n := s.rows * s.cols
							call := fn(s)
							b.SetBytes(int64(4 * n * streams))
							b.ResetTimer()
							for i := 0; i < b.N; i++ {
								call()
							}
							b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "elem/s")
						})
					}
				})
			}
		})
	}

	unary := func(op string, reg *Registry[func(dst, x []float32)], f func(dst, x []float32), lo, hi float64) {
		run(b, op, variantNames(reg), vecUser(reg), vecShapes, 2, func(s shape) func() {
			x, dst := data(s.cols, lo, hi), make([]float32, s.cols)
			return func() { f(dst, x) }
		})
	}
	unary("exp", expK, Exp, -20, 20)
	unary("gelu", geluK, GELU, -6, 6)
	unary("quickgelu", quickGeluK, QuickGELU, -6, 6)

	// The activations work in place, so each call starts from a fresh copy
	// of the input (the copy is included in the time, and in the bytes).
	bias := func(op string, reg *Registry[func(x, bias []float32)], f func(x, bias []float32), fresh bool) {
		streams := 3
		if fresh {
			streams = 5
		}
		run(b, op, variantNames(reg), vecUser(reg), vecShapes, streams, func(s shape) func() {
			x0, bias := data(s.cols, -3, 3), data(s.cols, -1, 1)
			x := append([]float32(nil), x0...)
			if !fresh {
				return func() { f(x, bias) }
			}
			return func() {
				copy(x, x0)
				f(x, bias)
			}
		})
	}
	bias("biasgelu", biasGeluK, BiasGELU, true)
	bias("biasquickgelu", biasQuickGeluK, BiasQuickGELU, true)
	bias("addbias", addBiasK, AddBias, false)

	run(b, "softmax", variantNames(softmaxK), vecUser(softmaxK), softmaxShapes, 2, func(s shape) func() {
		x := data(s.rows*s.cols, -5, 5)
		return func() { SoftmaxRows(x, s.cols) }
	})
	run(b, "layernorm", variantNames(layerNormK), vecUser(layerNormK), lnShapes, 2, func(s shape) func() {
		x, out := data(s.rows*s.cols, -3, 3), make([]float32, s.rows*s.cols)
		gamma, beta := data(s.cols, 0.5, 1.5), data(s.cols, -0.5, 0.5)
		mean, rstd := make([]float32, s.rows), make([]float32, s.rows)
		return func() { LayerNorm(out, x, gamma, beta, s.cols, 1e-5, mean, rstd) }
	})
	run(b, "addlayernorm", variantNames(addLayerNormK), vecUser(addLayerNormK), lnShapes, 4, func(s shape) func() {
		x, res := data(s.rows*s.cols, -3, 3), data(s.rows*s.cols, -3, 3)
		sum, out := make([]float32, len(x)), make([]float32, len(x))
		gamma, beta := data(s.cols, 0.5, 1.5), data(s.cols, -0.5, 0.5)
		return func() { AddLayerNorm(sum, out, x, res, gamma, beta, s.cols, 1e-5) }
	})
	run(b, "layernormbackward", variantNames(layerNormBwdK), vecUser(layerNormBwdK), lnShapes, 6, func(s shape) func() {
		x, dy, dx := data(s.rows*s.cols, -3, 3), data(s.rows*s.cols, -1, 1), make([]float32, s.rows*s.cols)
		gamma, dgamma, dbeta := data(s.cols, 0.5, 1.5), make([]float32, s.cols), make([]float32, s.cols)
		mean, rstd := make([]float32, s.rows), make([]float32, s.rows)
		LayerNorm(make([]float32, len(x)), x, gamma, gamma, s.cols, 1e-5, mean, rstd)
		return func() { LayerNormBackward(dx, dgamma, dbeta, x, dy, gamma, mean, rstd, s.cols) }
	})
	run(b, "softmaxbackward", variantNames(softmaxBwdK), vecUser(softmaxBwdK), softmaxShapes, 3, func(s shape) func() {
		y, dy, dx := data(s.rows*s.cols, -5, 5), data(s.rows*s.cols, -1, 1), make([]float32, s.rows*s.cols)
		SoftmaxRows(y, s.cols)
		return func() { SoftmaxBackwardRows(dx, y, dy, s.cols) }
	})

	var sink float32
	reduce := func(op string, reg *Registry[func(x []float32) float32], f func(x []float32) float32) {
		run(b, op, variantNames(reg), vecUser(reg), vecShapes, 1, func(s shape) func() {
			x := data(s.cols, -1, 1)
			return func() { sink += f(x) }
		})
	}
	reduce("sum", sumK, Sum)
	reduce("sumsq", sumSqK, SumSq)
	reduce("max", maxK, Max)
	run(b, "dot", variantNames(dotK), vecUser(dotK), vecShapes, 2, func(s shape) func() {
		x, y := data(s.cols, -1, 1), data(s.cols, -1, 1)
		return func() { sink += Dot(x, y) }
	})
	run(b, "axpy", variantNames(axpyK), vecUser(axpyK), vecShapes, 3, func(s shape) func() {
		x, y := data(s.cols, -1, 1), data(s.cols, -1, 1)
		return func() { Axpy(1e-7, x, y) }
	})
	run(b, "scale", variantNames(scaleK), vecUser(scaleK), vecShapes, 2, func(s shape) func() {
		x := data(s.cols, -1, 1)
		return func() { Scale(1, x) }
	})
	binary := func(op string, reg *Registry[func(dst, a, b []float32)], f func(dst, a, b []float32)) {
		run(b, op, variantNames(reg), vecUser(reg), vecShapes, 3, func(s shape) func() {
			x, y, dst := data(s.cols, -1, 1), data(s.cols, -1, 1), make([]float32, s.cols)
			return func() { f(dst, x, y) }
		})
	}
	binary("add", addK, Add)
	binary("mul", mulK, Mul)
	if sink == 1.2345 {
		fmt.Println(sink)
	}
}

// vecUser returns a function that makes the named variant of reg active and
// returns the restore function.
func vecUser[F any](reg *Registry[F]) func(string) func() {
	return func(name string) func() {
		restore, ok := reg.Use(name)
		if !ok {
			panic("no variant " + name)
		}
		return restore
	}
}
