package clip

import (
	"fmt"
	"image"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/internal/progress"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
	"gonum.org/v1/gonum/blas"
)

// DefaultBatch is the batch size of the encoding helpers when none is given.
const DefaultBatch = 32

// Encoder embeds many images or texts with a model, batch by batch. The zero
// values of its fields are sensible defaults; the package functions
// EncodeImages and EncodeTexts are shorthands for the common case.
//
// Results are deterministic: the batches are always the same consecutive
// runs of Batch items whatever Workers is, and every kernel underneath gives
// bit-identical results for any GOMAXPROCS, so the output depends only on
// the model, the inputs and Batch. (Different batch sizes can change the
// last bits of an embedding, not more.)
//
// An Encoder is not meant to be shared between goroutines while it runs.
type Encoder struct {
	Model *Model
	// Tok tokenizes texts (Texts and the evaluators need it).
	Tok *tokenizer.Tokenizer
	// Batch is the number of items per forward pass (<= 0: DefaultBatch).
	Batch int
	// Workers is the number of batches in flight at once (<= 0:
	// min(GOMAXPROCS, 2)). Each batch's matrix products, attention and
	// image decoding are themselves spread over GOMAXPROCS goroutines; a
	// second batch in flight keeps the cores busy through the serial parts
	// of a forward pass (layer norms, gathers, the short products of small
	// batches), at the cost of a second batch's activations in memory.
	Workers int
	// Progress, when set, receives the progress of long runs
	// (internal/progress: a bar on a terminal, timestamped lines
	// elsewhere); runs shorter than its interval say nothing.
	Progress io.Writer
	// Device, when set, embeds each batch in place of the model's own
	// forward pass (Model.EncodeImage, Model.EncodeText), e.g. towers
	// resident on a GPU. Batching, tokenisation, image decoding and the
	// order of the results stay as they are.
	Device BatchEncoder
}

// BatchEncoder embeds one batch the way Model.EncodeImage and
// Model.EncodeText do; Encoder.Device plugs one in. Up to Encoder.Workers
// batches may be in flight at once, so its methods must be safe for
// concurrent use.
type BatchEncoder interface {
	// EncodeImages returns the [b, E] embeddings of pixels [b, 3, S, S].
	EncodeImages(pixels []float32, b int) ([]float32, error)
	// EncodeTexts returns the [B, E] embeddings of a checked text batch.
	EncodeTexts(tb *TextBatch) ([]float32, error)
}

// deviceOut wraps a BatchEncoder's result as a [b, E] tensor.
func deviceOut(y []float32, err error, b int) (*tensor.Tensor, error) {
	if err != nil {
		return nil, err
	}
	if len(y)%max(b, 1) != 0 {
		return nil, fmt.Errorf("clip: device encoder returned %d values for %d items", len(y), b)
	}
	return tensor.FromData(y, b, len(y)/max(b, 1))
}

func (e *Encoder) batch() int {
	if e.Batch > 0 {
		return e.Batch
	}
	return DefaultBatch
}

func (e *Encoder) workers(nBatches int) int {
	w := e.Workers
	if w <= 0 {
		w = min(runtime.GOMAXPROCS(0), 2)
	}
	return max(1, min(w, nBatches))
}

// EncodeImages embeds n preprocessed images, pixels holding n×3×S×S values
// ([n,3,S,S], S the model's image size, normalised as imageproc does), in
// batches of at most batch images (<= 0: DefaultBatch). It returns the
// projected, unnormalised embeddings [n,E]. It panics if len(pixels) is not
// n×3×S×S (check the shape of user input first).
func EncodeImages(m *Model, pixels []float32, n, batch int) *tensor.Tensor {
	return (&Encoder{Model: m, Batch: batch}).Images(pixels, n)
}

// EncodeTexts tokenizes texts with tok (context max_position_embeddings of
// the text tower, longer texts truncated as clip.tokenize(truncate=True)
// does) and embeds them in batches of at most batch texts (<= 0:
// DefaultBatch). It returns the projected, unnormalised embeddings [n,E].
func EncodeTexts(m *Model, tok *tokenizer.Tokenizer, texts []string, batch int) (*tensor.Tensor, error) {
	return (&Encoder{Model: m, Tok: tok, Batch: batch}).Texts(texts)
}

// Normalize scales every row of t ([rows, E]) to unit L2 norm in place and
// returns t. Norms are accumulated in float64; an all-zero row stays zero.
func Normalize(t *tensor.Tensor) *tensor.Tensor {
	if len(t.Shape) == 0 {
		return t
	}
	e := t.Shape[len(t.Shape)-1]
	if e == 0 {
		return t
	}
	for r := 0; r+e <= len(t.Data); r += e {
		row := t.Data[r : r+e]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		if ss == 0 {
			continue
		}
		inv := 1 / math.Sqrt(ss)
		for i, v := range row {
			row[i] = float32(float64(v) * inv)
		}
	}
	return t
}

