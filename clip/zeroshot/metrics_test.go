package zeroshot

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestRetrievalSmall is worked by hand: 3 images, 4 captions.
func TestRetrievalSmall(t *testing.T) {
	// caption:     c0   c1   c2   c3      (c0, c1 → image 0; c2 → 1; c3 → 2)
	sim := []float32{
		0.9, 0.1, 0.5, 0.2, // image 0: best true c0 is first → rank 0
		0.3, 0.8, 0.7, 0.1, // image 1: c2 (0.7) behind c1 (0.8) → rank 1
		0.6, 0.5, 0.4, 0.2, // image 2: c3 last, behind 3 wrong → rank 3
	}
	capImg := []int{0, 0, 1, 2}
	tr, ir := RetrievalRanks(sim, 3, 4, capImg)
	if !slices.Equal(tr, []int{0, 1, 3}) {
		t.Errorf("text ranks %v", tr)
	}
	// c0: image 0 0.9 first → 0. c1: image 0 0.1 below 0.8, 0.5 → 2.
	// c2: image 1 0.7 above 0.5, 0.4 → 0. c3: image 2 0.2 vs 0.2 (tie) and 0.1 → 1.
	if !slices.Equal(ir, []int{0, 2, 0, 1}) {
		t.Errorf("image ranks %v", ir)
	}
	m := Retrieval(sim, 3, 4, capImg)
	want := RetrievalMetrics{TR1: 100.0 / 3, TR5: 100, TR10: 100, IR1: 50, IR5: 100, IR10: 100}
	if m != want {
		t.Errorf("metrics %+v, want %+v", m, want)
	}
	if !near(m.Mean(), (100.0/3+100+100+50+100+100)/6) {
		t.Errorf("mean %v", m.Mean())
	}
	b, _ := json.Marshal(m)
	var back map[string]float64
	json.Unmarshal(b, &back)
	for _, k := range []string{"tr1", "tr5", "tr10", "ir1", "ir5", "ir10"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
}

func TestRetrievalTiesArePessimistic(t *testing.T) {
	// A constant model: every score equal.
	nImg, per := 20, 5
	nTxt := nImg * per
	sim := make([]float32, nImg*nTxt)
	capImg := make([]int, nTxt)
	for j := range capImg {
		capImg[j] = j / per
	}
	if m := Retrieval(sim, nImg, nTxt, capImg); m != (RetrievalMetrics{}) {
		t.Errorf("constant model scores %+v, want all zero", m)
	}
	// Ties among the true captions themselves do not hurt.
	sim2 := []float32{1, 1, 0.5}
	tr, _ := RetrievalRanks(sim2, 1, 3, []int{0, 0, 0})
	if tr[0] != 0 {
		t.Errorf("image with only true captions: rank %d", tr[0])
	}
	// One wrong caption tied with the best true one puts it second.
	tr, _ = RetrievalRanks([]float32{0.5, 0.9, 0.9, 0.2, 0, 0, 0, 0}, 2, 4, []int{0, 0, 1, 1})
	if tr[0] != 1 {
		t.Errorf("tie with a wrong caption: rank %d, want 1", tr[0])
	}
	// NaN: a NaN true score loses to everything; a NaN wrong score wins.
	nan := float32(math.NaN())
	tr, ir := RetrievalRanks([]float32{
		nan, 0.1, 0.2,
		0.0, nan, 0.3,
	}, 2, 3, []int{0, 1, 1})
	// image 0: true c0 NaN → both wrong ahead → 2. image 1: best true is
	// c2 0.3 (NaN ignored); wrong c0 0.0 below → 0.
	// c0 (image 0): NaN → image 1 ahead → 1. c1 (image 1): NaN → 1.
	// c2 (image 1): 0.3 vs image 0's 0.2 → 0.
	if !slices.Equal(tr, []int{2, 0}) || !slices.Equal(ir, []int{1, 1, 0}) {
		t.Errorf("NaN ranks %v %v", tr, ir)
	}
}

func TestRetrievalImagesWithoutCaptions(t *testing.T) {
	// Image 1 has no caption: it is a distractor for IR and left out of TR.
	sim := []float32{
		0.9, 0.1,
		0.95, 0.95,
		0.2, 0.8,
	}
	tr, ir := RetrievalRanks(sim, 3, 2, []int{0, 2})
	if !slices.Equal(tr, []int{0, -1, 0}) || !slices.Equal(ir, []int{1, 1}) {
		t.Fatalf("ranks %v %v", tr, ir)
	}
	m := Retrieval(sim, 3, 2, []int{0, 2})
	if m.TR1 != 100 || m.IR1 != 0 || m.IR5 != 100 {
		t.Errorf("metrics %+v", m)
	}
	if (Retrieval(nil, 0, 0, nil) != RetrievalMetrics{}) {
		t.Error("empty input")
	}
}

// bruteRanks is the definition, written out: sort every list by score,
// wrong items before true ones on ties (NaN as +Inf for wrong items and
// -Inf for true ones), and take the position of the first true item.
func bruteRanks(sim []float32, nImg, nTxt int, capImg []int) (tr, ir []int) {
	key := func(s float32, true_ bool) float64 {
		if s != s {
			if true_ {
				return math.Inf(-1)
			}
			return math.Inf(1)
		}
		return float64(s)
	}
	first := func(n int, score func(k int) float32, isTrue func(k int) bool) int {
		idx := make([]int, n)
		for k := range idx {
			idx[k] = k
		}
		sort.SliceStable(idx, func(a, b int) bool {
			ka, kb := key(score(idx[a]), isTrue(idx[a])), key(score(idx[b]), isTrue(idx[b]))
			if ka != kb {
				return ka > kb
			}
			return !isTrue(idx[a]) && isTrue(idx[b])
		})
		for pos, k := range idx {
			if isTrue(k) {
				// Rank = wrong items ahead = position minus true items ahead (none).
				return pos
			}
		}
		return -1
	}
	for i := 0; i < nImg; i++ {
		tr = append(tr, first(nTxt, func(j int) float32 { return sim[i*nTxt+j] }, func(j int) bool { return capImg[j] == i }))
	}
	for j := 0; j < nTxt; j++ {
		ir = append(ir, first(nImg, func(i int) float32 { return sim[i*nTxt+j] }, func(i int) bool { return capImg[j] == i }))
	}
	return tr, ir
}

func TestRetrievalMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 60; trial++ {
		nImg := 1 + rng.IntN(40)
		nTxt := nImg * (1 + rng.IntN(5))
		if trial%7 == 0 {
			nTxt = 1 + rng.IntN(100) // some images without captions
		}
		capImg := make([]int, nTxt)
		for j := range capImg {
			capImg[j] = rng.IntN(nImg)
		}
		levels := 1 + rng.IntN(8) // few levels: many ties
		sim := make([]float32, nImg*nTxt)
		for k := range sim {
			sim[k] = float32(rng.IntN(levels)) / 4
			if trial%5 == 0 && rng.IntN(50) == 0 {
				sim[k] = float32(math.NaN())
			}
		}
		tr, ir := RetrievalRanks(sim, nImg, nTxt, capImg)
		btr, bir := bruteRanks(sim, nImg, nTxt, capImg)
		if !slices.Equal(tr, btr) || !slices.Equal(ir, bir) {
			t.Fatalf("trial %d (%d×%d): ranks differ\ntext  %v\nbrute %v\nimage %v\nbrute %v", trial, nImg, nTxt, tr, btr, ir, bir)
		}
	}
}

