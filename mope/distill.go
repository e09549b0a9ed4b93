package mope

import (
	"fmt"
	"math"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// Distillation (MoPE-CLIP's second stage): a pruned student learns from the
// unpruned teacher with
//
//	L = a·ITC + b·KD + c·Feat + d·Hidden
//
// on a batch of B image–caption pairs, where
//
//	ITC     the student's symmetric InfoNCE (CLIP's own loss, its learnable
//	        logit scale);
//	KD      cross-modal knowledge: τ² · ½ (SCE(S_i2t/τ, T_i2t/τ) + SCE(S_t2i/τ, T_t2i/τ)),
//	        SCE the soft cross-entropy −Σ softmax(teacher)·log_softmax(student)
//	        over each row, S and T the B×B image→text (and text→image)
//	        similarity logits of student and teacher, each model's cosine
//	        similarities times its own logit scale exp(min(s, ln 100)) (the
//	        student's scale enters KD as a constant; ITC trains it);
//	Feat    ½ (MSE(img_s, img_t) + MSE(txt_s, txt_t)) on the projected,
//	        unnormalised embeddings, each divided by the teacher's mean square
//	        (so the term is a relative error, scale-free across towers);
//	Hidden  the mean over the kept layers of both towers of the relative MSE
//	        between student layer l's output and the output of the teacher
//	        layer it came from (TowerConfig.TeacherLayer(l)); residual width is
//	        never pruned, so no projection is needed.
//
// The teacher runs without a tape (no activations kept, no gradient).
// Relative MSE = MSE / mean(teacher²), the denominator a constant of the batch.

// DistillWeights are the loss weights and the KD temperature.
type DistillWeights struct {
	ITC    float64 `json:"itc"`    // a
	KD     float64 `json:"kd"`     // b
	Feat   float64 `json:"feat"`   // c
	Hidden float64 `json:"hidden"` // d
	Temp   float64 `json:"temp"`   // τ
}

// DefaultDistillWeights: a = 1, b = 1, c = 1, d = 1, τ = 2. Each term is of
// order 1 at the start of distillation of a pruned model, so equal weights
// balance cross-modal (ITC, KD) and uni-modal (Feat, Hidden) knowledge; τ = 2
// softens the teacher's similarity distributions (its logit scale is large
// after training) so that KD carries the ranking of the negatives too.
func DefaultDistillWeights() DistillWeights {
	return DistillWeights{ITC: 1, KD: 1, Feat: 1, Hidden: 1, Temp: 2}
}

// Validate checks the weights are usable.
func (w DistillWeights) Validate() error {
	for _, v := range []float64{w.ITC, w.KD, w.Feat, w.Hidden} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("mope: distillation weights must be finite and ≥ 0, got %+v", w)
		}
	}
	if w.ITC+w.KD+w.Feat+w.Hidden == 0 {
		return fmt.Errorf("mope: all distillation weights are zero")
	}
	if w.KD > 0 && !(w.Temp > 0) {
		return fmt.Errorf("mope: KD temperature must be positive, got %v", w.Temp)
	}
	return nil
}

// DistillTerms is the recorded distillation loss of one batch with the value
// of each unweighted term.
type DistillTerms struct {
	Loss                    *ops.Var
	ITC, KD, Feat, Hidden   float64
	ImageEmbeds, TextEmbeds *ops.Var // student's projected embeddings
	HiddenPairs             int      // number of matched hidden-state pairs
}

// Scalars returns the terms by name (for training curves).
func (d *DistillTerms) Scalars() map[string]float64 {
	return map[string]float64{"itc": d.ITC, "kd": d.KD, "feat": d.Feat, "hidden": d.Hidden}
}

// teacherOut holds the teacher's outputs of a batch (no tape).
type teacherOut struct {
	img, txt         *tensor.Tensor // projected embeddings
	vHidden, tHidden []*tensor.Tensor
	imgN, txtN       *tensor.Tensor // normalised
	scale            float32
}

