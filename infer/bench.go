package infer

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// BenchOptions configure Bench. Batch, Rounds ≥ 1 and Warmup ≥ 0 are
// required; the rest has defaults.
type BenchOptions struct {
	Batch  int
	Rounds int // timed rounds per tower; the median is reported
	Warmup int // untimed rounds before them
	// TextLen is the tokens per text (0: the context length).
	TextLen int
	// Towers selects the towers to time (0: both).
	Towers clip.TowerSet
	// Threads sets GOMAXPROCS while measuring (0: leave it).
	Threads int
	// Ref times the reference forward (clip.Model.EncodeImage/EncodeText)
	// instead of the engine.
	Ref bool
	// Engine configures the engine (ignored with Ref or Funcs). Bench sets
	// no field of it: ReleaseWeights, DType, Split and Chunk are the
	// caller's.
	Engine Options
	// Funcs, when set, replaces the engine: it receives the inputs and
	// returns what to time per tower (e.g. GPU-resident towers), and a
	// function called once at the end.
	Funcs func(pixels []float32, tb *clip.TextBatch) (image, text func() error, done func(), err error)
	// Report, when set, is told every tower's round times (sorted) and
	// median, in seconds.
	Report func(tower string, secs []float64, median float64)
}

// BenchResult is what Bench measured.
type BenchResult struct {
	Batch, Threads, TextLen, Rounds int
	ImagePerS, TextPerS             float64 // items per second (median round)
	ImageGFLOPs, TextGFLOPs         float64 // achieved, 2 FLOPs per multiply–accumulate
	ImageGFLOP, TextGFLOP           float64 // per item, from the config
	VisionParams, TextParams        int
	// Split is the engine's parallel split for the batch ("" without the
	// engine).
	Split string
	// Kernels is tensor.KernelReport() after the run.
	Kernels string
}

// BenchInputs returns what Bench encodes: B images of normal noise (seed 1)
// and B random texts of T tokens, each ending with the end-of-text token.
func BenchInputs(cfg *clip.Config, B, T int) (pixels []float32, tb *clip.TextBatch) {
	rng := tensor.NewRNG(1)
	S := cfg.Vision.ImageSize
	pixels = tensor.New(B, 3, S, S).Normal(rng, 0, 1).Data
	tb = &clip.TextBatch{IDs: make([]int, B*T), B: B, T: T}
	V, eos := cfg.Text.VocabSize, cfg.Text.EOSTokenID
	for b := 0; b < B; b++ {
		row := tb.IDs[b*T : (b+1)*T]
		for j := range row {
			row[j] = rng.IntN(max(1, min(V, eos)))
		}
		row[T-1] = eos
	}
	tb.EOTPos = clip.EOTPositions(tb.IDs, B, T, eos)
	return pixels, tb
}

// Bench measures the encoders of m: per selected tower, Warmup untimed
// passes over one batch, then Rounds timed ones; the median round gives
// the items per second. With the engine and Engine.ReleaseWeights the
// model can no longer run its reference forward afterwards.
func Bench(ctx context.Context, m *clip.Model, o BenchOptions) (*BenchResult, error) {
	if m == nil || m.Vision == nil || m.Text == nil {
		return nil, fmt.Errorf("infer: bench: nil model")
	}
	if o.Batch < 1 || o.Rounds < 1 || o.Warmup < 0 || o.Threads < 0 {
		return nil, fmt.Errorf("infer: bench: want batch, rounds >= 1, warmup, threads >= 0 (got %d, %d, %d, %d)", o.Batch, o.Rounds, o.Warmup, o.Threads)
	}
	cfg := m.Config
	T := o.TextLen
	if T == 0 {
		T = cfg.Text.MaxPositionEmbeddings
	}
	if T < 2 || T > cfg.Text.MaxPositionEmbeddings {
		return nil, fmt.Errorf("infer: bench: text length %d outside [2, %d]", T, cfg.Text.MaxPositionEmbeddings)
	}
	if o.Threads > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(o.Threads))
	}
	if o.Towers == 0 {
		o.Towers = clip.BothTowers
	}
	B := o.Batch
	r := &BenchResult{Batch: B, Threads: runtime.GOMAXPROCS(0), TextLen: T, Rounds: o.Rounds,
		ImageGFLOP: cfg.VisionMACs().GFLOPs(), TextGFLOP: cfg.TextMACs(T).GFLOPs()}
	pixels, tb := BenchInputs(cfg, B, T)
	if err := m.Text.Check(tb); err != nil {
		return nil, err
	}
	// Before the engine releases the model's matrices.
	r.VisionParams, r.TextParams, _ = m.NumParams()
	var image, text func() error
	switch {
	case o.Funcs != nil:
		var done func()
		var err error
		if image, text, done, err = o.Funcs(pixels, tb); err != nil {
			return nil, err
		}
		if done != nil {
			defer done()
		}
	case o.Ref:
		pt, err := tensor.FromData(pixels, B, 3, cfg.Vision.ImageSize, cfg.Vision.ImageSize)
		if err != nil {
			return nil, err
		}
		pv := ops.Const(pt)
		image = func() error { m.EncodeImage(nil, pv); return nil }
		text = func() error { m.EncodeText(nil, tb); return nil }
	default:
		e, err := New(m, o.Engine)
		if err != nil {
			return nil, err
		}
		defer e.Close()
		e.Warm(B)
		r.Split = e.SplitFor(B).String()
		imgOut := make([]float32, B*e.EmbedDim())
		txtOut := make([]float32, B*e.EmbedDim())
		image = func() error { e.EncodeImages(pixels, B, imgOut); return nil }
		text = func() error { e.EncodeTexts(tb.IDs, tb.EOTPos, B, T, txtOut); return nil }
	}
	measure := func(name string, f func() error) (float64, error) {
		for range o.Warmup {
			if err := f(); err != nil {
				return 0, err
			}
		}
		secs := make([]float64, o.Rounds)
		for i := range secs {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			t0 := time.Now()
			if err := f(); err != nil {
				return 0, err
			}
			secs[i] = time.Since(t0).Seconds()
		}
		med := Median(secs)
		if o.Report != nil {
			slices.Sort(secs)
			o.Report(name, secs, med)
		}
		return float64(B) / med, nil
	}
	var err error
	if o.Towers.Has(clip.VisionTower) {
		if r.ImagePerS, err = measure("image", image); err != nil {
			return nil, err
		}
		r.ImageGFLOPs = r.ImagePerS * r.ImageGFLOP
	}
	if o.Towers.Has(clip.TextTower) {
		if r.TextPerS, err = measure("text", text); err != nil {
			return nil, err
		}
		r.TextGFLOPs = r.TextPerS * r.TextGFLOP
	}
	r.Kernels = tensor.KernelReport()
	return r, nil
}

// Median returns the median of s (the mean of the middle two when len(s)
// is even; 0 when empty), without changing s.
func Median(s []float64) float64 {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}
