package grid

import (
	"fmt"
	"math"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/infer"
)

// ImagesPerSecond measures the image-tower throughput of m on the fast
// inference engine (package infer, the runtime a pruned model is deployed
// with): up to 256 images of im in batches of 64, GOMAXPROCS threads, best
// of three passes after a warm-up pass.
func ImagesPerSecond(m *clip.Model, im *dataset.Images) (float64, error) {
	n := min(256, im.N)
	if n == 0 {
		return 0, fmt.Errorf("grid: no images to measure speed on")
	}
	e, err := infer.New(m, infer.Options{})
	if err != nil {
		return 0, err
	}
	defer e.Close()
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	pix := im.Pixels(idx).Data
	per := e.ImageInputLen()
	out := make([]float32, 64*e.EmbedDim())
	pass := func() {
		for lo := 0; lo < n; lo += 64 {
			hi := min(lo+64, n)
			e.EncodeImages(pix[lo*per:hi*per], hi-lo, out)
		}
	}
	pass()
	best := math.Inf(1)
	for range 3 {
		t := time.Now()
		pass()
		best = min(best, time.Since(t).Seconds())
	}
	return float64(n) / best, nil
}
