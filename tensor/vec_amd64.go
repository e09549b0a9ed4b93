//go:build !noasm

package tensor

import "math"

// AVX2+FMA and AVX-512 variants of the vector kernels. The assembly works on
// raw pointers and lengths; the wrappers here loop over rows and pass &s[0]
// only for non-empty slices. Each declaration's comment is its meaning as a
// plain loop (the generic twin in vec.go is the reference).

func init() {
	if cpuAVX2 {
		expK.Register(AVX2, unaryVariant(expAVX2))
		quickGeluBwdK.Register(AVX2, binaryVariant(quickGeluBwdAVX2))
		quickGeluK.Register(AVX2, unaryVariant(quickGeluAVX2))
		geluK.Register(AVX2, unaryVariant(geluAVX2))
		biasQuickGeluK.Register(AVX2, biasVariant(biasQuickGeluAVX2))
		biasGeluK.Register(AVX2, biasVariant(biasGeluAVX2))
		softmaxK.Register(AVX2, softmaxVariant(softmaxRowAVX2))
		layerNormK.Register(AVX2, layerNormVariant(layerNormRowAVX2))
		addLayerNormK.Register(AVX2, addLayerNormVariant(addLayerNormRowAVX2))
		layerNormBwdK.Register(AVX2, layerNormBwdVariant(layerNormBwdRowAVX2))
		softmaxBwdK.Register(AVX2, softmaxBwdVariant(softmaxBwdRowAVX2))
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
	if cpuAVX512 && avx512SelfCheck() {
		expK.Register(AVX512, unaryVariant(expAVX512))
		quickGeluBwdK.Register(AVX512, binaryVariant(quickGeluBwdAVX512))
		quickGeluK.Register(AVX512, unaryVariant(quickGeluAVX512))
		geluK.Register(AVX512, unaryVariant(geluAVX512))
		biasQuickGeluK.Register(AVX512, biasVariant(biasQuickGeluAVX512))
		biasGeluK.Register(AVX512, biasVariant(biasGeluAVX512))
		softmaxK.Register(AVX512, softmaxVariant(softmaxRowAVX512))
		layerNormK.Register(AVX512, layerNormVariant(layerNormRowAVX512))
		addLayerNormK.Register(AVX512, addLayerNormVariant(addLayerNormRowAVX512))
		layerNormBwdK.Register(AVX512, layerNormBwdVariant(layerNormBwdRowAVX512))
		softmaxBwdK.Register(AVX512, softmaxBwdVariant(softmaxBwdRowAVX512))
		sumK.Register(AVX512, reduceVariant(sumAVX512))
		sumSqK.Register(AVX512, reduceVariant(sumSqAVX512))
		maxK.Register(AVX512, maxVariant(maxAVX512))
		dotK.Register(AVX512, dotVariant(dotAVX512))
		axpyK.Register(AVX512, axpyVariant(axpyAVX512))
		scaleK.Register(AVX512, scaleVariant(scaleAVX512))
		addK.Register(AVX512, binaryVariant(addAVX512))
		mulK.Register(AVX512, binaryVariant(mulAVX512))
		addBiasK.Register(AVX512, addBiasVariant(addAVX512))
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

// quickGeluBwdAVX2: for i < n: dx[i] = dy[i]·QuickGELU'(x[i]), bit for bit
// as quickGeluBackwardVia(expAVX2) computes it (the steps are listed above
// QGBWD8 in vec_avx2_amd64.s).
//
//go:noescape
func quickGeluBwdAVX2(dx, x, dy *float32, n int)

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

// layerNormBwdRowAVX2 is LayerNormBackward for one row of n ≥ 1 (all of dx,
// dgamma, dbeta written), in float32: with xh[j] = (x[j]-mean)·rstd and
// g[j] = dy[j]·gamma[j],
//
//	dgamma[j] += dy[j]·xh[j]; dbeta[j] += dy[j]
//	dx[j] = ((g[j] - Σg/n) - xh[j]·(Σ g·xh)/n)·rstd
//
// with the sums over 8 lanes then across them. dx may alias x or dy.
//
//go:noescape
func layerNormBwdRowAVX2(dx, dgamma, dbeta, x, dy, gamma *float32, n int, mean, rstd float32)

// softmaxBwdRowAVX2 is SoftmaxBackwardRows for one row of n ≥ 1, in float32:
// d := Σ y[j]·dy[j] (over 8 lanes, then across them); dx[j] = y[j]·(dy[j]-d).
// dx may alias y or dy.
//
//go:noescape
func softmaxBwdRowAVX2(dx, y, dy *float32, n int)

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

// The AVX-512 kernels have the same meaning as their AVX2 namesakes.

//go:noescape
func expAVX512(dst, x *float32, n int)

//go:noescape
func quickGeluAVX512(dst, x *float32, n int)

// quickGeluBwdAVX512 equals quickGeluBackwardVia(expAVX512) bit for bit.
//
//go:noescape
func quickGeluBwdAVX512(dx, x, dy *float32, n int)

//go:noescape
func geluAVX512(dst, x *float32, n int)

//go:noescape
func biasQuickGeluAVX512(x, bias *float32, n int)

//go:noescape
func biasGeluAVX512(x, bias *float32, n int)

//go:noescape
func softmaxRowAVX512(x *float32, n int)

//go:noescape
func layerNormRowAVX512(out, x, gamma, beta *float32, n int, eps float32) (mean, rstd float32)

//go:noescape
func addLayerNormRowAVX512(sum, out, x, r, gamma, beta *float32, n int, eps float32)

//go:noescape
func layerNormBwdRowAVX512(dx, dgamma, dbeta, x, dy, gamma *float32, n int, mean, rstd float32)

//go:noescape
func softmaxBwdRowAVX512(dx, y, dy *float32, n int)

//go:noescape
func sumAVX512(x *float32, n int) float32

//go:noescape
func sumSqAVX512(x *float32, n int) float32

//go:noescape
func dotAVX512(x, y *float32, n int) float32

//go:noescape
func maxAVX512(x *float32, n int) float32

//go:noescape
func axpyAVX512(alpha float32, x, y *float32, n int)

//go:noescape
func scaleAVX512(alpha float32, x *float32, n int)

//go:noescape
func addAVX512(dst, a, b *float32, n int)

//go:noescape
func mulAVX512(dst, a, b *float32, n int)

// avx512SelfCheck runs each AVX-512 kernel once on 37 floats (two full
// vectors and a masked tail) and compares with the generic kernels, loosely
// (1e-5 relative). The AVX-512 code was developed without AVX-512 hardware
// and verified in an instruction-level emulator (vec_emu_amd64_test.go); if
// real hardware disagrees grossly, the AVX-512 variants are left out instead
// of giving wrong results, and TestVecVariantsRegistered reports it.
func avx512SelfCheck() bool {
	const n = 37
	var x, y, g, b, want, got, s1, s2 [n]float32
	seed := uint32(12345)
	for i := range x {
		seed = seed*1664525 + 1013904223
		x[i] = float32(int32(seed>>8)%10000) / 1000 // [-10, 10)
		seed = seed*1664525 + 1013904223
		y[i] = float32(int32(seed>>8)%10000) / 3000
	}
	for i := range g {
		g[i], b[i] = 1+y[i]/8, y[i]/4
	}
	close := func(a, w []float32) bool {
		for i := range w {
			d := float64(a[i]) - float64(w[i])
			if !(d <= 1e-5*(math.Abs(float64(w[i]))+1e-30) && -d <= 1e-5*(math.Abs(float64(w[i]))+1e-30)) {
				return false
			}
		}
		return true
	}
	// closeLoose allows float32 sums' rounding against float64 ones.
	closeLoose := func(a, w []float32) bool {
		var scale float64
		for _, v := range w {
			scale = max(scale, math.Abs(float64(v)))
		}
		for i := range w {
			if !(math.Abs(float64(a[i])-float64(w[i])) <= 1e-4*(scale+1)) {
				return false
			}
		}
		return true
	}
	closeSum := func(a, w float32) bool { return math.Abs(float64(a-w)) <= 1e-4*(1+math.Abs(float64(w))) }
	ok := true
	unary := func(k func(dst, x *float32, n int), ref func(dst, x []float32)) {
		ref(want[:], x[:])
		k(&got[0], &x[0], n)
		ok = ok && close(got[:], want[:])
	}
	unary(expAVX512, expGeneric)
	unary(quickGeluAVX512, quickGeluGeneric)
	unary(geluAVX512, geluGeneric)
	quickGeluBackwardVia(unaryVariant(expAVX512))(want[:], x[:], y[:])
	quickGeluBwdAVX512(&got[0], &x[0], &y[0], n)
	ok = ok && got == want
	bias := func(k func(x, bias *float32, n int), ref func(x, bias []float32)) {
		want, got = x, x
		ref(want[:], y[:])
		k(&got[0], &y[0], n)
		ok = ok && close(got[:], want[:])
	}
	bias(biasQuickGeluAVX512, biasQuickGeluGeneric)
	bias(biasGeluAVX512, biasGeluGeneric)
	bias(addAVX512Bias, addBiasGeneric)
	want, got = x, x
	softmaxGeneric(want[:], n)
	softmaxRowAVX512(&got[0], n)
	ok = ok && close(got[:], want[:])
	var m, r [1]float32
	layerNormGeneric(want[:], x[:], g[:], b[:], n, 1e-5, m[:], r[:])
	mu, rs := layerNormRowAVX512(&got[0], &x[0], &g[0], &b[0], n, 1e-5)
	ok = ok && close(got[:], want[:]) && closeSum(mu, m[0]) && closeSum(rs, r[0])
	addLayerNormGeneric(s1[:], want[:], x[:], y[:], g[:], b[:], n, 1e-5)
	addLayerNormRowAVX512(&s2[0], &got[0], &x[0], &y[0], &g[0], &b[0], n, 1e-5)
	ok = ok && close(got[:], want[:]) && s1 == s2
	var dg1, dg2, db1, db2 [n]float32
	layerNormBackwardGeneric(want[:], dg1[:], db1[:], x[:], y[:], g[:], m[:], r[:], n)
	layerNormBwdRowAVX512(&got[0], &dg2[0], &db2[0], &x[0], &y[0], &g[0], n, m[0], r[0])
	ok = ok && closeLoose(got[:], want[:]) && closeLoose(dg2[:], dg1[:]) && closeLoose(db2[:], db1[:])
	softmaxBackwardGeneric(want[:], x[:], y[:], n)
	softmaxBwdRowAVX512(&got[0], &x[0], &y[0], n)
	ok = ok && closeLoose(got[:], want[:])
	ok = ok && closeSum(sumAVX512(&x[0], n), sumGeneric(x[:]))
	ok = ok && closeSum(sumSqAVX512(&x[0], n), sumSqGeneric(x[:]))
	ok = ok && closeSum(dotAVX512(&x[0], &y[0], n), dotGeneric(x[:], y[:]))
	ok = ok && maxAVX512(&x[0], n) == maxGeneric(x[:]) && maxAVX512(&y[0], n-1) == maxGeneric(y[:n-1])
	want, got = y, y
	axpyGeneric(0.5, x[:], want[:])
	axpyAVX512(0.5, &x[0], &got[0], n)
	ok = ok && close(got[:], want[:])
	want, got = x, x
	scaleGeneric(-3, want[:])
	scaleAVX512(-3, &got[0], n)
	ok = ok && want == got
	addGeneric(want[:], x[:], y[:])
	addAVX512(&got[0], &x[0], &y[0], n)
	ok = ok && want == got
	mulGeneric(want[:], x[:], y[:])
	mulAVX512(&got[0], &x[0], &y[0], n)
	ok = ok && want == got
	return ok
}

// addAVX512Bias is AddBias for one row of n, for the self-check.
func addAVX512Bias(x, bias *float32, n int) { addAVX512(x, x, bias, n) }