func forwardTeacher(t *clip.Model, pixels *tensor.Tensor, text *clip.TextBatch, hidden bool) *teacherOut {
	B := pixels.Shape[0]
	o := &teacherOut{scale: float32(t.Temperature())}
	vx := t.Vision.Embed(nil, ops.Const(pixels))
	vh, vhs := t.Vision.Encoder.ForwardHidden(nil, vx, B, t.Vision.SeqLen(), nn.AttnMask{})
	img := t.VisualProjection.Forward(nil, t.Vision.Pool(nil, vh))
	tx := t.Text.Embed(nil, text)
	th, ths := t.Text.Encoder.ForwardHidden(nil, tx, text.B, text.T, t.Text.Mask())
	txt := t.TextProjection.Forward(nil, t.Text.Pool(nil, th, text))
	o.img, o.txt = img.Value, txt.Value
	o.imgN = ops.L2Normalize(nil, img).Value
	o.txtN = ops.L2Normalize(nil, txt).Value
	if hidden {
		for _, h := range vhs {
			o.vHidden = append(o.vHidden, h.Value)
		}
		for _, h := range ths {
			o.tHidden = append(o.tHidden, h.Value)
		}
	}
	return o
}

// sync brings the host copies of o up to date (ops.Sync; for outputs kept
// past the step, as a TeacherCache does).
func (o *teacherOut) sync() {
	xs := [][]float32{o.img.Data, o.txt.Data, o.imgN.Data, o.txtN.Data}
	for _, h := range append(append([]*tensor.Tensor(nil), o.vHidden...), o.tHidden...) {
		xs = append(xs, h.Data)
	}
	ops.Sync(xs...)
}

// meanSquare returns mean(x²) (at least a tiny positive number). On a
// resident backend the sum of squares is the backend's (where x lives).
func meanSquare(x []float32) float64 {
	var s float64
	if ops.Resident() {
		s = float64(ops.CurrentBackend().SumSq(x))
	} else {
		for _, v := range x {
			s += float64(v) * float64(v)
		}
	}
	return max(s/float64(max(len(x), 1)), 1e-12)
}

// relMSE records MSE(s, t)/mean(t²).
func relMSE(tp *ops.Tape, s *ops.Var, t *tensor.Tensor) *ops.Var {
	return ops.Scale(tp, ops.MSE(tp, s, ops.Const(t)), float32(1/meanSquare(t.Data)))
}

// teacherIndex maps a student layer's origin (an index into the original
// model) to the teacher's layer index holding it (-1: the teacher has no such
// layer, e.g. a teacher that is itself depth-pruned).
func teacherIndex(tc *clip.TowerConfig, origin int) int {
	for j := 0; j < tc.NumHiddenLayers; j++ {
		if tc.TeacherLayer(j) == origin {
			return j
		}
	}
	return -1
}

// DistillForward records the distillation loss of student on one batch
// (pixels [B,3,S,S], text with B rows, pairs row by row) with teacher run
// without a tape. tp may be nil (evaluation: values only).
func DistillForward(tp *ops.Tape, student, teacher *clip.Model, pixels *tensor.Tensor, text *clip.TextBatch, w DistillWeights) (*DistillTerms, error) {
	return distillForward(tp, student, teacher, pixels, text, w, nil)
}

