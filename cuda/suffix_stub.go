//go:build !cuda

package cuda

import (
	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
)

// Suffix runs one tower from any layer on device hidden states (stub).
type Suffix struct{ T, C, E int }

// Layer is an uploaded block of a Suffix (stub).
type Layer struct{}

// States are hidden states on the device (stub).
type States struct{ N, T, C int }

// NewSuffix returns ErrNoCUDA in this build.
func NewSuffix(*Context, *clip.Model, clip.Tower, EncoderOptions) (*Suffix, error) {
	return nil, ErrNoCUDA
}

// MaxBatch returns the most items one pass runs.
func (*Suffix) MaxBatch() int { return 0 }

// Layers returns the model's layers.
func (*Suffix) Layers() []*Layer { return nil }

// Branch returns one branch of the layer.
func (l *Layer) Branch(bool) *Layer { return l }

// PackBlock uploads an edited block.
func (*Suffix) PackBlock(*nn.Block, bool, bool) (*Layer, error) { return nil, ErrNoCUDA }

// Release frees a layer of PackBlock.
func (*Suffix) Release(*Layer) {}

// NewStates allocates hidden states.
func (*Suffix) NewStates(int, int) (*States, error) { return nil, ErrNoCUDA }

// Free releases the states.
func (*States) Free() {}

// EmbedImages writes the embeddings of images into states.
func (*Suffix) EmbedImages(*States, int, []float32, int) error { return ErrNoCUDA }

// EmbedTexts writes the embeddings of texts into states.
func (*Suffix) EmbedTexts(*States, int, *clip.TextBatch) error { return ErrNoCUDA }

// RunLayers runs layers on states.
func (*Suffix) RunLayers(*States, *States, []*Layer) error { return ErrNoCUDA }

// EmbedFrom runs layers on a copy of states and returns the embeddings.
func (*Suffix) EmbedFrom(*States, []*Layer, []int, []float32) error { return ErrNoCUDA }

// Close frees the suffix.
func (*Suffix) Close() error { return ErrNoCUDA }
