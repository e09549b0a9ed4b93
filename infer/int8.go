package infer

import (
	"github.com/mopeclip/mopeclip/tensor"
	"gonum.org/v1/gonum/blas"
)

// The int8 weight path (Options.DType = INT8): every weight GEMM (patch
// embedding, q/k/v, out, fc1, fc2, projections) runs on weights quantised
// symmetrically to int8 per output channel, once at New, with the
// activations quantised per row (token) at each GEMM, int32 sums and a
// float32 rescale (tensor.SgemmPackedInt8: AVX-512 VNNI or AVX-VNNI
// VPDPBUSD where the CPU has it, a pure-Go kernel elsewhere, all giving
// the same bits). Attention, layer norms, softmax and the GEMM epilogues
// (bias, GELU, residual) stay float32. A matrix whose inner dimension
// exceeds tensor.Int8MaxK stays float32.

// packInt8 quantises and packs W [n, k] (op(B) = Wᵀ).
func packInt8(k, n int, w []float32) weight {
	return weight{q: tensor.PackBInt8(blas.Trans, k, n, w, k)}
}

// mulInt8 sets c = a·W on the int8 path, with the epilogue ep when not nil.
func (w *weight) mulInt8(rows int, a []float32, lda int, c []float32, ldc int, ep *tensor.Epilogue) {
	if ep != nil {
		tensor.SgemmPackedInt8Epilogue(blas.NoTrans, rows, 1, a, lda, w.q, 0, c, ldc, *ep)
		return
	}
	tensor.SgemmPackedInt8(blas.NoTrans, rows, 1, a, lda, w.q, 0, c, ldc)
}
