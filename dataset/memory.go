package dataset

import (
	"context"
	"fmt"
	"image"
	"runtime"
	"sync"

	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/tensor"
)

// Images holds n images of one size as packed 8-bit RGB: the CLIP input
// after resizing and cropping, before normalisation (3·S·S bytes each, a
// quarter of float32 pixels; 20,000 images of 64×64 are 245 MB). Normalising
// on use gives exactly the float32 input, since the resize output is 8-bit.
type Images struct {
	Size int
	Pix  []uint8 // [n, S, S, 3]
	N    int
	// Pre is the model's preprocessing (resize before the crop, mean and
	// std, e.g. from its preprocessor_config.json); nil means CLIP's
	// default at Size.
	Pre *imageproc.Config
}

// config returns the preprocessing of the images.
func (im *Images) config() imageproc.Config {
	if im.Pre != nil {
		return *im.Pre
	}
	return imageproc.DefaultConfig(im.Size)
}

// Pairs is an image–caption set kept in memory: images as 8-bit RGB crops
// and each image's captions. Training (distillation, pretraining) and
// calibration read such sets many times.
type Pairs struct {
	Images   *Images
	Captions [][]string // per image
}

// Len is the number of images.
func (p *Pairs) Len() int { return len(p.Captions) }

// Flat returns all captions in order and the image of each.
func (p *Pairs) Flat() (captions []string, captionImage []int) {
	for i, cs := range p.Captions {
		for _, c := range cs {
			captions = append(captions, c)
			captionImage = append(captionImage, i)
		}
	}
	return captions, captionImage
}

// NewImages converts images to size×size RGB8 (resizing with the CLIP
// pipeline when they are of another size).
func NewImages(imgs []image.Image, size int) *Images {
	return NewImagesWith(imgs, imageproc.DefaultConfig(size))
}

// NewImagesWith is NewImages with a model's preprocessing pc (its resize
// and crop now, its mean and std when normalising).
func NewImagesWith(imgs []image.Image, pc imageproc.Config) *Images {
	size := pc.Size
	st := 3 * size * size
	out := &Images{Size: size, N: len(imgs), Pix: make([]uint8, len(imgs)*st), Pre: &pc}
	parallelFor(len(imgs), func(i int) {
		copy(out.Pix[i*st:(i+1)*st], imageproc.Prepare(imgs[i], pc).Pix)
	})
	return out
}

// LoadPairs reads every record of d into memory as Pairs at size×size
// (CLIP resize and centre crop): images are decoded on a pool of workers
// and only the 8-bit crop is kept, so memory is 3·size² bytes an image
// whatever the files' resolution.
func LoadPairs(ctx context.Context, d *Dataset, size int) (*Pairs, error) {
	return LoadPairsWith(ctx, d, imageproc.DefaultConfig(size))
}

// LoadPairsWith is LoadPairs with a model's preprocessing pc.
func LoadPairsWith(ctx context.Context, d *Dataset, pc imageproc.Config) (*Pairs, error) {
	size := pc.Size
	st := 3 * size * size
	p := &Pairs{Images: &Images{Size: size, Pre: &pc}}
	err := Stream(ctx, d, StreamOptions{}, func(r *Record) (*imageproc.RGB8, error) { return Prepared(r, pc) },
		func(r Record, img *imageproc.RGB8) error {
			p.Images.Pix = append(p.Images.Pix, img.Pix[:st]...)
			p.Images.N++
			p.Captions = append(p.Captions, r.Captions)
			return nil
		})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// NormalizeInto writes the normalised [hi-lo, 3, S, S] input of images
// [lo, hi) to dst (CLIP's mean and standard deviation), as Pixels does.
func (im *Images) NormalizeInto(dst []float32, lo, hi int) {
	n := im.Size * im.Size
	if lo < 0 || hi > im.N || lo > hi || len(dst) < (hi-lo)*3*n {
		panic(fmt.Sprintf("dataset: images [%d,%d) of %d into %d values", lo, hi, im.N, len(dst)))
	}
	pc := im.config()
	for b := 0; b < hi-lo; b++ {
		normalizeOne(dst[b*3*n:(b+1)*3*n], im.Pix[(lo+b)*3*n:(lo+b+1)*3*n], n, pc.Mean, pc.Std)
	}
}

func normalizeOne(dst []float32, src []uint8, n int, mean, std [3]float32) {
	for c := range 3 {
		m, s := mean[c], std[c]
		d := dst[c*n : (c+1)*n]
		for k := range d {
			d[k] = (float32(src[3*k+c])/255 - m) / s
		}
	}
}

// Pixels returns the normalised [len(idx), 3, S, S] tensor of images idx
// (CLIP's mean and standard deviation).
func (im *Images) Pixels(idx []int) *tensor.Tensor {
	S := im.Size
	n := S * S
	t := tensor.New(len(idx), 3, S, S)
	pc := im.config()
	mean, std := pc.Mean, pc.Std
	for b, i := range idx {
		normalizeOne(t.Data[b*3*n:(b+1)*3*n], im.Pix[i*3*n:(i+1)*3*n], n, mean, std)
	}
	return t
}

// parallelFor runs f(0..n-1) on GOMAXPROCS goroutines.
func parallelFor(n int, f func(i int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	for g := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += w {
				f(i)
			}
		}()
	}
	wg.Wait()
}
