// Package cuda is mopeclip's NVIDIA GPU backend: a driver-API context on the
// device's primary context, kernels embedded as PTX (kernels/*.cu compiled
// for sm_80 and sm_90, see README.md), device buffers, an ops.Backend, and a
// device-resident CLIP image and text encoders (VisionEncoder, TextEncoder),
// the performance path.
//
// Everything that touches CUDA is behind the "cuda" build tag. Without it
// (the default) this package compiles to stubs with the same exported API
// whose constructors return ErrNoCUDA, so CPU-only builds, vet and tests do
// not need a toolkit or a driver.
//
// Backend implements ops.Backend on host slices: every call uploads its
// inputs, runs the kernels and downloads its outputs (weights registered
// with Backend.Pin stay on the device). With BackendOptions.Resident it
// keeps device copies of every slice it sees instead (ops.Residency,
// ops.StepScoped): a training step's parameters, activations, gradients and
// optimiser state stay on the device, and the host copies are brought up to
// date only on ops.Sync (README.md, "Device-resident tensors"). The fast
// inference path is VisionEncoder and TextEncoder: weights uploaded once,
// the whole tower on the device, one upload of pixels (token ids) and one
// download of embeddings per batch.
package cuda

import (
	"errors"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/ops"
)

// ErrNoCUDA is returned by every constructor of a build without the cuda tag.
var ErrNoCUDA = errors.New("cuda: built without CUDA support (build with -tags cuda)")

// Precision selects the arithmetic of the matrix products.
type Precision int

const (
	// FP32 is IEEE float32 throughout (cuBLAS with CUBLAS_COMPUTE_32F, or the
	// package's own SGEMM).
	FP32 Precision = iota
	// TF32 runs the matrix products on tensor cores with TF32 inputs (10-bit
	// mantissa) and float32 accumulation (CUBLAS_COMPUTE_32F_FAST_TF32);
	// everything else stays float32. Needs cuBLAS.
	TF32
)

func (p Precision) String() string {
	if p == TF32 {
		return "tf32"
	}
	return "fp32"
}

// GemmEngine selects who runs the matrix products.
type GemmEngine int

const (
	// GemmAuto uses cuBLAS when it was loaded, the package's SGEMM otherwise.
	GemmAuto GemmEngine = iota
	// GemmCublas requires cuBLAS.
	GemmCublas
	// GemmOwn uses the package's SGEMM kernel (fp32 only; fused epilogues).
	GemmOwn
)

// Options configures Open.
type Options struct {
	// Device is the ordinal of the device to use.
	Device int
	// Cublas is the path of libcublas to dlopen; empty tries $MOPECLIP_CUBLAS,
	// then libcublas.so.13, .12, .11 and libcublas.so on the library path.
	// cuBLAS is optional: without it TF32 is unavailable and the matrix
	// products run on the package's own SGEMM.
	Cublas string
	// NoCublas skips loading cuBLAS.
	NoCublas bool
}

// BackendOptions configures NewBackend.
type BackendOptions struct {
	Precision Precision
	Gemm      GemmEngine
	// PoisonOutputs fills every device output buffer with NaN before the
	// kernels run, so that an element a kernel fails to write shows up as NaN
	// in the result (for tests; it costs a memset per output).
	PoisonOutputs bool
	// Resident keeps device copies of the host slices the backend sees
	// (ops.Residency and ops.StepScoped): inputs are uploaded only when
	// the host copy is newer, outputs stay on the device until ops.Sync,
	// slices named by ops.Keep (parameters, gradients, optimiser state)
	// persist and the others are released at ops.EndStep. The caller must
	// follow the rules of README.md ("Device-resident tensors").
	Resident bool
}

// Transfers counts the host↔device copies of a Backend (all of them in the
// resident mode; the per-call copies otherwise).
type Transfers struct {
	Uploads, UploadBytes     int64
	Downloads, DownloadBytes int64
	// KeptUploadBytes and KeptDownloadBytes are the part of the above that
	// moved slices named by Keep (parameters, gradients, optimiser state).
	KeptUploadBytes, KeptDownloadBytes int64
	// Scalars counts reduction results read back (SumSq, Dot: 8 bytes or
	// a few partial sums each, included in DownloadBytes).
	Scalars int64
}

// Sub returns t − u (the copies between two readings).
func (t Transfers) Sub(u Transfers) Transfers {
	return Transfers{Uploads: t.Uploads - u.Uploads, UploadBytes: t.UploadBytes - u.UploadBytes,
		Downloads: t.Downloads - u.Downloads, DownloadBytes: t.DownloadBytes - u.DownloadBytes,
		KeptUploadBytes: t.KeptUploadBytes - u.KeptUploadBytes, KeptDownloadBytes: t.KeptDownloadBytes - u.KeptDownloadBytes,
		Scalars: t.Scalars - u.Scalars}
}

// ResidentStats describes the device copies of a resident Backend.
type ResidentStats struct {
	Kept, Transient           int   // slices (allocations) with a device copy
	KeptBytes, TransientBytes int64 // their device bytes
	// DeviceBytes is what the Context has taken from the driver (blocks in
	// use and cached for reuse).
	DeviceBytes int64
}

