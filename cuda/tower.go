//go:build cuda

package cuda

import (
	"fmt"

	"github.com/mopeclip/mopeclip/clip/lower"
	"github.com/mopeclip/mopeclip/tensor"
)

// tower is what the device-resident encoders (VisionEncoder, TextEncoder)
// share: the context and options, the uploaded pre-LN blocks of one
// nn.Transformer, the activation buffers of the residual stream, and the
// device memory they own.
type tower struct {
	c   *Context
	opt EncoderOptions
	// width is the residual-stream width (the tower's hidden size).
	width               int
	maxInner, maxHidden int
	layers              []blockLayer

	x, h, qkv, o, mlp devPtr
	probs             devPtr // D > 128 only
	owned             []devPtr
}

// blockLayer is one uploaded pre-LN block of the lowering (lower.Block): a
// branch that computes nothing has attn or mlp false, and its bias, if any,
// in attnBias / mlpBias.
type blockLayer struct {
	attn       bool
	ln1g, ln1b devPtr
	eps1       float32
	qkvW, qkvB devPtr
	H, D       int // the kept heads only (the lowering compacts them)
	scale      float32
	oW, oB     devPtr
	attnBias   devPtr

	mlp        bool
	ln2g, ln2b devPtr
	eps2       float32
	hidden     int
	fc1W, fc1B devPtr
	fc2W, fc2B devPtr
	act        int
	mlpBias    devPtr
}

func (e *tower) put(x []float32) (devPtr, error) { return e.putOwned(&e.owned, x) }

// putOwned uploads x into a new device block recorded in *owned (0 and
// nothing recorded when x is empty).
func (e *tower) putOwned(owned *[]devPtr, x []float32) (devPtr, error) {
	if len(x) == 0 {
		return 0, nil
	}
	p, err := e.c.alloc(4 * len(x))
	if err != nil {
		return 0, err
	}
	*owned = append(*owned, p)
	return p, shimHtoD(p, x)
}

func (e *tower) buf(n int) (devPtr, error) {
	p, err := e.c.alloc(4 * max(n, 1))
	if err != nil {
		return 0, err
	}
	e.owned = append(e.owned, p)
	return p, nil
}

// putAll uploads each source into its destination.
func (e *tower) putAll(ws []hostUpload) error { return e.putAllOwned(&e.owned, ws) }

// putAllOwned is putAll recording the blocks in *owned.
func (e *tower) putAllOwned(owned *[]devPtr, ws []hostUpload) error {
	for _, w := range ws {
		var err error
		if *w.dst, err = e.putOwned(owned, w.src); err != nil {
			return err
		}
	}
	return nil
}

// hostUpload is one host slice and the device pointer it goes to.
type hostUpload struct {
	dst *devPtr
	src []float32
}

// kernelAct is the kernels' code (kernels/common.cuh) of an activation the
// lowering accepted.
func kernelAct(a tensor.Activation) int {
	switch a {
	case tensor.ActQuickGELU:
		return actQuickGELU
	case tensor.ActGELU:
		return actGELU
	}
	return actNone
}

// uploadBlocks uploads the lowered blocks (q/k/v fused into one [3·inner, C]
// matrix per layer, kept heads only).
func (e *tower) uploadBlocks(blocks []lower.Block) error {
	for i := range blocks {
		l, err := e.uploadBlock(&e.owned, &blocks[i])
		if err != nil {
			return err
		}
		if l.attn {
			e.maxInner = max(e.maxInner, l.H*l.D)
		}
		if l.mlp {
			e.maxHidden = max(e.maxHidden, l.hidden)
		}
		e.layers = append(e.layers, l)
	}
	return nil
}

// uploadBlock uploads one lowered block, recording its device blocks in
// *owned.
func (e *tower) uploadBlock(owned *[]devPtr, b *lower.Block) (blockLayer, error) {
	var l blockLayer
	if a := b.Attn; a != nil {
		l.attn = true
		l.H, l.D, l.scale, l.eps1 = a.Heads, a.HeadDim, a.Scale, b.LN1.Eps
		qkv, out := a.QKV(), a.Out()
		if err := e.putAllOwned(owned, []hostUpload{{&l.ln1g, b.LN1.G}, {&l.ln1b, b.LN1.B}, {&l.qkvW, qkv.W}, {&l.qkvB, qkv.B},
			{&l.oW, out.W}, {&l.oB, out.B}}); err != nil {
			return l, err
		}
	}
	if m := b.MLP; m != nil {
		l.mlp = true
		l.hidden, l.act, l.eps2 = m.Hidden, kernelAct(m.Act), b.LN2.Eps
		if err := e.putAllOwned(owned, []hostUpload{{&l.ln2g, b.LN2.G}, {&l.ln2b, b.LN2.B}, {&l.fc1W, m.FC1.W}, {&l.fc1B, m.FC1.B},
			{&l.fc2W, m.FC2.W}, {&l.fc2B, m.FC2.B}}); err != nil {
			return l, err
		}
	}
	err := e.putAllOwned(owned, []hostUpload{{&l.attnBias, b.AttnBias}, {&l.mlpBias, b.MLPBias}})
	return l, err
}

