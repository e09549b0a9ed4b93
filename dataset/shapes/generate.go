package shapes

import (
	"fmt"
	"image"
	"runtime"
	"sync"
	"sync/atomic"
)

// Example is one image of the world with its captions and ground truth.
type Example struct {
	// ID is "shapes-<split>-<index, 6 digits>".
	ID    string
	Split string
	Index int
	// Image is opaque RGB (alpha is always 255).
	Image    *image.RGBA
	Captions []string
	Objects  []Object
	// Background is how the background was painted.
	Background Background
	// TwinOf is the index (same split) of the example this one is a hard
	// negative of, or -1; Change says what differs: "color", "shape",
	// "size" (one object) or "swap" (two objects exchanged places).
	TwinOf int
	Change string
}

// Generate returns examples 0..n-1 of a split; n <= 0 means the split's
// configured size. Indices beyond the configured size are valid too.
func Generate(cfg Config, split string, n int) ([]Example, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if n <= 0 {
		var err error
		if n, err = cfg.SplitSize(split); err != nil {
			return nil, err
		}
	}
	return GenerateRange(cfg, split, 0, n)
}

// GenerateRange returns examples start..start+n-1 of a split. Every example
// depends only on (cfg, split, index), so ranges can be generated in any
// order, in parallel, and concatenated. The work is spread over GOMAXPROCS
// goroutines; the result does not depend on how.
func GenerateRange(cfg Config, split string, start, n int) ([]Example, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !validSplit(split) {
		return nil, fmt.Errorf("shapes: unknown split %q (want one of %v)", split, Splits)
	}
	if start < 0 || n < 0 {
		return nil, fmt.Errorf("shapes: bad range start=%d n=%d", start, n)
	}
	out := make([]Example, n)
	sk := splitKey(split)
	workers := min(runtime.GOMAXPROCS(0), (n+15)/16)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var z rasterizer
			for {
				lo := int(next.Add(16)) - 16
				if lo >= n {
					return
				}
				for i := lo; i < min(n, lo+16); i++ {
					out[i] = z.example(&cfg, split, sk, start+i)
				}
			}
		}()
	}
	wg.Wait()
	return out, nil
}

func (z *rasterizer) example(cfg *Config, split string, sk uint64, index int) Example {
	sc := sceneFor(cfg, sk, index)
	img := z.render(cfg, &sc, newRNG(cfg.Seed, sk, uint64(index), 3))
	return Example{
		ID:         fmt.Sprintf("shapes-%s-%06d", split, index),
		Split:      split,
		Index:      index,
		Image:      img,
		Captions:   captions(cfg, &sc, newRNG(cfg.Seed, sk, uint64(index), 4)),
		Objects:    sc.objects,
		Background: sc.bg,
		TwinOf:     sc.twinOf,
		Change:     sc.change,
	}
}

// Flatten lays examples out for retrieval: the images in order, all captions
// in order, and for each caption the position of its image.
func Flatten(examples []Example) (images []*image.RGBA, captions []string, captionImage []int) {
	images = make([]*image.RGBA, len(examples))
	for i, e := range examples {
		images[i] = e.Image
		for _, c := range e.Captions {
			captions = append(captions, c)
			captionImage = append(captionImage, i)
		}
	}
	return images, captions, captionImage
}
