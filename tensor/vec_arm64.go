//go:build !noasm

package tensor

// arm64 NEON variants of the vector kernels (vec_neon_arm64.s). Each kernel
// means the same as its AVX2 namesake in vec_amd64.go; the adapters are in
// vec_asm.go.

func init() {
	if !cpuNEON {
		return
	}
	expK.Register(NEON, unaryVariant(expNEON))
	quickGeluBwdK.Register(NEON, binaryVariant(quickGeluBwdNEON))
	quickGeluK.Register(NEON, unaryVariant(quickGeluNEON))
	geluK.Register(NEON, unaryVariant(geluNEON))
	biasQuickGeluK.Register(NEON, biasVariant(biasQuickGeluNEON))
	biasGeluK.Register(NEON, biasVariant(biasGeluNEON))
	softmaxK.Register(NEON, softmaxVariant(softmaxRowNEON))
	layerNormK.Register(NEON, layerNormVariant(layerNormRowNEON))
	addLayerNormK.Register(NEON, addLayerNormVariant(addLayerNormRowNEON))
	layerNormBwdK.Register(NEON, layerNormBwdVariant(layerNormBwdRowNEON))
	softmaxBwdK.Register(NEON, softmaxBwdVariant(softmaxBwdRowNEON))
	sumK.Register(NEON, reduceVariant(sumNEON))
	sumSqK.Register(NEON, reduceVariant(sumSqNEON))
	maxK.Register(NEON, maxVariant(maxNEON))
	dotK.Register(NEON, dotVariant(dotNEON))
	axpyK.Register(NEON, axpyVariant(axpyNEON))
	scaleK.Register(NEON, scaleVariant(scaleNEON))
	addK.Register(NEON, binaryVariant(addNEON))
	mulK.Register(NEON, binaryVariant(mulNEON))
	addBiasK.Register(NEON, addBiasVariant(addNEON))
}

//go:noescape
func expNEON(dst, x *float32, n int)

//go:noescape
func quickGeluNEON(dst, x *float32, n int)

// quickGeluBwdNEON: for i < n: dx[i] = dy[i]·QuickGELU'(x[i]), the steps of
// quickGeluBwdAVX2 (so the same values, lane for lane).
//
//go:noescape
func quickGeluBwdNEON(dx, x, dy *float32, n int)

//go:noescape
func geluNEON(dst, x *float32, n int)

//go:noescape
func biasQuickGeluNEON(x, bias *float32, n int)

//go:noescape
func biasGeluNEON(x, bias *float32, n int)

//go:noescape
func softmaxRowNEON(x *float32, n int)

//go:noescape
func layerNormRowNEON(out, x, gamma, beta *float32, n int, eps float32) (mean, rstd float32)

//go:noescape
func addLayerNormRowNEON(sum, out, x, r, gamma, beta *float32, n int, eps float32)

// layerNormBwdRowNEON has the meaning of layerNormBwdRowAVX2.
//
//go:noescape
func layerNormBwdRowNEON(dx, dgamma, dbeta, x, dy, gamma *float32, n int, mean, rstd float32)

// softmaxBwdRowNEON has the meaning of softmaxBwdRowAVX2.
//
//go:noescape
func softmaxBwdRowNEON(dx, y, dy *float32, n int)

//go:noescape
func sumNEON(x *float32, n int) float32

//go:noescape
func sumSqNEON(x *float32, n int) float32

//go:noescape
func dotNEON(x, y *float32, n int) float32

//go:noescape
func maxNEON(x *float32, n int) float32

//go:noescape
func axpyNEON(alpha float32, x, y *float32, n int)

//go:noescape
func scaleNEON(alpha float32, x *float32, n int)

//go:noescape
func addNEON(dst, a, b *float32, n int)

//go:noescape
func mulNEON(dst, a, b *float32, n int)
