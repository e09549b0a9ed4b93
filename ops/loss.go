package ops

import (
	"fmt"
	"math"
)

// MaxLogitScale is ln 100, the clamp of the CLIP log logit scale: the
// effective scale exp(s) never exceeds 100.
const MaxLogitScale = 4.605170185988092

// InfoNCE is CLIP's symmetric contrastive loss. img and txt are [N, D]
// (already normalised), logitScale holds one value s (the log of the
// temperature scale). With scale = exp(min(s, ln 100)) and logits = scale ·
// img · txtᵀ, the loss is (CE(logits, diag) + CE(logitsᵀ, diag)) / 2 with
// cross-entropies averaged over rows. When s > ln 100 the clamp is active and
// s gets zero gradient.
func InfoNCE(tp *Tape, img, txt, logitScale *Var) *Var {
	rec := tp.track("InfoNCE", img, txt, logitScale)
	is, ts := img.Value.Shape, txt.Value.Shape
	if len(is) != 2 || !sameShape(is, ts) {
		panic(fmt.Sprintf("ops.InfoNCE: img and txt must be [N, D] of one shape, got %v and %v", is, ts))
	}
	if len(logitScale.Value.Data) != 1 {
		panic(fmt.Sprintf("ops.InfoNCE: logit scale must hold one value, got shape %v", logitScale.Value.Shape))
	}
	N, D := is[0], is[1]
	if N == 0 {
		panic("ops.InfoNCE: empty batch")
	}
	Sync(logitScale.Value.Data)
	s := float64(logitScale.Value.Data[0])
	clamped := s > MaxLogitScale
	scale := float32(math.Exp(min(s, MaxLogitScale)))

	logits := tp.scratch(N * N)
	backend.Gemm(false, true, N, N, D, scale, img.Value.Data, max(D, 1), txt.Value.Data, max(D, 1), 0, logits, N)
	if lk, ok := backend.(LossKernels); ok {
		return infoNCEFused(tp, lk, rec, img, txt, logitScale, logits, N, D, scale, clamped)
	}
	Sync(logits) // the heads below run on the host

	// Row and column log-sum-exps in float64.
	rowLSE := make([]float64, N)
	colMax := make([]float64, N)
	colSum := make([]float64, N)
	for j := range colMax {
		colMax[j] = math.Inf(-1)
	}
	for i := 0; i < N; i++ {
		row := logits[i*N : (i+1)*N]
		m := math.Inf(-1)
		for j, v := range row {
			m = max(m, float64(v))
			colMax[j] = max(colMax[j], float64(v))
		}
		var e float64
		for _, v := range row {
			e += math.Exp(float64(v) - m)
		}
		rowLSE[i] = m + math.Log(e)
	}
	for i := 0; i < N; i++ {
		for j, v := range logits[i*N : (i+1)*N] {
			colSum[j] += math.Exp(float64(v) - colMax[j])
		}
	}
	colLSE := colSum // reused: column log-sum-exps
	for j := range colLSE {
		colLSE[j] = colMax[j] + math.Log(colSum[j])
	}
	var loss float64
	for i := 0; i < N; i++ {
		loss += rowLSE[i] + colLSE[i] - 2*float64(logits[i*N+i])
	}
	out := scalar(loss / float64(2*N))
	if !rec {
		tp.drop(logits)
		return out
	}
	// dL/dlogits = (softmax_rows − I + softmax_cols − I) / (2N), kept in
	// place of the logits; Σ dL⊙logits is dL/ds when unclamped.
	inv := 1 / float64(2*N)
	var dS float64
	for i := 0; i < N; i++ {
		row := logits[i*N : (i+1)*N]
		for j, v := range row {
			l := float64(v)
			g := math.Exp(l-rowLSE[i]) + math.Exp(l-colLSE[j])
			if i == j {
				g -= 2
			}
			g *= inv
			dS += g * l
			row[j] = float32(g)
		}
	}
	Wrote(logits)
	tp.saved = append(tp.saved, logits)
	G := logits
	return tp.record(out, func(dy []float32) {
		Sync(dy[:1])
		g := dy[0]
		if img.RequiresGrad() { // dImg = g·scale·G·txt
			gi, fresh := tp.gradBuf(img)
			backend.Gemm(false, false, N, D, N, g*scale, G, N, txt.Value.Data, max(D, 1), beta(fresh), gi, max(D, 1))
		}
		if txt.RequiresGrad() { // dTxt = g·scale·Gᵀ·img
			gt, fresh := tp.gradBuf(txt)
			backend.Gemm(true, false, N, D, N, g*scale, G, N, img.Value.Data, max(D, 1), beta(fresh), gt, max(D, 1))
		}
		if logitScale.RequiresGrad() {
			gs := tp.gradZero(logitScale)
			if !clamped { // gs[0] += g·dS, where gs lives
				backend.Axpy(1, []float32{g * float32(dS)}, gs[:1])
			}
		}
	})
}

