// Package eval evaluates a CLIP model on a dataset: zero-shot image–text
// retrieval (recall@1/5/10) and zero-shot classification (top-1, top-5,
// mean per-class recall).
//
// It sits above package clip (the model, its Encoder and the metrics on
// embeddings) and package dataset (records read from files, tar shards or
// the shapes world): clip knows nothing of datasets, dataset nothing of
// models. Images stream from dataset.Stream (a pool of decoding workers, a
// bounded queue, record order) into the encoder a few batches at a time;
// only the embeddings are kept, and the metrics are computed in blocks
// (clip.SimilarityBlocks), so memory grows with the embeddings only.
package eval

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/clip/zeroshot"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/tensor"
)

// Task is what is evaluated.
type Task int

// Tasks.
const (
	Retrieval Task = iota + 1 // image–text retrieval
	ZeroShot                  // zero-shot classification
)

func (t Task) String() string {
	switch t {
	case Retrieval:
		return "retrieval"
	case ZeroShot:
		return "zeroshot"
	}
	return fmt.Sprintf("Task(%d)", int(t))
}

// ParseTask parses "retrieval" or "zeroshot".
func ParseTask(s string) (Task, error) {
	switch s {
	case "retrieval":
		return Retrieval, nil
	case "zeroshot", "zero-shot", "classification":
		return ZeroShot, nil
	}
	return 0, fmt.Errorf("eval: unknown task %q (want retrieval or zeroshot)", s)
}

// Options configure a Run.
type Options struct {
	// Task; 0 picks ZeroShot for image folders, else Retrieval.
	Task Task
	// Pre is the image preprocessing (its Size must be the model's).
	Pre imageproc.Config
	// ClassNames are the class texts of zero-shot classification, one per
	// class of the dataset in order (nil: the folder names, "_" as space).
	ClassNames []string
	// Templates are the prompt templates ({} or {c} for the class; nil:
	// clip.DefaultTemplates).
	Templates []string
	// Misses (shapes only) classifies the caption→image top-1 misses.
	Misses bool
	// Stream sizes the decoding pool.
	Stream dataset.StreamOptions
	// Progress, when set, receives progress lines and the one-off notes
	// (truncated captions, skipped records).
	Progress io.Writer
}

// Report is the result of a Run. Retrieval recalls and accuracies are in
// percent; the CLIP_benchmark block repeats them under that tool's names,
// as fractions.
type Report struct {
	// Model, Preprocess, Batch, Device and Engine say how the run was made
	// (the caller fills them in; Run does not know them).
	Model      string `json:"model,omitempty"`
	Preprocess string `json:"preprocess,omitempty"`
	Batch      int    `json:"batch,omitempty"`
	Device     string `json:"device,omitempty"`
	Engine     string `json:"engine,omitempty"`

	Task    string `json:"task"`
	Data    string `json:"data"`
	Format  string `json:"format"`
	Split   string `json:"split,omitempty"`
	Images  int    `json:"images"`
	Texts   int    `json:"captions,omitempty"`
	Classes int    `json:"classes,omitempty"`
	// Retrieval (percent).
	TR1  *float64 `json:"tr1,omitempty"`
	TR5  *float64 `json:"tr5,omitempty"`
	TR10 *float64 `json:"tr10,omitempty"`
	IR1  *float64 `json:"ir1,omitempty"`
	IR5  *float64 `json:"ir5,omitempty"`
	IR10 *float64 `json:"ir10,omitempty"`
	// R1 and R5 are the means of TR and IR at 1 and 5 (the "mean R@1" of
	// the demo, the pipeline and validation); Mean is the mean of all six
	// recalls (RSUM/6).
	R1   *float64 `json:"r1,omitempty"`
	R5   *float64 `json:"r5,omitempty"`
	Mean *float64 `json:"mean,omitempty"`
	// Classification (percent).
	Top1            *float64 `json:"top1,omitempty"`
	Top5            *float64 `json:"top5,omitempty"`
	MeanClassRecall *float64 `json:"mean_class_recall,omitempty"`
	// Benchmark holds CLIP_benchmark's names: acc1, acc5,
	// mean_per_class_recall; image_retrieval_recall@K,
	// text_retrieval_recall@K (fractions).
	Benchmark map[string]float64 `json:"clip_benchmark"`
	// Truncated counts captions longer than the model's context, cut as
	// CLIP does (end-of-text kept).
	Truncated int `json:"truncated_captions,omitempty"`
	// Skipped counts bad records left out (dataset.Options.SkipBad).
	Skipped int `json:"skipped,omitempty"`
	// Misses counts the caption→image top-1 misses by kind (shapes, Misses).
	Misses map[string]int `json:"misses,omitempty"`
	// Seconds is the wall time of the whole run. ImageSeconds is the wall
	// time of the image part (reading, decoding and preprocessing in the
	// pool, overlapped with the image tower, from the first record to the
	// last embedding), ImagesPerSecond the images over it: the rate to
	// compare with `mope bench --tower vision`. TextSeconds is the text
	// tower's wall time (retrieval: the captions; zero-shot: the class
	// prompts).
	// EncodeSeconds is the part of ImageSeconds spent in the image tower:
	// the rest is time the encoder waited for decoded images (or copied
	// them), so EncodeSeconds/ImageSeconds near 1 means decoding never
	// starved the encoder.
	Seconds         float64 `json:"seconds"`
	ImageSeconds    float64 `json:"image_seconds"`
	ImagesPerSecond float64 `json:"images_per_s"`
	EncodeSeconds   float64 `json:"image_encode_seconds"`
	TextSeconds     float64 `json:"text_seconds"`
}

