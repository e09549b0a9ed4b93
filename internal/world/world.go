// Package world is the glue between the built-in shapes world
// (dataset/shapes) and CLIP training: the teacher preset, the BPE vocabulary
// learnt from the training captions, deterministic batch sampling and
// evaluation sets.
//
// Everything here is a pure function of its seeds: the vocabulary of the
// world config, and the batch of training step s of (seed, s), so a run
// resumed from a checkpoint at step k sees the same batches as a straight
// run.
package world

import (
	"fmt"
	"image"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/dataset/shapes"
)

const (
	// TeacherPreset is the name of the shapes teacher architecture.
	TeacherPreset = "shapes-teacher"
	// DeepTeacherPreset is the deep shapes teacher: 12 layers per tower
	// (the paper's depth) of width 64, 4 heads of 16. Its width was chosen
	// by a 20-step training probe next to TeacherPreset
	// (docs/claims-2026-12-06.md): at width 64 a step already costs about
	// what the 4-layer width-128 teacher's does (0.75× its FLOPs, more
	// per-layer overhead), wider ones cost more.
	DeepTeacherPreset = "shapes-teacher-deep"
	// TinyPreset is a very small shapes model for tests.
	TinyPreset = "shapes-tiny"
	// TeacherP8Preset is the teacher with 8-pixel patches (65 image
	// tokens instead of 17, about 4× the vision FLOPs). A 300-step probe
	// learnt colour faster than the patch-16 teacher but not shape; a longer
	// patch-16 run was the fix (assets/shapes-teacher/README.md).
	TeacherP8Preset = "shapes-teacher-p8"
	// VocabSize is the size of the BPE vocabulary learnt from the captions.
	VocabSize = 768
	// Context is the text context length (captions are at most ~25 tokens).
	Context = 32
	// VocabImages is how many training images' captions the vocabulary is
	// learnt from.
	VocabImages = 4000
)

func init() {
	// Teacher: vision ViT 64×64/16 (17 tokens), width 128, 4 layers, 4 heads
	// of 32; text width 128, 4 layers, 4 heads of 32; projection 128. Sized
	// to train in minutes on two shared cores.
	clip.RegisterPreset(TeacherPreset, func() *clip.Config { return Preset(64, 16, 128, 4, 4, 128, 4, 4, 128) })
	clip.RegisterPreset(TeacherP8Preset, func() *clip.Config { return Preset(64, 8, 128, 4, 4, 128, 4, 4, 128) })
	// Deep teacher: the towers of the teacher at 12 layers, width 64, 4
	// heads of 16; projection 64.
	clip.RegisterPreset(DeepTeacherPreset, func() *clip.Config { return Preset(64, 16, 64, 12, 4, 64, 12, 4, 64) })
	// Tiny: for tests (32×32 images, 2 layers, 2 heads per tower).
	clip.RegisterPreset(TinyPreset, func() *clip.Config { return Preset(32, 8, 32, 2, 2, 32, 2, 2, 32) })
}

// Preset returns a shapes-world CLIP config: image size img, patch size
// patch, vision width/layers/heads, text width/layers/heads and the
// projection dimension, with the world's vocabulary and context.
func Preset(img, patch, vw, vl, vh, tw, tl, th, proj int) *clip.Config {
	vocab := VocabSize
	return &clip.Config{
		Vision: clip.TowerConfig{HiddenSize: vw, IntermediateSize: 4 * vw, NumAttentionHeads: vh, NumHiddenLayers: vl,
			HiddenAct: "quick_gelu", LayerNormEps: 1e-5, ImageSize: img, PatchSize: patch, NumChannels: 3},
		Text: clip.TowerConfig{HiddenSize: tw, IntermediateSize: 4 * tw, NumAttentionHeads: th, NumHiddenLayers: tl,
			HiddenAct: "quick_gelu", LayerNormEps: 1e-5, VocabSize: vocab, MaxPositionEmbeddings: Context,
			// The trained vocabulary ends with <|startoftext|>, <|endoftext|>.
			EOSTokenID: vocab - 1, BOSTokenID: vocab - 2, PadTokenID: 0},
		ProjectionDim:       proj,
		LogitScaleInitValue: 2.6592,
		ModelType:           "clip",
		Architectures:       []string{"CLIPModel"},
	}
}

// Captions returns the captions of training images 0..n-1 of the world.
func Captions(cfg shapes.Config, n int) ([]string, error) {
	exs, err := shapes.GenerateRange(cfg, "train", 0, n)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range exs {
		out = append(out, e.Captions...)
	}
	return out, nil
}

// Tokenizer learns the world's BPE vocabulary (VocabSize tokens) from the
// captions of the first VocabImages training images. It is deterministic.
func Tokenizer(cfg shapes.Config) (*tokenizer.Tokenizer, error) {
	caps, err := Captions(cfg, VocabImages)
	if err != nil {
		return nil, err
	}
	return TokenizerFrom(caps, VocabSize)
}

// TokenizerFrom learns a vocabulary of vocabSize tokens from corpus and checks
// it has exactly vocabSize tokens (so it matches the presets).
func TokenizerFrom(corpus []string, vocabSize int) (*tokenizer.Tokenizer, error) {
	tok, err := tokenizer.Train(corpus, vocabSize)
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() != vocabSize {
		return nil, fmt.Errorf("world: the captions only support %d BPE tokens, not %d", tok.VocabSize(), vocabSize)
	}
	return tok, nil
}

// Images is the 8-bit image store of package dataset.
type Images = dataset.Images

// NewImages converts images to size×size RGB8 (dataset.NewImages).
func NewImages(imgs []image.Image, size int) *Images { return dataset.NewImages(imgs, size) }
