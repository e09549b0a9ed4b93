//go:build !cuda

package cuda

import (
	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/ops"
)

// The stubs of a build without the cuda tag: every constructor returns
// ErrNoCUDA; methods on the (never constructed) values return it too.

// Context is an open device (stub).
type Context struct{}

// Open returns ErrNoCUDA in this build.
func Open(Options) (*Context, error) { return nil, ErrNoCUDA }

// Close releases the context.
func (*Context) Close() error { return ErrNoCUDA }

// Info describes the device.
func (*Context) Info() DeviceInfo { return DeviceInfo{} }

// HasCublas reports whether cuBLAS was loaded.
func (*Context) HasCublas() bool { return false }

// Alloc allocates n float32 on the device.
func (*Context) Alloc(int) (*DeviceBuffer, error) { return nil, ErrNoCUDA }

// Synchronize waits for the work queued on the context's stream.
func (*Context) Synchronize() error { return ErrNoCUDA }

// NewTimer returns an event pair for timing the context's stream.
func (*Context) NewTimer() (*Timer, error) { return nil, ErrNoCUDA }

// DeviceBuffer is n float32 in device memory (stub).
type DeviceBuffer struct{}

// Len returns the number of float32.
func (*DeviceBuffer) Len() int { return 0 }

// Upload copies x to the start of the buffer.
func (*DeviceBuffer) Upload([]float32) error { return ErrNoCUDA }

// Download copies the start of the buffer to dst.
func (*DeviceBuffer) Download([]float32) error { return ErrNoCUDA }

// Free releases the buffer.
func (*DeviceBuffer) Free() {}

// Timer measures device time on the context's stream (stub).
type Timer struct{}

// Start records the start event.
func (*Timer) Start() error { return ErrNoCUDA }

// Stop records the end event, waits for it and returns the milliseconds.
func (*Timer) Stop() (float64, error) { return 0, ErrNoCUDA }

// Free releases the events.
func (*Timer) Free() {}

// Backend is the ops.Backend on the device (stub: its methods panic with
// ErrNoCUDA; NewBackend never returns one).
type Backend struct{}

// NewBackend returns ErrNoCUDA in this build.
func NewBackend(*Context, BackendOptions) (*Backend, error) { return nil, ErrNoCUDA }

// Pin keeps device copies of host slices.
func (*Backend) Pin(...[]float32) error { return ErrNoCUDA }

// Unpin drops device copies made by Pin.
func (*Backend) Unpin(...[]float32) {}

// Close releases the backend.
func (*Backend) Close() {}

func (*Backend) Name() string { return "cuda" }
func (*Backend) Gemm(bool, bool, int, int, int, float32, []float32, int, []float32, int, float32, []float32, int) {
	panic(ErrNoCUDA)
}
func (*Backend) Add(_, _, _ []float32)                            { panic(ErrNoCUDA) }
func (*Backend) Mul(_, _, _ []float32)                            { panic(ErrNoCUDA) }
func (*Backend) MulAdd(_, _, _ []float32)                         { panic(ErrNoCUDA) }
func (*Backend) Axpy(float32, []float32, []float32)               { panic(ErrNoCUDA) }
func (*Backend) Scale(float32, []float32)                         { panic(ErrNoCUDA) }
func (*Backend) AddBias(_, _ []float32)                           { panic(ErrNoCUDA) }
func (*Backend) ColSumAcc(_, _ []float32)                         { panic(ErrNoCUDA) }
func (*Backend) SumSq([]float32) float32                          { panic(ErrNoCUDA) }
func (*Backend) Dot(_, _ []float32) float32                       { panic(ErrNoCUDA) }
func (*Backend) Softmax([]float32, int)                           { panic(ErrNoCUDA) }
func (*Backend) SoftmaxBackward(_, _, _ []float32, _ int, _ bool) { panic(ErrNoCUDA) }
func (*Backend) LayerNorm(_, _, _, _ []float32, _ int, _ float32, _, _ []float32) {
	panic(ErrNoCUDA)
}
func (*Backend) LayerNormBackward(_, _, _, _, _, _, _, _ []float32, _ int, _ bool) {
	panic(ErrNoCUDA)
}
func (*Backend) GELU(_, _ []float32)                         { panic(ErrNoCUDA) }
func (*Backend) GELUBackward(_, _, _ []float32, _ bool)      { panic(ErrNoCUDA) }
func (*Backend) QuickGELU(_, _ []float32)                    { panic(ErrNoCUDA) }
func (*Backend) QuickGELUBackward(_, _, _ []float32, _ bool) { panic(ErrNoCUDA) }
func (*Backend) AttentionForward(*ops.AttnArgs, []float32, []float32, []float32, []float32, []float32) {
	panic(ErrNoCUDA)
}
func (*Backend) AttentionBackward(*ops.AttnArgs, []float32, []float32, []float32, []float32, []float32, []float32, []float32, []float32, float32, float32, float32) {
	panic(ErrNoCUDA)
}
func (*Backend) Copy(_, _ []float32)                           { panic(ErrNoCUDA) }
func (*Backend) Fill([]float32, float32)                       { panic(ErrNoCUDA) }
func (*Backend) GatherRows(_, _ []float32, _ int, _ []int)     { panic(ErrNoCUDA) }
func (*Backend) PatchUnfold(_, _ []float32, _, _, _, _, _ int) { panic(ErrNoCUDA) }

