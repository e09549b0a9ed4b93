package mope

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
)

// TestPipelineResume runs both stages on a tiny model, then re-runs them:
// every step is skipped and the final model is the same.
func TestPipelineResume(t *testing.T) {
	teacher, _, data := distillRunFixture(t)
	cal, err := LoadCalib(teacher, "shapes", "", 12, data.Tok)
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultDistillOptions()
	d.Steps, d.Batch, d.Warmup, d.ValEvery, d.CkptEvery = 4, 8, 1, 0, 2
	for _, c := range []struct {
		stage        Stage
		order        Order
		metric       Metric
		towers       clip.TowerSet
		target       float64
		wantDistills int
	}{
		{StagePretrain, OrderWidthDepth, "magnitude", 0, 0.3, 1},
		{StageFinetune, OrderWidthDepth, "mope", clip.VisionOnly, 0.4, 2},
		{StageFinetune, OrderDepthWidth, "mope", clip.VisionOnly, 0.4, 2},
		{StagePretrain, OrderWidth, "random", 0, 0.6, 1},
	} {
		dir := filepath.Join(t.TempDir(), string(c.stage)+string(c.order))
		o := PipelineOptions{Stage: c.stage, Order: c.order, Metric: c.metric, Towers: c.towers, TargetFLOPs: c.target,
			Calib: cal, Distill: d, Data: data, Dir: dir, MinWidth: 0.4}
		m1, r1, err := Pipeline(context.Background(), teacher, o)
		if err != nil {
			t.Fatalf("%s/%s: %v", c.stage, c.order, err)
		}
		nd := 0
		for _, s := range r1.Steps {
			if s.Kind == "distill" {
				nd++
			}
		}
		if nd != c.wantDistills {
			t.Errorf("%s/%s: %d distillations, want %d (%+v)", c.stage, c.order, nd, c.wantDistills, r1.Steps)
		}
		towers := c.towers
		if towers == 0 {
			towers = clip.BothTowers
		}
		if got, full := Cost(m1.Config, towers, false), Cost(teacher.Config, towers, false); got > c.target*full*(1+1e-9) {
			t.Errorf("%s/%s: %.4g of the FLOPs, target %.3g", c.stage, c.order, got/full, c.target)
		}
		if c.order == OrderWidth && m1.Config.Vision.NumHiddenLayers != teacher.Config.Vision.NumHiddenLayers {
			t.Errorf("width-only dropped layers")
		}
		m2, r2, err := Pipeline(context.Background(), teacher, o)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range r2.Steps {
			if !s.Resumed {
				t.Errorf("%s/%s: step %s ran again", c.stage, c.order, s.Name)
			}
		}
		if Fingerprint(m1) != Fingerprint(m2) {
			t.Errorf("%s/%s: resumed pipeline gives another model", c.stage, c.order)
		}
	}
}