// distillForward is DistillForward with the teacher's outputs of the batch
// given (to, from a TeacherCache) or computed (to == nil).
func distillForward(tp *ops.Tape, student, teacher *clip.Model, pixels *tensor.Tensor, text *clip.TextBatch, w DistillWeights, to *teacherOut) (*DistillTerms, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if len(pixels.Shape) != 4 || pixels.Shape[0] != text.B {
		return nil, fmt.Errorf("mope: distillation batch of %v pixels and %d texts", pixels.Shape, text.B)
	}
	if err := student.Text.Check(text); err != nil {
		return nil, err
	}
	if student.Config.Vision.HiddenSize != teacher.Config.Vision.HiddenSize || student.Config.Text.HiddenSize != teacher.Config.Text.HiddenSize ||
		student.Config.ProjectionDim != teacher.Config.ProjectionDim {
		return nil, fmt.Errorf("mope: student and teacher differ in residual or projection width (only heads, neurons and layers may be pruned)")
	}
	B := text.B
	useHidden := w.Hidden > 0
	if to == nil {
		to = forwardTeacher(teacher, pixels, text, useHidden)
	}

	// Student forward with hidden states.
	sv, st := student.Vision, student.Text
	vh, vhs := sv.Encoder.ForwardHidden(tp, sv.Embed(tp, ops.Const(pixels)), B, sv.SeqLen(), nn.AttnMask{})
	img := student.VisualProjection.Forward(tp, sv.Pool(tp, vh))
	th, ths := st.Encoder.ForwardHidden(tp, st.Embed(tp, text), text.B, text.T, st.Mask())
	txt := student.TextProjection.Forward(tp, st.Pool(tp, th, text))
	imgN, txtN := ops.L2Normalize(tp, img), ops.L2Normalize(tp, txt)

	d := &DistillTerms{ImageEmbeds: img, TextEmbeds: txt}
	var terms []*ops.Var
	var ws []float32
	add := func(v *ops.Var, weight float64, dst *float64) {
		ops.Sync(v.Value.Data)
		*dst = float64(v.Value.Data[0])
		if weight > 0 {
			terms = append(terms, v)
			ws = append(ws, float32(weight))
		}
	}
	// ITC.
	add(ops.InfoNCE(tp, imgN, txtN, student.LogitScale.Var(tp)), w.ITC, &d.ITC)
	// KD over both directions.
	if w.KD > 0 {
		sScale := float32(student.Temperature())
		ti2t := ops.MatMul(nil, ops.Const(to.imgN), ops.Const(to.txtN), false, true)
		tt2i := ops.MatMul(nil, ops.Const(to.txtN), ops.Const(to.imgN), false, true)
		tI := ops.Scale(nil, ti2t, to.scale)
		tT := ops.Scale(nil, tt2i, to.scale)
		sI := ops.Scale(tp, ops.MatMul(tp, imgN, txtN, false, true), sScale)
		sT := ops.Scale(tp, ops.MatMul(tp, txtN, imgN, false, true), sScale)
		tau := float32(w.Temp)
		kd := ops.WeightedSum(tp, []*ops.Var{ops.SoftCrossEntropy(tp, sI, tI, tau), ops.SoftCrossEntropy(tp, sT, tT, tau)},
			[]float32{0.5 * tau * tau, 0.5 * tau * tau})
		add(kd, w.KD, &d.KD)
	}
	// Feature MSE.
	if w.Feat > 0 {
		f := ops.WeightedSum(tp, []*ops.Var{relMSE(tp, img, to.img), relMSE(tp, txt, to.txt)}, []float32{0.5, 0.5})
		add(f, w.Feat, &d.Feat)
	}
	// Hidden-state MSE.
	if useHidden {
		var hs []*ops.Var
		for _, tw := range []struct {
			s, t *clip.TowerConfig
			sh   []*ops.Var
			th   []*tensor.Tensor
		}{{&student.Config.Vision, &teacher.Config.Vision, vhs, to.vHidden}, {&student.Config.Text, &teacher.Config.Text, ths, to.tHidden}} {
			for l := 0; l < tw.s.NumHiddenLayers; l++ {
				j := teacherIndex(tw.t, tw.s.TeacherLayer(l))
				if j < 0 {
					continue
				}
				hs = append(hs, relMSE(tp, tw.sh[l+1], tw.th[j+1]))
			}
		}
		d.HiddenPairs = len(hs)
		if len(hs) > 0 {
			ones := make([]float32, len(hs))
			for i := range ones {
				ones[i] = 1 / float32(len(hs))
			}
			add(ops.WeightedSum(tp, hs, ones), w.Hidden, &d.Hidden)
		}
	}
	if len(terms) == 0 {
		return nil, fmt.Errorf("mope: no distillation term is active")
	}
	d.Loss = ops.WeightedSum(tp, terms, ws)
	return d, nil
}

// DistillStep runs the forward and backward passes of one distillation step
// on tp (reset first), accumulating the student's gradients. It returns the
// loss and its unweighted terms; a non-finite loss is an error and leaves no
// gradient.
func DistillStep(tp *ops.Tape, student, teacher *clip.Model, pixels *tensor.Tensor, text *clip.TextBatch, w DistillWeights) (float64, map[string]float64, error) {
	return distillStep(tp, student, teacher, pixels, text, w, nil)
}

// distillStep is DistillStep with the teacher's outputs given or not (see
// distillForward).
func distillStep(tp *ops.Tape, student, teacher *clip.Model, pixels *tensor.Tensor, text *clip.TextBatch, w DistillWeights, to *teacherOut) (float64, map[string]float64, error) {
	tp.Reset()
	d, err := distillForward(tp, student, teacher, pixels, text, w, to)
	if err != nil {
		return 0, nil, err
	}
	ops.Sync(d.Loss.Value.Data)
	loss := float64(d.Loss.Value.Data[0])
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, d.Scalars(), fmt.Errorf("mope: distillation loss is %v (terms %v)", loss, d.Scalars())
	}
	if err := tp.Backward(d.Loss); err != nil {
		return loss, nil, err
	}
	return loss, d.Scalars(), nil
}
