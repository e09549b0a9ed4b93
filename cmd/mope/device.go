package main

import (
	"fmt"
	"io"
	"sync"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/cuda"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/mope"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// openDevice opens the GPU of --device dev and returns the context with a
// one-line description of it (device, PTX, precision and GEMM engine). In a
// build without the cuda tag it fails with cuda.ErrNoCUDA.
func openDevice(dev cuda.Device) (*cuda.Context, string, error) {
	c, err := cuda.Open(cuda.Options{})
	if err != nil {
		return nil, "", fmt.Errorf("--device %s: %w", dev, err)
	}
	in := c.Info()
	desc := fmt.Sprintf("%s (cc %d.%d, %d SMs, PTX %s), matrix products %s via %s",
		in.Name, in.Major, in.Minor, in.SMs, in.PTXArch, dev.Precision, gemmName(in.CublasPath))
	return c, desc, nil
}

// deviceSession is an opened --device: on a GPU, its context and the ops
// backend every op runs on for the rest of the process (ops.SetBackend).
// Ctx is nil on the CPU.
type deviceSession struct {
	Dev     cuda.Device
	Ctx     *cuda.Context
	backend *cuda.Backend
	prev    ops.Backend
}

// useDevice opens dev and makes it the backend of every op (ops.SetBackend)
// until Close. The CPU changes nothing. The CUDA backend keeps what the
// training loop hands it on the device (package cuda); scoring uses the
// context for its device-resident towers (mope.Options.GPU).
func useDevice(dev cuda.Device, log io.Writer) (*deviceSession, error) {
	return useDeviceMode(dev, false, log)
}

// useTrainingDevice is useDevice for a command whose ops all run inside
// train.Run (pretrain, distill): the CUDA backend is resident
// (cuda.BackendOptions.Resident), so parameters, activations, gradients and
// optimiser state stay on the GPU for the whole step and only the batch, the
// loss and the metrics cross the bus.
func useTrainingDevice(dev cuda.Device, log io.Writer) (*deviceSession, error) {
	return useDeviceMode(dev, true, log)
}

func useDeviceMode(dev cuda.Device, resident bool, log io.Writer) (*deviceSession, error) {
	s := &deviceSession{Dev: dev}
	if !dev.GPU {
		return s, nil
	}
	c, desc, err := openDevice(dev)
	if err != nil {
		return nil, err
	}
	b, err := cuda.NewBackend(c, cuda.BackendOptions{Precision: dev.Precision, Resident: resident})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("--device %s: %w", dev, err)
	}
	fmt.Fprintf(log, "device: %s\n", desc)
	s.Ctx, s.backend, s.prev = c, b, ops.CurrentBackend()
	ops.SetBackend(b)
	return s, nil
}

// gpu is the session's GPU for scoring (the zero mope.GPU on the CPU).
func (s *deviceSession) gpu() mope.GPU {
	if s == nil || s.Ctx == nil {
		return mope.GPU{}
	}
	return mope.GPU{Ctx: s.Ctx, Precision: s.Dev.Precision}
}

// Close restores the previous backend and frees the device.
func (s *deviceSession) Close() {
	if s == nil || s.Ctx == nil {
		return
	}
	ops.SetBackend(s.prev)
	s.backend.Close()
	s.Ctx.Close()
	s.Ctx = nil
}

func gemmName(cublas string) string {
	if cublas == "" {
		return "the package's own SGEMM"
	}
	return "cuBLAS (" + cublas + ")"
}

// gpuTowers are a model's towers resident on the GPU (cuda.VisionEncoder
// and cuda.TextEncoder: weights uploaded once, whole forward passes on the
// device), the fast path of --device cuda for inference. It is a
// clip.BatchEncoder; calls are serialised, so it is safe for concurrent use.
type gpuTowers struct {
	mu   sync.Mutex
	ctx  *cuda.Context
	img  *cuda.VisionEncoder
	txt  *cuda.TextEncoder
	Desc string // the device line (openDevice)
}

