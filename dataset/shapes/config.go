package shapes

import (
	"fmt"
	"slices"
)

// Config holds every knob of the world. Start from DefaultConfig and change
// fields: Validate fills the structural fields that are zero (sizes, counts,
// vocabulary sizes) with their defaults, but uses probabilities and noise
// levels as given, so a zero there means "never" or "none".
type Config struct {
	// Seed selects the world. Every example depends only on (Seed, split, index).
	Seed uint64

	// ImageSize is the width and height of the square RGB images, in pixels (default 64).
	ImageSize int
	// Supersample is the number of samples per pixel along each axis for
	// anti-aliasing (default 4, i.e. 16 samples per pixel; 1 turns it off; at most 15).
	Supersample int

	// MinObjects and MaxObjects bound the number of objects per image, drawn
	// uniformly (defaults 1 and 3; at most 5). An object that cannot be placed
	// without overlap is dropped, so a crowded large-object scene can have fewer.
	MinObjects, MaxObjects int
	// Shapes is the shape vocabulary size: the first Shapes entries of
	// AllShapes (default and maximum 10).
	Shapes int
	// Colors is the object colour vocabulary size: the first Colors entries
	// of AllColors (default and maximum 12, minimum 3).
	Colors int

	// RelationProb is the chance that a scene with two or more objects is
	// built around an explicit spatial relation between two of them (left of,
	// right of, above, below, next to). Relations that arise by chance are
	// described too.
	RelationProb float64
	// DuplicateProb is the chance that an object copies the shape, colour and
	// size of the one before it, giving plurals ("two small green stars").
	DuplicateProb float64
	// HardNegativeProb is the chance that an odd-indexed example is a hard
	// negative of the example just before it: the same scene and background
	// with exactly one change (one object's colour, shape or size, or two
	// objects swapping places).
	HardNegativeProb float64

	// Backgrounds are the background styles drawn uniformly (default all five:
	// plain, noise, gradient, stripes, checker).
	Backgrounds []BackgroundStyle
	// NamedBackgroundProb is the chance that a plain or noisy background has a
	// nameable colour from the colour vocabulary (which captions then may
	// mention: "on a blue background"); otherwise it is a muted unnamed tint.
	NamedBackgroundProb float64
	// BackgroundNoise is the amplitude of the noise-style background's pixel
	// noise, as a fraction of the full 0–255 range.
	BackgroundNoise float64
	// Noise is the amplitude of the uniform per-pixel, per-channel noise added
	// to the whole image, objects included (fraction of 0–255).
	Noise float64

	// CaptionsPerImage is the number of captions per image, each from a
	// different template where the scene allows (default 5).
	CaptionsPerImage int

	// TrainSize, ValSize, TestSize and CalibSize are the default number of
	// examples of each split (20000, 1000, 1000, 1000), used when Generate is
	// asked for n <= 0.
	TrainSize, ValSize, TestSize, CalibSize int
}

// DefaultConfig returns the default world.
func DefaultConfig() Config {
	return Config{
		Seed:                1,
		ImageSize:           64,
		Supersample:         4,
		MinObjects:          1,
		MaxObjects:          3,
		Shapes:              len(AllShapes),
		Colors:              len(AllColors),
		RelationProb:        0.5,
		DuplicateProb:       0.15,
		HardNegativeProb:    0.3,
		Backgrounds:         []BackgroundStyle{Plain, Noise, Gradient, Stripes, Checker},
		NamedBackgroundProb: 0.5,
		BackgroundNoise:     0.2,
		Noise:               0.03,
		CaptionsPerImage:    5,
		TrainSize:           20000,
		ValSize:             1000,
		TestSize:            1000,
		CalibSize:           1000,
	}
}

// Splits are the split names, in order.
var Splits = []string{"train", "val", "test", "calib"}

// MaxObjectsLimit is the largest allowed MaxObjects.
const MaxObjectsLimit = 5

// Validate fills zero structural fields with defaults and checks ranges.
func (c *Config) Validate() error {
	d := DefaultConfig()
	fill := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	fill(&c.ImageSize, d.ImageSize)
	fill(&c.Supersample, d.Supersample)
	fill(&c.MinObjects, d.MinObjects)
	fill(&c.MaxObjects, d.MaxObjects)
	fill(&c.Shapes, d.Shapes)
	fill(&c.Colors, d.Colors)
	fill(&c.CaptionsPerImage, d.CaptionsPerImage)
	fill(&c.TrainSize, d.TrainSize)
	fill(&c.ValSize, d.ValSize)
	fill(&c.TestSize, d.TestSize)
	fill(&c.CalibSize, d.CalibSize)
	if len(c.Backgrounds) == 0 {
		c.Backgrounds = d.Backgrounds
	}
	switch {
	case c.ImageSize < 16 || c.ImageSize > 1024:
		return fmt.Errorf("shapes: image size %d outside [16, 1024]", c.ImageSize)
	case c.Supersample < 1 || c.Supersample > 15:
		return fmt.Errorf("shapes: supersample %d outside [1, 15]", c.Supersample)
	case c.MinObjects < 1 || c.MaxObjects < c.MinObjects || c.MaxObjects > MaxObjectsLimit:
		return fmt.Errorf("shapes: objects per image [%d, %d] must satisfy 1 <= min <= max <= %d", c.MinObjects, c.MaxObjects, MaxObjectsLimit)
	case c.Shapes < 1 || c.Shapes > len(AllShapes):
		return fmt.Errorf("shapes: shape vocabulary %d outside [1, %d]", c.Shapes, len(AllShapes))
	case c.Colors < 3 || c.Colors > len(AllColors):
		return fmt.Errorf("shapes: colour vocabulary %d outside [3, %d]", c.Colors, len(AllColors))
	case c.CaptionsPerImage < 1 || c.CaptionsPerImage > 20:
		return fmt.Errorf("shapes: captions per image %d outside [1, 20]", c.CaptionsPerImage)
	case c.TrainSize < 0 || c.ValSize < 0 || c.TestSize < 0 || c.CalibSize < 0:
		return fmt.Errorf("shapes: negative split size")
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"RelationProb", c.RelationProb}, {"DuplicateProb", c.DuplicateProb}, {"HardNegativeProb", c.HardNegativeProb},
		{"NamedBackgroundProb", c.NamedBackgroundProb}, {"BackgroundNoise", c.BackgroundNoise}, {"Noise", c.Noise}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("shapes: %s = %v outside [0, 1]", p.name, p.v)
		}
	}
	for _, s := range c.Backgrounds {
		if s < 0 || s >= numStyles {
			return fmt.Errorf("shapes: unknown background style %d", int(s))
		}
	}
	return nil
}

// SplitSize returns the configured size of a split.
func (c *Config) SplitSize(split string) (int, error) {
	switch split {
	case "train":
		return c.TrainSize, nil
	case "val":
		return c.ValSize, nil
	case "test":
		return c.TestSize, nil
	case "calib":
		return c.CalibSize, nil
	}
	return 0, fmt.Errorf("shapes: unknown split %q (want one of %v)", split, Splits)
}

func validSplit(split string) bool { return slices.Contains(Splits, split) }
