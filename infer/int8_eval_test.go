package infer_test

import (
	"math"
	"testing"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/clip/zeroshot"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/mope/grid"
	"github.com/mopeclip/mopeclip/tensor"
)

// shapesScores evaluates m on w with an engine of type dt: mean retrieval
// R@1 (TR@1 and IR@1) and zero-shot shape and colour top-1, in percent,
// with the prompts of the demo (mope/grid).
func shapesScores(t *testing.T, m *clip.Model, tok *tokenizer.Tokenizer, w *grid.World, dt infer.DType) (r1, shape, color float64) {
	t.Helper()
	e, err := infer.New(m, infer.Options{DType: dt})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	enc := &clip.Encoder{Model: m, Tok: tok, Batch: 64, Workers: 1, Device: e.BatchEncoder()}
	img := enc.Images(w.Test.Images.Pixels(seq(w.Test.Images.N)).Data, w.Test.Images.N)
	caps, capImg := w.Test.Flat()
	txt, err := enc.Texts(caps)
	if err != nil {
		t.Fatal(err)
	}
	rm := clip.RetrievalMetrics(img, txt, capImg)
	r1 = (rm.TR1 + rm.IR1) / 2
	single := clip.Normalize(enc.Images(w.Single.Images.Pixels(seq(w.Single.Images.N)).Data, w.Single.Images.N))
	var sc, cc, st, ct []string
	for _, s := range shapes.AllShapes {
		sc = append(sc, s.String())
		ct = append(ct, "a single {} "+s.String())
	}
	for _, c := range shapes.AllColors {
		cc = append(cc, c.String())
		st = append(st, "a single "+c.String()+" {}")
	}
	for _, task := range []struct {
		classes, templates []string
		labels             []int
		out                *float64
	}{{sc, st, w.ShapeLabel, &shape}, {cc, ct, w.ColorLabel, &color}} {
		ce, err := enc.ClassEmbeddings(task.classes, task.templates)
		if err != nil {
			t.Fatal(err)
		}
		logits := clip.Similarity(single, ce)
		*task.out = zeroshot.Classification(logits, w.Single.Len(), len(task.classes), task.labels).Top1
	}
	return r1, shape, color
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// TestInt8TeacherZeroShot: on the shapes test split the int8 engine's
// retrieval R@1 and zero-shot top-1 stay within one point of float32's
// (issue 18). The full split is 1,000 images; -short uses 300.
func TestInt8TeacherZeroShot(t *testing.T) {
	dir := "../assets/shapes-teacher"
	m, err := clip.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := clip.LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 1000
	if testing.Short() {
		n = 300
	}
	w, err := grid.NewWorld(n, m.Config.Vision.ImageSize)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	fr, fs, fc := shapesScores(t, m, tok, w, infer.F32)
	t1 := time.Now()
	qr, qs, qc := shapesScores(t, m, tok, w, infer.INT8)
	t.Logf("shapes teacher, %d test images (%s): f32 R@1 %.2f shape %.2f colour %.2f (%.1fs); int8 R@1 %.2f shape %.2f colour %.2f (%.1fs)",
		n, tensor.Int8Kernel(), fr, fs, fc, t1.Sub(t0).Seconds(), qr, qs, qc, time.Since(t1).Seconds())
	if fr < 30 || fs < 30 {
		t.Fatalf("float32 teacher scores R@1 %.2f shape %.2f: wrong data or model", fr, fs)
	}
	for _, d := range []struct {
		name   string
		f32, q float64
	}{{"retrieval R@1", fr, qr}, {"zero-shot shape top-1", fs, qs}, {"zero-shot colour top-1", fc, qc}} {
		if math.Abs(d.f32-d.q) > 1 {
			t.Errorf("%s: int8 %.2f vs f32 %.2f: more than 1 point apart", d.name, d.q, d.f32)
		}
	}
}
