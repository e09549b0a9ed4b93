package mope

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strconv"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/train"
)

// DistillOptions configure a distillation run (the training loop is
// package train's: AdamW, warm-up + cosine, gradient clipping, progress with
// ETA, periodic validation, atomic checkpoints, bit-identical resume).
type DistillOptions struct {
	Weights              DistillWeights
	Steps, Batch, Warmup int
	LR, MinLR, WD        float64
	ClipNorm             float64
	Seed                 uint64 // data order
	// Dir holds the checkpoint and the curve ("" disables both).
	Dir                 string
	CkptEvery, ValEvery int
	// LogEvery adds a row to the training curve every that many steps
	// (0: train.Config's default, 10).
	LogEvery int
	Resume   bool
	Log      io.Writer
	// Extra is stored in the checkpoint and checked on resume.
	Extra map[string]string
}

// DefaultDistillOptions: 300 steps of 32 pairs, 20 warm-up steps, peak
// learning rate 5e-4 (half of pretraining's: the student starts from
// trained weights), AdamW β = (0.9, 0.98), ε = 1e-6, weight decay 0.05,
// gradient clip 1, validation every 100 steps, checkpoint every 50.
func DefaultDistillOptions() DistillOptions {
	return DistillOptions{Weights: DefaultDistillWeights(), Steps: 300, Batch: 32, Warmup: 20, LR: 5e-4, MinLR: 1e-5,
		WD: 0.05, ClipNorm: 1, Seed: 1, CkptEvery: 50, ValEvery: 100}
}

// Signature is the text that identifies a run's settings (stored in
// checkpoints: a resume with other settings is refused).
func (o DistillOptions) Signature() string {
	w := o.Weights
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	return fmt.Sprintf("itc=%s kd=%s feat=%s hidden=%s temp=%s steps=%d batch=%d warmup=%d lr=%s min_lr=%s wd=%s clip=%s seed=%d",
		f(w.ITC), f(w.KD), f(w.Feat), f(w.Hidden), f(w.Temp), o.Steps, o.Batch, o.Warmup, f(o.LR), f(o.MinLR), f(o.WD), f(o.ClipNorm), o.Seed)
}

// DistillData is the data of a distillation run: training pairs (in memory,
// or a stream), optional validation pairs, and the tokenizer of teacher and
// student.
type DistillData struct {
	Train, Val *dataset.Pairs
	// Stream, when Train is nil, is read as a stream instead (for data too
	// large to hold, such as tar shards): epochs in a seeded order through
	// a shuffle buffer of ShuffleBuffer records (0: 1000); the position is
	// stored in checkpoints, and a resumed run reads what a straight one
	// reads.
	Stream        *dataset.Dataset
	ShuffleBuffer int
	// StreamPre is the preprocessing of streamed images (nil: CLIP's
	// default at the student's image size).
	StreamPre *imageproc.Config
	Tok       *tokenizer.Tokenizer
	// TeacherCache, when set and made for the teacher being distilled
	// from, supplies the teacher's outputs of batches an earlier run
	// computed (results are bit-identical with and without it).
	TeacherCache *TeacherCache
}

// RetrievalRecall evaluates m on p.
func RetrievalRecall(m *clip.Model, tok *tokenizer.Tokenizer, p *dataset.Pairs) (Recall, error) {
	enc, done, err := infer.NewEncoder(m, tok)
	if err != nil {
		return Recall{}, err
	}
	defer done()
	r, err := world.Retrieval(enc, p)
	if err != nil {
		return Recall{}, err
	}
	return RecallOf(r), nil
}

// RetrievalScalars evaluates m on p and returns the metrics logged in
// curves: Recall.Scalars (tr1 tr5 tr10 ir1 ir5 ir10, r1, r5, mean).
func RetrievalScalars(m *clip.Model, tok *tokenizer.Tokenizer, p *dataset.Pairs) (map[string]float64, error) {
	r, err := RetrievalRecall(m, tok, p)
	if err != nil {
		return nil, err
	}
	return r.Scalars(), nil
}