// setImageTime records the image part's wall time since t0 for n images.
func (r *Report) setImageTime(t0 time.Time, n int) {
	r.ImageSeconds = time.Since(t0).Seconds()
	if r.ImageSeconds > 0 {
		r.ImagesPerSecond = float64(n) / r.ImageSeconds
	}
}

// RetrievalMetrics returns the report's retrieval recalls.
func (r *Report) RetrievalMetrics() zeroshot.RetrievalMetrics {
	if r.TR1 == nil {
		return zeroshot.RetrievalMetrics{}
	}
	return zeroshot.RetrievalMetrics{TR1: *r.TR1, TR5: *r.TR5, TR10: *r.TR10, IR1: *r.IR1, IR5: *r.IR5, IR10: *r.IR10}
}

func (r *Report) setRetrieval(m zeroshot.RetrievalMetrics) {
	v := []float64{m.TR1, m.TR5, m.TR10, m.IR1, m.IR5, m.IR10}
	for i, p := range []**float64{&r.TR1, &r.TR5, &r.TR10, &r.IR1, &r.IR5, &r.IR10} {
		x := v[i]
		*p = &x
	}
	mean := m.Mean()
	r1, r5 := (m.TR1+m.IR1)/2, (m.TR5+m.IR5)/2
	r.Mean, r.R1, r.R5 = &mean, &r1, &r5
	r.Benchmark = map[string]float64{
		"image_retrieval_recall@1": m.IR1 / 100, "image_retrieval_recall@5": m.IR5 / 100, "image_retrieval_recall@10": m.IR10 / 100,
		"text_retrieval_recall@1": m.TR1 / 100, "text_retrieval_recall@5": m.TR5 / 100, "text_retrieval_recall@10": m.TR10 / 100,
	}
}

func (r *Report) setClass(m zeroshot.ClassMetrics) {
	t1, t5, mr := m.Top1, m.Top5, m.MeanClassRecall
	r.Top1, r.Top5, r.MeanClassRecall = &t1, &t5, &mr
	r.Benchmark = map[string]float64{"acc1": t1 / 100, "acc5": t5 / 100, "mean_per_class_recall": mr / 100}
}

// Run evaluates enc's model on d. enc carries the model, tokenizer, batch
// size and engine (its Device hook); its Progress is left alone (Run writes
// its own progress to o.Progress).
func Run(ctx context.Context, enc *clip.Encoder, d *dataset.Dataset, o Options) (*Report, error) {
	if err := o.Pre.Validate(); err != nil {
		return nil, err
	}
	if S := enc.Model.Config.Vision.ImageSize; o.Pre.Size != S {
		return nil, fmt.Errorf("eval: preprocessing makes %d×%d images but the model takes %d×%d", o.Pre.Size, o.Pre.Size, S, S)
	}
	task := o.Task
	if task == 0 {
		task = Retrieval
		if d.Classes != nil {
			task = ZeroShot
		}
	}
	switch {
	case task == Retrieval && d.Classes != nil:
		return nil, fmt.Errorf("eval: %s is an image folder (classes, no captions): evaluate it with the zeroshot task", d.Spec.Path)
	case task == ZeroShot && d.Classes == nil:
		return nil, fmt.Errorf("eval: zero-shot classification needs an image-folder tree DIR/<class name>/*.jpg, not a %v dataset", d.Spec.Format)
	case o.Misses && d.Spec.Format != dataset.Shapes:
		return nil, fmt.Errorf("eval: misses need the shapes world (they read the scenes' objects)")
	}
	rep := &Report{Task: task.String(), Data: d.Spec.Path, Format: d.Spec.Format.String(), Split: d.Split()}
	t0 := time.Now()
	var err error
	if task == Retrieval {
		err = runRetrieval(ctx, enc, d, o, rep)
	} else {
		err = runZeroShot(ctx, enc, d, o, rep)
	}
	if err != nil {
		return nil, err
	}
	if n, first := d.Skipped(); n > 0 {
		rep.Skipped = n
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "skipped %d bad records (first: %s)\n", n, first[0])
		}
	}
	rep.Seconds = time.Since(t0).Seconds()
	return rep, nil
}

