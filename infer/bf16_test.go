package infer

import (
	"math"
	"os"
	"runtime"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/tensor"
)

// minCosine returns the smallest cosine similarity between corresponding
// rows (of width E) of x and y.
func minCosine(x, y []float32, E int) float64 {
	m := 1.0
	for r := 0; r+E <= len(x); r += E {
		var d, nx, ny float64
		for i := r; i < r+E; i++ {
			a, b := float64(x[i]), float64(y[i])
			d, nx, ny = d+a*b, nx+a*a, ny+b*b
		}
		m = math.Min(m, d/math.Sqrt(nx*ny))
	}
	return m
}

// compareBF16 runs m through a float32 and a bf16 engine and checks the
// cosine similarity of every embedding (the bar: ≥ 0.999).
func compareBF16(t *testing.T, m *clip.Model, opts Options, B, T int) (img, txt float64) {
	t.Helper()
	in := makeInputs(m, B, T, 11)
	opts.DType = F32
	ef, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	opts.DType = BF16
	eh, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer eh.Close()
	if eh.DType() != BF16 {
		t.Fatalf("DType() = %v", eh.DType())
	}
	fi, ft := run(ef, in)
	hi, ht := run(eh, in)
	img, txt = minCosine(hi, fi, eh.EmbedDim()), minCosine(ht, ft, eh.EmbedDim())
	t.Logf("bf16 (%s kernel) vs f32, B=%d threads=%d split=%v: min cosine image %.6f text %.6f; rel err image %.2e text %.2e",
		tensor.BF16Kernel(), B, eh.Threads(), eh.SplitFor(B), img, txt, relErr(hi, fi), relErr(ht, ft))
	if !(img >= 0.999 && txt >= 0.999) {
		t.Errorf("bf16 embeddings: min cosine similarity image %.6f text %.6f < 0.999", img, txt)
	}
	if relErr(hi, fi) == 0 {
		t.Error("bf16 engine gave exactly the float32 results: not using bf16 weights?")
	}
	return img, txt
}

func TestBF16Tiny(t *testing.T) {
	m := randomModel(t, preset(t, "tiny"), 21)
	compareBF16(t, m, Options{Threads: 1}, 5, 77)
	compareBF16(t, m, Options{Threads: 2, Split: SplitItems}, 6, 77)
	compareBF16(t, m, Options{Threads: 2, Split: SplitGEMM}, 3, 9)
}

func TestBF16Pruned(t *testing.T) {
	cfg := preset(t, "tiny")
	cfg.Vision.LayerHeads = []int{3, 0}
	cfg.Vision.LayerIntermediate = []int{17, 200}
	cfg.Text.LayerHeads = []int{1, 4}
	cfg.Text.LayerIntermediate = []int{0, 50}
	m := randomModel(t, cfg, 22)
	m.Text.Encoder.Layers[1].SelfAttn.HeadKeep = []bool{true, false, true, false}
	compareBF16(t, m, Options{Threads: 2}, 3, 77)
}

// TestBF16Teacher: the trained checkpoint in assets/shapes-teacher.
func TestBF16Teacher(t *testing.T) {
	dir := "../assets/shapes-teacher"
	if _, err := os.Stat(dir); err != nil {
		t.Skip("no ", dir)
	}
	m, err := clip.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	compareBF16(t, m, Options{Threads: 1}, 16, m.Config.Text.MaxPositionEmbeddings)
}

func TestBF16ViTB32(t *testing.T) {
	if testing.Short() {
		t.Skip("ViT-B/32 forward is slow")
	}
	m := randomModel(t, preset(t, "ViT-B/32"), 23)
	compareBF16(t, m, Options{}, 2, 77)
}

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
