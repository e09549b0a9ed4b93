package world

import (
	"image"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/tensor"
)

// Pairs is the in-memory image–caption set of package dataset.
type Pairs = dataset.Pairs

// FromExamples builds Pairs from shapes examples, images at size×size.
func FromExamples(exs []shapes.Example, size int) *Pairs {
	imgs := make([]image.Image, len(exs))
	caps := make([][]string, len(exs))
	for i, e := range exs {
		imgs[i] = e.Image
		caps[i] = e.Captions
	}
	return &Pairs{Images: NewImages(imgs, size), Captions: caps}
}

// Split generates n examples of a shapes split (n <= 0: its configured size)
// and keeps them as Pairs at size×size.
func Split(cfg shapes.Config, split string, n, size int) (*Pairs, error) {
	exs, err := shapes.Generate(cfg, split, n)
	if err != nil {
		return nil, err
	}
	return FromExamples(exs, size), nil
}

// Sampler draws training batches: batch s holds the images at positions
// s·B … s·B+B−1 of an endless sequence of epochs, each a permutation of the
// images seeded by (Seed, epoch), with one of the image's captions chosen by
// (Seed, epoch, image). The batch of a step is thus a function of (Seed,
// step) only.
type Sampler struct {
	Pairs *Pairs
	Tok   *tokenizer.Tokenizer
	Batch int
	Seed  uint64
	// Context is the text context of the model being trained (its
	// max_position_embeddings; 0: the shapes world's Context). Longer
	// captions are truncated as CLIP does.
	Context int

	epoch int
	perm  []int
}

// Truncated counts the captions of p longer than context tokens (with
// start and end of text), which training truncates.
func Truncated(tok *tokenizer.Tokenizer, p *Pairs, context int) int {
	n := 0
	for _, cs := range p.Captions {
		for _, c := range cs {
			if len(tok.Encode(c))+2 > context {
				n++
			}
		}
	}
	return n
}

// Batch is one training batch.
type Batch struct {
	Index  []int // image indices
	Pixels *tensor.Tensor
	Text   *clip.TextBatch
}

func (s *Sampler) permutation(epoch int) []int {
	if s.perm != nil && s.epoch == epoch {
		return s.perm
	}
	p := tensor.NewRNG(mix(s.Seed, uint64(epoch), 0x5eed)).Perm(s.Pairs.Len())
	s.perm, s.epoch = p, epoch
	return p
}

// Indices returns the (image, caption) indices of batch step.
func (s *Sampler) Indices(step int) (imgs, caps []int) {
	n := s.Pairs.Len()
	for k := 0; k < s.Batch; k++ {
		pos := step*s.Batch + k
		epoch := pos / n
		i := s.permutation(epoch)[pos%n]
		imgs = append(imgs, i)
		nc := len(s.Pairs.Captions[i])
		caps = append(caps, int(mix(s.Seed, uint64(epoch), uint64(i))%uint64(nc)))
	}
	return imgs, caps
}

// Get returns the batch of step.
func (s *Sampler) Get(step int) (*Batch, error) {
	imgs, caps := s.Indices(step)
	texts := make([]string, len(imgs))
	for k, i := range imgs {
		texts[k] = s.Pairs.Captions[i][caps[k]]
	}
	ctx := s.Context
	if ctx <= 0 {
		ctx = Context
	}
	tb, err := TextBatchContext(s.Tok, texts, ctx)
	if err != nil {
		return nil, err
	}
	return &Batch{Index: imgs, Pixels: s.Pairs.Images.Pixels(imgs), Text: tb}, nil
}

// TextBatch tokenises texts to at most Context tokens (truncating longer
// ones) and trims the padding columns after the batch's last EOT: with the
// causal mask, padding never reaches the EOT position, so the embeddings are
// those of the full context at less cost.
func TextBatch(tok *tokenizer.Tokenizer, texts []string) (*clip.TextBatch, error) {
	return TextBatchContext(tok, texts, Context)
}

// TextBatchContext is TextBatch with the context length of the model.
func TextBatchContext(tok *tokenizer.Tokenizer, texts []string, Context int) (*clip.TextBatch, error) {
	ids, eot, err := tok.Batch(texts, Context, true)
	if err != nil {
		return nil, err
	}
	used := 1
	for _, p := range eot {
		used = max(used, p+1)
	}
	if used < Context {
		trimmed := make([]int, len(texts)*used)
		for r := range texts {
			copy(trimmed[r*used:(r+1)*used], ids[r*Context:r*Context+used])
		}
		ids = trimmed
	}
	return &clip.TextBatch{IDs: ids, EOTPos: eot, B: len(texts), T: used}, nil
}

// mix hashes three words into one (splitmix64 finaliser).
func mix(a, b, c uint64) uint64 {
	z := a*0x9e3779b97f4a7c15 ^ b*0xbf58476d1ce4e5b9 ^ c*0x94d049bb133111eb
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	return z ^ z>>31
}
