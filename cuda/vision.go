//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
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
	c                   *Context
	opt                 EncoderOptions
	Cin, S, P, N, T, C  int
	E, K                int
	maxInner, maxHidden int
	preEps, postEps     float32

	patchW, cls, pos, preG, preB, postG, postB, proj devPtr
	layers                                           []visLayer

	pix, cols, patches, x, h, qkv, o, mlp, pooled, emb devPtr
	probs                                              devPtr // D > 128 only
	owned                                              []devPtr
}

type visLayer struct {
	attn       bool
	ln1g, ln1b devPtr
	eps1       float32
	qkvW, qkvB devPtr
	H, D       int
	scale      float32
	keep       devPtr // int32[H] or 0
	Hk         int
	oW, oB     devPtr

	mlp        bool
	ln2g, ln2b devPtr
	eps2       float32
	hidden     int
	fc1W, fc1B devPtr
	fc2W, fc2B devPtr
	act        int
}

// NewVisionEncoder uploads the image tower of m.
func NewVisionEncoder(c *Context, m *clip.Model, opt EncoderOptions) (*VisionEncoder, error) {
	if c == nil || m == nil || m.Vision == nil {
		return nil, fmt.Errorf("cuda: NewVisionEncoder needs a context and a model")
	}
	if opt.Precision == TF32 && (!c.blas || opt.Gemm == GemmOwn) {
		return nil, fmt.Errorf("cuda: TF32 needs cuBLAS: %v", cublasErr)
	}
	if opt.Gemm == GemmCublas && !c.blas {
		return nil, fmt.Errorf("cuda: cuBLAS requested but not loaded: %v", cublasErr)
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 64
	}
	v := m.Vision
	ws := v.PatchEmbedding.Value.Shape // [C, Cin, P, P]
	e := &VisionEncoder{c: c, opt: opt, C: ws[0], Cin: ws[1], P: ws[2], S: v.Cfg.ImageSize, E: m.VisualProjection.Out()}
	if e.P <= 0 || e.S%e.P != 0 {
		return nil, fmt.Errorf("cuda: image size %d is not a multiple of patch %d", e.S, e.P)
	}
	e.N = (e.S / e.P) * (e.S / e.P)
	e.T, e.K = e.N+1, e.Cin*e.P*e.P
	e.preEps, e.postEps = v.PreLN.Eps, v.PostLN.Eps
	if err := e.upload(m); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.allocActivations(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *VisionEncoder) put(x []float32) (devPtr, error) {
	if len(x) == 0 {
		return 0, nil
	}
	p, err := e.c.alloc(4 * len(x))
	if err != nil {
		return 0, err
	}
	e.owned = append(e.owned, p)
	return p, shimHtoD(p, x)
}

func (e *VisionEncoder) buf(n int) (devPtr, error) {
	p, err := e.c.alloc(4 * max(n, 1))
	if err != nil {
		return 0, err
	}
	e.owned = append(e.owned, p)
	return p, nil
}

func data(p *nn.Param) []float32 {
	if p == nil {
		return nil
	}
	return p.Value.Data
}

func biasOf(l *nn.Linear) []float32 {
	if l.B == nil {
		return nil
	}
	return l.B.Value.Data
}

func (e *VisionEncoder) upload(m *clip.Model) error {
	v := m.Vision
	var err error
	for _, w := range []struct {
		dst *devPtr
		src []float32
	}{
		{&e.patchW, data(v.PatchEmbedding)}, {&e.cls, data(v.ClassEmbedding)}, {&e.pos, data(v.PositionEmbed)},
		{&e.preG, data(v.PreLN.W)}, {&e.preB, data(v.PreLN.B)}, {&e.postG, data(v.PostLN.W)}, {&e.postB, data(v.PostLN.B)},
		{&e.proj, data(m.VisualProjection.W)},
	} {
		if *w.dst, err = e.put(w.src); err != nil {
			return err
		}
	}
	if m.VisualProjection.B != nil {
		return fmt.Errorf("cuda: visual projection with a bias is not supported")
	}
	enc := v.Encoder
	for i, blk := range enc.Layers {
		if enc.Skip != nil && enc.Skip[i] {
			continue
		}
		var l visLayer
		if a := blk.SelfAttn; a != nil {
			l.attn = true
			l.H, l.D = a.Heads, a.HeadDim
			inner := l.H * l.D
			if a.Q.Out() != inner || a.K.Out() != inner || a.V.Out() != inner || a.Out.In() != inner {
				return fmt.Errorf("cuda: layer %d: projections do not match %d heads of %d", i, l.H, l.D)
			}
			l.scale = a.Scale
			if l.scale == 0 {
				l.scale = float32(1 / math.Sqrt(float64(l.D)))
			}
			qkvW := append(append(append(make([]float32, 0, 3*inner*e.C), a.Q.W.Value.Data...), a.K.W.Value.Data...), a.V.W.Value.Data...)
			var qkvB []float32
			if a.Q.B != nil && a.K.B != nil && a.V.B != nil {
				qkvB = append(append(append(make([]float32, 0, 3*inner), a.Q.B.Value.Data...), a.K.B.Value.Data...), a.V.B.Value.Data...)
			} else if a.Q.B != nil || a.K.B != nil || a.V.B != nil {
				return fmt.Errorf("cuda: layer %d: q/k/v projections must all have a bias or none", i)
			}
			if l.ln1g, err = e.put(data(blk.LayerNorm1.W)); err != nil {
				return err
			}
			if l.ln1b, err = e.put(data(blk.LayerNorm1.B)); err != nil {
				return err
			}
			l.eps1 = blk.LayerNorm1.Eps
			if l.qkvW, err = e.put(qkvW); err != nil {
				return err
			}
			if l.qkvB, err = e.put(qkvB); err != nil {
				return err
			}
			if l.oW, err = e.put(a.Out.W.Value.Data); err != nil {
				return err
			}
			if l.oB, err = e.put(biasOf(a.Out)); err != nil {
				return err
			}
			l.Hk = l.H
			if a.HeadKeep != nil {
				if len(a.HeadKeep) != l.H {
					return fmt.Errorf("cuda: layer %d: %d head-keep flags for %d heads", i, len(a.HeadKeep), l.H)
				}
				keep := make([]int32, l.H)
				l.Hk = 0
				for h, k := range a.HeadKeep {
					if k {
						keep[h] = 1
						l.Hk++
					}
				}
				if l.keep, err = e.c.uploadInts(keep); err != nil {
					return err
				}
				e.owned = append(e.owned, l.keep)
			}
			e.maxInner = max(e.maxInner, inner)
		}
		if mlp := blk.MLP; mlp != nil {
			l.mlp = true
			l.hidden = mlp.Hidden()
			switch mlp.Act {
			case nn.ActQuickGELU:
				l.act = actQuickGELU
			case nn.ActGELU:
				l.act = actGELU
			default:
				return fmt.Errorf("cuda: layer %d: activation %v", i, mlp.Act)
			}
			l.eps2 = blk.LayerNorm2.Eps
			for _, w := range []struct {
				dst *devPtr
				src []float32
			}{
				{&l.ln2g, data(blk.LayerNorm2.W)}, {&l.ln2b, data(blk.LayerNorm2.B)},
				{&l.fc1W, mlp.FC1.W.Value.Data}, {&l.fc1B, biasOf(mlp.FC1)},
				{&l.fc2W, mlp.FC2.W.Value.Data}, {&l.fc2B, biasOf(mlp.FC2)},
			} {
				if *w.dst, err = e.put(w.src); err != nil {
					return err
				}
			}
			e.maxHidden = max(e.maxHidden, l.hidden)
		}
		e.layers = append(e.layers, l)
	}
	return nil
}

func (e *VisionEncoder) allocActivations() error {
	B := e.opt.MaxBatch
	BT := B * e.T
	var err error
	for _, b := range []struct {
		dst *devPtr
		n   int
	}{
		{&e.pix, B * e.Cin * e.S * e.S}, {&e.cols, B * e.N * e.K}, {&e.patches, B * e.N * e.C},
		{&e.x, BT * e.C}, {&e.h, BT * e.C}, {&e.qkv, BT * 3 * e.maxInner}, {&e.o, BT * e.maxInner},
		{&e.mlp, BT * e.maxHidden}, {&e.pooled, B * e.C}, {&e.emb, B * e.E},
	} {
		if *b.dst, err = e.buf(b.n); err != nil {
			return err
		}
	}
	for _, l := range e.layers {
		if l.attn && flashDMax(l.D) == 0 && e.probs == 0 {
			if e.probs, err = e.buf(B * l.H * e.T * e.T); err != nil {
				return err
			}
		}
	}
	return nil
}

// MaxBatch returns the largest batch the encoder accepts.
func (e *VisionEncoder) MaxBatch() int { return e.opt.MaxBatch }

func (e *VisionEncoder) checkBatch(B int) error {
	if B <= 0 || B > e.opt.MaxBatch {
		return fmt.Errorf("cuda: batch %d outside [1, %d]", B, e.opt.MaxBatch)
	}
	return nil
}

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

func (e *VisionEncoder) gemm(g gemmCall) error { return e.c.gemm(e.opt.Gemm, e.opt.Precision, g) }

// linear queues y (=|+= by beta) x·Wᵀ (+ bias, act) for x [rows, in], W
// [out, in], y [rows, out].
func (e *VisionEncoder) linear(x devPtr, rows, in int, w devPtr, out int, beta float32, y, bias devPtr, act int) error {
	return e.gemm(gemmCall{transB: true, m: rows, n: out, k: in, alpha: 1, a: x, lda: in, b: w, ldb: in,
		beta: beta, c: y, ldc: out, bias: bias, act: act})
}

// Forward queues the tower on the B images in the input buffer; the result
// is in the embedding buffer once the stream reaches it (Download waits).
func (e *VisionEncoder) Forward(B int) error {
	if err := e.checkBatch(B); err != nil {
		return err
	}
	c := e.c
	T, C, BT := e.T, e.C, B*e.T
	if err := c.patchUnfold(e.cols, e.pix, B, e.Cin, e.S, e.S, e.P); err != nil {
		return err
	}
	if err := e.linear(e.cols, B*e.N, e.K, e.patchW, C, 0, e.patches, 0, actNone); err != nil {
		return err
	}
	if err := c.vitEmbed(e.x, e.patches, e.cls, e.pos, B, T, C); err != nil {
		return err
	}
	if err := c.lnFwd(e.x, C, 0, 0, 0, 0, 0, e.x, C, e.preG, e.preB, 0, 0, BT, C, e.preEps); err != nil {
		return err
	}
	// pending is a bias still to be added to the residual stream x; the next
	// layer norm adds it (writing x back) on its way.
	var pending devPtr
	norm := func(g, b devPtr, eps float32) error {
		sum := devPtr(0)
		if pending != 0 {
			sum = e.x
		}
		err := c.lnFwd(e.x, C, 0, 0, pending, sum, C, e.h, C, g, b, 0, 0, BT, C, eps)
		pending = 0
		return err
	}
	for _, l := range e.layers {
		if l.attn {
			inner := l.H * l.D
			if err := norm(l.ln1g, l.ln1b, l.eps1); err != nil {
				return err
			}
			if err := e.linear(e.h, BT, C, l.qkvW, 3*inner, 0, e.qkv, l.qkvB, actNone); err != nil {
				return err
			}
			g := &attnGeom{B: B, T: T, H: l.H, D: l.D, ldq: 3 * inner, ldk: 3 * inner, ldv: 3 * inner, ldo: inner,
				scale: l.scale, headKeep: l.keep}
			q, k, v := e.qkv, e.qkv+devPtr(4*inner), e.qkv+devPtr(8*inner)
			if flashDMax(l.D) != 0 {
				if err := c.attnFlash(g, q, k, v, e.o); err != nil {
					return err
				}
			} else {
				if err := e.naiveAttention(g, l, q, k, v); err != nil {
					return err
				}
			}
			if err := e.linear(e.o, BT, inner, l.oW, C, 1, e.x, 0, actNone); err != nil {
				return err
			}
			pending = l.oB
		}
		if l.mlp {
			if err := norm(l.ln2g, l.ln2b, l.eps2); err != nil {
				return err
			}
			if err := e.linear(e.h, BT, C, l.fc1W, l.hidden, 0, e.mlp, l.fc1B, l.act); err != nil {
				return err
			}
			if err := e.linear(e.mlp, BT, l.hidden, l.fc2W, C, 1, e.x, 0, actNone); err != nil {
				return err
			}
			pending = l.fc2B
		}
	}
	// Class-token rows are T·C apart in x.
	if err := c.lnFwd(e.x, T*C, 0, 0, pending, 0, 0, e.pooled, C, e.postG, e.postB, 0, 0, B, C, e.postEps); err != nil {
		return err
	}
	return e.linear(e.pooled, B, C, e.proj, e.E, 0, e.emb, 0, actNone)
}

// naiveAttention is the materialising path for head dimensions above 128.
func (e *VisionEncoder) naiveAttention(g *attnGeom, l visLayer, q, k, v devPtr) error {
	var keep []bool
	if l.keep != 0 {
		// The kept-head tables are small; rebuild them on the host.
		buf := make([]byte, 4*l.H)
		if err := shimDtoHBytes(buf, l.keep); err != nil {
			return err
		}
		keep = make([]bool, l.H)
		for h := range keep {
			keep[h] = buf[4*h] != 0
		}
	}
	slot := make([]int32, l.H)
	var kept []int32
	for h := 0; h < l.H; h++ {
		if keep == nil || keep[h] {
			slot[h] = int32(len(kept))
			kept = append(kept, int32(h))
		} else {
			slot[h] = -1
		}
	}
	ds, err := e.c.uploadInts(slot)
	if err != nil {
		return err
	}
	defer e.c.free(ds)
	dk, err := e.c.uploadInts(append(kept, 0))
	if err != nil {
		return err
	}
	defer e.c.free(dk)
	g.headSlot, g.keptHeads, g.Hk = ds, dk, len(kept)
	return e.c.attnNaive(g, q, k, v, e.o, e.probs)
}

// Close frees the encoder's device memory.
func (e *VisionEncoder) Close() error {
	if e == nil || e.c == nil {
		return nil
	}
	err := e.c.Synchronize()
	for _, p := range e.owned {
		e.c.free(p)
	}
	e.owned = nil
	e.c = nil
	return err
}
