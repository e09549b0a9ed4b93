package world

import (
	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/zeroshot"
	"github.com/mopeclip/mopeclip/tensor"
)

// Retrieval evaluates image–text retrieval on p with enc (usually
// infer.NewEncoder's, on the fast engine): every image against every
// caption, recall@1/5/10 in percent.
func Retrieval(enc *clip.Encoder, p *Pairs) (zeroshot.RetrievalMetrics, error) {
	img := enc.Images(p.Images.Pixels(allIndices(p.Images.N)).Data, p.Images.N)
	caps, capImg := p.Flat()
	txt, err := enc.Texts(caps)
	if err != nil {
		return zeroshot.RetrievalMetrics{}, err
	}
	return clip.RetrievalMetrics(img, txt, capImg), nil
}

// EmbedImages returns the projected, unnormalised embeddings [N,E] of all
// images, computed with enc.
func EmbedImages(enc *clip.Encoder, im *Images) *tensor.Tensor {
	return enc.Images(im.Pixels(allIndices(im.N)).Data, im.N)
}

func allIndices(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}
