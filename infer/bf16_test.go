package infer

import (
	"math"
	"runtime"
	"testing"
)

// TestBF16Deterministic: bf16 results do not depend on the split or on the
// number of threads (the bf16 GEMM is bit-identical for any grid).
func TestBF16Deterministic(t *testing.T) {
	m := randomModel(t, preset(t, "tiny"), 24)
	in := makeInputs(m, 6, 77, 3)
	var wi, wt []float32
	for _, opts := range []Options{{Threads: 1}, {Threads: 2, Split: SplitGEMM}, {Threads: 3, Split: SplitItems, Chunk: 2}} {
		opts.DType = BF16
		e, err := New(m, opts)
		if err != nil {
			t.Fatal(err)
		}
		gi, gt := run(e, in)
		e.Close()
		if wi == nil {
			wi, wt = gi, gt
			continue
		}
		for k := range wi {
			if math.Float32bits(wi[k]) != math.Float32bits(gi[k]) {
				t.Fatalf("%+v: image output %d differs", opts, k)
			}
		}
		for k := range wt {
			if math.Float32bits(wt[k]) != math.Float32bits(gt[k]) {
				t.Fatalf("%+v: text output %d differs", opts, k)
			}
		}
	}
}

func TestBF16ZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	m := randomModel(t, preset(t, "tiny"), 25)
	in := makeInputs(m, 4, 77, 1)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	e, err := New(m, Options{Threads: 1, DType: BF16})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	img := make([]float32, in.B*e.EmbedDim())
	txt := make([]float32, in.B*e.EmbedDim())
	f := func() {
		e.EncodeImages(in.pixels, in.B, img)
		e.EncodeTexts(in.ids, in.eot, in.B, in.T, txt)
	}
	f()
	if n := testing.AllocsPerRun(10, f); n > 0 {
		t.Errorf("%v allocations per call in the steady state", n)
	}
}

func TestParseDType(t *testing.T) {
	for s, want := range map[string]DType{"": F32, "f32": F32, "bf16": BF16, "bfloat16": BF16} {
		if d, err := ParseDType(s); err != nil || d != want {
			t.Errorf("ParseDType(%q) = %v, %v", s, d, err)
		}
	}
	if _, err := ParseDType("fp8"); err == nil {
		t.Error("ParseDType(fp8): no error")
	}
	if F32.String() != "f32" || BF16.String() != "bf16" {
		t.Error("String")
	}
	if _, err := New(randomModel(t, preset(t, "tiny"), 1), Options{DType: 7}); err == nil {
		t.Error("New with DType 7: no error")
	}
}
