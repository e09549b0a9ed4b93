//go:build cuda

package mope

import (
	"context"
	"math"
	"testing"

	"github.com/mopeclip/mopeclip/cuda"
	"github.com/mopeclip/mopeclip/ops"
)

// Bounds of TestDeviceDistillResident: the relative difference of every
// step's loss from the CPU run's, over 20 steps.
const (
	tolDistillFP32 = 1e-4 // fp32 (own SGEMM or cuBLAS COMPUTE_32F)
	tolDistillTF32 = 2e-2 // every GEMM in TF32
)

// TestDeviceDistillResident runs 20 steps of Distill (a pruned shapes-tiny
// student from its teacher: ITC, KD, feature and hidden-state MSE, AdamW,
// clipping, through train.Run) with the ops backend on the device in the
// resident mode (outputs poisoned with NaN before every kernel), and on the
// CPU: every step's loss must follow the CPU run's, and no transient device
// copy may outlive the run. On the emulator (-tags cuda,cudaemu) only the
// package's own SGEMM runs; cuBLAS fp32 and TF32 run on a GPU.
func TestDeviceDistillResident(t *testing.T) {
	teacher, student, data := distillRunFixture(t)
	data.Val = nil
	o := DefaultDistillOptions()
	o.Steps, o.Batch, o.Warmup, o.LR, o.LogEvery, o.CkptEvery = 20, 4, 2, 2e-3, 1, 0
	run := func() []float64 {
		res, err := Distill(context.Background(), CloneModel(student), teacher, data, o)
		if err != nil {
			t.Fatal(err)
		}
		_, l := res.Curve.Series("loss")
		return l
	}
	want := run()
	ctx, err := cuda.Open(cuda.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	cases := []struct {
		name string
		opt  cuda.BackendOptions
		tol  float64
	}{
		{"own-fp32", cuda.BackendOptions{Gemm: cuda.GemmOwn}, tolDistillFP32},
		{"cublas-fp32", cuda.BackendOptions{Gemm: cuda.GemmCublas}, tolDistillFP32},
		{"cublas-tf32", cuda.BackendOptions{Gemm: cuda.GemmCublas, Precision: cuda.TF32}, tolDistillTF32},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opt.Gemm == cuda.GemmCublas && !ctx.HasCublas() {
				t.Skipf("SKIP: cuBLAS not loaded (%v)", cuda.CublasError())
			}
			tc.opt.Resident, tc.opt.PoisonOutputs = true, true
			be, err := cuda.NewBackend(ctx, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			prev := ops.CurrentBackend()
			ops.SetBackend(be)
			got := run()
			ops.SetBackend(prev)
			if len(got) != o.Steps || len(want) != o.Steps {
				t.Fatalf("%d / %d losses, want %d", len(got), len(want), o.Steps)
			}
			worst := 0.0
			for s := range got {
				e := math.Abs(got[s]-want[s]) / math.Abs(want[s])
				worst = max(worst, e)
				if !(e <= tc.tol) {
					t.Errorf("step %d: loss %.7g, CPU %.7g (relative %.2e > %.0e)", s, got[s], want[s], e, tc.tol)
				}
			}
			t.Logf("ERRORS resident-distill-20/%s %.3e %.0e (CPU loss %.6f → %.6f)", tc.name, worst, tc.tol, want[0], want[len(want)-1])
			if st := be.ResidentStats(); st.Transient != 0 || st.Kept == 0 {
				t.Errorf("after the run: %+v, want kept entries only", st)
			}
		})
	}
}