// infoNCEFused is InfoNCE after the logits GEMM on a backend with loss
// kernels: the loss, dL/dlogits (in place of the logits) and dL/ds stay
// where the backend keeps them.
func infoNCEFused(tp *Tape, lk LossKernels, rec bool, img, txt, logitScale *Var, logits []float32, N, D int, scale float32, clamped bool) *Var {
	out := newVar(1)
	if !rec {
		lk.InfoNCELogits(out.Value.Data, nil, logits, N)
		tp.drop(logits)
		return out
	}
	dS := tp.save(1)
	lk.InfoNCELogits(out.Value.Data, dS, logits, N)
	tp.saved = append(tp.saved, logits)
	G := logits
	return tp.record(out, func(dy []float32) {
		Sync(dy[:1]) // the GEMMs' alpha
		g := dy[0]
		if img.RequiresGrad() {
			gi, fresh := tp.gradBuf(img)
			backend.Gemm(false, false, N, D, N, g*scale, G, N, txt.Value.Data, max(D, 1), beta(fresh), gi, max(D, 1))
		}
		if txt.RequiresGrad() {
			gt, fresh := tp.gradBuf(txt)
			backend.Gemm(true, false, N, D, N, g*scale, G, N, img.Value.Data, max(D, 1), beta(fresh), gt, max(D, 1))
		}
		if logitScale.RequiresGrad() {
			gs := tp.gradZero(logitScale)
			if !clamped {
				backend.Axpy(g, dS, gs[:1])
			}
		}
	})
}

