package clip

import (
	"fmt"
	"image"
	"strings"

	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/clip/zeroshot"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/tensor"
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

// EvalRetrieval computes zero-shot image–text retrieval recall@1/5/10 of m
// on r: images are loaded and preprocessed with pre a batch at a time,
// captions tokenized with tok; batch is the forward batch size (<= 0:
// DefaultBatch).
func EvalRetrieval(m *Model, tok *tokenizer.Tokenizer, r *dataset.Retrieval, pre imageproc.Config, batch int) (zeroshot.RetrievalMetrics, error) {
	return (&Encoder{Model: m, Tok: tok, Batch: batch}).Retrieval(r, pre)
}

// EvalRetrievalImages is EvalRetrieval on decoded images (the shapes world,
// for one): caption j describes images[captionImage[j]].
func EvalRetrievalImages[I image.Image](m *Model, tok *tokenizer.Tokenizer, images []I, captions []string, captionImage []int, pre imageproc.Config, batch int) (zeroshot.RetrievalMetrics, error) {
	e := &Encoder{Model: m, Tok: tok, Batch: batch}
	return e.RetrievalDecoded(len(images), func(i int) image.Image { return images[i] }, captions, captionImage, pre)
}

// EvalZeroShot computes zero-shot classification top-1/top-5 accuracy of m
// on c. classNames gives the text of each class of c (nil: c.Classes as
// they are); each class is embedded as the renormalised mean of the
// normalised embeddings of its prompts, one per template ("{}" replaced by
// the class name; nil: DefaultTemplates).
func EvalZeroShot(m *Model, tok *tokenizer.Tokenizer, c *dataset.Classification, classNames, templates []string, pre imageproc.Config, batch int) (zeroshot.ClassMetrics, error) {
	return (&Encoder{Model: m, Tok: tok, Batch: batch}).ZeroShot(c, classNames, templates, pre)
}

// EvalZeroShotImages is EvalZeroShot on decoded images with labels indexing
// classNames.
func EvalZeroShotImages[I image.Image](m *Model, tok *tokenizer.Tokenizer, images []I, labels []int, classNames, templates []string, pre imageproc.Config, batch int) (zeroshot.ClassMetrics, error) {
	e := &Encoder{Model: m, Tok: tok, Batch: batch}
	return e.ZeroShotDecoded(len(images), func(i int) image.Image { return images[i] }, labels, classNames, templates, pre)
}

// Retrieval is EvalRetrieval with e's settings.
func (e *Encoder) Retrieval(r *dataset.Retrieval, pre imageproc.Config) (zeroshot.RetrievalMetrics, error) {
	if err := checkRetrieval(len(r.Images), r.Captions, r.CaptionImage); err != nil {
		return zeroshot.RetrievalMetrics{}, err
	}
	img, err := e.ImageFiles(r.Images, pre)
	if err != nil {
		return zeroshot.RetrievalMetrics{}, err
	}
	return e.retrievalFrom(img, r.Captions, r.CaptionImage)
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
func RetrievalMetrics(img, txt *tensor.Tensor, captionImage []int) zeroshot.RetrievalMetrics {
	Normalize(img)
	Normalize(txt)
	return zeroshot.Retrieval(Similarity(img, txt), img.Shape[0], txt.Shape[0], captionImage)
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

// ClassEmbeddings returns the zero-shot classifier [classes,E]: for each
// class the mean of the normalised embeddings of its prompts (templates
// with "{}" replaced by the name; nil: DefaultTemplates), renormalised.
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
		if !strings.Contains(t, "{}") {
			return nil, fmt.Errorf("clip: prompt template %q has no {} for the class name", t)
		}
	}
	prompts := make([]string, 0, len(classNames)*len(templates))
	for _, c := range classNames {
		if strings.TrimSpace(c) == "" {
			return nil, fmt.Errorf("clip: empty class name")
		}
		for _, t := range templates {
			prompts = append(prompts, strings.ReplaceAll(t, "{}", c))
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

// ZeroShot is EvalZeroShot with e's settings.
func (e *Encoder) ZeroShot(c *dataset.Classification, classNames, templates []string, pre imageproc.Config) (zeroshot.ClassMetrics, error) {
	if classNames == nil {
		classNames = c.Classes
	}
	if len(classNames) != len(c.Classes) {
		return zeroshot.ClassMetrics{}, fmt.Errorf("clip: %d class names for %d classes", len(classNames), len(c.Classes))
	}
	if len(c.Items) == 0 {
		return zeroshot.ClassMetrics{}, fmt.Errorf("clip: classification set has no images")
	}
	paths := make([]string, len(c.Items))
	labels := make([]int, len(c.Items))
	for i, it := range c.Items {
		paths[i], labels[i] = it.Image, it.Label
	}
	if err := checkLabels(labels, len(classNames)); err != nil {
		return zeroshot.ClassMetrics{}, err
	}
	cls, err := e.ClassEmbeddings(classNames, templates)
	if err != nil {
		return zeroshot.ClassMetrics{}, err
	}
	img, err := e.ImageFiles(paths, pre)
	if err != nil {
		return zeroshot.ClassMetrics{}, err
	}
	return ClassMetrics(img, cls, labels), nil
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
	Normalize(img)
	return zeroshot.Classification(Similarity(img, classes), img.Shape[0], classes.Shape[0], labels)
}

func checkLabels(labels []int, classes int) error {
	for i, y := range labels {
		if y < 0 || y >= classes {
			return fmt.Errorf("clip: label %d of image %d outside the %d classes", y, i, classes)
		}
	}
	return nil
}
