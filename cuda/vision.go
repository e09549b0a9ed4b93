//go:build cuda

package cuda

import (
	"fmt"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/lower"
)

// VisionEncoder is the CLIP image tower with its projection resident on the
// device: the weights are uploaded once (a snapshot: later changes to the
// model are not seen), activations live in buffers sized for MaxBatch, and a
// batch costs one upload of pixels, the kernels, and one download of
// embeddings. It computes what clip.Model.EncodeImage computes:
//
//	cols   = unfold(pixels)                      patch_unfold
//	x      = cols·Wpatchᵀ                         GEMM
//	x      = LN_pre(x ⊕ class token + pos)        vit_embed, ln_fwd
//	per layer (skipped layers and removed branches are left out):
//	  h    = LN1(x)                               ln_fwd (adds the pending bias into x)
//	  qkv  = h·[Wq;Wk;Wv]ᵀ + [bq;bk;bv]           one GEMM (+ bias epilogue)
//	  o    = attention(qkv), dropped heads 0      attn_flash_fwd_dXX
//	  x   += o·Woᵀ                                GEMM, beta = 1 (bo pending)
//	  h    = LN2(x + bo)                          ln_fwd
//	  m    = act(h·W1ᵀ + b1)                      GEMM + bias/act epilogue
//	  x   += m·W2ᵀ                                GEMM, beta = 1 (b2 pending)
//	pooled = LN_post(x[class rows] + b2)          ln_fwd on rows T·C apart
//	emb    = pooled·Wprojᵀ                        GEMM
//
// Not safe for concurrent use.
type VisionEncoder struct {
	tower
	Cin, S, P, N, T, C int
	E, K               int
	preEps, postEps    float32

	patchW, cls, pos, preG, preB, postG, postB, proj, projB devPtr

	pix, cols, patches, pooled, emb devPtr
}

// NewVisionEncoder uploads the image tower of m.
func NewVisionEncoder(c *Context, m *clip.Model, opt EncoderOptions) (*VisionEncoder, error) {
	if c == nil || m == nil || m.Vision == nil {
		return nil, fmt.Errorf("cuda: NewVisionEncoder needs a context and a model")
	}
	if err := c.encoderOptions(&opt); err != nil {
		return nil, err
	}
	p, err := lower.Model(m)
	if err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	return newVisionEncoder(c, &p.Vision, p.Vision.Blocks, opt)
}

