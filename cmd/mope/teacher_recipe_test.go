package main

import (
	"math"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/train"
)

// TestTeacherRecipeMatchesCommittedTeacher ties each teacher's recipe (what
// mope demo runs or prints when the teacher is missing, and what the teacher's
// README.md gives) to the committed teacher: its config is the recipe's preset,
// and its training curve has the recipe's length, learning-rate schedule and
// validation steps.
func TestTeacherRecipeMatchesCommittedTeacher(t *testing.T) {
	for _, tc := range []struct {
		dir    string
		recipe func(string) pretrainOptions
	}{
		{DefaultTeacherDir, teacherRecipe},
		{DeepTeacherDir, deepTeacherRecipe},
	} {
		t.Run(filepath.Base(tc.dir), func(t *testing.T) {
			checkTeacherRecipe(t, filepath.Join("..", "..", tc.dir), tc.recipe)
		})
	}
}

func checkTeacherRecipe(t *testing.T, dir string, recipe func(string) pretrainOptions) {
	o := recipe(dir)
	want, err := clip.Preset(o.Preset)
	if err != nil {
		t.Fatal(err)
	}
	got, err := clip.LoadConfig(filepath.Join(dir, clip.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("committed config differs from preset %s:\n got %+v\nwant %+v", o.Preset, got, want)
	}
	c, err := train.ReadCurve(filepath.Join(dir, "curve.csv"))
	if err != nil {
		t.Fatal(err)
	}
	sched := nn.CosineSchedule{Warmup: o.Warmup, Total: o.Steps, Peak: o.LR, Min: o.MinLR}
	var trainRows, valRows, last int
	for _, r := range c.Rows {
		step := int(r["step"])
		if step < last {
			t.Fatalf("curve steps decrease at %d", step)
		}
		last = step
		if lr, ok := r["lr"]; ok {
			trainRows++
			if w := sched.LR(step - 1); math.Abs(lr-w) > 1e-12*w {
				t.Errorf("step %d: lr %g, recipe schedule gives %g", step, lr, w)
			}
		}
		if _, ok := r["val_r1"]; ok {
			valRows++
			if step%o.ValEvery != 0 && step != o.Steps {
				t.Errorf("validation at step %d, recipe validates every %d", step, o.ValEvery)
			}
		}
	}
	if last != o.Steps {
		t.Errorf("curve ends at step %d, recipe has %d steps", last, o.Steps)
	}
	if want := o.Steps / 10; trainRows != want {
		t.Errorf("%d training rows, want %d (one per 10 steps)", trainRows, want)
	}
	if want := o.Steps / o.ValEvery; valRows != want {
		t.Errorf("%d validation rows, want %d", valRows, want)
	}
}
