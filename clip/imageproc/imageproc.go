// Package imageproc turns image files into CLIP input tensors exactly as the
// reference Python pipeline does: Pillow decodes and converts to RGB,
// torchvision's Resize(S, BICUBIC) resizes the shorter side to S with
// Pillow's bicubic filter, CenterCrop(S) crops, ToTensor scales to [0, 1] and
// Normalize applies the CLIP mean and standard deviation.
//
// PNG decoding and everything after decoding are bit-exact with Pillow. JPEG
// colour follows libjpeg(-turbo), which Pillow uses: fancy chroma upsampling
// and fixed-point YCbCr→RGB (see YCbCrToRGB8); the residual difference comes
// from Go's IDCT, which is not libjpeg's islow IDCT (typically well under one
// level on average, a few levels at most).
//
// The pipeline is RGB conversion first, then resize and crop, as Hugging
// Face's CLIPImageProcessor does (do_convert_rgb). OpenAI's clip.load
// transform converts after resizing; the two agree for RGB, L and JPEG
// inputs but not for paletted (Pillow resizes "P" with NEAREST) or
// translucent RGBA images.
package imageproc

import (
	"fmt"
	"image"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// Mode selects how an image is brought to Size×Size.
type Mode int

const (
	// ResizeCrop resizes the shorter side to Config.Resize (default Size),
	// the longer side to int(Resize·long/short), and center-crops Size×Size
	// (torchvision Resize + CenterCrop, the CLIP evaluation transform).
	ResizeCrop Mode = iota
	// Squash resizes both sides to Size, ignoring the aspect ratio (as UPop
	// evaluates).
	Squash
)

// String returns the command-line name of m.
func (m Mode) String() string {
	switch m {
	case ResizeCrop:
		return "resize-crop"
	case Squash:
		return "squash"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses "resize-crop" (also "resize_crop", "crop", "center-crop")
// or "squash".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "resize-crop", "resize_crop", "crop", "center-crop", "center_crop":
		return ResizeCrop, nil
	case "squash":
		return Squash, nil
	}
	return 0, fmt.Errorf("imageproc: unknown mode %q (want resize-crop or squash)", s)
}

// CLIP's normalisation constants (OpenAI CLIP, Hugging Face
// CLIPImageProcessor image_mean / image_std).
var (
	CLIPMean = [3]float64{0.48145466, 0.4578275, 0.40821073}
	CLIPStd  = [3]float64{0.26862954, 0.26130258, 0.27577711}
)

// Config describes the preprocessing.
type Config struct {
	// Size is the output height and width.
	Size int
	// Resize is the shorter-side length before the center crop in
	// ResizeCrop mode; 0 means Size. It must be at least Size.
	Resize int
	// Mean and Std normalise each channel: (v/255 − Mean) / Std, in float32.
	Mean, Std [3]float32
	Mode      Mode
}

// DefaultConfig returns the CLIP preprocessing for size×size inputs.
func DefaultConfig(size int) Config {
	return Config{Size: size, Mean: F32(CLIPMean), Std: F32(CLIPStd), Mode: ResizeCrop}
}

// F32 rounds float64 values to float32 at run time, the way torch turns
// Python floats into a float32 tensor (double rounding included).
func F32(v [3]float64) [3]float32 {
	var r [3]float32
	for i, x := range v {
		r[i] = float32(x)
	}
	return r
}

// Validate reports what is wrong with c, if anything.
func (c Config) Validate() error {
	if c.Size <= 0 {
		return fmt.Errorf("imageproc: size %d must be positive", c.Size)
	}
	if c.Resize != 0 && c.Resize < c.Size {
		return fmt.Errorf("imageproc: resize %d is smaller than the crop size %d", c.Resize, c.Size)
	}
	if c.Mode != ResizeCrop && c.Mode != Squash {
		return fmt.Errorf("imageproc: unknown mode %d", int(c.Mode))
	}
	for i, s := range c.Std {
		if !(s > 0 || s < 0) {
			return fmt.Errorf("imageproc: std[%d] = %v must be nonzero", i, s)
		}
	}
	return nil
}

// ResizedSize is torchvision's Resize(s) output size for a w×h image: the
// shorter side becomes s and the longer int(s·long/short), truncated.
func ResizedSize(w, h, s int) (int, int) {
	if w <= h {
		return s, int(float64(s*h) / float64(w))
	}
	return int(float64(s*w) / float64(h)), s
}

// CropOffset is torchvision's CenterCrop offset along one axis:
// round((n − size)/2) with Python's round-half-to-even, so an excess of 1
// gives 0 and an excess of 3 gives 2.
func CropOffset(n, size int) int {
	return int(math.RoundToEven(float64(n-size) / 2))
}

// Prepare converts img to RGB and resizes (and, in ResizeCrop mode, crops)
// it to cfg.Size×cfg.Size: the 8-bit image that ToTensor would see. It
// panics if cfg is invalid or img is empty. When no resize is needed the
// result may share memory with img (if img is an *RGB8).
func Prepare(img image.Image, cfg Config) *RGB8 {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	src := ToRGB8(img)
	if src.Width <= 0 || src.Height <= 0 {
		panic("imageproc: empty image")
	}
	s := cfg.Size
	if cfg.Mode == Squash {
		if src.Width == s && src.Height == s {
			return src
		}
		return resizeWindow(src, s, s, 0, 0, s, s)
	}
	r := cfg.Resize
	if r == 0 {
		r = s
	}
	w, h := ResizedSize(src.Width, src.Height, r)
	return resizeWindow(src, w, h, CropOffset(w, s), CropOffset(h, s), s, s)
}

// Normalize returns img as a float32 [3, H, W] tensor (CHW): v/255, then
// (x − mean)/std per channel, in float32 arithmetic as torchvision's
// ToTensor and Normalize compute it.
func Normalize(img *RGB8, mean, std [3]float32) []float32 {
	n := img.Width * img.Height
	out := make([]float32, 3*n)
	normalizeInto(out, img, mean, std)
	return out
}

func normalizeInto(out []float32, img *RGB8, mean, std [3]float32) {
	n := img.Width * img.Height
	for c := range 3 {
		m, s := mean[c], std[c]
		dst := out[c*n : (c+1)*n]
		for i := range dst {
			x := float32(img.Pix[3*i+c]) / 255
			dst[i] = (x - m) / s
		}
	}
}

// Preprocess returns img as a normalised float32 [3, Size, Size] tensor. It
// panics if cfg is invalid (see Config.Validate) or img is empty.
func Preprocess(img image.Image, cfg Config) []float32 {
	return Normalize(Prepare(img, cfg), cfg.Mean, cfg.Std)
}

// LoadPreprocessed loads the image file at path and preprocesses it.
func LoadPreprocessed(path string, cfg Config) ([]float32, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	img, err := Load(path)
	if err != nil {
		return nil, err
	}
	return Preprocess(img, cfg), nil
}

// Batch loads and preprocesses the files in paths into one float32
// [N, 3, Size, Size] tensor, using up to GOMAXPROCS goroutines. The result
// does not depend on the scheduling. If any file fails, Batch returns the
// error of the first failing path (in paths order), noting how many failed.
func Batch(paths []string, cfg Config) ([]float32, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	per := 3 * cfg.Size * cfg.Size
	out := make([]float32, len(paths)*per)
	errs := make([]error, len(paths))
	workers := min(runtime.GOMAXPROCS(0), len(paths))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(paths) {
					return
				}
				img, err := Load(paths[i])
				if err != nil {
					errs[i] = err
					continue
				}
				normalizeInto(out[i*per:(i+1)*per], Prepare(img, cfg), cfg.Mean, cfg.Std)
			}
		}()
	}
	wg.Wait()
	var first error
	failed := 0
	for _, err := range errs {
		if err != nil {
			if first == nil {
				first = err
			}
			failed++
		}
	}
	if failed == 1 {
		return nil, first
	}
	if failed > 1 {
		return nil, fmt.Errorf("%w (and %d more of %d images failed)", first, failed-1, len(paths))
	}
	return out, nil
}