// newVisionEncoder uploads the tower v with blocks as its layers (the
// lowering's, or every layer of the encoder for a Suffix).
func newVisionEncoder(c *Context, v *lower.Vision, blocks []lower.Block, opt EncoderOptions) (*VisionEncoder, error) {
	e := &VisionEncoder{tower: tower{c: c, opt: opt, width: v.Width}, C: v.Width, Cin: v.Channels, P: v.PatchSize, S: v.ImageSize,
		E: v.Embed(), N: v.Patches, T: v.SeqLen, K: v.Patch.In, preEps: v.PreLN.Eps, postEps: v.Final.Eps}
	if err := e.upload(v, blocks); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.allocActivations(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *VisionEncoder) upload(v *lower.Vision, blocks []lower.Block) error {
	if err := e.putAll([]hostUpload{{&e.patchW, v.Patch.W}, {&e.cls, v.Class}, {&e.pos, v.Pos},
		{&e.preG, v.PreLN.G}, {&e.preB, v.PreLN.B}, {&e.postG, v.Final.G}, {&e.postB, v.Final.B},
		{&e.proj, v.Proj.W}, {&e.projB, v.Proj.B}}); err != nil {
		return err
	}
	return e.uploadBlocks(blocks)
}

func (e *VisionEncoder) allocActivations() error {
	B := e.opt.MaxBatch
	var err error
	for _, b := range []struct {
		dst *devPtr
		n   int
	}{
		{&e.pix, B * e.Cin * e.S * e.S}, {&e.cols, B * e.N * e.K}, {&e.patches, B * e.N * e.C},
		{&e.pooled, B * e.C}, {&e.emb, B * e.E},
	} {
		if *b.dst, err = e.buf(b.n); err != nil {
			return err
		}
	}
	return e.allocBlocks(B, e.T)
}

// MaxBatch returns the largest batch the encoder accepts.
func (e *VisionEncoder) MaxBatch() int { return e.maxBatch() }

// Upload copies B images (pixels [B, Cin, S, S]) to the input buffer.
func (e *VisionEncoder) Upload(pixels []float32, B int) error {
	if err := e.checkBatch(B); err != nil {
		return err
	}
	n := B * e.Cin * e.S * e.S
	if len(pixels) != n {
		return fmt.Errorf("cuda: %d pixel values for %d images of %dx%dx%d", len(pixels), B, e.Cin, e.S, e.S)
	}
	return shimHtoD(e.pix, pixels)
}

// Download copies the embeddings [B, E] of the last Forward to dst.
func (e *VisionEncoder) Download(dst []float32, B int) error {
	if err := e.checkBatch(B); err != nil {
		return err
	}
	if len(dst) != B*e.E {
		return fmt.Errorf("cuda: destination of %d for %d embeddings of %d", len(dst), B, e.E)
	}
	return shimDtoH(dst, e.emb)
}

// EncodeImage returns the projected, unnormalised embeddings [B, E] of
// pixels [B, Cin, S, S], as clip.Model.EncodeImage.
func (e *VisionEncoder) EncodeImage(pixels []float32, B int) ([]float32, error) {
	if err := e.Upload(pixels, B); err != nil {
		return nil, err
	}
	if err := e.Forward(B); err != nil {
		return nil, err
	}
	out := make([]float32, B*e.E)
	return out, e.Download(out, B)
}

// Forward queues the tower on the B images in the input buffer; the result
// is in the embedding buffer once the stream reaches it (Download waits).
func (e *VisionEncoder) Forward(B int) error {
	if err := e.checkBatch(B); err != nil {
		return err
	}
	if err := e.embed(e.x, B); err != nil {
		return err
	}
	pending, err := e.blocks(B, e.T, false)
	if err != nil {
		return err
	}
	return e.pool(e.x, B, pending)
}

// embed queues the embeddings of the B images in the input buffer into the
// residual stream x [B·T, C]: the hidden states entering layer 0.
func (e *VisionEncoder) embed(x devPtr, B int) error {
	c := e.c
	T, C, BT := e.T, e.C, B*e.T
	if err := c.patchUnfold(e.cols, e.pix, B, e.Cin, e.S, e.S, e.P); err != nil {
		return err
	}
	if err := e.linear(e.cols, B*e.N, e.K, e.patchW, C, 0, e.patches, 0, actNone); err != nil {
		return err
	}
	if err := c.vitEmbed(x, e.patches, e.cls, e.pos, B, T, C); err != nil {
		return err
	}
	return c.lnFwd(x, C, 0, 0, 0, 0, 0, x, C, e.preG, e.preB, 0, 0, BT, C, e.preEps)
}

// pool queues post_layernorm of the class rows of the stream x (after
// adding the pending bias to them) and the projection into the embedding
// buffer.
func (e *VisionEncoder) pool(x devPtr, B int, pending devPtr) error {
	T, C := e.T, e.C
	// Class-token rows are T·C apart in x.
	if err := e.c.lnFwd(x, T*C, 0, 0, pending, 0, 0, e.pooled, C, e.postG, e.postB, 0, 0, B, C, e.postEps); err != nil {
		return err
	}
	return e.linear(e.pooled, B, C, e.proj, e.E, 0, e.emb, e.projB, actNone)
}

// Close frees the encoder's device memory.
func (e *VisionEncoder) Close() error {
	if e == nil {
		return nil
	}
	return e.close()
}