// Similarity returns the [nA, nB] row-major matrix of dot products of the
// rows of a ([nA,E]) and b ([nB,E]); with normalised rows, cosine
// similarities.
func Similarity(a, b *tensor.Tensor) []float32 {
	na, e := a.Shape[0], a.Shape[len(a.Shape)-1]
	nb := b.Shape[0]
	if b.Shape[len(b.Shape)-1] != e {
		panic(fmt.Sprintf("clip.Similarity: widths %d and %d differ", e, b.Shape[len(b.Shape)-1]))
	}
	sim := make([]float32, na*nb)
	if na == 0 || nb == 0 || e == 0 {
		return sim
	}
	tensor.Sgemm(blas.NoTrans, blas.Trans, na, nb, e, 1, a.Data, e, b.Data, e, 0, sim, nb)
	return sim
}

// Images embeds n preprocessed images ([n,3,S,S] in pixels); see EncodeImages.
func (e *Encoder) Images(pixels []float32, n int) *tensor.Tensor {
	per := e.imageLen()
	if n < 0 || len(pixels) != n*per {
		S := e.Model.Config.Vision.ImageSize
		panic(fmt.Sprintf("clip: %d pixel values for %d images of 3×%d×%d", len(pixels), n, S, S))
	}
	out, err := e.imageStream(n, "images", func(i int, dst []float32) error {
		copy(dst, pixels[i*per:(i+1)*per])
		return nil
	})
	if err != nil {
		panic(err) // the fill above cannot fail
	}
	return out
}

// EncodePixels is Images returning an error (a wrong pixel count, a
// failing Device) instead of panicking.
func (e *Encoder) EncodePixels(pixels []float32, n int) (*tensor.Tensor, error) {
	per := e.imageLen()
	if n < 0 || len(pixels) != n*per {
		S := e.Model.Config.Vision.ImageSize
		return nil, fmt.Errorf("clip: %d pixel values for %d images of 3×%d×%d", len(pixels), n, S, S)
	}
	return e.imageStream(n, "images", func(i int, dst []float32) error {
		copy(dst, pixels[i*per:(i+1)*per])
		return nil
	})
}

// ImageFiles loads, preprocesses and embeds image files, a batch at a time
// (memory stays at a few batches of pixels however many files there are).
// The error names the first file that fails to load.
func (e *Encoder) ImageFiles(paths []string, pre imageproc.Config) (*tensor.Tensor, error) {
	if err := e.checkPre(pre); err != nil {
		return nil, err
	}
	return e.imageStream(len(paths), "images", func(i int, dst []float32) error {
		px, err := imageproc.LoadPreprocessed(paths[i], pre)
		if err != nil {
			return err
		}
		copy(dst, px)
		return nil
	})
}

// DecodedImages preprocesses and embeds in-memory images (get(i) returns
// image i of n), a batch at a time.
func (e *Encoder) DecodedImages(n int, get func(i int) image.Image, pre imageproc.Config) (*tensor.Tensor, error) {
	if err := e.checkPre(pre); err != nil {
		return nil, err
	}
	return e.imageStream(n, "images", func(i int, dst []float32) error {
		img := get(i)
		if img == nil || img.Bounds().Empty() {
			return fmt.Errorf("clip: image %d is empty", i)
		}
		copy(dst, imageproc.Preprocess(img, pre))
		return nil
	})
}

func (e *Encoder) imageLen() int {
	S := e.Model.Config.Vision.ImageSize
	return 3 * S * S
}

func (e *Encoder) checkPre(pre imageproc.Config) error {
	if err := pre.Validate(); err != nil {
		return err
	}
	if S := e.Model.Config.Vision.ImageSize; pre.Size != S {
		return fmt.Errorf("clip: preprocessing makes %d×%d images but the model takes %d×%d", pre.Size, pre.Size, S, S)
	}
	return nil
}

// imageStream embeds n images whose pixels fill(i, dst) writes, batch by
// batch, with up to e.workers batches in flight.
func (e *Encoder) imageStream(n int, what string, fill func(i int, dst []float32) error) (*tensor.Tensor, error) {
	m := e.Model
	S, E := m.Config.Vision.ImageSize, m.Config.ProjectionDim
	per := 3 * S * S
	return e.run(n, E, what, func(lo, hi int, buf *[]float32) (*tensor.Tensor, error) {
		b := hi - lo
		if cap(*buf) < b*per {
			*buf = make([]float32, b*per)
		}
		px := (*buf)[:b*per]
		if err := parallelFill(lo, hi, func(i int) error { return fill(i, px[(i-lo)*per:(i-lo+1)*per]) }); err != nil {
			return nil, err
		}
		if e.Device != nil {
			y, err := e.Device.EncodeImages(px, b)
			return deviceOut(y, err, b)
		}
		x, err := tensor.FromData(px, b, 3, S, S)
		if err != nil {
			return nil, err
		}
		return m.EncodeImage(nil, ops.Const(x)).Value, nil
	})
}