// Sync makes the host copies of xs current (resident mode).
func (*Backend) Sync(...[]float32) { panic(ErrNoCUDA) }

// Wrote declares that the host changed xs (resident mode).
func (*Backend) Wrote(...[]float32) { panic(ErrNoCUDA) }

// Keep makes the device copies of xs persist across steps (resident mode).
func (*Backend) Keep(...[]float32) { panic(ErrNoCUDA) }

// EndStep releases the device copies of the step's slices (resident mode).
func (*Backend) EndStep() { panic(ErrNoCUDA) }

// Transfers returns the host↔device copy counters.
func (*Backend) Transfers() Transfers { return Transfers{} }

// ResidentStats describes the device copies of the resident mode.
func (*Backend) ResidentStats() ResidentStats { return ResidentStats{} }

// VisionEncoder runs a CLIP image tower on the device (stub).
type VisionEncoder struct{}

// NewVisionEncoder returns ErrNoCUDA in this build.
func NewVisionEncoder(*Context, *clip.Model, EncoderOptions) (*VisionEncoder, error) {
	return nil, ErrNoCUDA
}

// EncodeImage returns the projected image embeddings [B, E] of pixels [B,3,S,S].
func (*VisionEncoder) EncodeImage([]float32, int) ([]float32, error) { return nil, ErrNoCUDA }

// Upload copies B images to the device input buffer.
func (*VisionEncoder) Upload([]float32, int) error { return ErrNoCUDA }

// Forward runs the tower on the B uploaded images (queued, not waited for).
func (*VisionEncoder) Forward(int) error { return ErrNoCUDA }

// Download copies the B embeddings of the last Forward to dst.
func (*VisionEncoder) Download([]float32, int) error { return ErrNoCUDA }

// MaxBatch returns the largest batch the encoder accepts.
func (*VisionEncoder) MaxBatch() int { return 0 }

// Close frees the device memory.
func (*VisionEncoder) Close() error { return ErrNoCUDA }

// TextEncoder runs a CLIP text tower on the device (stub).
type TextEncoder struct{}

// NewTextEncoder returns ErrNoCUDA in this build.
func NewTextEncoder(*Context, *clip.Model, EncoderOptions) (*TextEncoder, error) {
	return nil, ErrNoCUDA
}

// EncodeText returns the projected text embeddings [B, E] of a tokenised batch.
func (*TextEncoder) EncodeText(*clip.TextBatch) ([]float32, error) { return nil, ErrNoCUDA }

// Upload copies a tokenised batch to the device input buffers.
func (*TextEncoder) Upload(*clip.TextBatch) error { return ErrNoCUDA }

// Forward runs the tower on the uploaded B texts of T tokens (queued).
func (*TextEncoder) Forward(int, int) error { return ErrNoCUDA }

// Download copies the B embeddings of the last Forward to dst.
func (*TextEncoder) Download([]float32, int) error { return ErrNoCUDA }

// MaxBatch returns the largest batch the encoder accepts.
func (*TextEncoder) MaxBatch() int { return 0 }

// Close frees the device memory.
func (*TextEncoder) Close() error { return ErrNoCUDA }

// AttnSavedLen returns ops.AttnProbsLen(a) in this build.
func (*Backend) AttnSavedLen(a *ops.AttnArgs) int { return ops.AttnProbsLen(a) }

// BiasActBackward panics with ErrNoCUDA.
func (*Backend) BiasActBackward(_, _, _, _ []float32, _ ops.Activation, _ bool) { panic(ErrNoCUDA) }

// InfoNCELogits panics with ErrNoCUDA.
func (*Backend) InfoNCELogits(_, _, _ []float32, _ int) { panic(ErrNoCUDA) }

// SoftCrossEntropy panics with ErrNoCUDA.
func (*Backend) SoftCrossEntropy(_, _, _, _ []float32, _ int, _ float32) { panic(ErrNoCUDA) }

// MSE panics with ErrNoCUDA.
func (*Backend) MSE(_, _, _ []float32) { panic(ErrNoCUDA) }

// MSEBackward panics with ErrNoCUDA.
func (*Backend) MSEBackward(_, _, _, _, _ []float32, _, _ bool) { panic(ErrNoCUDA) }

// GradNormSq panics with ErrNoCUDA.
func (*Backend) GradNormSq([]float32, [][]float32) { panic(ErrNoCUDA) }

// AdamWStep panics with ErrNoCUDA.
func (*Backend) AdamWStep([]ops.AdamWTensor, ops.AdamWConsts, []float32, float64) { panic(ErrNoCUDA) }