// imageSink embeds the prepared images of a stream a few batches at a
// time: batches are the same consecutive runs of enc's batch size as
// clip.Encoder makes over the whole set, so the embeddings are identical.
type imageSink struct {
	enc   *clip.Encoder
	per   int
	chunk int // images per call: a multiple of the batch size
	buf   []float32
	n     int
	emit  func(emb *tensor.Tensor) error
	prog  *progress
	busy  time.Duration // wall time inside the encoder
}

func newImageSink(enc *clip.Encoder, emit func(*tensor.Tensor) error, prog *progress) *imageSink {
	S := enc.Model.Config.Vision.ImageSize
	b := enc.Batch
	if b <= 0 {
		b = clip.DefaultBatch
	}
	w := enc.Workers
	if w <= 0 {
		w = 2
	}
	return &imageSink{enc: enc, per: 3 * S * S, chunk: b * w, emit: emit, prog: prog}
}

func (s *imageSink) add(px []float32) error {
	if len(px) != s.per {
		return fmt.Errorf("eval: preprocessed image has %d values, want %d", len(px), s.per)
	}
	s.buf = append(s.buf, px...)
	s.n++
	if s.n == s.chunk {
		return s.flush()
	}
	return nil
}

func (s *imageSink) flush() error {
	if s.n == 0 {
		return nil
	}
	t0 := time.Now()
	emb, err := s.enc.EncodePixels(s.buf[:s.n*s.per], s.n)
	s.busy += time.Since(t0)
	if err != nil {
		return err
	}
	s.prog.add(s.n)
	s.buf, s.n = s.buf[:0], 0
	return s.emit(emb)
}

// stream preprocesses d's images (o.Pre) and feeds them to the sink in
// order, calling each on every record first, and flushes the sink at the end.
func (s *imageSink) stream(ctx context.Context, d *dataset.Dataset, o Options, each func(dataset.Record)) error {
	err := dataset.Stream(ctx, d, o.Stream, func(r *dataset.Record) ([]float32, error) { return dataset.Preprocessed(r, o.Pre) },
		func(r dataset.Record, px []float32) error {
			each(r)
			return s.add(px)
		})
	if err != nil {
		return err
	}
	return s.flush()
}

func runRetrieval(ctx context.Context, enc *clip.Encoder, d *dataset.Dataset, o Options, rep *Report) error {
	var (
		embs     []float32
		E        = enc.Model.Config.ProjectionDim
		captions []string
		capImg   []int
		nImg     int
		exs      []shapes.Example
	)
	t0 := time.Now()
	prog := newProgress(o.Progress, "images", d.Len())
	sink := newImageSink(enc, func(t *tensor.Tensor) error {
		embs = append(embs, t.Data...)
		return nil
	}, prog)
	err := sink.stream(ctx, d, o, func(r dataset.Record) {
		for _, c := range r.Captions {
			captions = append(captions, c)
			capImg = append(capImg, nImg)
		}
		nImg++
	})
	if err != nil {
		return err
	}
	prog.finish()
	rep.setImageTime(t0, nImg)
	rep.EncodeSeconds = sink.busy.Seconds()
	if nImg == 0 || len(captions) == 0 {
		return fmt.Errorf("eval: %s: no images with captions to evaluate", d.Spec.Path)
	}
	rep.Images, rep.Texts = nImg, len(captions)
	rep.Truncated = countTruncated(enc, captions)
	noteTruncated(o.Progress, rep.Truncated, len(captions), enc.Model.Config.Text.MaxPositionEmbeddings)
	img, err := tensor.FromData(embs, nImg, E)
	if err != nil {
		return err
	}
	t1 := time.Now()
	txt, err := enc.Texts(captions)
	if err != nil {
		return err
	}
	rep.TextSeconds = time.Since(t1).Seconds()
	r := clip.RetrievalRanker(img, txt, capImg, o.Misses)
	rep.setRetrieval(r.Metrics())
	if o.Misses {
		if exs, err = shapesExamples(d, nImg); err != nil {
			return err
		}
		counts := shapes.Misses(exs, capImg, r.Top())
		rep.Misses = map[string]int{}
		for _, k := range shapes.MissKinds {
			rep.Misses[string(k)] = counts[k]
		}
	}
	return nil
}

