//go:build cuda

package mope

import (
	"math"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/cuda"
	"github.com/mopeclip/mopeclip/infer"
)

// TestDeviceScorer runs MoPE scoring's device path (cuda.Suffix, the prefix
// cache on the device) on the GPU or the CPU emulator of package cuda
// (-tags cuda,cudaemu): every
// evaluation's embeddings (each head, FFN group and layer of both towers
// dropped, layer 0) are within 1e-5 of the fast CPU engine's, so are the
// embeddings from every cached layer, and Score with Options.GPU gives the
// CPU scorer's MoPE scores exactly (the same recall counts). The model has
// random biases, a skipped layer (scoring runs it anyway, as the CPU
// scorers do) and a batch that leaves a short last one. (Small: the
// emulator runs every CUDA thread as a fiber.)
func TestDeviceScorer(t *testing.T) {
	m, cal, _ := fixture(t, 5)
	randomBiases(m, 5)
	m.Vision.Encoder.Skip = []bool{false, true, false}
	const groups, batch = 3, 3
	ctx, err := cuda.Open(cuda.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	g := GPU{Ctx: ctx}
	e, err := infer.New(m, infer.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, tw := range clip.AllTowers {
		fast, err := newScorer(e, m, tw, cal, batch)
		if err != nil {
			t.Fatal(err)
		}
		dev, err := newDeviceScorer(g, m, tw, cal, batch)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		cmp := func(what string, a, b []float32) {
			t.Helper()
			if len(a) != len(b) {
				t.Fatalf("%s: %d vs %d values", what, len(a), len(b))
			}
			err := relL2Err(b, a)
			worst = math.Max(worst, err)
			if !(err <= 1e-5) {
				t.Errorf("%s: device vs fast rel err %.3g", what, err)
			}
		}
		fh := fast.embedAll()
		dh, err := dev.embedAll()
		if err != nil {
			t.Fatal(err)
		}
		a, _ := fast.features(fh, 0, nil, groups)
		b, err := dev.features(dh, 0, nil, groups)
		if err != nil {
			t.Fatal(err)
		}
		cmp(tw.String()+" full", a, b)
		mods := Modules(m, clip.TowerSetOf(tw), []string{KindHead, KindFFN, KindLayer}, groups)
		for l := range 3 {
			fm := fast.mid(l, fh)
			dm, err := dev.mid(l, dh)
			if err != nil {
				t.Fatal(err)
			}
			for _, mod := range mods {
				if mod.Layer != l || l > 0 {
					continue
				}
				fs, ds := fh, dh
				if mod.Kind == KindFFN {
					fs, ds = fm, dm
				}
				a, err1 := fast.features(fs, l, &mod, groups)
				b, err2 := dev.features(ds, l, &mod, groups)
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				cmp(mod.String(), a, b)
			}
			fh = fast.finish(l, fm)
			dev.drop(dh)
			if dh, err = dev.finish(l, dm); err != nil {
				t.Fatal(err)
			}
			dev.drop(dm)
			// Continuing from the device's prefix stays within rounding of
			// continuing from the CPU's.
			b, err := dev.features(dh, l+1, nil, groups)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := fast.features(fh, l+1, nil, groups)
			cmp(tw.String()+" from the prefix", a, b)
		}
		dev.drop(dh)
		dev.close()
		t.Logf("%s: worst embedding rel err %.3g", tw, worst)
	}

	kinds := []string{KindHead, KindFFN, KindLayer}
	{
		metric := MetricMoPE
		o := Options{Metric: metric, Towers: clip.BothTowers, Kinds: kinds, Groups: groups, Batch: batch, Engine: EngineFast, Threads: 1}
		want, err := Score(m, cal, o)
		if err != nil {
			t.Fatal(err)
		}
		o.Engine, o.GPU = EngineAuto, g
		got, err := Score(m, cal, o)
		if err != nil {
			t.Fatal(err)
		}
		if got.Settings.Engine != EngineCUDA || len(got.Scores) != len(want.Scores) || len(got.Scores) == 0 {
			t.Fatalf("%s: engine %q, %d scores (CPU: %d)", metric, got.Settings.Engine, len(got.Scores), len(want.Scores))
		}
		if got.Baseline != want.Baseline {
			t.Errorf("%s: baseline %v, CPU %v", metric, got.Baseline, want.Baseline)
		}
		moved := 0
		for i, s := range got.Scores { // retrieval: the same recall counts
			if w := want.Scores[i]; s.Module != w.Module || s.Score != w.Score {
				t.Errorf("%s %v: device %v, CPU %v", metric, s.Module, s.Score, w.Score)
			}
			if s.Score != 0 {
				moved++
			}
		}
		if moved == 0 { // a test that cannot tell a dropped module from none
			t.Errorf("no module changes the retrieval of this model")
		}
		t.Logf("%d of %d modules change the retrieval", moved, len(got.Scores))
	}
	// TF32 needs cuBLAS (the emulator has none: a clean error).
	o := Options{Metric: MetricMoPE, Towers: clip.VisionOnly, Kinds: kinds, GPU: GPU{Ctx: ctx, Precision: cuda.TF32}}
	f, err := Score(m, cal, o)
	switch {
	case !ctx.HasCublas() && err == nil:
		t.Error("TF32 without cuBLAS accepted")
	case ctx.HasCublas() && (err != nil || f.Settings.Engine != EngineCUDATF32 || len(f.Scores) == 0):
		t.Errorf("TF32: %v", err)
	}
}
