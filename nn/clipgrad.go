package nn

import (
	"math"

	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// GradNorm returns the global L2 norm of the gradients of params. Each
// element's square is summed in float64, parameter by parameter in the given
// order, element by element in index order, so the result is the same on
// every run and platform. A backend with a fused AdamW (ops.FusedAdamW)
// computes it with GradNormSq; on another resident backend (ops.Resident)
// each parameter's sum of squares is the backend's SumSq (where the
// gradients live), and those are summed in float64.
func GradNorm(params []*Param) float64 {
	var s float64
	if f, ok := ops.CurrentBackend().(ops.FusedAdamW); ok {
		grads := make([][]float32, len(params))
		for i, p := range params {
			grads[i] = p.Grad.Data
		}
		normSq := make([]float32, 2)
		f.GradNormSq(normSq, grads)
		ops.Sync(normSq)
		return ops.GradNormFromSq(normSq)
	}
	if ops.Resident() {
		b := ops.CurrentBackend()
		for _, p := range params {
			s += float64(b.SumSq(p.Grad.Data))
		}
		return math.Sqrt(s)
	}
	for _, p := range params {
		for _, g := range p.Grad.Data {
			s += float64(g) * float64(g)
		}
	}
	return math.Sqrt(s)
}

// ClipGradNorm rescales the gradients of params so that their global L2 norm
// (GradNorm) is at most maxNorm, like torch.nn.utils.clip_grad_norm_: when
// the norm exceeds maxNorm every gradient is multiplied by
// maxNorm/(norm+1e-6). It returns the norm before clipping. A non-finite
// norm leaves the gradients untouched; the caller should then skip the step.
func ClipGradNorm(params []*Param, maxNorm float64) (norm float64) {
	norm = GradNorm(params)
	if math.IsNaN(norm) || math.IsInf(norm, 0) || norm <= maxNorm {
		return norm
	}
	s := float32(maxNorm / (norm + 1e-6))
	scale := tensor.Scale
	if ops.Resident() {
		scale = ops.CurrentBackend().Scale
	}
	for _, p := range params {
		scale(s, p.Grad.Data)
	}
	return norm
}
