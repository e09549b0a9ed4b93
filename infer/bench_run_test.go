package infer

import (
	"context"
	"errors"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		in := append([]float64(nil), c.in...)
		if got := Median(in); got != c.want {
			t.Errorf("Median(%v) = %g, want %g", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Errorf("Median changed its input: %v", in)
			}
		}
	}
}

// TestBench runs Bench on the tiny model with the engine (each dtype), the
// reference forward and custom functions, and checks its refusals.
func TestBench(t *testing.T) {
	m := randomModel(t, preset(t, "tiny"), 5)
	ctx := context.Background()
	for _, o := range []BenchOptions{
		{Batch: 2, Rounds: 3, Towers: clip.BothTowers},
		{Batch: 1, Rounds: 1, Warmup: 0, Towers: clip.VisionOnly, Engine: Options{DType: INT8}},
		{Batch: 3, Rounds: 2, Towers: clip.TextOnly, TextLen: 9, Engine: Options{DType: BF16}, Threads: 1},
		{Batch: 2, Rounds: 1, Ref: true},
	} {
		var reported []string
		o.Report = func(tower string, secs []float64, med float64) {
			if len(secs) != o.Rounds || med <= 0 {
				t.Errorf("%s: %d rounds, median %g", tower, len(secs), med)
			}
			reported = append(reported, tower)
		}
		r, err := Bench(ctx, m, o)
		if err != nil {
			t.Fatal(err)
		}
		tw := o.Towers
		if tw == 0 {
			tw = clip.BothTowers
		}
		if (r.ImagePerS > 0) != tw.Has(clip.VisionTower) || (r.TextPerS > 0) != tw.Has(clip.TextTower) || r.Kernels == "" || r.Batch != o.Batch {
			t.Errorf("%+v: result %+v", o, r)
		}
		if (r.Split == "") != o.Ref || len(reported) != len(tw.Towers()) {
			t.Errorf("split %q, reported %v", r.Split, reported)
		}
		if o.TextLen != 0 && r.TextLen != o.TextLen {
			t.Errorf("text length %d", r.TextLen)
		}
	}
	boom := errors.New("boom")
	calls := 0
	_, err := Bench(ctx, m, BenchOptions{Batch: 1, Rounds: 2, Funcs: func(px []float32, tb *clip.TextBatch) (func() error, func() error, func(), error) {
		f := func() error { calls++; return boom }
		return f, f, nil, nil
	}})
	if !errors.Is(err, boom) || calls != 1 {
		t.Errorf("Funcs error: %v after %d calls", err, calls)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Bench(cctx, m, BenchOptions{Batch: 1, Rounds: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	for _, o := range []BenchOptions{{Batch: 0, Rounds: 1}, {Batch: 1, Rounds: 0}, {Batch: 1, Rounds: 1, Warmup: -1}, {Batch: 1, Rounds: 1, TextLen: 1}, {Batch: 1, Rounds: 1, TextLen: 1000}} {
		if _, err := Bench(ctx, m, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
