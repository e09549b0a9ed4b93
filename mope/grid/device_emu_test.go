//go:build cuda && cudaemu

package grid

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/cuda"
	"github.com/mopeclip/mopeclip/mope"
	"github.com/mopeclip/mopeclip/train"
)

// TestRunDevice runs the quick toy grid with a GPU (the CPU emulator of
// package cuda): asked for two jobs it builds one model at a time, every
// row is built, and each distillation's losses and gradient norms are
// within 1e-4 (relative) of the CPU grid's.
func TestRunDevice(t *testing.T) {
	ctx, err := cuda.Open(cuda.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	env, stdout := tinyEnv(t)
	o := toyOptions() // Jobs: 2
	cpuOut := env.Out
	want, err := Run(context.Background(), env, o)
	if err != nil {
		t.Fatalf("CPU: %v\n%s", err, stdout)
	}
	stdout.Reset()
	env.Out, env.GPU = t.TempDir(), mope.GPU{Ctx: ctx}
	got, err := Run(context.Background(), env, o)
	if err != nil {
		t.Fatalf("device: %v\n%s", err, stdout)
	}
	if !strings.Contains(stdout.String(), "2 jobs taken as 1") || got.Options.Jobs != 1 {
		t.Errorf("device grid ran %d jobs; stdout:\n%s", got.Options.Jobs, stdout)
	}
	if len(got.Rows) != len(want.Rows) {
		t.Fatalf("%d device rows, %d CPU rows", len(got.Rows), len(want.Rows))
	}
	curves := 0
	for _, r := range got.Rows[1:] {
		files, _ := filepath.Glob(filepath.Join(env.Out, "story", r.Name, "*", "curve.csv"))
		for _, f := range files {
			rel, _ := filepath.Rel(env.Out, f)
			for _, col := range []string{"loss", "grad_norm"} {
				g, w := series(t, f, col), series(t, filepath.Join(cpuOut, rel), col)
				if len(g) != len(w) || len(g) == 0 {
					t.Fatalf("%s %s: %d device rows, %d CPU rows", rel, col, len(g), len(w))
				}
				for i := range g {
					e := math.Abs(g[i]-w[i]) / math.Abs(w[i])
					t.Logf("ERRORS %s %s row %d: device %.7g, CPU %.7g, relative %.2e", rel, col, i, g[i], w[i], e)
					if !(e <= 1e-4) {
						t.Errorf("%s %s row %d: device %.7g, CPU %.7g (relative %.2e > 1e-4)", rel, col, i, g[i], w[i], e)
					}
				}
			}
			curves++
		}
	}
	if curves == 0 {
		t.Error("no distillation curves compared")
	}
}

func series(t *testing.T, path, col string) []float64 {
	t.Helper()
	c, err := train.ReadCurve(path)
	if err != nil {
		t.Fatal(err)
	}
	_, v := c.Series(col)
	return v
}
