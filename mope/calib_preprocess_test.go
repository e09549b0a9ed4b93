package mope

import (
	"image"
	"image/color"
	"slices"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
)

// Calibration preprocesses images as the model's preprocessor_config.json
// says (Model.ImageConfig), not with built-in defaults.
func TestCalibHonoursModelPreprocessing(t *testing.T) {
	cfg, _ := clip.Preset("tiny")
	m, err := clip.New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	S := cfg.Vision.ImageSize
	img := image.NewRGBA(image.Rect(0, 0, S+9, S))
	for y := 0; y < S; y++ {
		for x := 0; x < S+9; x++ {
			img.Set(x, y, color.RGBA{uint8(7 * x), uint8(5 * y), uint8(x + y), 255})
		}
	}
	tok, err := tokenizer.Train([]string{"a red square", "a blue circle"}, 540)
	if err != nil {
		t.Fatal(err)
	}
	pc := imageproc.DefaultConfig(S)
	pc.Resize, pc.Mean, pc.Std = S+4, [3]float32{0.5, 0.25, 0.75}, [3]float32{0.2, 0.3, 0.4}
	m.Preprocess = &pc
	c, err := NewCalib(m, []image.Image{img}, []string{"a red square"}, []int{0}, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Pixels(0, 1), imageproc.Preprocess(img, pc); !slices.Equal(got, want) {
		t.Fatal("calibration pixels do not follow the model's preprocessing")
	}
	m.Preprocess = nil
	d, _ := NewCalib(m, []image.Image{img}, []string{"a red square"}, []int{0}, tok)
	if slices.Equal(d.Pixels(0, 1), c.Pixels(0, 1)) {
		t.Fatal("preprocessing made no difference")
	}
}
