//go:build !noasm

package tensor

// AVX2+FMA and AVX-512 variants of the vector kernels. The assembly works on
// raw pointers and lengths; the wrappers here loop over rows and pass &s[0]
// only for non-empty slices. Each declaration's comment is its meaning as a
// plain loop (the generic twin in vec.go is the reference).

func init() {
	if cpuAVX2 {
		expK.Register(AVX2, unaryVariant(expAVX2))
		quickGeluK.Register(AVX2, unaryVariant(quickGeluAVX2))
		geluK.Register(AVX2, unaryVariant(geluAVX2))
		biasQuickGeluK.Register(AVX2, biasVariant(biasQuickGeluAVX2))
		biasGeluK.Register(AVX2, biasVariant(biasGeluAVX2))
		softmaxK.Register(AVX2, softmaxVariant(softmaxRowAVX2))
		layerNormK.Register(AVX2, layerNormVariant(layerNormRowAVX2))
		addLayerNormK.Register(AVX2, addLayerNormVariant(addLayerNormRowAVX2))
		sumK.Register(AVX2, reduceVariant(sumAVX2))
		sumSqK.Register(AVX2, reduceVariant(sumSqAVX2))
		maxK.Register(AVX2, maxVariant(maxAVX2))
		dotK.Register(AVX2, dotVariant(dotAVX2))
		axpyK.Register(AVX2, axpyVariant(axpyAVX2))
		scaleK.Register(AVX2, scaleVariant(scaleAVX2))
		addK.Register(AVX2, binaryVariant(addAVX2))
		mulK.Register(AVX2, binaryVariant(mulAVX2))
		addBiasK.Register(AVX2, addBiasVariant(addAVX2))
	}
}

// expAVX2: for i < n: dst[i] = exp(x[i]).
//
//go:noescape
func expAVX2(dst, x *float32, n int)

// quickGeluAVX2: for i < n: dst[i] = x[i]·σ(1.702·x[i]).
//
//go:noescape
func quickGeluAVX2(dst, x *float32, n int)

// geluAVX2: for i < n: dst[i] = x[i]·Φ(x[i]).
//
//go:noescape
func geluAVX2(dst, x *float32, n int)

// biasQuickGeluAVX2: for i < n: x[i] = QuickGELU(x[i] + bias[i]).
//
//go:noescape
func biasQuickGeluAVX2(x, bias *float32, n int)

// biasGeluAVX2: for i < n: x[i] = GELU(x[i] + bias[i]).
//
//go:noescape
func biasGeluAVX2(x, bias *float32, n int)

// softmaxRowAVX2: m := max(x[:n]); x[j] = exp(x[j]-m); s := Σ x[j];
// x[j] *= 1/s. n ≥ 1.
//
//go:noescape
func softmaxRowAVX2(x *float32, n int)

// layerNormRowAVX2: with c = x[0], m' = Σ(x[j]-c)/n, d[j] = (x[j]-c)-m',
// var = (Σd² - (Σd)²/n)/n, rstd = 1/sqrt(var+eps):
// out[j] = d[j]·rstd·gamma[j] + beta[j]; mean = c + m'. n ≥ 1.
//
//go:noescape
func layerNormRowAVX2(out, x, gamma, beta *float32, n int, eps float32) (mean, rstd float32)

// addLayerNormRowAVX2: for j < n: sum[j] = x[j] + r[j]; then
// layerNormRowAVX2(out, sum, gamma, beta, n, eps). n ≥ 1.
//
//go:noescape
func addLayerNormRowAVX2(sum, out, x, r, gamma, beta *float32, n int, eps float32)

// sumAVX2: Σ x[i], i < n.
//
//go:noescape
func sumAVX2(x *float32, n int) float32

// sumSqAVX2: Σ x[i]², i < n.
//
//go:noescape
func sumSqAVX2(x *float32, n int) float32

// dotAVX2: Σ x[i]·y[i], i < n.
//
//go:noescape
func dotAVX2(x, y *float32, n int) float32

// maxAVX2: max x[i], i < n (-Inf for n = 0, NaN if any is NaN).
//
//go:noescape
func maxAVX2(x *float32, n int) float32

// axpyAVX2: for i < n: y[i] += alpha·x[i].
//
//go:noescape
func axpyAVX2(alpha float32, x, y *float32, n int)

// scaleAVX2: for i < n: x[i] *= alpha.
//
//go:noescape
func scaleAVX2(alpha float32, x *float32, n int)

// addAVX2: for i < n: dst[i] = a[i] + b[i].
//
//go:noescape
func addAVX2(dst, a, b *float32, n int)

// mulAVX2: for i < n: dst[i] = a[i]·b[i].
//
//go:noescape
func mulAVX2(dst, a, b *float32, n int)
