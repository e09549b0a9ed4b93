package infer

import (
	"fmt"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
)

// BatchEncoder returns e as a clip.BatchEncoder, so that a clip.Encoder, and
// everything built on one (retrieval, zero-shot classification), runs its
// batches on the engine:
//
//	enc := &clip.Encoder{Model: m, Tok: tok, Device: e.BatchEncoder()}
//
// Each call allocates its [b, E] result; the engine serialises calls (use
// Encoder.Workers = 1: the engine already spreads a batch over its threads).
func (e *Engine) BatchEncoder() clip.BatchEncoder { return engineBatches{e} }

type engineBatches struct{ e *Engine }

// EncodeImages embeds b images (pixels [b,3,S,S]).
func (g engineBatches) EncodeImages(pixels []float32, b int) ([]float32, error) {
	if b < 0 || len(pixels) != b*g.e.ImageInputLen() {
		return nil, fmt.Errorf("infer: %d pixel values for %d images of %d", len(pixels), b, g.e.ImageInputLen())
	}
	out := make([]float32, b*g.e.EmbedDim())
	g.e.EncodeImages(pixels, b, out)
	return out, nil
}

// EncodeTexts embeds a checked text batch.
func (g engineBatches) EncodeTexts(tb *clip.TextBatch) ([]float32, error) {
	if tb == nil || tb.B < 0 || tb.T <= 0 || tb.T > g.e.txt.T || len(tb.IDs) != tb.B*tb.T || len(tb.EOTPos) != tb.B {
		return nil, fmt.Errorf("infer: malformed text batch for a context of %d", g.e.txt.T)
	}
	V := g.e.m.Text.Cfg.VocabSize
	for i, id := range tb.IDs {
		if id < 0 || id >= V {
			return nil, fmt.Errorf("infer: token id %d at %d outside the vocabulary of %d", id, i, V)
		}
	}
	out := make([]float32, tb.B*g.e.txt.E)
	g.e.EncodeTexts(tb.IDs, tb.EOTPos, tb.B, tb.T, out)
	return out, nil
}

// EvalBatch is the encoding batch size of NewEncoder's encoders.
const EvalBatch = 64

// NewEncoder returns a clip.Encoder of m (tok may be nil for images only)
// that runs its batches on a new engine (weights packed once, fused
// kernels; its outputs equal the reference forward's to float32 rounding),
// and the function that releases the engine. Evaluation uses it: retrieval
// and zero-shot embeddings are many forward passes of one model. It fails
// only for models the lowering refuses, which the reference forward cannot
// run either.
func NewEncoder(m *clip.Model, tok *tokenizer.Tokenizer) (*clip.Encoder, func(), error) {
	e, err := New(m, Options{})
	if err != nil {
		return nil, nil, err
	}
	return &clip.Encoder{Model: m, Tok: tok, Batch: EvalBatch, Workers: 1, Device: e.BatchEncoder()}, e.Close, nil
}
