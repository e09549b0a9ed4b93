package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/mopeclip/mopeclip/clip"
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
	case *size < 0 || *size > maxImageSize:
		return fmt.Errorf("%w: --size %d: want a positive size of at most %d pixels", errUsage, *size, maxImageSize)
	case *out == "":
		return fmt.Errorf("%w: need --out FILE.npy", errUsage)
	case len(images) == 0:
		return fmt.Errorf("%w: need at least one --image FILE", errUsage)
	}
	inputs := map[string]string{}
	for i, im := range images {
		inputs[fmt.Sprintf("--image %d (%s)", i+1, im)] = im
	}
	if err := refuseOverwritingInput(*out, inputs, map[string]string{"--model": *model}); err != nil {
		return err
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

// modelPreprocessConfig returns the image preprocessing of model directory
// dir (clip.LoadPreprocess: the image size from its config, mean, std and
// resize from preprocessor_config.json when present).
func modelPreprocessConfig(dir string) (imageproc.Config, error) {
	return clip.LoadPreprocess(dir)
}
