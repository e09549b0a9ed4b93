package clip

import (
	"fmt"
	"image"
	"strings"

	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/clip/zeroshot"
	"github.com/mopeclip/mopeclip/tensor"
	"gonum.org/v1/gonum/blas"
)

// Zero-shot evaluation: every image and every text is embedded once (in
// batches, see Encoder), the embeddings are L2-normalised, and the metrics
// of package zeroshot are computed from their cosine similarities.

// DefaultTemplates are the prompt templates of zero-shot classification when
// none are given: the seven ImageNet templates that OpenAI's prompt
// engineering notebook selected from its 80 (they beat the full set).
// "{}" stands for the class name.
var DefaultTemplates = []string{
	"itap of a {}.",
	"a bad photo of the {}.",
	"a origami {}.",
	"a photo of the large {}.",
	"a {} in a video game.",
	"art of the {}.",
	"a photo of the small {}.",
}

// EvalRetrievalImages computes zero-shot image–text retrieval recall@1/5/10
// of m on decoded images (the shapes world, for one): caption j describes
// images[captionImage[j]]; batch is the forward batch size (<= 0:
// DefaultBatch). Package eval evaluates datasets read by package dataset.
func EvalRetrievalImages[I image.Image](m *Model, tok *tokenizer.Tokenizer, images []I, captions []string, captionImage []int, pre imageproc.Config, batch int) (zeroshot.RetrievalMetrics, error) {
	e := &Encoder{Model: m, Tok: tok, Batch: batch}
	return e.RetrievalDecoded(len(images), func(i int) image.Image { return images[i] }, captions, captionImage, pre)
}

// EvalZeroShotImages computes zero-shot classification accuracy of m on
// decoded images with labels indexing classNames; see ClassEmbeddings for
// the classifier.
func EvalZeroShotImages[I image.Image](m *Model, tok *tokenizer.Tokenizer, images []I, labels []int, classNames, templates []string, pre imageproc.Config, batch int) (zeroshot.ClassMetrics, error) {
	e := &Encoder{Model: m, Tok: tok, Batch: batch}
	return e.ZeroShotDecoded(len(images), func(i int) image.Image { return images[i] }, labels, classNames, templates, pre)
}

// RetrievalDecoded is EvalRetrievalImages with e's settings; get(i) returns
// image i of n.
func (e *Encoder) RetrievalDecoded(n int, get func(i int) image.Image, captions []string, captionImage []int, pre imageproc.Config) (zeroshot.RetrievalMetrics, error) {
	if err := checkRetrieval(n, captions, captionImage); err != nil {
		return zeroshot.RetrievalMetrics{}, err
	}
	img, err := e.DecodedImages(n, get, pre)
	if err != nil {
		return zeroshot.RetrievalMetrics{}, err
	}
	return e.retrievalFrom(img, captions, captionImage)
}

func (e *Encoder) retrievalFrom(img *tensor.Tensor, captions []string, captionImage []int) (zeroshot.RetrievalMetrics, error) {
	txt, err := e.Texts(captions)
	if err != nil {
		return zeroshot.RetrievalMetrics{}, err
	}
	return RetrievalMetrics(img, txt, captionImage), nil
}

// RetrievalMetrics normalises the image [nImg,E] and caption [nTxt,E]
// embeddings in place and computes recall@K from their cosine similarities.
// The similarity matrix is computed in blocks of image rows (SimBlockBytes
// at most), never whole; the ranks are those of the whole matrix.
func RetrievalMetrics(img, txt *tensor.Tensor, captionImage []int) zeroshot.RetrievalMetrics {
	return RetrievalRanker(img, txt, captionImage, false).Metrics()
}

// RetrievalRanker is RetrievalMetrics returning the ranker, which also
// holds each caption's top image when trackTop is set.
func RetrievalRanker(img, txt *tensor.Tensor, captionImage []int, trackTop bool) *zeroshot.Ranker {
	Normalize(img)
	Normalize(txt)
	r := zeroshot.NewRanker(img.Shape[0], txt.Shape[0], captionImage)
	if trackTop {
		r.TrackTop()
	}
	SimilarityBlocks(img, txt, r.TextRows, r.ImageRows)
	return r
}

// SimBlockBytes bounds the block of the similarity matrix that
// SimilarityBlocks holds at once.
var SimBlockBytes = 64 << 20

// simBlockRows is the granularity of the row blocks: a multiple of every
// GEMM micro-tile height, though Sgemm's results do not depend on how its
// rows are split anyway (it splits M across threads).
const simBlockRows = 48

// SimilarityBlocks computes the [nA, nB] similarity of the rows of a and b
// in blocks of rows and runs each pass over every block in row order:
// pass(lo, sim) gets rows [lo, lo+len(sim)/nB). When the whole matrix fits
// SimBlockBytes it is computed once for all passes; otherwise each pass
// recomputes the blocks (the values are the same every time).
func SimilarityBlocks(a, b *tensor.Tensor, passes ...func(lo int, sim []float32)) {
	na, nb := a.Shape[0], b.Shape[0]
	e := a.Shape[len(a.Shape)-1]
	if b.Shape[len(b.Shape)-1] != e {
		panic(fmt.Sprintf("clip.SimilarityBlocks: widths %d and %d differ", e, b.Shape[len(b.Shape)-1]))
	}
	if na == 0 || nb == 0 {
		for _, p := range passes {
			p(0, nil)
		}
		return
	}
	rows := max(simBlockRows, SimBlockBytes/(4*nb)/simBlockRows*simBlockRows)
	if rows >= na {
		sim := Similarity(a, b)
		for _, p := range passes {
			p(0, sim)
		}
		return
	}
	sim := make([]float32, rows*nb)
	for _, p := range passes {
		for lo := 0; lo < na; lo += rows {
			hi := min(na, lo+rows)
			blk := sim[:(hi-lo)*nb]
			if e == 0 {
				clear(blk)
			} else {
				tensor.Sgemm(blas.NoTrans, blas.Trans, hi-lo, nb, e, 1, a.Data[lo*e:hi*e], e, b.Data, e, 0, blk, nb)
			}
			p(lo, blk)
		}
	}
}

