package grid

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/mope"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/train"
)

// trainScratch trains a model of shape pruned (widths and depths of a
// pruned model, fresh initialisation) contrastively for o's step budget,
// or loads it from dir when an earlier run finished it (cached = true). The
// seed sets its initialisation and its batch order. With a GPU it trains
// on the device's resident backend (mope.GPU.Training).
func trainScratch(ctx context.Context, pruned *clip.Config, pairs *world.Pairs, tok *tokenizer.Tokenizer, o Options, seed uint64, dir string, gpu mope.GPU, log io.Writer) (m *clip.Model, cached bool, err error) {
	if m, err := clip.Load(dir); err == nil {
		return m, true, nil
	}
	cfg := pruned.Clone()
	cfg.Vision.TeacherLayers, cfg.Text.TeacherLayers = nil, nil
	if m, err = clip.New(cfg, seed); err != nil {
		return nil, false, err
	}
	opt := nn.NewAdamW(m.Params(), nn.AdamWConfig{Beta1: 0.9, Beta2: 0.98, Eps: 1e-6, WeightDecay: 0.1})
	sampler := &world.Sampler{Pairs: pairs, Tok: tok, Batch: o.Batch, Seed: seed}
	tp := ops.NewTape()
	step := func(s int) (float64, map[string]float64, error) {
		b, err := sampler.Get(s)
		if err != nil {
			return 0, nil, err
		}
		loss, err := m.ContrastiveStep(tp, b.Pixels, b.Text)
		return loss, nil, err
	}
	sig := fmt.Sprintf("steps=%d batch=%d lr=%g", o.Steps, o.Batch, o.ScratchLR)
	if seed != 1 {
		sig += fmt.Sprintf(" seed=%d", seed)
	}
	tc := train.Config{Steps: o.Steps, Warmup: max(1, o.Steps/10), LR: o.ScratchLR, MinLR: 1e-5, ClipNorm: 1, Items: o.Batch,
		Dir: filepath.Join(dir, "checkpoint"), CkptEvery: 50, Resume: true, Log: log,
		Extra: map[string]string{"scratch": sig}}
	err = gpu.Training(m.Params(), func() error {
		_, err := train.Run(ctx, tc, m.Params(), opt, step, nil)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if err := m.Save(dir); err != nil {
		return nil, false, err
	}
	if err := os.RemoveAll(tc.Dir); err != nil {
		return nil, false, fmt.Errorf("grid: removing the finished checkpoint: %w", err)
	}
	return m, false, nil
}
