package ops

import (
	"fmt"
	"math"

	"github.com/mopeclip/mopeclip/tensor"
)

// LayerNorm normalises x over its last dimension C and applies gamma [C] and
// beta [C]: (x−μ)/sqrt(σ²+eps)·γ + β.
func LayerNorm(tp *Tape, x, gamma, beta *Var, eps float32) *Var {
	rec := tp.track("LayerNorm", x, gamma, beta)
	rows, n := lastDim("LayerNorm", x.Value)
	for _, p := range []*Var{gamma, beta} {
		if len(p.Value.Shape) != 1 || p.Value.Shape[0] != n {
			panic(fmt.Sprintf("ops.LayerNorm: gamma/beta shape %v does not match x shape %v", p.Value.Shape, x.Value.Shape))
		}
	}
	out := newVar(x.Value.Shape...)
	if rows == 0 {
		if rec {
			return tp.record(out, func([]float32) {})
		}
		return out
	}
	if !rec {
		backend.LayerNorm(out.Value.Data, x.Value.Data, gamma.Value.Data, beta.Value.Data, n, eps, nil, nil)
		return out
	}
	stats := tp.save(2 * rows)
	backend.Fill(stats, 0) // written in two pieces (see ConcatRows)
	mean, rstd := stats[:rows], stats[rows:]
	backend.LayerNorm(out.Value.Data, x.Value.Data, gamma.Value.Data, beta.Value.Data, n, eps, mean, rstd)
	return tp.record(out, func(dy []float32) {
		var dx, dg, db []float32
		acc := false
		if x.RequiresGrad() {
			var fresh bool
			dx, fresh = tp.gradBuf(x)
			acc = !fresh
		}
		if gamma.RequiresGrad() {
			dg = tp.gradZero(gamma)
		}
		if beta.RequiresGrad() {
			db = tp.gradZero(beta)
		}
		backend.LayerNormBackward(dx, dg, db, x.Value.Data, dy, gamma.Value.Data, mean, rstd, n, acc)
	})
}

// unary is the common shape of the elementwise activations.
func unary(tp *Tape, op string, x *Var, fwd func(dst, x []float32), bwd func(dx, x, dy []float32, acc bool)) *Var {
	rec := tp.track(op, x)
	out := newVar(x.Value.Shape...)
	fwd(out.Value.Data, x.Value.Data)
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) {
		g, fresh := tp.gradBuf(x)
		bwd(g, x.Value.Data, dy, !fresh)
	})
}

// QuickGELU returns x·σ(1.702·x) (CLIP's activation).
func QuickGELU(tp *Tape, x *Var) *Var {
	return unary(tp, "QuickGELU", x, backend.QuickGELU, backend.QuickGELUBackward)
}

// GELU returns x·Φ(x) (exact, erf form).
func GELU(tp *Tape, x *Var) *Var {
	return unary(tp, "GELU", x, backend.GELU, backend.GELUBackward)
}

// Softmax returns the softmax of x over its last dimension.
func Softmax(tp *Tape, x *Var) *Var {
	rec := tp.track("Softmax", x)
	rows, n := lastDim("Softmax", x.Value)
	out := newVar(x.Value.Shape...)
	backend.Copy(out.Value.Data, x.Value.Data)
	if rows > 0 {
		backend.Softmax(out.Value.Data, n)
	}
	if !rec {
		return out
	}
	y := out.Value.Data
	return tp.record(out, func(dy []float32) {
		g, fresh := tp.gradBuf(x)
		if rows > 0 {
			backend.SoftmaxBackward(g, y, dy, n, !fresh)
		}
	})
}

// l2Eps guards L2Normalize against zero rows, as torch's F.normalize:
// x / max(‖x‖, eps).
const l2Eps = 1e-12

// L2Normalize scales every row (last dimension) of x to unit L2 norm:
// x / max(‖x‖, 1e-12).
func L2Normalize(tp *Tape, x *Var) *Var {
	rec := tp.track("L2Normalize", x)
	rows, n := lastDim("L2Normalize", x.Value)
	out := newVar(x.Value.Shape...)
	var norms []float32
	if rec {
		norms = tp.save(rows)
	}
	// On the host, row by row (the CPU backend's kernels are tensor's; a
	// resident backend downloads x and uploads y).
	xd, yd := x.Value.Data, out.Value.Data
	Sync(xd)
	for r := 0; r < rows; r++ {
		nr := max(float32(math.Sqrt(float64(tensor.SumSq(xd[r*n:(r+1)*n])))), l2Eps)
		copy(yd[r*n:(r+1)*n], xd[r*n:(r+1)*n])
		tensor.Scale(1/nr, yd[r*n:(r+1)*n])
		if rec {
			norms[r] = nr
		}
	}
	Wrote(yd)
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) {
		g, fresh := tp.gradBuf(x)
		Sync(yd, dy)
		if !fresh {
			Sync(g)
		}
		for r := 0; r < rows; r++ {
			yr, dyr, gr := yd[r*n:(r+1)*n], dy[r*n:(r+1)*n], g[r*n:(r+1)*n]
			nr := norms[r]
			if nr > l2Eps {
				// dx = (dy − y·(y·dy)) / ‖x‖
				d := tensor.Dot(yr, dyr)
				inv := 1 / nr
				if fresh {
					for j, v := range yr {
						gr[j] = (dyr[j] - v*d) * inv
					}
				} else {
					for j, v := range yr {
						gr[j] += (dyr[j] - v*d) * inv
					}
				}
			} else {
				// Clamped norm: y = x/eps, dx = dy/eps.
				if fresh {
					copy(gr, dyr)
					tensor.Scale(1/nr, gr)
				} else {
					tensor.Axpy(1/nr, dyr, gr)
				}
			}
		}
		Wrote(g)
	})
}