// SoftCrossEntropy is the distillation loss over rows of logits [N, M]: the
// mean over rows of −Σ softmax(teacher/temp)·log_softmax(student/temp). Only
// the student gets a gradient (the teacher is treated as a constant). The
// usual temp² factor is left to the caller.
func SoftCrossEntropy(tp *Tape, student, teacher *Var, temp float32) *Var {
	rec := tp.track("SoftCrossEntropy", student, teacher) && student.RequiresGrad()
	if !sameShape(student.Value.Shape, teacher.Value.Shape) {
		panic(fmt.Sprintf("ops.SoftCrossEntropy: student shape %v and teacher shape %v differ", student.Value.Shape, teacher.Value.Shape))
	}
	if !(temp > 0) {
		panic(fmt.Sprintf("ops.SoftCrossEntropy: temperature %v must be positive", temp))
	}
	rows, M := lastDim("SoftCrossEntropy", student.Value)
	if rows == 0 {
		panic(fmt.Sprintf("ops.SoftCrossEntropy: empty logits %v", student.Value.Shape))
	}
	var diff []float32
	if rec {
		diff = tp.save(rows * M)
	}
	if lk, ok := backend.(LossKernels); ok {
		out := newVar(1)
		lk.SoftCrossEntropy(out.Value.Data, diff, student.Value.Data, teacher.Value.Data, M, temp)
		if !rec {
			return out
		}
		return tp.record(out, func(dy []float32) {
			Sync(dy[:1])
			tp.accum(student, diff, dy[0])
		})
	}
	Sync(student.Value.Data, teacher.Value.Data)
	it := 1 / float64(temp)
	pt := make([]float64, M)
	var loss float64
	for r := 0; r < rows; r++ {
		sr := student.Value.Data[r*M : (r+1)*M]
		tr := teacher.Value.Data[r*M : (r+1)*M]
		// Teacher probabilities.
		tm := math.Inf(-1)
		for _, v := range tr {
			tm = max(tm, float64(v)*it)
		}
		var ts float64
		for j, v := range tr {
			pt[j] = math.Exp(float64(v)*it - tm)
			ts += pt[j]
		}
		// Student log-sum-exp.
		sm := math.Inf(-1)
		for _, v := range sr {
			sm = max(sm, float64(v)*it)
		}
		var ss float64
		for _, v := range sr {
			ss += math.Exp(float64(v)*it - sm)
		}
		lse := sm + math.Log(ss)
		// −Σ p_t (s/T − lse) = lse − Σ p_t s/T
		var dot float64
		for j, v := range sr {
			pt[j] /= ts
			dot += pt[j] * float64(v) * it
		}
		loss += lse - dot
		if rec {
			// d/ds = (softmax(s/T) − p_t) / (T·rows)
			c := it / float64(rows)
			d := diff[r*M : (r+1)*M]
			for j, v := range sr {
				d[j] = float32((math.Exp(float64(v)*it-lse) - pt[j]) * c)
			}
		}
	}
	out := scalar(loss / float64(rows))
	if !rec {
		return out
	}
	Wrote(diff)
	return tp.record(out, func(dy []float32) {
		Sync(dy[:1])
		tp.accum(student, diff, dy[0])
	})
}

// MSE returns the mean of (a − b)² over all elements as a [1] scalar.
func MSE(tp *Tape, a, b *Var) *Var {
	rec := tp.track("MSE", a, b)
	if !sameShape(a.Value.Shape, b.Value.Shape) {
		panic(fmt.Sprintf("ops.MSE: shapes %v and %v differ", a.Value.Shape, b.Value.Shape))
	}
	n := len(a.Value.Data)
	if n == 0 {
		panic(fmt.Sprintf("ops.MSE: empty operands %v", a.Value.Shape))
	}
	ad, bd := a.Value.Data, b.Value.Data[:n]
	if lk, ok := backend.(LossKernels); ok {
		return mseFused(tp, lk, rec, a, b, ad, bd)
	}
	Sync(ad, bd)
	var s float64
	for i, v := range ad {
		d := float64(v) - float64(bd[i])
		s += d * d
	}
	out := scalar(s / float64(n))
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) {
		Sync(dy[:1])
		c := 2 * dy[0] / float32(n)
		for _, p := range [2]struct {
			v    *Var
			sign float32
		}{{a, c}, {b, -c}} {
			if !p.v.RequiresGrad() {
				continue
			}
			g, fresh := tp.gradBuf(p.v)
			if fresh {
				for i, v := range ad {
					g[i] = p.sign * (v - bd[i])
				}
			} else {
				Sync(g)
				for i, v := range ad {
					g[i] += p.sign * (v - bd[i])
				}
			}
			Wrote(g)
		}
	})
}

// mseFused is MSE on a backend with loss kernels.
func mseFused(tp *Tape, lk LossKernels, rec bool, a, b *Var, ad, bd []float32) *Var {
	out := newVar(1)
	lk.MSE(out.Value.Data, ad, bd)
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) {
		if a.RequiresGrad() {
			g, fresh := tp.gradBuf(a)
			lk.MSEBackward(g, nil, ad, bd, dy, !fresh, false)
		}
		if b.RequiresGrad() {
			g, fresh := tp.gradBuf(b)
			lk.MSEBackward(nil, g, ad, bd, dy, false, !fresh)
		}
	})
}