func checkRetrieval(nImg int, captions []string, captionImage []int) error {
	switch {
	case nImg == 0:
		return fmt.Errorf("clip: retrieval set has no images")
	case len(captions) == 0:
		return fmt.Errorf("clip: retrieval set has no captions")
	case len(captions) != len(captionImage):
		return fmt.Errorf("clip: %d captions but %d caption-image links", len(captions), len(captionImage))
	}
	for j, g := range captionImage {
		if g < 0 || g >= nImg {
			return fmt.Errorf("clip: caption %d belongs to image %d of %d", j, g, nImg)
		}
	}
	return nil
}

// FillTemplate puts a class name into a prompt template in place of "{}"
// or "{c}" (the two spellings of open_clip's and CLIP_benchmark's files).
func FillTemplate(t, class string) string {
	return strings.ReplaceAll(strings.ReplaceAll(t, "{c}", class), "{}", class)
}

// ClassEmbeddings returns the zero-shot classifier [classes,E]: for each
// class the mean of the normalised embeddings of its prompts (templates
// with "{}" or "{c}" replaced by the name; nil: DefaultTemplates),
// renormalised.
func (e *Encoder) ClassEmbeddings(classNames, templates []string) (*tensor.Tensor, error) {
	if len(classNames) == 0 {
		return nil, fmt.Errorf("clip: no class names")
	}
	if templates == nil {
		templates = DefaultTemplates
	}
	if len(templates) == 0 {
		return nil, fmt.Errorf("clip: no prompt templates")
	}
	for _, t := range templates {
		if !strings.Contains(t, "{}") && !strings.Contains(t, "{c}") {
			return nil, fmt.Errorf("clip: prompt template %q has no {} or {c} for the class name", t)
		}
	}
	prompts := make([]string, 0, len(classNames)*len(templates))
	for _, c := range classNames {
		if strings.TrimSpace(c) == "" {
			return nil, fmt.Errorf("clip: empty class name")
		}
		for _, t := range templates {
			prompts = append(prompts, FillTemplate(t, c))
		}
	}
	emb, err := e.Texts(prompts)
	if err != nil {
		return nil, err
	}
	Normalize(emb)
	E, nt := emb.Shape[1], len(templates)
	out := tensor.New(len(classNames), E)
	acc := make([]float64, E)
	for c := range classNames {
		clear(acc)
		for t := 0; t < nt; t++ {
			for i, v := range emb.Data[(c*nt+t)*E : (c*nt+t+1)*E] {
				acc[i] += float64(v)
			}
		}
		row := out.Data[c*E : (c+1)*E]
		for i, v := range acc {
			row[i] = float32(v / float64(nt))
		}
	}
	return Normalize(out), nil
}

// ZeroShotDecoded is EvalZeroShotImages with e's settings; get(i) returns
// image i of n.
func (e *Encoder) ZeroShotDecoded(n int, get func(i int) image.Image, labels []int, classNames, templates []string, pre imageproc.Config) (zeroshot.ClassMetrics, error) {
	if n == 0 {
		return zeroshot.ClassMetrics{}, fmt.Errorf("clip: classification set has no images")
	}
	if len(labels) != n {
		return zeroshot.ClassMetrics{}, fmt.Errorf("clip: %d labels for %d images", len(labels), n)
	}
	if err := checkLabels(labels, len(classNames)); err != nil {
		return zeroshot.ClassMetrics{}, err
	}
	cls, err := e.ClassEmbeddings(classNames, templates)
	if err != nil {
		return zeroshot.ClassMetrics{}, err
	}
	img, err := e.DecodedImages(n, get, pre)
	if err != nil {
		return zeroshot.ClassMetrics{}, err
	}
	return ClassMetrics(img, cls, labels), nil
}

// ClassMetrics normalises the image embeddings [n,E] in place and scores
// them against the normalised class embeddings [classes,E].
func ClassMetrics(img, classes *tensor.Tensor, labels []int) zeroshot.ClassMetrics {
	c := zeroshot.NewClassCounter(classes.Shape[0])
	ClassRows(c, img, classes, labels)
	return c.Metrics()
}

// ClassRows normalises the image embeddings [n,E] in place and adds their
// scores against the class embeddings to c (in row blocks).
func ClassRows(c *zeroshot.ClassCounter, img, classes *tensor.Tensor, labels []int) {
	Normalize(img)
	SimilarityBlocks(img, classes, func(lo int, sim []float32) {
		n := len(sim) / max(1, classes.Shape[0])
		c.Rows(sim, labels[lo:lo+n])
	})
}

func checkLabels(labels []int, classes int) error {
	for i, y := range labels {
		if y < 0 || y >= classes {
			return fmt.Errorf("clip: label %d of image %d outside the %d classes", y, i, classes)
		}
	}
	return nil
}
