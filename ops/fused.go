package ops

import (
	"math"

	"github.com/mopeclip/mopeclip/tensor"
)

// Optional fused paths of a Backend. A backend that implements one of these
// interfaces offers a faster way (fewer launches, no host round trip) to
// compute what ops and nn otherwise compute with the Backend methods or on
// the host; callers test for them with a type assertion on CurrentBackend()
// and fall back to today's code when the backend does not implement them (the
// CPU backend implements none, so CPU results do not change).
//
// Every slice follows the Backend conventions: row-major float32, "acc"
// chooses between writing (old contents, NaN included, ignored) and adding.
// Scalars that a device backend should be able to keep on the device (a loss
// value, a norm) are passed as short slices rather than returned.

// Activation selects the activation of the fused bias + activation kernels:
// tensor.Activation, the one list of activations of the engine (its values
// are also the activation codes of the CUDA kernels).
type Activation = tensor.Activation

// The activations, as in package tensor.
const (
	ActNone      = tensor.ActNone
	ActQuickGELU = tensor.ActQuickGELU
	ActGELU      = tensor.ActGELU
)

// ParseActivation is the inverse of Activation.String ("none", "quick_gelu",
// "gelu").
func ParseActivation(s string) (Activation, error) { return tensor.ParseActivation(s) }

// BiasActBackwarder is the backward pass of y = act(x), x = z + bias the
// pre-activation (bias already added), fused with the bias gradient. Over
// rows of n = len(dbias) (dbias nil: no bias gradient, x taken as one row):
//
//	for r := range rows {
//		for j := range n {
//			g := float32(float64(dy[r·n+j]) · act'(x[r·n+j]))  // as Backend.GELUBackward / QuickGELUBackward
//			dx[r·n+j] = g                                       // or += g when acc
//			dbias[j] += g                                       // summed over rows in float64, added once
//		}
//	}
//
// With ActNone, g = dy. dx may alias x or dy when acc is false. The column
// sums are deterministic (the same on every run) but not summed in the order
// of Backend.ColSumAcc on the CPU.
type BiasActBackwarder interface {
	BiasActBackward(dx, dbias, x, dy []float32, act Activation, acc bool)
}

// LossKernels computes the distillation losses of loss.go (InfoNCE,
// SoftCrossEntropy, MSE) on the backend. Each writes the loss value into
// loss[0] (float32, accumulated in float64 as the host code does) and, when
// asked, the gradient the tape needs.
type LossKernels interface {
	// InfoNCELogits is the part of InfoNCE after the logits GEMM: logits is
	// [n, n], already multiplied by the logit scale. With rowLSE_i and
	// colLSE_j the log-sum-exps of row i and column j (float64):
	//
	//	loss[0] = Σ_i (rowLSE_i + colLSE_i − 2·logits[i,i]) / (2n)
	//
	// When dScale is non-nil (len ≥ 1) the gradient is also computed:
	// logits is overwritten by G = dL/dlogits,
	//
	//	G[i,j] = (exp(l_ij − rowLSE_i) + exp(l_ij − colLSE_j) − 2·[i = j]) / (2n)
	//
	// and dScale[0] = Σ_ij G[i,j]·l_ij (float64 sum of the float64 terms,
	// before G is rounded): dL/ds for the log scale s when the clamp is not
	// active. The caller then forms dImg = g·scale·G·txt and dTxt =
	// g·scale·Gᵀ·img with Gemm, as InfoNCE does.
	InfoNCELogits(loss, dScale, logits []float32, n int)

	// SoftCrossEntropy over rows of m of student and teacher logits with
	// temperature temp > 0: per row r, p = softmax(teacher_r/temp) and
	// lse = logsumexp(student_r/temp), all in float64,
	//
	//	loss[0] = Σ_r (lse − Σ_j p_j·student_rj/temp) / rows
	//	grad[r,j] = (exp(student_rj/temp − lse) − p_j) / (temp·rows)   (when grad is non-nil)
	//
	// grad has the student's length and is written (not accumulated); the
	// caller scales it by the upstream gradient (Tape.accum).
	SoftCrossEntropy(loss, grad, student, teacher []float32, m int, temp float32)

	// MSE writes loss[0] = Σ_i (a_i − b_i)² / n in float64, n = len(a).
	MSE(loss, a, b []float32)
	// MSEBackward: with c = 2·dy[0]/float32(n) in float32 (dy holds the
	// upstream gradient of the loss, one value),
	//
	//	da[i] (=|+= by accA)  c·(a_i − b_i)
	//	db[i] (=|+= by accB) −c·(a_i − b_i)
	//
	// float32 arithmetic as MSE's backward; da or db may be nil.
	MSEBackward(da, db, a, b, dy []float32, accA, accB bool)
}

