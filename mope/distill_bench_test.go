package mope

import (
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// BenchmarkDistillStep times one distillation step (batch 32) of a student
// with half the heads and neurons of the shapes teacher, and, for
// comparison, the teacher's own contrastive step.
func BenchmarkDistillStep(b *testing.B) {
	cfg, _ := clip.Preset(world.TeacherPreset)
	teacher, _ := clip.New(cfg, 1)
	half := func(n int) [][]int {
		k := make([][]int, 4)
		for l := range k {
			for i := 0; i < n/2; i++ {
				k[l] = append(k[l], i)
			}
		}
		return k
	}
	plan := &Plan{Vision: &TowerPlan{Heads: half(4), Neurons: half(512)}, Text: &TowerPlan{Heads: half(4), Neurons: half(512)}}
	student, err := Apply(teacher, plan)
	if err != nil {
		b.Fatal(err)
	}
	B, S, T := 32, cfg.Vision.ImageSize, world.Context
	pix := tensor.New(B, 3, S, S).Normal(tensor.NewRNG(1), 0, 1)
	ids := make([]int, B*T)
	for i := 0; i < B; i++ {
		for j := 0; j < 12; j++ {
			ids[i*T+j] = 5 + (i*7+j*13)%700
		}
		ids[i*T+12] = cfg.Text.EOSTokenID
	}
	tb := &clip.TextBatch{IDs: ids, EOTPos: clip.EOTPositions(ids, B, T, cfg.Text.EOSTokenID), B: B, T: T}
	tp := ops.NewTape()
	b.Run("distill", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, _, err := DistillStep(tp, student, teacher, pix, tb, DefaultDistillWeights()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("contrastive-student", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := student.ContrastiveStep(tp, pix, tb); err != nil {
				b.Fatal(err)
			}
		}
	})
}
