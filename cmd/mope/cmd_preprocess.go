package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mopeclip/mopeclip/clip/imageproc"
)

func init() {
	register(&command{
		name:    "preprocess",
		summary: "decode, resize, crop and normalise images into a CLIP input tensor (.npy, float32 [N,3,S,S])",
		usage:   "(--model DIR | --size S) --image FILE [--image FILE]... --out FILE.npy [--mode resize-crop|squash]",
		run:     runPreprocess,
	})
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

func runPreprocess(args []string, stdout, stderr io.Writer) error {
	c := commands["preprocess"]
	fl := newFlags(c, stderr)
	model := modelFlag(fl, "model `DIR`: S from config.json (vision_config.image_size); mean, std and resize from preprocessor_config.json if present")
	size := fl.Int("size", 0, "output size `S` with CLIP's mean/std (instead of --model)")
	modeName := fl.String("mode", "resize-crop", "resize-crop: shorter side to S, center crop S×S (CLIP); squash: resize to S×S (UPop)")
	out := outFlag(fl, "", "output `FILE.npy` (float32 [N,3,S,S], C order)")
	var images stringList
	fl.Var(&images, "image", "input PNG or JPEG `FILE` (repeatable; further files may follow the flags)")
	// Image files may also be given as arguments, before, between or after
	// the flags (so that --image *.jpg works); "--" ends the flags.
	for rest := args; ; {
		if err := parseFlags(fl, rest); err != nil {
			return err
		}
		left := fl.Args()
		if len(left) == 0 {
			break
		}
		if n := len(rest) - len(left); n > 0 && rest[n-1] == "--" {
			images = append(images, left...)
			break
		}
		images = append(images, left[0])
		rest = left[1:]
	}

	switch {
	case *model == "" && *size == 0:
		return fmt.Errorf("%w: need --model DIR or --size S", errUsage)
	case *model != "" && *size != 0:
		return fmt.Errorf("%w: give --model or --size, not both", errUsage)
	case *size < 0:
		return fmt.Errorf("%w: --size %d must be positive", errUsage, *size)
	case *out == "":
		return fmt.Errorf("%w: need --out FILE.npy", errUsage)
	case len(images) == 0:
		return fmt.Errorf("%w: need at least one --image FILE", errUsage)
	}
	mode, err := imageproc.ParseMode(*modeName)
	if err != nil {
		return fmt.Errorf("%w: --mode %q: want resize-crop or squash", errUsage, *modeName)
	}

	var cfg imageproc.Config
	if *model != "" {
		if cfg, err = modelPreprocessConfig(*model); err != nil {
			return err
		}
	} else {
		cfg = imageproc.DefaultConfig(*size)
	}
	cfg.Mode = mode
	if err := cfg.Validate(); err != nil {
		return err
	}

	data, err := imageproc.Batch(images, cfg)
	if err != nil {
		return err
	}
	shape := []int{len(images), 3, cfg.Size, cfg.Size}
	if err := imageproc.WriteNPY(*out, data, shape); err != nil {
		return err
	}
	resize := ""
	if cfg.Mode == imageproc.ResizeCrop && cfg.Resize != 0 && cfg.Resize != cfg.Size {
		resize = fmt.Sprintf(", shorter side %d", cfg.Resize)
	}
	fmt.Fprintf(stdout, "wrote %s: float32 %v (%s%s, mean %v, std %v)\n", *out, shape, cfg.Mode, resize, cfg.Mean, cfg.Std)
	return nil
}

// modelPreprocessConfig reads the image size from DIR/config.json
// (vision_config.image_size) and, if DIR/preprocessor_config.json exists,
// the Hugging Face CLIPImageProcessor keys image_mean, image_std, crop_size
// and size (shortest_edge). Only these keys are read.
func modelPreprocessConfig(dir string) (imageproc.Config, error) {
	var cfg imageproc.Config
	path := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	var mc struct {
		VisionConfig *struct {
			ImageSize *int `json:"image_size"`
		} `json:"vision_config"`
	}
	if err := json.Unmarshal(raw, &mc); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	if mc.VisionConfig == nil {
		return cfg, fmt.Errorf("%s: no vision_config (not a CLIP model config?)", path)
	}
	size := 224 // Hugging Face CLIPVisionConfig's default, omitted from diff-saved configs
	if mc.VisionConfig.ImageSize != nil {
		size = *mc.VisionConfig.ImageSize
	}
	if size <= 0 {
		return cfg, fmt.Errorf("%s: vision_config.image_size %d must be positive", path, size)
	}
	cfg = imageproc.DefaultConfig(size)

	path = filepath.Join(dir, "preprocessor_config.json")
	raw, err = os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, err
	}
	var pc struct {
		ImageMean []float64       `json:"image_mean"`
		ImageStd  []float64       `json:"image_std"`
		CropSize  json.RawMessage `json:"crop_size"`
		Size      json.RawMessage `json:"size"`
	}
	if err := json.Unmarshal(raw, &pc); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	if pc.ImageMean != nil {
		if len(pc.ImageMean) != 3 {
			return cfg, fmt.Errorf("%s: image_mean has %d values, want 3", path, len(pc.ImageMean))
		}
		cfg.Mean = imageproc.F32([3]float64(pc.ImageMean))
	}
	if pc.ImageStd != nil {
		if len(pc.ImageStd) != 3 {
			return cfg, fmt.Errorf("%s: image_std has %d values, want 3", path, len(pc.ImageStd))
		}
		cfg.Std = imageproc.F32([3]float64(pc.ImageStd))
	}
	if crop, ok, err := hfSize(pc.CropSize, "crop_size"); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	} else if ok && crop != size {
		return cfg, fmt.Errorf("%s: crop_size %d differs from config.json's vision_config.image_size %d", path, crop, size)
	}
	// size as {"height", "width"} means a direct resize in Hugging Face's
	// processor; --mode decides that here, so only a shortest edge is used.
	if short, ok, err := hfSize(pc.Size, "size"); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	} else if ok && !isHeightWidth(pc.Size) {
		if short < size {
			return cfg, fmt.Errorf("%s: size %d is smaller than the crop size %d", path, short, size)
		}
		cfg.Resize = short
	}
	return cfg, nil
}

// hfSize decodes a CLIPImageProcessor size: an integer, {"shortest_edge": n}
// or {"height": h, "width": w} with h == w.
func hfSize(raw json.RawMessage, key string) (int, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
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
		return 0, false, fmt.Errorf("%s: %s is neither an integer nor a size object", key, raw)
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
	return 0, false, fmt.Errorf("%s: %s has no shortest_edge or height/width", key, raw)
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
