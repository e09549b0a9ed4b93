package cuda

import (
	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
)

// Compile-time proof that Suffix has the same API in both configurations
// (as api.go does for the rest of the package).
var (
	_ func(*Context, *clip.Model, clip.Tower, EncoderOptions) (*Suffix, error) = NewSuffix
	_ func(*Suffix) int                                                        = (*Suffix).MaxBatch
	_ func(*Suffix) []*Layer                                                   = (*Suffix).Layers
	_ func(*Layer, bool) *Layer                                                = (*Layer).Branch
	_ func(*Suffix, *nn.Block, bool, bool) (*Layer, error)                     = (*Suffix).PackBlock
	_ func(*Suffix, *Layer)                                                    = (*Suffix).Release
	_ func(*Suffix, int, int) (*States, error)                                 = (*Suffix).NewStates
	_ func(*States)                                                            = (*States).Free
	_ func(*Suffix, *States, int, []float32, int) error                        = (*Suffix).EmbedImages
	_ func(*Suffix, *States, int, *clip.TextBatch) error                       = (*Suffix).EmbedTexts
	_ func(*Suffix, *States, *States, []*Layer) error                          = (*Suffix).RunLayers
	_ func(*Suffix, *States, []*Layer, []int, []float32) error                 = (*Suffix).EmbedFrom
	_ func(*Suffix) error                                                      = (*Suffix).Close
)
