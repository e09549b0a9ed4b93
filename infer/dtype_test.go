package infer

import (
	"math"
	"os"
	"slices"
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

// lowDType is one reduced-precision weight type of the fast engine and what
// its embeddings must meet against the float32 engine.
type lowDType struct {
	dtype  DType
	kernel func() string // the tensor kernel it runs on
	bar    float64       // min cosine similarity to float32, image and text
	// textDiffers: the text embeddings, not only the image ones, must
	// differ from float32's (as the int8 tests have always asked).
	textDiffers bool
	// threadBits: also check that one and two GEMM threads give the same
	// bits (bf16 has its own, wider TestBF16Deterministic).
	threadBits bool
}

// lowDTypes: bf16 (the bar: ≥ 0.999) and int8 (issue 18's bar:
// ≥ 0.99).
var lowDTypes = []lowDType{
	{dtype: BF16, kernel: tensor.BF16Kernel, bar: 0.999},
	{dtype: INT8, kernel: tensor.Int8Kernel, bar: 0.99, textDiffers: true, threadBits: true},
}

// forEachDType runs f as a subtest per reduced-precision dtype.
func forEachDType(t *testing.T, f func(t *testing.T, d lowDType)) {
	for _, d := range lowDTypes {
		t.Run(d.dtype.String(), func(t *testing.T) { f(t, d) })
	}
}

// compareDType runs m through a float32 and a d.dtype engine and checks the
// cosine similarity of every embedding against d.bar, and, where d says so,
// that the engine gives the same bits on one and two threads.
func compareDType(t *testing.T, d lowDType, m *clip.Model, opts Options, B, T int) (img, txt float64) {
	t.Helper()
	in := makeInputs(m, B, T, 11)
	opts.DType = F32
	ef, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	opts.DType = d.dtype
	eq, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer eq.Close()
	if eq.DType() != d.dtype {
		t.Fatalf("DType() = %v", eq.DType())
	}
	fi, ft := run(ef, in)
	qi, qt := run(eq, in)
	img, txt = minCosine(qi, fi, eq.EmbedDim()), minCosine(qt, ft, eq.EmbedDim())
	t.Logf("%s (%s kernel) vs f32, B=%d threads=%d split=%v: min cosine image %.6f text %.6f; rel err image %.2e text %.2e",
		d.dtype, d.kernel(), B, eq.Threads(), eq.SplitFor(B), img, txt, relErr(qi, fi), relErr(qt, ft))
	if !(img >= d.bar && txt >= d.bar) {
		t.Errorf("%s embeddings: min cosine similarity image %.6f text %.6f < %g", d.dtype, img, txt, d.bar)
	}
	if relErr(qi, fi) == 0 || (d.textDiffers && relErr(qt, ft) == 0) {
		t.Errorf("%s engine gave exactly the float32 results: not using %s weights?", d.dtype, d.dtype)
	}
	if !d.threadBits {
		return img, txt
	}
	// The same configuration on the other thread count (GEMM split) gives
	// the same bits: the GEMM does not depend on the thread grid.
	opts.Threads, opts.Split = 3-eq.Threads(), SplitGEMM
	if eq.Threads() > 2 {
		return img, txt
	}
	e2, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	o1 := Options{Threads: eq.Threads(), Split: SplitGEMM, DType: d.dtype, Chunk: opts.Chunk}
	e1, err := New(m, o1)
	if err != nil {
		t.Fatal(err)
	}
	defer e1.Close()
	ai, at := run(e1, in)
	bi, bt := run(e2, in)
	if relErr(ai, bi) != 0 || relErr(at, bt) != 0 {
		t.Errorf("%s engine: 1 and 2 threads differ (image %g, text %g)", d.dtype, relErr(ai, bi), relErr(at, bt))
	}
	return img, txt
}

func TestDTypeTiny(t *testing.T) {
	forEachDType(t, func(t *testing.T, d lowDType) {
		m := randomModel(t, preset(t, "tiny"), 21)
		compareDType(t, d, m, Options{Threads: 1}, 5, 77)
		compareDType(t, d, m, Options{Threads: 2, Split: SplitItems}, 6, 77)
		compareDType(t, d, m, Options{Threads: 2, Split: SplitGEMM}, 3, 9)
	})
}

func TestDTypePruned(t *testing.T) {
	forEachDType(t, func(t *testing.T, d lowDType) {
		cfg := preset(t, "tiny")
		cfg.Vision.LayerHeads = []int{3, 0}
		cfg.Vision.LayerIntermediate = []int{17, 200}
		cfg.Text.LayerHeads = []int{1, 4}
		cfg.Text.LayerIntermediate = []int{0, 50}
		m := randomModel(t, cfg, 22)
		m.Text.Encoder.Layers[1].SelfAttn.HeadKeep = []bool{true, false, true, false}
		compareDType(t, d, m, Options{Threads: 2}, 3, 77)
	})
}

// TestDTypeTeacher: the trained checkpoint in assets/shapes-teacher.
func TestDTypeTeacher(t *testing.T) {
	dir := "../assets/shapes-teacher"
	if _, err := os.Stat(dir); err != nil {
		t.Fatal("the shapes teacher is committed: ", err)
	}
	m, err := clip.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	forEachDType(t, func(t *testing.T, d lowDType) {
		compareDType(t, d, m, Options{Threads: 1}, 16, m.Config.Text.MaxPositionEmbeddings)
	})
}

func TestDTypeViTB32(t *testing.T) {
	if testing.Short() {
		t.Skip("ViT-B/32 forward is slow")
	}
	m := randomModel(t, preset(t, "ViT-B/32"), 23)
	forEachDType(t, func(t *testing.T, d lowDType) {
		compareDType(t, d, m, Options{}, 2, 77)
	})
}

// TestEngineTowers: an engine built with one tower (Options.Towers) embeds
// that tower bit-identically to a two-tower engine, in every type, and
// refuses the other: errors from the suffix API, a panic from Encode*.
func TestEngineTowers(t *testing.T) {
	m := randomModel(t, preset(t, "tiny"), 23)
	in := makeInputs(m, 3, 9, 5)
	for _, dt := range []DType{F32, BF16, INT8} {
		both, err := New(m, Options{Threads: 2, DType: dt})
		if err != nil {
			t.Fatal(err)
		}
		wi, wt := run(both, in)
		both.Close()
		for _, c := range []struct {
			towers     clip.TowerSet
			has, lacks string
		}{
			{clip.VisionOnly, TowerVision, TowerText},
			{clip.TextOnly, TowerText, TowerVision},
		} {
			e, err := New(m, Options{Threads: 2, DType: dt, Towers: c.towers})
			if err != nil {
				t.Fatal(err)
			}
			E := e.EmbedDim()
			got := make([]float32, in.B*E)
			want := wi
			encode := func(tw string) {
				if tw == TowerVision {
					e.EncodeImages(in.pixels, in.B, got)
				} else {
					e.EncodeTexts(in.ids, in.eot, in.B, in.T, got)
				}
			}
			if c.has == TowerText {
				want = wt
			}
			encode(c.has)
			if !slices.Equal(got, want) {
				t.Errorf("%v %s-only engine: %s embeddings differ from the two-tower engine's", dt, c.has, c.has)
			}
			if _, err := e.Layers(c.lacks); err == nil {
				t.Errorf("%v %s-only engine: Layers(%q) gave no error", dt, c.has, c.lacks)
			}
			if _, err := e.PackBlock(c.lacks, m.Vision.Encoder.Layers[0], true, true); err == nil {
				t.Errorf("%v %s-only engine: PackBlock(%q) gave no error", dt, c.has, c.lacks)
			}
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%v %s-only engine: encoding %s did not panic", dt, c.has, c.lacks)
					}
				}()
				encode(c.lacks)
			}()
			e.Close()
		}
	}
}