// openGPUTowers uploads the image and/or text tower of m for batches of up
// to maxBatch items, on the GPU of --device dev (which must name one).
func openGPUTowers(dev cuda.Device, m *clip.Model, maxBatch int, image, text bool) (*gpuTowers, error) {
	if !dev.GPU {
		return nil, fmt.Errorf("--device %s is not a GPU", dev)
	}
	c, desc, err := openDevice(dev)
	if err != nil {
		return nil, err
	}
	g := &gpuTowers{ctx: c, Desc: desc}
	opt := cuda.EncoderOptions{Precision: dev.Precision, MaxBatch: maxBatch}
	if image {
		if g.img, err = cuda.NewVisionEncoder(c, m, opt); err != nil {
			g.Close()
			return nil, fmt.Errorf("--device %s: image tower: %w", dev, err)
		}
	}
	if text {
		if g.txt, err = cuda.NewTextEncoder(c, m, opt); err != nil {
			g.Close()
			return nil, fmt.Errorf("--device %s: text tower: %w", dev, err)
		}
	}
	return g, nil
}

// EncodeImages embeds n preprocessed images [n,3,S,S] (n <= maxBatch).
func (g *gpuTowers) EncodeImages(pixels []float32, n int) ([]float32, error) {
	if g.img == nil {
		return nil, fmt.Errorf("the image tower is not on the GPU")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.img.EncodeImage(pixels, n)
}

// EncodeTexts embeds a tokenised batch (B <= maxBatch).
func (g *gpuTowers) EncodeTexts(b *clip.TextBatch) ([]float32, error) {
	if g.txt == nil {
		return nil, fmt.Errorf("the text tower is not on the GPU")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.txt.EncodeText(b)
}

// Close frees the towers and the context.
func (g *gpuTowers) Close() {
	if g.img != nil {
		g.img.Close()
	}
	if g.txt != nil {
		g.txt.Close()
	}
	g.ctx.Close()
}

// benchFuncs returns what mope bench times: one batch of B images (pixels)
// and of the texts tb through the GPU towers, each with its upload and
// download. The first error is stored in *errp.
func (g *gpuTowers) benchFuncs(pixels []float32, B int, tb *clip.TextBatch, errp *error) (image, text func()) {
	keep := func(err error) {
		if err != nil && *errp == nil {
			*errp = err
		}
	}
	image = func() {
		_, err := g.EncodeImages(pixels, B)
		keep(err)
	}
	text = func() {
		_, err := g.EncodeTexts(tb)
		keep(err)
	}
	return image, text
}

// encoderDevice routes the batches of enc through GPU-resident towers
// (enc.Device) when --device dev is a GPU, uploading the image and/or the
// text tower of enc.Model for batches of enc.Batch; on the CPU through the
// fast inference engine unless engine is mope.EngineRef. With releaseWeights
// the engine drops enc.Model's copies of the matrices it packs
// (infer.Options.ReleaseWeights) and the model's gradient buffers: the caller
// must not run the model's own forward, train or save it afterwards. It returns the function that frees them.
func encoderDevice(dev cuda.Device, engine mope.Engine, enc *clip.Encoder, image, text, releaseWeights bool, log io.Writer) (release func(), err error) {
	engine = cpuEngine(engine)
	if !image && !text {
		return func() {}, nil
	}
	if !dev.GPU {
		if engine == mope.EngineRef {
			return func() {}, nil
		}
		e, err := infer.New(enc.Model, infer.Options{ReleaseWeights: releaseWeights})
		if err != nil {
			return nil, err
		}
		enc.Device, enc.Workers = e.BatchEncoder(), 1
		if releaseWeights {
			dropGrads(enc.Model)
		}
		return func() {
			enc.Device = nil
			e.Close()
		}, nil
	}
	g, err := openGPUTowers(dev, enc.Model, max(enc.Batch, 1), image, text)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "device: %s\n", g.Desc)
	enc.Device = g
	return func() {
		enc.Device = nil
		g.Close()
	}, nil
}

// encodeImages is enc.Images returning a device's error (enc.Images panics
// on a failing batch, which without a device cannot happen).
func encodeImages(enc *clip.Encoder, pixels []float32, n int) (t *tensor.Tensor, err error) {
	if enc.Device != nil {
		defer func() {
			if r := recover(); r != nil {
				e, ok := r.(error)
				if !ok {
					panic(r)
				}
				err = e
			}
		}()
	}
	return enc.Images(pixels, n), nil
}
