// Package zeroshot holds the evaluation metrics of zero-shot CLIP: image–text
// retrieval recall at K and classification top-1/top-5 accuracy. It computes
// scores from similarity matrices only; producing them is the model's job.
//
// Ties and NaNs are counted against the model: a true item's rank is the
// number of wrong items whose score is not below it (equal scores, and NaN
// scores of wrong items, rank ahead of the true item; a NaN true score is
// beaten by every wrong item). A model that scores everything the same
// therefore gets recall 0 whenever there are at least K wrong items, rather
// than the perfect recall an optimistic rule would give it.
package zeroshot

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
)

// RetrievalMetrics are recall@K in percent: TR (text retrieval, image →
// captions) and IR (image retrieval, caption → images).
type RetrievalMetrics struct {
	TR1  float64 `json:"tr1"`
	TR5  float64 `json:"tr5"`
	TR10 float64 `json:"tr10"`
	IR1  float64 `json:"ir1"`
	IR5  float64 `json:"ir5"`
	IR10 float64 `json:"ir10"`
}

// Mean is the mean of the six recalls (the "RSUM / 6" of the retrieval literature).
func (m RetrievalMetrics) Mean() float64 {
	return (m.TR1 + m.TR5 + m.TR10 + m.IR1 + m.IR5 + m.IR10) / 6
}

func (m RetrievalMetrics) String() string {
	return fmt.Sprintf("TR@1 %.2f TR@5 %.2f TR@10 %.2f IR@1 %.2f IR@5 %.2f IR@10 %.2f (mean %.2f)",
		m.TR1, m.TR5, m.TR10, m.IR1, m.IR5, m.IR10, m.Mean())
}

// Retrieval computes recall@{1,5,10} from sim, the [nImg, nTxt] row-major
// image–caption similarity matrix, where caption j describes image
// captionImage[j]. TR@K is the share of images whose best-ranked true
// caption is among the top K captions; images without captions are left
// out. IR@K is the share of captions whose image is among the top K images.
// Ties count against the model (see the package comment). Rows are split
// over GOMAXPROCS goroutines; the result does not depend on how.
//
// It panics if the sizes disagree or an entry of captionImage is out of range.
func Retrieval(sim []float32, nImg, nTxt int, captionImage []int) RetrievalMetrics {
	textRank, imageRank := RetrievalRanks(sim, nImg, nTxt, captionImage)
	var m RetrievalMetrics
	m.TR1, m.TR5, m.TR10 = recall(textRank)
	m.IR1, m.IR5, m.IR10 = recall(imageRank)
	return m
}

// recall turns 0-based ranks (negative: left out) into recall@1,5,10 in percent.
func recall(ranks []int) (r1, r5, r10 float64) {
	var n, h1, h5, h10 int
	for _, r := range ranks {
		if r < 0 {
			continue
		}
		n++
		if r < 1 {
			h1++
		}
		if r < 5 {
			h5++
		}
		if r < 10 {
			h10++
		}
	}
	if n == 0 {
		return 0, 0, 0
	}
	p := func(h int) float64 { return 100 * float64(h) / float64(n) }
	return p(h1), p(h5), p(h10)
}

// RetrievalRanks returns the 0-based ranks behind Retrieval: textRank[i] is
// the rank of image i's best true caption among all captions (-1 if image i
// has no caption), imageRank[j] the rank of caption j's image among all
// images. A rank is the number of wrong items scoring at least as high.
func RetrievalRanks(sim []float32, nImg, nTxt int, captionImage []int) (textRank, imageRank []int) {
	if nImg < 0 || nTxt < 0 || len(sim) != nImg*nTxt {
		panic(fmt.Sprintf("zeroshot: similarity matrix has %d entries, want %d×%d", len(sim), nImg, nTxt))
	}
	r := NewRanker(nImg, nTxt, captionImage)
	r.TextRows(0, sim)
	r.ImageRows(0, sim)
	return r.Ranks()
}

// Ranker computes the ranks of RetrievalRanks from blocks of rows of the
// similarity matrix, so that the whole [nImg, nTxt] matrix never needs to
// be held: pass every block of rows to TextRows (which also records each
// caption's own score), then every block again to ImageRows, then call
// Ranks. Blocks may come in any order and sizes; the ranks are those of
// RetrievalRanks on the assembled matrix.
type Ranker struct {
	nImg, nTxt   int
	captionImage []int
	start, own   []int // captions of each image (CSR layout)
	truth        []float32
	textRank     []int
	imageRank    []int
	top          []int // per caption: the first image of highest score
	topScore     []float32
	topSeen      []bool
}

