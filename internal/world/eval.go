package world

import (
	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/clip/zeroshot"
	"github.com/mopeclip/mopeclip/tensor"
)

// EvalBatch is the encoding batch size of evaluation.
const EvalBatch = 64

// Retrieval evaluates image–text retrieval of m on p: every image against
// every caption (recall@1/5/10 in percent).
func Retrieval(m *clip.Model, tok *tokenizer.Tokenizer, p *Pairs) (zeroshot.RetrievalMetrics, error) {
	img := EmbedImages(m, p.Images)
	caps, capImg := p.Flat()
	txt, err := clip.EncodeTexts(m, tok, caps, EvalBatch)
	if err != nil {
		return zeroshot.RetrievalMetrics{}, err
	}
	return clip.RetrievalMetrics(img, txt, capImg), nil
}

// EmbedImages returns the projected, unnormalised embeddings [N,E] of all images.
func EmbedImages(m *clip.Model, im *Images) *tensor.Tensor {
	idx := make([]int, im.N)
	for i := range idx {
		idx[i] = i
	}
	return clip.EncodeImages(m, im.Pixels(idx).Data, im.N, EvalBatch)
}
