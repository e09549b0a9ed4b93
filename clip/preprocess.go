package clip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/mopeclip/mopeclip/clip/imageproc"
)

// ImageConfig returns the image preprocessing of the model: its
// directory's preprocessor_config.json as Load read it, or CLIP's default
// at the model's image size.
func (m *Model) ImageConfig() imageproc.Config {
	if m.Preprocess != nil {
		return *m.Preprocess
	}
	return imageproc.DefaultConfig(m.Config.Vision.ImageSize)
}

// LoadPreprocess returns the image preprocessing of the model directory
// dir without loading its weights: the image size from its config
// (config.json's vision_config.image_size, or open_clip's
// model_cfg.vision_cfg.image_size), then preprocessor_config.json when
// present (see ParsePreprocessorConfig), else open_clip's preprocess_cfg,
// else CLIP's default. Every command that preprocesses images for a model
// goes through this (or Model.ImageConfig, which Load fills from it).
func LoadPreprocess(dir string) (imageproc.Config, error) {
	layout, err := DetectLayout(dir)
	if err != nil {
		return imageproc.Config{}, err
	}
	var size int
	var fallback imageproc.Config
	switch layout {
	case LayoutOpenCLIP:
		oc, err := readOpenCLIPConfig(dir)
		if err != nil {
			return imageproc.Config{}, err
		}
		size = oc.Model.Vision.ImageSize
		if fallback, err = oc.imageConfig(); err != nil {
			return imageproc.Config{}, fmt.Errorf("%s: %w", filepath.Join(dir, OpenCLIPConfigFile), err)
		}
	default:
		cfg, err := LoadConfig(filepath.Join(dir, ConfigFile))
		if err != nil {
			return imageproc.Config{}, err
		}
		size = cfg.Vision.ImageSize
		fallback = imageproc.DefaultConfig(size)
	}
	path := filepath.Join(dir, PreprocessorFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fallback, nil
	}
	if err != nil {
		return imageproc.Config{}, err
	}
	pc, err := ParsePreprocessorConfig(raw, size)
	if err != nil {
		return imageproc.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return pc, nil
}

// ParsePreprocessorConfig reads Hugging Face's CLIPImageProcessor config for
// a model of image size size: image_mean, image_std, crop_size (must be the
// image size), size (shortest_edge: the resize before the crop; height and
// width equal to the image size with do_center_crop false: a direct
// resize, Squash mode; commands' --mode chooses otherwise),
// do_normalize, and the settings the pipeline here implements one way only
// (resample 3 = bicubic, do_rescale with rescale_factor 1/255, do_resize),
// which are errors naming the key when they ask for something else. Other
// keys (processor class names, do_convert_rgb, ...) are ignored.
func ParsePreprocessorConfig(raw []byte, size int) (imageproc.Config, error) {
	cfg := imageproc.DefaultConfig(size)
	var pc struct {
		ImageMean     []float64       `json:"image_mean"`
		ImageStd      []float64       `json:"image_std"`
		CropSize      json.RawMessage `json:"crop_size"`
		Size          json.RawMessage `json:"size"`
		Resample      *int            `json:"resample"`
		DoResize      *bool           `json:"do_resize"`
		DoRescale     *bool           `json:"do_rescale"`
		RescaleFactor *float64        `json:"rescale_factor"`
		DoNormalize   *bool           `json:"do_normalize"`
		DoCenterCrop  *bool           `json:"do_center_crop"`
	}
	if err := json.Unmarshal(raw, &pc); err != nil {
		return cfg, fmt.Errorf("invalid: %w", err)
	}
	for _, v := range []struct {
		key string
		vs  []float64
		dst *[3]float32
	}{{"image_mean", pc.ImageMean, &cfg.Mean}, {"image_std", pc.ImageStd, &cfg.Std}} {
		if v.vs == nil {
			continue
		}
		if len(v.vs) != 3 {
			return cfg, fmt.Errorf("%s has %d values, want 3", v.key, len(v.vs))
		}
		*v.dst = imageproc.F32([3]float64(v.vs))
	}
	if pc.DoNormalize != nil && !*pc.DoNormalize {
		cfg.Mean, cfg.Std = [3]float32{}, [3]float32{1, 1, 1}
	}
	if pc.Resample != nil && *pc.Resample != 3 {
		return cfg, fmt.Errorf("resample %d is not supported (3, bicubic)", *pc.Resample)
	}
	if pc.DoResize != nil && !*pc.DoResize {
		return cfg, fmt.Errorf("do_resize false is not supported (images of any size are resized to the model's %d)", size)
	}
	if pc.DoRescale != nil && !*pc.DoRescale {
		return cfg, fmt.Errorf("do_rescale false is not supported (pixels are scaled to [0, 1])")
	}
	if pc.RescaleFactor != nil && math.Abs(*pc.RescaleFactor-1.0/255) > 1e-9 {
		return cfg, fmt.Errorf("rescale_factor %g is not supported (1/255)", *pc.RescaleFactor)
	}
	if crop, ok, err := hfSize(pc.CropSize, "crop_size"); err != nil {
		return cfg, err
	} else if ok && crop != size {
		return cfg, fmt.Errorf("crop_size %d differs from the model's image size %d", crop, size)
	}
	short, ok, err := hfSize(pc.Size, "size")
	if err != nil {
		return cfg, err
	}
	crop := pc.DoCenterCrop == nil || *pc.DoCenterCrop
	switch {
	case !ok:
	case isHeightWidth(pc.Size) && !crop:
		if short != size {
			return cfg, fmt.Errorf("size %d×%d differs from the model's image size %d", short, short, size)
		}
		cfg.Mode = imageproc.Squash
	case isHeightWidth(pc.Size):
		// A direct resize to height×width before a crop: commands choose
		// between that (--mode squash) and the CLIP transform.
	default:
		if short < size {
			return cfg, fmt.Errorf("size %d is smaller than the crop size %d", short, size)
		}
		if !crop && short != size {
			return cfg, fmt.Errorf("do_center_crop false needs size %d (the image size), got %d", size, short)
		}
		cfg.Resize = short
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// hfSize decodes a CLIPImageProcessor size: an integer, {"shortest_edge": n}
// or {"height": h, "width": w} with h == w.
func hfSize(raw json.RawMessage, key string) (int, bool, error) {
	if len(raw) == 0 || isNull(raw) {
		return 0, false, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, true, nil
	}
	var m struct {
		ShortestEdge *int `json:"shortest_edge"`
		Height       *int `json:"height"`
		Width        *int `json:"width"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return 0, false, fmt.Errorf("%s: %s is neither an integer nor a size object", key, abbrevJSON(raw))
	}
	switch {
	case m.ShortestEdge != nil:
		return *m.ShortestEdge, true, nil
	case m.Height != nil && m.Width != nil:
		if *m.Height != *m.Width {
			return 0, false, fmt.Errorf("%s: %d×%d is not square", key, *m.Width, *m.Height)
		}
		return *m.Height, true, nil
	}
	return 0, false, fmt.Errorf("%s: %s has no shortest_edge or height/width", key, abbrevJSON(raw))
}

func isHeightWidth(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	_, h := m["height"]
	_, se := m["shortest_edge"]
	return h && !se
}