// NewRanker prepares the ranks of an [nImg, nTxt] similarity matrix where
// caption j describes image captionImage[j]. It panics if an entry of
// captionImage is out of range.
func NewRanker(nImg, nTxt int, captionImage []int) *Ranker {
	if nImg < 0 || nTxt < 0 {
		panic(fmt.Sprintf("zeroshot: bad sizes %d×%d", nImg, nTxt))
	}
	if len(captionImage) != nTxt {
		panic(fmt.Sprintf("zeroshot: %d caption-image links for %d captions", len(captionImage), nTxt))
	}
	for j, g := range captionImage {
		if g < 0 || g >= nImg {
			panic(fmt.Sprintf("zeroshot: caption %d belongs to image %d of %d", j, g, nImg))
		}
	}
	start := make([]int, nImg+1)
	for _, g := range captionImage {
		start[g+1]++
	}
	for i := 0; i < nImg; i++ {
		start[i+1] += start[i]
	}
	own := make([]int, nTxt)
	fill := slices.Clone(start[:nImg])
	for j, g := range captionImage {
		own[fill[g]] = j
		fill[g]++
	}
	textRank := make([]int, nImg)
	for i := range textRank {
		if start[i+1] == start[i] {
			textRank[i] = -1
		}
	}
	return &Ranker{nImg: nImg, nTxt: nTxt, captionImage: captionImage, start: start, own: own,
		truth: make([]float32, nTxt), textRank: textRank, imageRank: make([]int, nTxt)}
}

// TrackTop makes ImageRows also find each caption's highest-scoring image
// (the first one on ties), returned by Top.
func (r *Ranker) TrackTop() {
	r.top, r.topScore, r.topSeen = make([]int, r.nTxt), make([]float32, r.nTxt), make([]bool, r.nTxt)
}

func (r *Ranker) checkBlock(lo int, sim []float32) int {
	if r.nTxt == 0 && len(sim) == 0 {
		return 0 // no captions: every text rank is -1 from the start
	}
	if r.nTxt == 0 || len(sim)%r.nTxt != 0 || lo < 0 || lo+len(sim)/r.nTxt > r.nImg {
		panic(fmt.Sprintf("zeroshot: block of %d scores at row %d does not fit %d×%d", len(sim), lo, r.nImg, r.nTxt))
	}
	return len(sim) / r.nTxt
}

// TextRows takes rows [lo, lo+len(sim)/nTxt) of the similarity matrix:
// the text ranks of those images, and the own scores of their captions.
func (r *Ranker) TextRows(lo int, sim []float32) {
	rows := r.checkBlock(lo, sim)
	nTxt := r.nTxt
	for b := 0; b < rows; b++ {
		i := lo + b
		for _, j := range r.own[r.start[i]:r.start[i+1]] {
			r.truth[j] = sim[b*nTxt+j]
		}
	}
	// Text retrieval: one row per image. Count the captions not below the
	// best true score, then take the true ones back out; the counting loop
	// is branch-free, as random scores would defeat branch prediction.
	parallel(rows, func(blo, bhi int) {
		for b := blo; b < bhi; b++ {
			i := lo + b
			mine := r.own[r.start[i]:r.start[i+1]]
			if len(mine) == 0 {
				r.textRank[i] = -1
				continue
			}
			row := sim[b*nTxt : (b+1)*nTxt]
			best, found := float32(0), false
			for _, j := range mine {
				if s := row[j]; s == s && (!found || s > best) {
					best, found = s, true
				}
			}
			if !found { // every true score is NaN: every wrong caption wins
				r.textRank[i] = nTxt - len(mine)
				continue
			}
			r.textRank[i] = countNotBelow(row, best) - countNotBelowAt(row, mine, best)
		}
	})
}

// ImageRows takes rows [lo, lo+len(sim)/nTxt) again, after TextRows has
// seen every row: it counts, for every caption, the images of those rows
// that score at least its own image.
func (r *Ranker) ImageRows(lo int, sim []float32) {
	rows := r.checkBlock(lo, sim)
	nTxt := r.nTxt
	// Columns are split over goroutines, and each walks every row over its
	// own columns, so memory is read in row order. Each caption's own
	// image is counted too (its score is not below itself, NaN included)
	// and taken back out in Ranks.
	parallel(nTxt, func(clo, chi int) {
		cnt := r.imageRank[clo:chi]
		tr := r.truth[clo:chi]
		for b := 0; b < rows; b++ {
			row := sim[b*nTxt+clo : b*nTxt+chi]
			row = row[:len(tr)]
			for k, s := range row {
				cnt[k] += notBelow(s, tr[k])
			}
		}
		if r.top == nil {
			return
		}
		for b := 0; b < rows; b++ {
			row := sim[b*nTxt+clo : b*nTxt+chi]
			for k, s := range row {
				j := clo + k
				if !r.topSeen[j] || s > r.topScore[j] {
					r.top[j], r.topScore[j], r.topSeen[j] = lo+b, s, true
				}
			}
		}
	})
}