// allocBlocks allocates the activation buffers of the blocks for B items of
// T tokens at most.
func (e *tower) allocBlocks(B, T int) error {
	BT := B * T
	var err error
	for _, b := range []struct {
		dst *devPtr
		n   int
	}{
		{&e.x, BT * e.width}, {&e.h, BT * e.width}, {&e.qkv, BT * 3 * e.maxInner}, {&e.o, BT * e.maxInner},
		{&e.mlp, BT * e.maxHidden},
	} {
		if *b.dst, err = e.buf(b.n); err != nil {
			return err
		}
	}
	for _, l := range e.layers {
		if l.attn && flashDMax(l.D) == 0 && e.probs == 0 {
			if e.probs, err = e.buf(B * l.H * T * T); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *tower) maxBatch() int { return e.opt.MaxBatch }

func (e *tower) checkBatch(B int) error {
	if B <= 0 || B > e.opt.MaxBatch {
		return fmt.Errorf("cuda: batch %d outside [1, %d]", B, e.opt.MaxBatch)
	}
	return nil
}

func (e *tower) gemm(g gemmCall) error { return e.c.gemm(e.opt.Gemm, e.opt.Precision, g) }

// linear queues y (=|+= by beta) x·Wᵀ (+ bias, act) for x [rows, in], W
// [out, in], y [rows, out].
func (e *tower) linear(x devPtr, rows, in int, w devPtr, out int, beta float32, y, bias devPtr, act int) error {
	return e.gemm(gemmCall{transB: true, m: rows, n: out, k: in, alpha: 1, a: x, lda: in, b: w, ldb: in,
		beta: beta, c: y, ldc: out, bias: bias, act: act})
}

// blocks queues the tower's pre-LN blocks on its residual stream e.x
// (runBlocks).
func (e *tower) blocks(B, T int, causal bool) (pending devPtr, err error) {
	return e.runBlocks(e.layers, e.x, B, T, causal)
}

// runBlocks queues the given pre-LN blocks on the residual stream x
// [B·T, width] (causal: each token attends to itself and the tokens before
// it), in place. It returns the bias still to be added to x (0 if none): the
// biases after the residual GEMMs are added by the next layer norm on its
// way. The blocks use the tower's activation buffers (h, qkv, o, mlp), so x
// may be any device stream of B·T rows but not one of those.
func (e *tower) runBlocks(layers []blockLayer, x devPtr, B, T int, causal bool) (pending devPtr, err error) {
	c := e.c
	C, BT := e.width, B*T
	norm := func(g, b devPtr, eps float32) error {
		sum := devPtr(0)
		if pending != 0 {
			sum = x
		}
		err := c.lnFwd(x, C, 0, 0, pending, sum, C, e.h, C, g, b, 0, 0, BT, C, eps)
		pending = 0
		return err
	}
	// addBias adds a bias-only branch to x (after the pending bias).
	addBias := func(bias devPtr) error {
		for _, p := range []devPtr{pending, bias} {
			if p == 0 {
				continue
			}
			if err := c.biasAct(x, p, BT*C, C, actNone); err != nil {
				return err
			}
		}
		pending = 0
		return nil
	}
	for _, l := range layers {
		if l.attnBias != 0 {
			if err := addBias(l.attnBias); err != nil {
				return 0, err
			}
		}
		if l.attn {
			inner := l.H * l.D
			if err := norm(l.ln1g, l.ln1b, l.eps1); err != nil {
				return 0, err
			}
			if err := e.linear(e.h, BT, C, l.qkvW, 3*inner, 0, e.qkv, l.qkvB, actNone); err != nil {
				return 0, err
			}
			g := &attnGeom{B: B, T: T, H: l.H, D: l.D, ldq: 3 * inner, ldk: 3 * inner, ldv: 3 * inner, ldo: inner,
				causal: causal, scale: l.scale}
			q, k, v := e.qkv, e.qkv+devPtr(4*inner), e.qkv+devPtr(8*inner)
			if flashDMax(l.D) != 0 {
				if err := c.attnFlash(g, q, k, v, e.o); err != nil {
					return 0, err
				}
			} else {
				if err := e.naiveAttention(g, l, q, k, v); err != nil {
					return 0, err
				}
			}
			if err := e.linear(e.o, BT, inner, l.oW, C, 1, x, 0, actNone); err != nil {
				return 0, err
			}
			pending = l.oB
		}
		if l.mlp {
			if err := norm(l.ln2g, l.ln2b, l.eps2); err != nil {
				return 0, err
			}
			if err := e.linear(e.h, BT, C, l.fc1W, l.hidden, 0, e.mlp, l.fc1B, l.act); err != nil {
				return 0, err
			}
			if err := e.linear(e.mlp, BT, l.hidden, l.fc2W, C, 1, x, 0, actNone); err != nil {
				return 0, err
			}
			pending = l.fc2B
		}
		if l.mlpBias != 0 {
			if err := addBias(l.mlpBias); err != nil {
				return 0, err
			}
		}
	}
	return pending, nil
}

// naiveAttention is the materialising path for head dimensions above 128
// (every head kept: the lowering compacts them).
func (e *tower) naiveAttention(g *attnGeom, l blockLayer, q, k, v devPtr) error {
	slot := make([]int32, l.H)
	for h := range slot {
		slot[h] = int32(h)
	}
	ds, err := e.c.uploadInts(slot)
	if err != nil {
		return err
	}
	defer e.c.free(ds)
	dk, err := e.c.uploadInts(append(slot, 0))
	if err != nil {
		return err
	}
	defer e.c.free(dk)
	g.headSlot, g.keptHeads, g.Hk = ds, dk, l.H
	return e.c.attnNaive(g, q, k, v, e.o, e.probs)
}

// close frees the device memory.
func (e *tower) close() error {
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

// encoderOptions checks opt against what c offers and fills its defaults
// (MaxBatch 64), for NewVisionEncoder and NewTextEncoder.
func (c *Context) encoderOptions(opt *EncoderOptions) error {
	if opt.Precision == TF32 && (!c.blas || opt.Gemm == GemmOwn) {
		return fmt.Errorf("cuda: TF32 needs cuBLAS: %v", cublasErr)
	}
	if opt.Gemm == GemmCublas && !c.blas {
		return fmt.Errorf("cuda: cuBLAS requested but not loaded: %v", cublasErr)
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 64
	}
	return nil
}
