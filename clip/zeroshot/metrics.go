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
	if len(captionImage) != nTxt {
		panic(fmt.Sprintf("zeroshot: %d caption-image links for %d captions", len(captionImage), nTxt))
	}
	hasCaption := make([]bool, nImg)
	for j, g := range captionImage {
		if g < 0 || g >= nImg {
			panic(fmt.Sprintf("zeroshot: caption %d belongs to image %d of %d", j, g, nImg))
		}
		hasCaption[g] = true
	}

	// Captions of each image (CSR layout).
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

	// Text retrieval: one row per image. Count the captions not below the
	// best true score, then take the true ones back out; the counting loop
	// is branch-free, as random scores would defeat branch prediction.
	textRank = make([]int, nImg)
	parallel(nImg, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			mine := own[start[i]:start[i+1]]
			if len(mine) == 0 {
				textRank[i] = -1
				continue
			}
			row := sim[i*nTxt : (i+1)*nTxt]
			best, found := float32(0), false
			for _, j := range mine {
				if s := row[j]; s == s && (!found || s > best) {
					best, found = s, true
				}
			}
			if !found { // every true score is NaN: every wrong caption wins
				textRank[i] = nTxt - len(mine)
				continue
			}
			textRank[i] = countNotBelow(row, best) - countNotBelowAt(row, mine, best)
		}
	})

	// Image retrieval: columns are split over goroutines, and each walks
	// every row over its own columns, so memory is read in row order. Each
	// caption's own image is counted too (its score is not below itself,
	// NaN included) and taken back out at the end.
	imageRank = make([]int, nTxt)
	truth := make([]float32, nTxt)
	for j, g := range captionImage {
		truth[j] = sim[g*nTxt+j]
	}
	parallel(nTxt, func(lo, hi int) {
		cnt := imageRank[lo:hi]
		tr := truth[lo:hi]
		for i := 0; i < nImg; i++ {
			row := sim[i*nTxt+lo : i*nTxt+hi]
			row = row[:len(tr)]
			for k, s := range row {
				cnt[k] += notBelow(s, tr[k])
			}
		}
		for k := range cnt {
			cnt[k]--
		}
	})
	return textRank, imageRank
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
}

// Classification computes top-1 and top-5 accuracy from logits, the
// [n, classes] row-major score matrix, and the true labels. Ties count
// against the model (see the package comment). It panics if the sizes
// disagree or a label is out of range.
func Classification(logits []float32, n, classes int, labels []int) ClassMetrics {
	if n < 0 || classes < 0 || len(logits) != n*classes {
		panic(fmt.Sprintf("zeroshot: logits have %d entries, want %d×%d", len(logits), n, classes))
	}
	if len(labels) != n {
		panic(fmt.Sprintf("zeroshot: %d labels for %d rows", len(labels), n))
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
	r1, r5, _ := recall(ranks)
	return ClassMetrics{Top1: r1, Top5: r5}
}