// EncoderOptions configures NewVisionEncoder and NewTextEncoder.
type EncoderOptions struct {
	Precision Precision
	Gemm      GemmEngine
	// MaxBatch is the largest batch EncodeImage / EncodeText accept; the
	// activation buffers are sized for it (texts: of the full context
	// length). 0 means 64.
	MaxBatch int
}

// DeviceInfo describes the device of a Context. Peak numbers are nominal,
// derived from the SM count and the maximum clocks the driver reports.
type DeviceInfo struct {
	Name                string
	Major, Minor        int // compute capability
	SMs                 int
	ClockKHz            int // maximum SM clock
	MemClockKHz         int // memory clock
	BusWidthBits        int
	TotalMemBytes       int64
	DriverVersion       int    // e.g. 13000 for CUDA 13.0
	PTXArch             string // the embedded PTX loaded: "sm_80" or "sm_90"
	CublasPath          string // empty when cuBLAS is not loaded
	CublasVersion       int
	PeakFP32TFLOPS      float64 // CUDA-core fp32 FMA peak
	PeakTF32TFLOPS      float64 // dense TF32 tensor-core peak (0 when unknown)
	PeakBandwidthGBPerS float64 // DRAM bandwidth
}

// Compile-time proof that the tagged implementation and the stubs offer the
// same API (this file is built in both configurations).
var (
	_ ops.Backend                       = (*Backend)(nil)
	_ ops.BiasActBackwarder             = (*Backend)(nil)
	_ ops.LossKernels                   = (*Backend)(nil)
	_ ops.FusedAdamW                    = (*Backend)(nil)
	_ func(*Backend, *ops.AttnArgs) int = (*Backend).AttnSavedLen

	_ func(Options) (*Context, error)                                     = Open
	_ func(*Context, BackendOptions) (*Backend, error)                    = NewBackend
	_ func(*Context, *clip.Model, EncoderOptions) (*VisionEncoder, error) = NewVisionEncoder
	_ func(*Context) error                                                = (*Context).Close
	_ func(*Context) DeviceInfo                                           = (*Context).Info
	_ func(*Context) bool                                                 = (*Context).HasCublas
	_ func(*Context, int) (*DeviceBuffer, error)                          = (*Context).Alloc
	_ func(*Context) error                                                = (*Context).Synchronize
	_ func(*Context) (*Timer, error)                                      = (*Context).NewTimer
	_ func(*DeviceBuffer) int                                             = (*DeviceBuffer).Len
	_ func(*DeviceBuffer, []float32) error                                = (*DeviceBuffer).Upload
	_ func(*DeviceBuffer, []float32) error                                = (*DeviceBuffer).Download
	_ func(*DeviceBuffer)                                                 = (*DeviceBuffer).Free
	_ func(*Timer) error                                                  = (*Timer).Start
	_ func(*Timer) (float64, error)                                       = (*Timer).Stop
	_ func(*Timer)                                                        = (*Timer).Free
	_ func(*Backend, ...[]float32) error                                  = (*Backend).Pin
	_ func(*Backend, ...[]float32)                                        = (*Backend).Unpin
	_ func(*Backend)                                                      = (*Backend).Close
	_ func(*Backend, ...[]float32)                                        = (*Backend).Sync
	_ func(*Backend, ...[]float32)                                        = (*Backend).Wrote
	_ func(*Backend, ...[]float32)                                        = (*Backend).Keep
	_ func(*Backend)                                                      = (*Backend).EndStep
	_ func(*Backend) Transfers                                            = (*Backend).Transfers
	_ func(*Backend) ResidentStats                                        = (*Backend).ResidentStats
	_ ops.Residency                                                       = (*Backend)(nil)
	_ ops.StepScoped                                                      = (*Backend)(nil)
	_ func(*VisionEncoder, []float32, int) ([]float32, error)             = (*VisionEncoder).EncodeImage
	_ func(*VisionEncoder) error                                          = (*VisionEncoder).Close
	_ func(*VisionEncoder) int                                            = (*VisionEncoder).MaxBatch
	_ func(*VisionEncoder, []float32, int) error                          = (*VisionEncoder).Upload
	_ func(*VisionEncoder, int) error                                     = (*VisionEncoder).Forward
	_ func(*VisionEncoder, []float32, int) error                          = (*VisionEncoder).Download
	_ func(*Context, *clip.Model, EncoderOptions) (*TextEncoder, error)   = NewTextEncoder
	_ func(*TextEncoder, *clip.TextBatch) ([]float32, error)              = (*TextEncoder).EncodeText
	_ func(*TextEncoder, *clip.TextBatch) error                           = (*TextEncoder).Upload
	_ func(*TextEncoder, int, int) error                                  = (*TextEncoder).Forward
	_ func(*TextEncoder, []float32, int) error                            = (*TextEncoder).Download
	_ func(*TextEncoder) int                                              = (*TextEncoder).MaxBatch
	_ func(*TextEncoder) error                                            = (*TextEncoder).Close
)