// Ranks returns the ranks after every row went through TextRows and
// ImageRows.
func (r *Ranker) Ranks() (textRank, imageRank []int) {
	img := make([]int, r.nTxt)
	for k, c := range r.imageRank {
		img[k] = c - 1
	}
	return r.textRank, img
}

// Top returns each caption's highest-scoring image (TrackTop).
func (r *Ranker) Top() []int { return r.top }

// Metrics returns recall@{1,5,10} from the ranks, as Retrieval does.
func (r *Ranker) Metrics() RetrievalMetrics {
	textRank, imageRank := r.Ranks()
	var m RetrievalMetrics
	m.TR1, m.TR5, m.TR10 = recall(textRank)
	m.IR1, m.IR5, m.IR10 = recall(imageRank)
	return m
}

// notBelow is 1 when s is not below t: s >= t, or either is NaN.
func notBelow(s, t float32) int {
	v := 0
	if !(s < t) {
		v = 1
	}
	return v
}

func countNotBelow(row []float32, t float32) int {
	n := 0
	for _, s := range row {
		n += notBelow(s, t)
	}
	return n
}

func countNotBelowAt(row []float32, idx []int, t float32) int {
	n := 0
	for _, j := range idx {
		n += notBelow(row[j], t)
	}
	return n
}

// parallel runs f over [0, n) in contiguous chunks on GOMAXPROCS goroutines.
func parallel(n int, f func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n/64+1)
	if workers <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}

// ClassMetrics are classification accuracies in percent.
type ClassMetrics struct {
	Top1 float64 `json:"top1"`
	Top5 float64 `json:"top5"`
	// MeanClassRecall is the top-1 recall of each class that has images,
	// averaged over those classes (CLIP_benchmark's mean_per_class_recall).
	MeanClassRecall float64 `json:"mean_class_recall"`
}

// Classification computes top-1 and top-5 accuracy from logits, the
// [n, classes] row-major score matrix, and the true labels. Ties count
// against the model (see the package comment). It panics if the sizes
// disagree or a label is out of range.
func Classification(logits []float32, n, classes int, labels []int) ClassMetrics {
	if n < 0 || classes < 0 || len(logits) != n*classes {
		panic(fmt.Sprintf("zeroshot: logits have %d entries, want %d×%d", len(logits), n, classes))
	}
	c := NewClassCounter(classes)
	c.Rows(logits, labels)
	return c.Metrics()
}

// ClassCounter accumulates classification metrics over blocks of rows of
// the score matrix, so that it is never held whole.
type ClassCounter struct {
	classes    int
	ranks      []int // rank of the true class, per row seen
	perClass   []int
	perClassOK []int
}

// NewClassCounter counts for a classifier over classes classes.
func NewClassCounter(classes int) *ClassCounter {
	return &ClassCounter{classes: classes, perClass: make([]int, classes), perClassOK: make([]int, classes)}
}

// Rows takes a block of rows: logits [len(labels), classes] and the true
// labels. It panics if the sizes disagree or a label is out of range.
func (c *ClassCounter) Rows(logits []float32, labels []int) {
	n, classes := len(labels), c.classes
	if len(logits) != n*classes {
		panic(fmt.Sprintf("zeroshot: logits have %d entries, want %d×%d", len(logits), n, classes))
	}
	for i, y := range labels {
		if y < 0 || y >= classes {
			panic(fmt.Sprintf("zeroshot: label %d of row %d outside [0, %d)", y, i, classes))
		}
	}
	ranks := make([]int, n)
	parallel(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			y := labels[i]
			row := logits[i*classes : (i+1)*classes]
			t, rank := row[y], 0
			for k, s := range row {
				if k != y && !(s < t) {
					rank++
				}
			}
			ranks[i] = rank
		}
	})
	for i, y := range labels {
		c.perClass[y]++
		if ranks[i] == 0 {
			c.perClassOK[y]++
		}
	}
	c.ranks = append(c.ranks, ranks...)
}

// Metrics returns the metrics of the rows seen.
func (c *ClassCounter) Metrics() ClassMetrics {
	r1, r5, _ := recall(c.ranks)
	var sum float64
	present := 0
	for k, n := range c.perClass {
		if n > 0 {
			sum += float64(c.perClassOK[k]) / float64(n)
			present++
		}
	}
	m := ClassMetrics{Top1: r1, Top5: r5}
	if present > 0 {
		m.MeanClassRecall = 100 * sum / float64(present)
	}
	return m
}