// parallelFill runs f(i) for i in [lo,hi) on up to GOMAXPROCS goroutines
// (image decoding and resizing are per image and single-threaded) and
// returns the error of the first failing i.
func parallelFill(lo, hi int, f func(i int) error) error {
	errs := make([]error, hi-lo)
	var next atomic.Int64
	next.Store(int64(lo))
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= hi {
				return
			}
			errs[i-lo] = f(i)
		}
	}
	if w := min(runtime.GOMAXPROCS(0), hi-lo); w <= 1 {
		work()
	} else {
		var wg sync.WaitGroup
		for range w {
			wg.Go(work)
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Texts tokenizes and embeds texts; see EncodeTexts. Each batch is padded
// only to its longest text (as Hugging Face's processor does with
// padding=True): the causal mask makes the padding irrelevant to the
// embedding at the EOT position.
func (e *Encoder) Texts(texts []string) (*tensor.Tensor, error) {
	if e.Tok == nil {
		return nil, fmt.Errorf("clip: no tokenizer to embed texts with")
	}
	m := e.Model
	tc := &m.Config.Text
	T := tc.MaxPositionEmbeddings
	ids, eot, err := e.Tok.Batch(texts, T, true)
	if err != nil {
		return nil, err
	}
	// Padding can be cut when the pooling position is the tokenizer's EOT:
	// always with the argmax rule (eos_token_id 2), else when the ids agree.
	trim := tc.EOSTokenID == 2 || tc.EOSTokenID == e.Tok.EOT()
	for i, id := range ids {
		if id >= tc.VocabSize {
			return nil, fmt.Errorf("clip: text %d (%q) has token id %d outside the model's vocabulary of %d: tokenizer and model do not match",
				i/T, texts[i/T], id, tc.VocabSize)
		}
	}
	return e.run(len(texts), m.Config.ProjectionDim, "texts", func(lo, hi int, _ *[]float32) (*tensor.Tensor, error) {
		b := hi - lo
		rows := ids[lo*T : hi*T]
		used := T
		if trim {
			used = 1
			for _, p := range eot[lo:hi] {
				used = max(used, p+1)
			}
		}
		tb := &TextBatch{IDs: make([]int, b*used), B: b, T: used}
		for r := 0; r < b; r++ {
			copy(tb.IDs[r*used:(r+1)*used], rows[r*T:r*T+used])
		}
		tb.EOTPos = EOTPositions(tb.IDs, b, used, tc.EOSTokenID)
		if err := m.Text.Check(tb); err != nil {
			return nil, err
		}
		if e.Device != nil {
			y, err := e.Device.EncodeTexts(tb)
			return deviceOut(y, err, b)
		}
		return m.EncodeText(nil, tb).Value, nil
	})
}

// run splits n items into batches [lo,hi) of e.batch(), computes each with
// encode on up to e.workers goroutines (each with its own scratch buffer),
// and gathers the [hi-lo, E] results into one [n, E] tensor. The first error
// in item order wins.
func (e *Encoder) run(n, E int, what string, encode func(lo, hi int, buf *[]float32) (*tensor.Tensor, error)) (*tensor.Tensor, error) {
	out := tensor.New(n, E)
	if n == 0 {
		return out, nil
	}
	bs := e.batch()
	nb := (n + bs - 1) / bs
	errs := make([]error, nb)
	var next, done atomic.Int64
	var failed atomic.Bool
	prog := progress.New(e.Progress, "embedding "+what, n, progress.Options{})
	work := func() {
		var buf []float32
		for !failed.Load() {
			k := int(next.Add(1) - 1)
			if k >= nb {
				return
			}
			lo, hi := k*bs, min(n, (k+1)*bs)
			y, err := encode(lo, hi, &buf)
			if err == nil && (len(y.Shape) != 2 || y.Shape[0] != hi-lo || y.Shape[1] != E) {
				err = fmt.Errorf("clip: batch of %d gave embeddings of shape %v, want [%d %d]", hi-lo, y.Shape, hi-lo, E)
			}
			if err != nil {
				errs[k] = err
				failed.Store(true)
				return
			}
			ops.Sync(y.Data) // a resident backend leaves it on the device
			copy(out.Data[lo*E:hi*E], y.Data)
			prog.Set(int(done.Add(int64(hi-lo))), "")
		}
	}
	if w := e.workers(nb); w == 1 {
		work()
	} else {
		var wg sync.WaitGroup
		for range w {
			wg.Go(work)
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	prog.Finish(fmt.Sprintf("embedded %d %s in %s", n, what, prog.Elapsed().Round(100*time.Millisecond)))
	return out, nil
}
