package world

import (
	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/clip/zeroshot"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/tensor"
)

// EvalBatch is the encoding batch size of evaluation.
const EvalBatch = 64

// Encoder returns a clip.Encoder of m that runs on the fast inference
// engine (package infer: weights packed once, fused kernels; its outputs
// equal the reference forward's), and the function that releases the
// engine. Evaluation uses it: retrieval and zero-shot embeddings are many
// forward passes of one model.
func Encoder(m *clip.Model, tok *tokenizer.Tokenizer) (*clip.Encoder, func(), error) {
	e, err := infer.New(m, infer.Options{})
	if err != nil {
		return nil, nil, err
	}
	return &clip.Encoder{Model: m, Tok: tok, Batch: EvalBatch, Workers: 1, Device: e.BatchEncoder()}, e.Close, nil
}

// Retrieval evaluates image–text retrieval of m on p: every image against
// every caption (recall@1/5/10 in percent), on the fast inference engine.
func Retrieval(m *clip.Model, tok *tokenizer.Tokenizer, p *Pairs) (zeroshot.RetrievalMetrics, error) {
	enc, done, err := Encoder(m, tok)
	if err != nil {
		return zeroshot.RetrievalMetrics{}, err
	}
	defer done()
	img := enc.Images(p.Images.Pixels(allIndices(p.Images.N)).Data, p.Images.N)
	caps, capImg := p.Flat()
	txt, err := enc.Texts(caps)
	if err != nil {
		return zeroshot.RetrievalMetrics{}, err
	}
	return clip.RetrievalMetrics(img, txt, capImg), nil
}

// EmbedImages returns the projected, unnormalised embeddings [N,E] of all
// images, computed on the fast inference engine.
func EmbedImages(m *clip.Model, im *Images) *tensor.Tensor {
	enc, done, err := Encoder(m, nil)
	if err != nil {
		// infer.New refuses only models clip.EncodeImages cannot run either.
		return clip.EncodeImages(m, im.Pixels(allIndices(im.N)).Data, im.N, EvalBatch)
	}
	defer done()
	return enc.Images(im.Pixels(allIndices(im.N)).Data, im.N)
}

func allIndices(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}
