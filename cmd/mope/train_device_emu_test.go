//go:build cuda && cudaemu

package main

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/train"
)

// TestDevicePretrain runs mope pretrain with --device cuda (the resident
// backend, on the emulator) and on the CPU: every logged loss agrees to
// 1e-4 (relative) and the device run writes a model.
func TestDevicePretrain(t *testing.T) {
	curve := func(device string) []float64 {
		dir := filepath.Join(t.TempDir(), "m")
		out := mopeRun(t, "pretrain", "--data", "shapes", "--preset", world.TinyPreset, "--steps", "4", "--batch", "4",
			"--train-n", "8", "--val-n", "8", "--val-every", "4", "--warmup", "1", "--lr", "3e-3", "--out", dir, "--device", device)
		if device != "cpu" && !strings.Contains(out, "device: CPU emulator") {
			t.Errorf("no device line: %q", out)
		}
		c, err := train.ReadCurve(filepath.Join(dir, "curve.csv"))
		if err != nil {
			t.Fatal(err)
		}
		_, loss := c.Series("loss")
		return loss
	}
	want, got := curve("cpu"), curve("cuda")
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("%d device losses, %d CPU losses", len(got), len(want))
	}
	for i := range got {
		if e := math.Abs(got[i]-want[i]) / math.Abs(want[i]); !(e <= 1e-4) {
			t.Errorf("loss row %d: device %.7g, CPU %.7g (relative %.2e)", i, got[i], want[i], e)
		}
	}
}
