package infer

import (
	"os"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/tensor"
)

// compareInt8 runs m through a float32 and an int8 engine and checks the
// cosine similarity of every embedding (issue 18's bar: ≥ 0.99), and that
// the int8 engine gives the same bits on one and two threads.
func compareInt8(t *testing.T, m *clip.Model, opts Options, B, T int) (img, txt float64) {
	t.Helper()
	in := makeInputs(m, B, T, 11)
	opts.DType = F32
	ef, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	opts.DType = INT8
	eq, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer eq.Close()
	if eq.DType() != INT8 {
		t.Fatalf("DType() = %v", eq.DType())
	}
	fi, ft := run(ef, in)
	qi, qt := run(eq, in)
	img, txt = minCosine(qi, fi, eq.EmbedDim()), minCosine(qt, ft, eq.EmbedDim())
	t.Logf("int8 (%s kernel) vs f32, B=%d threads=%d split=%v: min cosine image %.6f text %.6f; rel err image %.2e text %.2e",
		tensor.Int8Kernel(), B, eq.Threads(), eq.SplitFor(B), img, txt, relErr(qi, fi), relErr(qt, ft))
	if !(img >= 0.99 && txt >= 0.99) {
		t.Errorf("int8 embeddings: min cosine similarity image %.6f text %.6f < 0.99", img, txt)
	}
	if relErr(qi, fi) == 0 || relErr(qt, ft) == 0 {
		t.Error("int8 engine gave exactly the float32 results: not using int8 weights?")
	}
	// The same configuration on the other thread count (GEMM split) gives
	// the same bits: the int8 GEMM does not depend on the thread grid.
	opts.Threads, opts.Split = 3-eq.Threads(), SplitGEMM
	if eq.Threads() > 2 {
		return img, txt
	}
	e2, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	o1 := Options{Threads: eq.Threads(), Split: SplitGEMM, DType: INT8, Chunk: opts.Chunk}
	e1, err := New(m, o1)
	if err != nil {
		t.Fatal(err)
	}
	defer e1.Close()
	ai, at := run(e1, in)
	bi, bt := run(e2, in)
	if relErr(ai, bi) != 0 || relErr(at, bt) != 0 {
		t.Errorf("int8 engine: 1 and 2 threads differ (image %g, text %g)", relErr(ai, bi), relErr(at, bt))
	}
	return img, txt
}

func TestInt8Tiny(t *testing.T) {
	m := randomModel(t, preset(t, "tiny"), 21)
	compareInt8(t, m, Options{Threads: 1}, 5, 77)
	compareInt8(t, m, Options{Threads: 2, Split: SplitItems}, 6, 77)
	compareInt8(t, m, Options{Threads: 2, Split: SplitGEMM}, 3, 9)
}

func TestInt8Pruned(t *testing.T) {
	cfg := preset(t, "tiny")
	cfg.Vision.LayerHeads = []int{3, 0}
	cfg.Vision.LayerIntermediate = []int{17, 200}
	cfg.Text.LayerHeads = []int{1, 4}
	cfg.Text.LayerIntermediate = []int{0, 50}
	m := randomModel(t, cfg, 22)
	m.Text.Encoder.Layers[1].SelfAttn.HeadKeep = []bool{true, false, true, false}
	compareInt8(t, m, Options{Threads: 2}, 3, 77)
}

// TestInt8Teacher: the trained checkpoint in assets/shapes-teacher.
func TestInt8Teacher(t *testing.T) {
	dir := "../assets/shapes-teacher"
	if _, err := os.Stat(dir); err != nil {
		t.Fatal("the shapes teacher is committed: ", err)
	}
	m, err := clip.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	compareInt8(t, m, Options{Threads: 1}, 16, m.Config.Text.MaxPositionEmbeddings)
}

func TestInt8ViTB32(t *testing.T) {
	if testing.Short() {
		t.Skip("ViT-B/32 forward is slow")
	}
	m := randomModel(t, preset(t, "ViT-B/32"), 23)
	compareInt8(t, m, Options{}, 2, 77)
}

func TestParseDTypeInt8(t *testing.T) {
	for _, d := range []DType{F32, BF16, INT8} {
		got, err := ParseDType(d.String())
		if err != nil || got != d {
			t.Errorf("ParseDType(%q) = %v, %v", d.String(), got, err)
		}
	}
	if _, err := ParseDType("int4"); err == nil {
		t.Error("ParseDType(int4): no error")
	}
}
