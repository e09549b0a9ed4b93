package grid

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/mope"
)

// DemoConfig is one run of mope demo on a loaded teacher.
type DemoConfig struct {
	Teacher    *clip.Model
	TeacherDir string
	Tok        *tokenizer.Tokenizer
	// Out receives results.json, the grid's report and every evaluated
	// model as Out/<name>.
	Out string
	// N is the number of test images the teacher is evaluated on.
	N int
	// NoGrid stops after the teacher.
	NoGrid bool
	Grid   Options
	// Stdout receives progress lines, Log the rows' logs.
	Stdout, Log io.Writer
	// GPU, when set, is where every scoring of the grid runs its towers
	// (mope.Options.GPU; --device cuda).
	GPU mope.GPU
}

// Demo is a finished demo.
type Demo struct {
	World *World
	// GridWorld is the grid's evaluation data: the first Grid.N test
	// images (World itself when N is not smaller).
	GridWorld *World
	// Results: the teacher, the teacher on GridWorld when that differs,
	// then the grid's models (results.json).
	Results []*Result
	// Grid is nil with NoGrid.
	Grid *Report
}

// RunDemo evaluates the teacher on the shapes world and runs the grid,
// then writes Out/results.json and the grid's report.
func RunDemo(ctx context.Context, c DemoConfig) (*Demo, error) {
	t0 := time.Now()
	size := c.Teacher.Config.Vision.ImageSize
	w, err := NewWorld(c.N, size)
	if err != nil {
		return nil, err
	}
	printf(c.Stdout, "world: %d test images, %d captions; %d single-object images for zero-shot (%s)\n",
		w.Test.Len(), w.Captions(), w.Single.Len(), time.Since(t0).Round(time.Millisecond))
	d := &Demo{World: w, GridWorld: w}
	save := func(name string, m *clip.Model) (string, error) {
		dir := filepath.Join(c.Out, name)
		return dir, m.SaveWith(dir, clip.SaveOptions{From: c.TeacherDir})
	}
	printf(c.Stdout, "evaluating teacher ...\n")
	tr, err := Evaluate("teacher", c.Teacher, c.Tok, w)
	if err != nil {
		return nil, fmt.Errorf("teacher: %w", err)
	}
	if tr.Dir, err = save("teacher", c.Teacher); err != nil {
		return nil, err
	}
	d.Results = append(d.Results, tr)
	if !c.NoGrid {
		if err := d.runGrid(ctx, c, tr, save); err != nil {
			return nil, err
		}
	}
	if err := WriteResults(filepath.Join(c.Out, ResultsFile), d.Results); err != nil {
		return nil, err
	}
	return d, nil
}

// runGrid evaluates the teacher again on the grid's test images (so its
// row is comparable), runs the grid and writes its report.
func (d *Demo) runGrid(ctx context.Context, c DemoConfig, tr *Result, save func(string, *clip.Model) (string, error)) error {
	if n := c.Grid.N; n > 0 && n < d.World.Test.Len() {
		gw, err := NewWorld(n, c.Teacher.Config.Vision.ImageSize)
		if err != nil {
			return err
		}
		d.GridWorld = gw
		printf(c.Stdout, "evaluating the teacher on the first %d test images ...\n", n)
		if tr, err = Evaluate(fmt.Sprintf("teacher@%d", n), c.Teacher, c.Tok, gw); err != nil {
			return fmt.Errorf("teacher: %w", err)
		}
		tr.Dir = c.TeacherDir
		d.Results = append(d.Results, tr)
	}
	env := Env{Teacher: c.Teacher, TeacherDir: c.TeacherDir, Tok: c.Tok, World: d.GridWorld, Out: c.Out, TeacherResult: tr,
		Save: save, Stdout: c.Stdout, Log: c.Log, GPU: c.GPU}
	rep, err := Run(ctx, env, c.Grid)
	if err != nil {
		return err
	}
	d.Grid = rep
	d.Results = append(d.Results, rep.Results...)
	return rep.Write(c.Out)
}