// shapesExamples regenerates the examples of a shapes dataset (their
// objects, for the miss analysis).
func shapesExamples(d *dataset.Dataset, n int) ([]shapes.Example, error) {
	var out []shapes.Example
	err := d.EachExample(func(e shapes.Example) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, fmt.Errorf("eval: %d shapes examples for %d images", len(out), n)
	}
	return out, nil
}

func runZeroShot(ctx context.Context, enc *clip.Encoder, d *dataset.Dataset, o Options, rep *Report) error {
	names := o.ClassNames
	if names == nil {
		names = ClassNamesFromFolders(d.Classes)
	}
	if len(names) != len(d.Classes) {
		return fmt.Errorf("eval: %d class names for %d classes", len(names), len(d.Classes))
	}
	t1 := time.Now()
	cls, err := enc.ClassEmbeddings(names, o.Templates)
	if err != nil {
		return err
	}
	rep.TextSeconds = time.Since(t1).Seconds()
	counter := zeroshot.NewClassCounter(len(names))
	var labels []int
	n := 0
	t0 := time.Now()
	prog := newProgress(o.Progress, "images", d.Len())
	sink := newImageSink(enc, func(t *tensor.Tensor) error {
		clip.ClassRows(counter, t, cls, labels[:t.Shape[0]])
		labels = labels[t.Shape[0]:]
		return nil
	}, prog)
	err = sink.stream(ctx, d, o, func(r dataset.Record) {
		labels = append(labels, r.Label)
		n++
	})
	if err != nil {
		return err
	}
	prog.finish()
	rep.setImageTime(t0, n)
	rep.EncodeSeconds = sink.busy.Seconds()
	if n == 0 {
		return fmt.Errorf("eval: %s: no images to classify", d.Spec.Path)
	}
	rep.Images, rep.Classes = n, len(names)
	rep.setClass(counter.Metrics())
	return nil
}

// countTruncated counts the captions longer than the model's context.
func countTruncated(enc *clip.Encoder, captions []string) int {
	if enc.Tok == nil {
		return 0
	}
	T := enc.Model.Config.Text.MaxPositionEmbeddings
	n := 0
	for _, c := range captions {
		if len(enc.Tok.Encode(c))+2 > T {
			n++
		}
	}
	return n
}

func noteTruncated(w io.Writer, n, total, ctx int) {
	if w != nil && n > 0 {
		fmt.Fprintf(w, "%d of %d captions are longer than the model's context of %d tokens: truncated as CLIP does (end-of-text kept)\n", n, total, ctx)
	}
}

// progress prints a line every two seconds while images are embedded.
type progress struct {
	w           io.Writer
	what        string
	total, done int
	start, last time.Time
	shown       bool
}

func newProgress(w io.Writer, what string, total int) *progress {
	now := time.Now()
	return &progress{w: w, what: what, total: total, start: now, last: now}
}

func (p *progress) add(n int) {
	p.done += n
	if p.w == nil || time.Since(p.last) < 2*time.Second {
		return
	}
	p.last, p.shown = time.Now(), true
	el := time.Since(p.start).Seconds()
	if p.total > 0 {
		fmt.Fprintf(p.w, "embedding %s: %d/%d (%.1f/s)\n", p.what, p.done, p.total, float64(p.done)/el)
	} else {
		fmt.Fprintf(p.w, "embedding %s: %d (%.1f/s)\n", p.what, p.done, float64(p.done)/el)
	}
}

func (p *progress) finish() {
	if p.w != nil && p.shown {
		el := time.Since(p.start).Seconds()
		fmt.Fprintf(p.w, "embedded %d %s in %.1fs (%.1f/s)\n", p.done, p.what, el, float64(p.done)/el)
	}
}
