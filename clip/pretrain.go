package clip

import (
	"fmt"
	"math"

	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// Contrastive is the recorded forward pass of CLIP's contrastive objective on
// one batch: both towers' L2-normalised embeddings and the symmetric InfoNCE
// loss with the model's learnable logit scale. Distillation adds its own terms
// to Loss (or combines them with ops.WeightedSum) before calling Backward.
type Contrastive struct {
	Image, Text *ops.Var // [B, E], unit rows
	Loss        *ops.Var // scalar
}

// ContrastiveForward records the image and text towers and the InfoNCE loss
// on tp: pixels [B,3,S,S] pair up with the B texts of text, row by row.
func (m *Model) ContrastiveForward(tp *ops.Tape, pixels *tensor.Tensor, text *TextBatch) (*Contrastive, error) {
	if len(pixels.Shape) != 4 || pixels.Shape[0] != text.B {
		return nil, fmt.Errorf("clip: contrastive batch of %v pixels and %d texts", pixels.Shape, text.B)
	}
	if err := m.Text.Check(text); err != nil {
		return nil, err
	}
	img := ops.L2Normalize(tp, m.EncodeImage(tp, ops.Const(pixels)))
	txt := ops.L2Normalize(tp, m.EncodeText(tp, text))
	loss := ops.InfoNCE(tp, img, txt, m.LogitScale.Var(tp))
	return &Contrastive{Image: img, Text: txt, Loss: loss}, nil
}

// ContrastiveStep runs one contrastive training step's forward and backward
// passes on tp (reset first): the gradients are accumulated into the
// parameters' Grad (the caller zeroes them and steps the optimiser). It
// returns the loss; a non-finite loss is an error and leaves no gradient.
func (m *Model) ContrastiveStep(tp *ops.Tape, pixels *tensor.Tensor, text *TextBatch) (float64, error) {
	tp.Reset()
	c, err := m.ContrastiveForward(tp, pixels, text)
	if err != nil {
		return 0, err
	}
	ops.Sync(c.Loss.Value.Data)
	loss := float64(c.Loss.Value.Data[0])
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, fmt.Errorf("clip: contrastive loss is %v", loss)
	}
	if err := tp.Backward(c.Loss); err != nil {
		return loss, err
	}
	return loss, nil
}

// Temperature returns the effective logit scale exp(min(s, ln 100)).
func (m *Model) Temperature() float64 {
	ops.Sync(m.LogitScale.Value.Data)
	return math.Exp(min(float64(m.LogitScale.Value.Data[0]), ops.MaxLogitScale))
}
