//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/mopeclip/mopeclip/nn"
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

// blockLayer is one uploaded pre-LN block (a skipped layer is left out; a
// removed branch has attn or mlp false).
type blockLayer struct {
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

func (e *tower) put(x []float32) (devPtr, error) {
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

func (e *tower) buf(n int) (devPtr, error) {
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

// uploadBlocks uploads the blocks of enc (q/k/v fused into one [3·inner, C]
// matrix per layer).
func (e *tower) uploadBlocks(enc *nn.Transformer) error {
	var err error
	for i, blk := range enc.Layers {
		if enc.Skip != nil && enc.Skip[i] {
			continue
		}
		var l blockLayer
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
			qkvW := append(append(append(make([]float32, 0, 3*inner*e.width), a.Q.W.Value.Data...), a.K.W.Value.Data...), a.V.W.Value.Data...)
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

// blocks queues the pre-LN blocks on the residual stream x [B·T, width]
// (causal: each token attends to itself and the tokens before it). It
// returns the bias still to be added to x (0 if none): the biases after the
// residual GEMMs are added by the next layer norm on its way.
func (e *tower) blocks(B, T int, causal bool) (pending devPtr, err error) {
	c := e.c
	C, BT := e.width, B*T
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
				return 0, err
			}
			if err := e.linear(e.h, BT, C, l.qkvW, 3*inner, 0, e.qkv, l.qkvB, actNone); err != nil {
				return 0, err
			}
			g := &attnGeom{B: B, T: T, H: l.H, D: l.D, ldq: 3 * inner, ldk: 3 * inner, ldv: 3 * inner, ldo: inner,
				causal: causal, scale: l.scale, headKeep: l.keep}
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
			if err := e.linear(e.o, BT, inner, l.oW, C, 1, e.x, 0, actNone); err != nil {
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
			if err := e.linear(e.mlp, BT, l.hidden, l.fc2W, C, 1, e.x, 0, actNone); err != nil {
				return 0, err
			}
			pending = l.fc2B
		}
	}
	return pending, nil
}

// naiveAttention is the materialising path for head dimensions above 128.
func (e *tower) naiveAttention(g *attnGeom, l blockLayer, q, k, v devPtr) error {
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
