//go:build (amd64 || arm64) && !noasm

package tensor

// Adapters from the pointer-and-length assembly kernels to the registry
// signatures. The public wrappers in vec.go have checked the lengths.

func unaryVariant(k func(dst, x *float32, n int)) func(dst, x []float32) {
	return func(dst, x []float32) {
		if len(x) > 0 {
			k(&dst[0], &x[0], len(x))
		}
	}
}

func biasVariant(k func(x, bias *float32, n int)) func(x, bias []float32) {
	return func(x, bias []float32) {
		n := len(bias)
		for r := 0; r+n <= len(x); r += n {
			k(&x[r], &bias[0], n)
		}
	}
}

func addBiasVariant(add func(dst, a, b *float32, n int)) func(x, bias []float32) {
	return func(x, bias []float32) {
		n := len(bias)
		for r := 0; r+n <= len(x); r += n {
			add(&x[r], &x[r], &bias[0], n)
		}
	}
}

func softmaxVariant(k func(x *float32, n int)) func(x []float32, n int) {
	return func(x []float32, n int) {
		for r := 0; r+n <= len(x); r += n {
			k(&x[r], n)
		}
	}
}

func layerNormVariant(k func(out, x, gamma, beta *float32, n int, eps float32) (float32, float32)) func(out, x, gamma, beta []float32, n int, eps float32, mean, rstd []float32) {
	return func(out, x, gamma, beta []float32, n int, eps float32, mean, rstd []float32) {
		for r := 0; r*n < len(x); r++ {
			mu, rs := k(&out[r*n], &x[r*n], &gamma[0], &beta[0], n, eps)
			if mean != nil {
				mean[r] = mu
			}
			if rstd != nil {
				rstd[r] = rs
			}
		}
	}
}

func addLayerNormVariant(k func(sum, out, x, r, gamma, beta *float32, n int, eps float32)) func(sum, out, x, r, gamma, beta []float32, n int, eps float32) {
	return func(sum, out, x, r, gamma, beta []float32, n int, eps float32) {
		for i := 0; i < len(x); i += n {
			k(&sum[i], &out[i], &x[i], &r[i], &gamma[0], &beta[0], n, eps)
		}
	}
}

func reduceVariant(k func(x *float32, n int) float32) func(x []float32) float32 {
	return func(x []float32) float32 {
		if len(x) == 0 {
			return 0
		}
		return k(&x[0], len(x))
	}
}

func maxVariant(k func(x *float32, n int) float32) func(x []float32) float32 {
	return func(x []float32) float32 {
		if len(x) == 0 {
			return negInf32
		}
		return k(&x[0], len(x))
	}
}

func dotVariant(k func(x, y *float32, n int) float32) func(x, y []float32) float32 {
	return func(x, y []float32) float32 {
		if len(x) == 0 {
			return 0
		}
		return k(&x[0], &y[0], len(x))
	}
}

func axpyVariant(k func(alpha float32, x, y *float32, n int)) func(alpha float32, x, y []float32) {
	return func(alpha float32, x, y []float32) {
		if len(x) > 0 {
			k(alpha, &x[0], &y[0], len(x))
		}
	}
}

func scaleVariant(k func(alpha float32, x *float32, n int)) func(alpha float32, x []float32) {
	return func(alpha float32, x []float32) {
		if len(x) > 0 {
			k(alpha, &x[0], len(x))
		}
	}
}

func binaryVariant(k func(dst, a, b *float32, n int)) func(dst, a, b []float32) {
	return func(dst, a, b []float32) {
		if len(a) > 0 {
			k(&dst[0], &a[0], &b[0], len(a))
		}
	}
}

// layerNormBwdVariant runs a row kernel of LayerNormBackward over the rows;
// gradients the caller skips (nil) go to scratch rows.
func layerNormBwdVariant(k func(dx, dgamma, dbeta, x, dy, gamma *float32, n int, mean, rstd float32)) func(dx, dgamma, dbeta, x, dy, gamma, mean, rstd []float32, n int) {
	return func(dx, dgamma, dbeta, x, dy, gamma, mean, rstd []float32, n int) {
		if dgamma == nil {
			dgamma = make([]float32, n)
		}
		if dbeta == nil {
			dbeta = make([]float32, n)
		}
		var scratch []float32
		if dx == nil {
			scratch = make([]float32, n)
		}
		for r := 0; r*n < len(x); r++ {
			d := scratch
			if dx != nil {
				d = dx[r*n : (r+1)*n]
			}
			k(&d[0], &dgamma[0], &dbeta[0], &x[r*n], &dy[r*n], &gamma[0], n, mean[r], rstd[r])
		}
	}
}

// softmaxBwdVariant runs a row kernel of SoftmaxBackwardRows over the rows.
func softmaxBwdVariant(k func(dx, y, dy *float32, n int)) func(dx, y, dy []float32, n int) {
	return func(dx, y, dy []float32, n int) {
		for r := 0; r+n <= len(y); r += n {
			k(&dx[r], &y[r], &dy[r], n)
		}
	}
}