// Distill trains student (in place) to imitate teacher on data. The batch of
// step s depends only on (o.Seed, s), so a resumed run matches a straight
// one bit for bit (same GOMAXPROCS). Cancelling ctx stops it with a
// checkpoint and train.ErrInterrupted.
func Distill(ctx context.Context, student, teacher *clip.Model, data DistillData, o DistillOptions) (*train.Result, error) {
	if err := o.Weights.Validate(); err != nil {
		return nil, err
	}
	if o.Steps <= 0 || o.Batch < 2 {
		return nil, fmt.Errorf("mope: distillation needs steps > 0 and batch ≥ 2 (got %d, %d)", o.Steps, o.Batch)
	}
	if (data.Train == nil && data.Stream == nil) || data.Tok == nil {
		return nil, fmt.Errorf("mope: distillation needs training data and a tokenizer")
	}
	if v := data.Tok.VocabSize(); v != student.Config.Text.VocabSize || v != teacher.Config.Text.VocabSize {
		return nil, fmt.Errorf("mope: tokenizer has %d tokens, student %d, teacher %d", v, student.Config.Text.VocabSize, teacher.Config.Text.VocabSize)
	}
	opt := nn.NewAdamW(student.Params(), nn.AdamWConfig{Beta1: 0.9, Beta2: 0.98, Eps: 1e-6, WeightDecay: o.WD})
	textCtx := min(student.Config.Text.MaxPositionEmbeddings, teacher.Config.Text.MaxPositionEmbeddings)
	var get func(s int) (*world.Batch, error)
	var stream *world.StreamSampler
	if data.Train != nil {
		sampler := &world.Sampler{Pairs: data.Train, Tok: data.Tok, Batch: o.Batch, Seed: o.Seed, Context: textCtx}
		get = sampler.Get
	} else {
		stream = &world.StreamSampler{Data: data.Stream, Tok: data.Tok, Batch: o.Batch, Seed: o.Seed,
			Size: student.Config.Vision.ImageSize, Pre: data.StreamPre, Context: textCtx, Buffer: data.ShuffleBuffer}
		defer stream.Close()
		get = func(s int) (*world.Batch, error) { return stream.Get(ctx, s) }
	}
	// On a resident backend the frozen teacher's weights stay on the device
	// too (train.Run keeps the student's).
	for _, p := range teacher.Params() {
		ops.Keep(p.Value.Data)
	}
	tp := ops.NewTape()
	step := func(s int) (float64, map[string]float64, error) {
		b, err := get(s)
		if err != nil {
			return 0, nil, err
		}
		var to *teacherOut
		if c := data.TeacherCache; c != nil && c.teacher == teacher && data.Train != nil {
			k := teacherKey{pairs: data.Train, tok: data.Tok, batch: o.Batch, seed: o.Seed, step: s}
			hidden := o.Weights.Hidden > 0
			to = c.get(k, hidden, func() *teacherOut {
				o := forwardTeacher(teacher, b.Pixels, b.Text, hidden)
				o.sync() // cached past this step
				return o
			})
		}
		return distillStep(tp, student, teacher, b.Pixels, b.Text, o.Weights, to)
	}
	var val train.ValFunc
	if data.Val != nil && data.Val.Len() > 0 {
		val = func(int) (map[string]float64, error) { return RetrievalScalars(student, data.Tok, data.Val) }
	}
	extra := map[string]string{"distill": o.Signature(), "gomaxprocs": strconv.Itoa(runtime.GOMAXPROCS(0))}
	for k, v := range o.Extra {
		extra[k] = v
	}
	tc := train.Config{Steps: o.Steps, Warmup: o.Warmup, LR: o.LR, MinLR: o.MinLR, ClipNorm: o.ClipNorm, Items: o.Batch,
		Dir: o.Dir, CkptEvery: o.CkptEvery, ValEvery: o.ValEvery, LogEvery: o.LogEvery, Resume: o.Resume, Log: o.Log, Extra: extra}
	if stream != nil {
		tc.Data = stream
	}
	res, err := train.Run(ctx, tc, student.Params(), opt, step, val)
	if stream != nil && o.Log != nil {
		if n, first := data.Stream.Skipped(); n > 0 {
			fmt.Fprintf(o.Log, "skipped %d bad training records (first: %s)\n", n, first[0])
		}
	}
	return res, err
}