// AdamWConsts are the float32 factors of one AdamW step, computed by the
// caller in float64 and rounded once (as nn.AdamW.Step does): B1 = β1,
// B1c = 1−β1, B2 = β2, B2c = 1−β2, StepSize = lr/(1−β1^t), InvBC2 =
// 1/√(1−β2^t), Eps = ε.
type AdamWConsts struct {
	B1, B1c, B2, B2c, StepSize, InvBC2, Eps float32
}

// NewAdamWConsts returns the factors of AdamW step t (counted from 1) with
// learning rate lr, computed in float64 and rounded once, exactly as
// nn.AdamW.Step computes them:
//
//	StepSize = float32(lr / (1 − β1^t)), InvBC2 = float32(1 / √(1 − β2^t))
func NewAdamWConsts(beta1, beta2, eps, lr float64, t int) AdamWConsts {
	bc1 := 1 - math.Pow(beta1, float64(t))
	bc2 := 1 - math.Pow(beta2, float64(t))
	return AdamWConsts{
		B1: float32(beta1), B1c: float32(1 - beta1), B2: float32(beta2), B2c: float32(1 - beta2),
		StepSize: float32(lr / bc1), InvBC2: float32(1 / math.Sqrt(bc2)), Eps: float32(eps),
	}
}

// AdamWDecay returns a parameter's AdamWTensor.Decay: float32(1 − lr·λ),
// or 1 when it is exempt (nn.Param.NoDecay) or λ is 0, as nn.AdamW.Step.
func AdamWDecay(lr, weightDecay float64, noDecay bool) float32 {
	if noDecay || weightDecay == 0 {
		return 1
	}
	return float32(1 - lr*weightDecay)
}

// AdamWTensor is one parameter of a multi-tensor AdamW step: value P,
// gradient G, moments M and V (all of one length) and the decay factor
// Decay = float32(1 − lr·λ), or 1 for a parameter without weight decay.
type AdamWTensor struct {
	P, G, M, V []float32
	Decay      float32
}

// FusedAdamW is the optimizer step over all parameters in a few launches,
// with the global-norm clip scale kept on the device.
//
// GradNormSq writes Σ_t Σ_i float64(grads[t][i])² into normSq (len ≥ 2) as an
// unevaluated float32 pair: normSq[0] = float32(s), normSq[1] = float32(s −
// float64(normSq[0])); GradNormFromSq turns it into the norm. The order of
// the float64 sum is fixed (deterministic) but is not nn.GradNorm's, so the
// norm may differ from it in the last bits of a float64.
//
// AdamWStep updates every tensor as nn.AdamW.Step's element loop, after
// nn.ClipGradNorm's clipping when normSq is non-nil and maxNorm > 0:
//
//	norm := GradNormFromSq(normSq)
//	if norm is NaN or ±Inf { return }          // no change at all: the caller skips the step
//	s := float32(1); clip := norm > maxNorm
//	if clip { s = float32(maxNorm / (norm + 1e-6)) }
//	for each tensor t, element i {
//		g := G[i]; if clip { g = g·s; G[i] = g }   // the clipped gradient is written back
//		m := B1·M[i] + B1c·g
//		v := B2·V[i] + B2c·(g·g)
//		M[i], V[i] = m, v
//		denom := float32(√float64(v))·InvBC2 + Eps
//		P[i] = P[i]·Decay − StepSize·(m/denom)
//	}
//
// Every operation is one float32 operation, rounded, in this order, with no
// fused multiply-add, so the result is bit-identical to nn.AdamW on a CPU
// that does not contract either (Go on amd64 by default). A non-finite norm
// leaves everything untouched; a caller that reads the norm afterwards must
// then not count the step (nn.AdamW's t).
type FusedAdamW interface {
	GradNormSq(normSq []float32, grads [][]float32)
	AdamWStep(ts []AdamWTensor, k AdamWConsts, normSq []float32, maxNorm float64)
}

// GradNormFromSq returns √(normSq[0] + normSq[1]) in float64, the norm of
// FusedAdamW.GradNormSq's pair.
func GradNormFromSq(normSq []float32) float64 {
	return math.Sqrt(float64(normSq[0]) + float64(normSq[1]))
}
