package clip

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/clip/zeroshot"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

var evalWords = []string{"red", "green", "blue", "yellow", "circle", "square", "triangle", "star",
	"big", "small", "left", "right", "above", "below", "a", "the", "photo", "of", "and"}

// evalSetup returns a tiny model whose vocabulary is a tokenizer trained
// here (so the tests need no vocabulary file), with EOT as eos_token_id.
func evalSetup(t *testing.T) (*Model, *tokenizer.Tokenizer) {
	t.Helper()
	var corpus []string
	for i := range evalWords {
		for j := range evalWords {
			corpus = append(corpus, evalWords[i]+" "+evalWords[j])
		}
	}
	tok, err := tokenizer.Train(corpus, 600)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := Preset("tiny")
	cfg.Text.VocabSize = tok.VocabSize()
	cfg.Text.EOSTokenID = tok.EOT()
	cfg.Text.BOSTokenID = tok.SOT()
	m, err := New(cfg, 21)
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}

// randomImages makes n small images of odd sizes: a coloured background
// with a lighter rectangle, all opaque.
func randomImages(n int, seed uint64) []*image.RGBA {
	rng := tensor.NewRNG(seed)
	out := make([]*image.RGBA, n)
	for i := range out {
		w, h := 30+rng.IntN(30), 30+rng.IntN(30)
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		bg := color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255}
		fg := color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255}
		x0, y0 := rng.IntN(w/2), rng.IntN(h/2)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := bg
				if x >= x0 && x < x0+w/3 && y >= y0 && y < y0+h/3 {
					c = fg
				}
				img.SetRGBA(x, y, c)
			}
		}
		out[i] = img
	}
	return out
}