func TestRetrievalDeterministicAcrossWorkers(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	nImg, nTxt := 300, 1500
	sim := make([]float32, nImg*nTxt)
	for k := range sim {
		sim[k] = rng.Float32()
	}
	capImg := make([]int, nTxt)
	for j := range capImg {
		capImg[j] = j / 5
	}
	a := Retrieval(sim, nImg, nTxt, capImg)
	prev := runtime.GOMAXPROCS(1)
	b := Retrieval(sim, nImg, nTxt, capImg)
	runtime.GOMAXPROCS(7)
	c := Retrieval(sim, nImg, nTxt, capImg)
	runtime.GOMAXPROCS(prev)
	if a != b || a != c {
		t.Fatalf("metrics depend on GOMAXPROCS: %+v %+v %+v", a, b, c)
	}
	// Random scores: recall@K is about K/nImg for IR.
	if a.IR10 > 10 || a.TR1 > 5 {
		t.Errorf("random scores give %+v", a)
	}
}

func TestRetrievalPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"size":    func() { Retrieval(make([]float32, 5), 2, 3, []int{0, 1, 1}) },
		"links":   func() { Retrieval(make([]float32, 6), 2, 3, []int{0, 1}) },
		"range":   func() { Retrieval(make([]float32, 6), 2, 3, []int{0, 1, 2}) },
		"labels":  func() { Classification(make([]float32, 6), 2, 3, []int{0, 3}) },
		"nlabels": func() { Classification(make([]float32, 6), 2, 3, []int{0}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestClassification(t *testing.T) {
	logits := []float32{
		// 6 classes
		0.1, 0.9, 0.2, 0.3, 0.4, 0.5, // label 1: top → top1
		0.9, 0.8, 0.7, 0.6, 0.5, 0.4, // label 4: rank 4 → top5 only
		0.9, 0.8, 0.7, 0.6, 0.5, 0.4, // label 5: rank 5 → neither
		0.5, 0.5, 0.1, 0.1, 0.1, 0.1, // label 0 tied with class 1: rank 1 → top5
	}
	m := Classification(logits, 4, 6, []int{1, 4, 5, 0})
	if !near(m.Top1, 25) || !near(m.Top5, 75) {
		t.Errorf("got %+v, want top1 25 top5 75", m)
	}
	// Constant logits score zero top-1, and top-5 only with fewer than 6 classes.
	if m := Classification(make([]float32, 20), 2, 10, []int{3, 7}); m.Top1 != 0 || m.Top5 != 0 {
		t.Errorf("constant logits: %+v", m)
	}
	if m := Classification(make([]float32, 6), 2, 3, []int{0, 2}); m.Top1 != 0 || m.Top5 != 100 {
		t.Errorf("3 classes: %+v", m)
	}
	if m := Classification(nil, 0, 5, nil); m != (ClassMetrics{}) {
		t.Errorf("empty: %+v", m)
	}
}

func BenchmarkRetrieval(b *testing.B) {
	nImg, nTxt := 1000, 5000
	rng := rand.New(rand.NewPCG(5, 6))
	sim := make([]float32, nImg*nTxt)
	for k := range sim {
		sim[k] = rng.Float32()
	}
	capImg := make([]int, nTxt)
	for j := range capImg {
		capImg[j] = j / 5
	}
	b.SetBytes(int64(4 * len(sim)))
	for i := 0; i < b.N; i++ {
		Retrieval(sim, nImg, nTxt, capImg)
	}
}
