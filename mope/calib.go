package mope

import (
	"context"
	"fmt"
	"image"
	"os"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/dataset/shapes"
)

// Calib is a calibration set ready for the model: images resized and
// cropped to the model's size and kept as 8-bit RGB (a quarter of float32
// pixels; normalised on use, which gives exactly the float32 input since
// the resize output is 8-bit), and tokenised captions. Caption j describes
// image CaptionImage[j].
type Calib struct {
	Images *dataset.Images // NImg images of S×S
	NImg   int
	Size   int   // S
	IDs    []int // [NTxt, T]
	EOTPos []int // [NTxt]
	NTxt   int
	T      int // text length: the longest caption's EOT position + 1
	// CaptionImage[j] is the image of caption j.
	CaptionImage []int
}

// NewCalib preprocesses images (the model's preprocessing, m.ImageConfig()) and tokenises captions (truncated to the context length).
func NewCalib(m *clip.Model, images []image.Image, captions []string, captionImage []int, tok *tokenizer.Tokenizer) (*Calib, error) {
	S := m.Config.Vision.ImageSize
	c, err := newCalibText(m, captions, captionImage, len(images), tok)
	if err != nil {
		return nil, err
	}
	c.Images, c.NImg, c.Size = dataset.NewImagesWith(images, m.ImageConfig()), len(images), S
	return c, nil
}

// Pixels returns the normalised [hi-lo, 3, S, S] input of images [lo, hi).
func (c *Calib) Pixels(lo, hi int) []float32 {
	out := make([]float32, (hi-lo)*3*c.Size*c.Size)
	c.PixelsInto(out, lo, hi)
	return out
}

// PixelsInto writes the normalised input of images [lo, hi) to dst.
func (c *Calib) PixelsInto(dst []float32, lo, hi int) {
	c.Images.NormalizeInto(dst, lo, hi)
}

func newCalibText(m *clip.Model, captions []string, captionImage []int, nImg int, tok *tokenizer.Tokenizer) (*Calib, error) {
	if len(captions) != len(captionImage) || len(captions) == 0 || nImg == 0 {
		return nil, fmt.Errorf("mope: calibration set has %d images, %d captions, %d caption links", nImg, len(captions), len(captionImage))
	}
	for j, i := range captionImage {
		if i < 0 || i >= nImg {
			return nil, fmt.Errorf("mope: caption %d points at image %d of %d", j, i, nImg)
		}
	}
	ctx := m.Config.Text.MaxPositionEmbeddings
	ids, eot, err := tok.Batch(captions, ctx, true)
	if err != nil {
		return nil, err
	}
	for j, id := range ids {
		if id >= m.Config.Text.VocabSize {
			return nil, fmt.Errorf("mope: caption %d: token id %d outside the model's vocabulary of %d (wrong tokenizer?)", j/ctx, id, m.Config.Text.VocabSize)
		}
	}
	T := 1
	for _, p := range eot {
		T = max(T, p+1)
	}
	// Keep the first T positions of every row: with causal attention the
	// state at EOT does not depend on what follows it.
	trim := make([]int, len(captions)*T)
	for j := range captions {
		copy(trim[j*T:(j+1)*T], ids[j*ctx:j*ctx+T])
	}
	return &Calib{IDs: trim, EOTPos: eot, NTxt: len(captions), T: T, CaptionImage: append([]int(nil), captionImage...)}, nil
}

// LoadTokenizer loads the tokenizer for a model: path may be a directory
// with vocab.json and merges.txt (Hugging Face), or an OpenAI BPE merges file
// (bpe_simple_vocab_16e6.txt[.gz]). Empty path means modelDir.
func LoadTokenizer(modelDir, path string) (*tokenizer.Tokenizer, error) {
	if path == "" {
		path = modelDir
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if st.IsDir() {
		return clip.LoadTokenizer(path)
	}
	return tokenizer.LoadOpenAI(path)
}

// LoadCalib loads a calibration set: data is any dataset spec that
// dataset.Open reads (Karpathy JSON, JSONL, CSV/TSV, tar shards), or "shapes" for the
// built-in shapes world's calib split (generated in memory). limit keeps the
// first limit images (0: all; shapes: 0 means the split's size, 1000).
func LoadCalib(m *clip.Model, data, split string, limit int, tok *tokenizer.Tokenizer) (*Calib, error) {
	if dataset.IsShapes(data) {
		exs, err := shapes.Generate(shapes.DefaultConfig(), "calib", limit)
		if err != nil {
			return nil, err
		}
		imgs, caps, ci := shapes.Flatten(exs)
		ims := make([]image.Image, len(imgs))
		for i, im := range imgs {
			ims[i] = im
		}
		return NewCalib(m, ims, caps, ci, tok)
	}
	d, err := dataset.Open(data, dataset.Options{Split: split, Limit: limit})
	if err != nil {
		return nil, err
	}
	S := m.Config.Vision.ImageSize
	p, err := dataset.LoadPairsWith(context.Background(), d, m.ImageConfig())
	if err != nil {
		return nil, err
	}
	caps, ci := p.Flat()
	c, err := newCalibText(m, caps, ci, p.Len(), tok)
	if err != nil {
		return nil, err
	}
	c.Images, c.NImg, c.Size = p.Images, p.Len(), S
	return c, nil
}