func writePNGs(t *testing.T, dir string, imgs []*image.RGBA) []string {
	t.Helper()
	paths := make([]string, len(imgs))
	for i, img := range imgs {
		paths[i] = filepath.Join(dir, fmt.Sprintf("img%03d.png", i))
		f, err := os.Create(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return paths
}

// randomCaptions gives image i 1 + i%3 captions of random words.
func randomCaptions(nImg int, seed uint64) (caps []string, capImg []int) {
	rng := tensor.NewRNG(seed)
	for i := 0; i < nImg; i++ {
		for k := 0; k <= i%3; k++ {
			words := make([]string, 2+rng.IntN(8))
			for j := range words {
				words[j] = evalWords[rng.IntN(len(evalWords))]
			}
			caps = append(caps, strings.Join(words, " "))
			capImg = append(capImg, i)
		}
	}
	return caps, capImg
}

// bruteImages embeds each file alone, the plain way.
func bruteImages(t *testing.T, m *Model, paths []string, pre imageproc.Config) *tensor.Tensor {
	t.Helper()
	E := m.Config.ProjectionDim
	out := tensor.New(len(paths), E)
	S := m.Config.Vision.ImageSize
	for i, p := range paths {
		px, err := imageproc.LoadPreprocessed(p, pre)
		if err != nil {
			t.Fatal(err)
		}
		x, _ := tensor.FromData(px, 1, 3, S, S)
		copy(out.Data[i*E:], m.EncodeImage(nil, ops.Const(x)).Value.Data)
	}
	return out
}

// bruteTexts embeds each text alone, padded to the full context as
// clip.tokenize does.
func bruteTexts(t *testing.T, m *Model, tok *tokenizer.Tokenizer, texts []string) *tensor.Tensor {
	t.Helper()
	E, T := m.Config.ProjectionDim, m.Config.Text.MaxPositionEmbeddings
	out := tensor.New(len(texts), E)
	for i, s := range texts {
		ids, err := tok.Tokenize(s, T, true)
		if err != nil {
			t.Fatal(err)
		}
		tb := &TextBatch{IDs: make([]int, T), B: 1, T: T}
		copy(tb.IDs, ids)
		tb.EOTPos = EOTPositions(tb.IDs, 1, T, m.Config.Text.EOSTokenID)
		copy(out.Data[i*E:], m.EncodeText(nil, tb).Value.Data)
	}
	return out
}

// bruteSim normalises in float64 and returns the cosine similarities.
func bruteSim(a, b *tensor.Tensor) []float32 {
	E := a.Shape[1]
	norm := func(r []float32) float64 {
		var s float64
		for _, v := range r {
			s += float64(v) * float64(v)
		}
		return math.Sqrt(s)
	}
	na, nb := a.Shape[0], b.Shape[0]
	sim := make([]float32, na*nb)
	for i := 0; i < na; i++ {
		ra := a.Data[i*E : (i+1)*E]
		for j := 0; j < nb; j++ {
			rb := b.Data[j*E : (j+1)*E]
			var d float64
			for k := range ra {
				d += float64(ra[k]) * float64(rb[k])
			}
			sim[i*nb+j] = float32(d / (norm(ra) * norm(rb)))
		}
	}
	return sim
}

// evalFiles evaluates retrieval on image files (package eval does it on
// datasets).
func evalFiles(m *Model, tok *tokenizer.Tokenizer, paths, caps []string, capImg []int, pre imageproc.Config, batch int) (zeroshot.RetrievalMetrics, error) {
	if err := checkRetrieval(len(paths), caps, capImg); err != nil {
		return zeroshot.RetrievalMetrics{}, err
	}
	e := &Encoder{Model: m, Tok: tok, Batch: batch}
	img, err := e.ImageFiles(paths, pre)
	if err != nil {
		return zeroshot.RetrievalMetrics{}, err
	}
	return e.retrievalFrom(img, caps, capImg)
}

// zeroShotFiles evaluates classification of image files.
func zeroShotFiles(m *Model, tok *tokenizer.Tokenizer, paths []string, labels []int, names, templates []string, pre imageproc.Config, batch int) (zeroshot.ClassMetrics, error) {
	e := &Encoder{Model: m, Tok: tok, Batch: batch}
	if err := checkLabels(labels, len(names)); err != nil {
		return zeroshot.ClassMetrics{}, err
	}
	cls, err := e.ClassEmbeddings(names, templates)
	if err != nil {
		return zeroshot.ClassMetrics{}, err
	}
	img, err := e.ImageFiles(paths, pre)
	if err != nil {
		return zeroshot.ClassMetrics{}, err
	}
	return ClassMetrics(img, cls, labels), nil
}

func TestEvalRetrievalMatchesBruteForce(t *testing.T) {
	m, tok := evalSetup(t)
	imgs := randomImages(13, 1)
	paths := writePNGs(t, t.TempDir(), imgs)
	caps, capImg := randomCaptions(len(imgs), 2)
	pre := imageproc.DefaultConfig(m.Config.Vision.ImageSize)

	bi, bt := bruteImages(t, m, paths, pre), bruteTexts(t, m, tok, caps)
	want := zeroshot.Retrieval(bruteSim(bi, bt), len(paths), len(caps), capImg)
	t.Logf("brute force: %v", want)

	// The batched embeddings agree with the one-by-one ones (batches of 5:
	// a short last batch, texts padded to the longest of the batch only).
	e := &Encoder{Model: m, Tok: tok, Batch: 5}
	gi, err := e.ImageFiles(paths, pre)
	if err != nil {
		t.Fatal(err)
	}
	gt, err := e.Texts(caps)
	if err != nil {
		t.Fatal(err)
	}
	if ei, et := relErr(gi.Data, bi.Data), relErr(gt.Data, bt.Data); !(ei < 1e-5 && et < 1e-5) {
		t.Fatalf("batched embeddings differ from one-by-one: %.3e (image), %.3e (text)", ei, et)
	}

	for _, batch := range []int{1, 5, 64} {
		got, err := evalFiles(m, tok, paths, caps, capImg, pre, batch)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("batch %d: evaluation of files %v, brute force %v", batch, got, want)
		}
	}
	// In memory: the same images, not read from files.
	got, err := EvalRetrievalImages(m, tok, imgs, caps, capImg, pre, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("EvalRetrievalImages %v, brute force %v", got, want)
	}
}

// TestRetrievalMetricsKnownAnswer feeds embeddings whose similarities are
// known: image i is the basis vector e_i, and captions point at images
// (some at the wrong one).
func TestRetrievalMetricsKnownAnswer(t *testing.T) {
	const n = 12
	basis := func(rows []int) *tensor.Tensor {
		x := tensor.New(len(rows), n)
		for r, k := range rows {
			x.Data[r*n+k] = 2 // unnormalised on purpose
		}
		return x
	}
	img := basis([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	// Caption j belongs to image j; captions of images 0..9 look like their
	// image, those of 10 and 11 look like image 0.
	look := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0}
	capImg := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	got := RetrievalMetrics(img, basis(look), capImg)
	// Image 0: captions 10 and 11 tie with its own (ties count against
	// the model): rank 2. Images 10, 11: their caption scores 0, and all 11 others
	// score at least that: rank 11. Captions 10, 11: their image scores 0,
	// the 11 others >= 0: rank 11. Everything else: rank 0.
	want := zeroshot.RetrievalMetrics{TR1: 900.0 / 12, TR5: 1000.0 / 12, TR10: 1000.0 / 12, IR1: 1000.0 / 12, IR5: 1000.0 / 12, IR10: 1000.0 / 12}
	if !close(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// All captions right: 100 everywhere.
	got = RetrievalMetrics(img, basis(capImg), capImg)
	if got.Mean() != 100 {
		t.Fatalf("perfect embeddings: %v", got)
	}
	// Rows came out normalised.
	for r := 0; r < n; r++ {
		if img.Data[r*n+r] != 1 {
			t.Fatalf("row %d not normalised: %v", r, img.Data[r*n:(r+1)*n])
		}
	}
}

func close(a, b zeroshot.RetrievalMetrics) bool {
	x := []float64{a.TR1, a.TR5, a.TR10, a.IR1, a.IR5, a.IR10}
	y := []float64{b.TR1, b.TR5, b.TR10, b.IR1, b.IR5, b.IR10}
	for i := range x {
		if math.Abs(x[i]-y[i]) > 1e-9 {
			return false
		}
	}
	return true
}

func TestEncodeIsDeterministic(t *testing.T) {
	m, tok := evalSetup(t)
	S := m.Config.Vision.ImageSize
	const n = 11
	pix := tensor.New(n, 3, S, S).Normal(tensor.NewRNG(3), 0, 1)
	one := (&Encoder{Model: m, Batch: 3, Workers: 1}).Images(pix.Data, n)
	two := (&Encoder{Model: m, Batch: 3, Workers: 2}).Images(pix.Data, n)
	four := (&Encoder{Model: m, Batch: 3, Workers: 4}).Images(pix.Data, n)
	if !sameBitsF32(one.Data, two.Data) || !sameBitsF32(one.Data, four.Data) {
		t.Fatal("image embeddings depend on the number of workers")
	}
	whole := m.EncodeImage(nil, ops.Const(pix)).Value
	if e := relErr(EncodeImages(m, pix.Data, n, 0).Data, whole.Data); !(e < 1e-5) {
		t.Fatalf("EncodeImages differs from one forward pass by %.3e", e)
	}
	caps, _ := randomCaptions(n, 4)
	a, err := (&Encoder{Model: m, Tok: tok, Batch: 4, Workers: 1}).Texts(caps)
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&Encoder{Model: m, Tok: tok, Batch: 4, Workers: 2}).Texts(caps)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBitsF32(a.Data, b.Data) {
		t.Fatal("text embeddings depend on the number of workers")
	}
	c, err := EncodeTexts(m, tok, caps, 1)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(c.Data, a.Data); !(e < 1e-5) {
		t.Fatalf("text embeddings with batch 1 and 4 differ by %.3e", e)
	}
	if got := EncodeImages(m, nil, 0, 8); got.Shape[0] != 0 || got.Shape[1] != m.Config.ProjectionDim {
		t.Fatalf("no images: shape %v", got.Shape)
	}
	// Too long texts are truncated, not an error.
	long := strings.Repeat("red circle ", 100)
	if _, err := EncodeTexts(m, tok, []string{long}, 0); err != nil {
		t.Fatal(err)
	}
}

func TestNormalize(t *testing.T) {
	x := &tensor.Tensor{Shape: []int{3, 2}, Data: []float32{3, 4, 0, 0, -1e-30, 0}}
	Normalize(x)
	want := []float32{0.6, 0.8, 0, 0, -1, 0}
	for i := range want {
		if math.Abs(float64(x.Data[i]-want[i])) > 1e-7 {
			t.Fatalf("got %v, want %v", x.Data, want)
		}
	}
}

func TestZeroShotMatchesBruteForce(t *testing.T) {
	m, tok := evalSetup(t)
	classes := []string{"red circle", "blue square", "green triangle", "yellow star", "big", "small"}
	templates := []string{"a photo of a {}.", "the {}", "{} and {}"}
	e := &Encoder{Model: m, Tok: tok, Batch: 4}
	cls, err := e.ClassEmbeddings(classes, templates)
	if err != nil {
		t.Fatal(err)
	}
	E := m.Config.ProjectionDim
	for c, name := range classes {
		var prompts []string
		for _, tmpl := range templates {
			prompts = append(prompts, strings.ReplaceAll(tmpl, "{}", name))
		}
		emb := bruteTexts(t, m, tok, prompts)
		mean := make([]float64, E)
		for p := range prompts {
			row := emb.Data[p*E : (p+1)*E]
			var ss float64
			for _, v := range row {
				ss += float64(v) * float64(v)
			}
			for i, v := range row {
				mean[i] += float64(v) / math.Sqrt(ss)
			}
		}
		var ss float64
		for _, v := range mean {
			ss += v * v
		}
		for i, v := range mean {
			if d := math.Abs(v/math.Sqrt(ss) - float64(cls.Data[c*E+i])); d > 1e-5 {
				t.Fatalf("class %q component %d off by %.3e", name, i, d)
			}
		}
	}

	// Images in class folders; labels round-robin.
	imgs := randomImages(14, 9)
	root := t.TempDir()
	labels := make([]int, len(imgs))
	for i, img := range imgs {
		labels[i] = i % len(classes)
		dir := filepath.Join(root, strings.ReplaceAll(classes[labels[i]], " ", "_"))
		os.MkdirAll(dir, 0o755)
		writePNGs(t, dir, []*image.RGBA{img})
		os.Rename(filepath.Join(dir, "img000.png"), filepath.Join(dir, fmt.Sprintf("x%02d.png", i)))
	}
	names := slices.Sorted(slices.Values(classes))
	pre := imageproc.DefaultConfig(m.Config.Vision.ImageSize)
	var paths []string
	var flabels []int
	for c, name := range names {
		dir := filepath.Join(root, strings.ReplaceAll(name, " ", "_"))
		files, _ := filepath.Glob(filepath.Join(dir, "*.png"))
		slices.Sort(files)
		for _, f := range files {
			paths = append(paths, f)
			flabels = append(flabels, c)
		}
	}
	fcls, err := e.ClassEmbeddings(names, templates)
	if err != nil {
		t.Fatal(err)
	}
	want := zeroshot.Classification(bruteSim(bruteImages(t, m, paths, pre), fcls), len(paths), len(names), flabels)
	got, err := zeroShotFiles(m, tok, paths, flabels, names, templates, pre, 5)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("zero-shot on files %v, brute force %v", got, want)
	}
	t.Logf("zero-shot on %d images, %d classes: %+v", len(paths), len(names), got)
	// In memory: the same images, labels renumbered to the folder's
	// (sorted) class order; accuracies do not depend on the image order.
	for i, y := range labels {
		labels[i] = slices.Index(names, classes[y])
	}
	got2, err := EvalZeroShotImages(m, tok, imgs, labels, names, templates, pre, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got2 != want {
		t.Errorf("EvalZeroShotImages %v, folder %v", got2, want)
	}
	if _, err := zeroShotFiles(m, tok, paths, flabels, names, nil, pre, 5); err != nil {
		t.Fatalf("default templates: %v", err)
	}
}

func TestEvalErrors(t *testing.T) {
	m, tok := evalSetup(t)
	pre := imageproc.DefaultConfig(m.Config.Vision.ImageSize)
	dir := t.TempDir()
	paths := writePNGs(t, dir, randomImages(3, 1))
	missing := filepath.Join(dir, "nope.png")
	caps, capImg := []string{"a", "b", "c", "d"}, []int{0, 1, 2, 3}
	if _, err := evalFiles(m, tok, append(paths, missing), caps, capImg, pre, 2); err == nil || !strings.Contains(err.Error(), "nope.png") {
		t.Errorf("missing image: %v", err)
	}
	if _, err := evalFiles(m, tok, paths, caps, capImg, pre, 2); err == nil || !strings.Contains(err.Error(), "caption 3") {
		t.Errorf("caption of a missing image: %v", err)
	}
	if _, err := evalFiles(m, tok, nil, nil, nil, pre, 2); err == nil {
		t.Error("empty set evaluated")
	}
	if _, err := evalFiles(m, tok, paths, caps[:3], capImg[:3], imageproc.DefaultConfig(224), 2); err == nil || !strings.Contains(err.Error(), "224") {
		t.Errorf("preprocessing for another size: %v", err)
	}
	e := &Encoder{Model: m, Tok: tok}
	if _, err := e.ClassEmbeddings([]string{"red"}, []string{"a photo"}); err == nil || !strings.Contains(err.Error(), "{}") {
		t.Errorf("template without {}: %v", err)
	}
	if _, err := zeroShotFiles(m, tok, paths[:1], []int{1}, []string{"a"}, nil, pre, 2); err == nil {
		t.Error("a label beyond the class names accepted")
	}
	// A tokenizer whose ids the model does not have.
	small := *m.Config
	small.Text.VocabSize, small.Text.EOSTokenID = 100, 99
	ms, err := New(&small, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EncodeTexts(ms, tok, []string{"blue star"}, 1); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("ids beyond the vocabulary: %v", err)
	}
	if _, err := LoadTokenizer(dir); err == nil || !strings.Contains(err.Error(), VocabFile) || !strings.Contains(err.Error(), MergesFile) {
		t.Errorf("no tokenizer files: %v", err)
	}
	if err := tok.SaveHF(dir); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, MergesFile))
	if _, err := LoadTokenizer(dir); err == nil || !strings.Contains(err.Error(), MergesFile) {
		t.Errorf("no merges.txt: %v", err)
	}
	if err := tok.SaveHF(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokenizer(dir); err != nil {
		t.Error(err)
	}
}
