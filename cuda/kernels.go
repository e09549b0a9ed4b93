//go:build cuda

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Typed launchers of the kernels in kernels/*.cu, on device pointers. They
// queue work on the context's stream and return launch errors only; the
// Backend and the VisionEncoder are built from them, and the tests call them
// directly.

// Activation codes (kernels/common.cuh).
const (
	actNone      = 0
	actQuickGELU = 1
	actGELU      = 2
)

const rowsPerBlock = 4 // row kernels: one warp per row, 4 warps per block

// ---- elementwise ----

func (c *Context) ewBinary(name string, dst, a, b devPtr, n int) error {
	if n == 0 {
		return nil
	}
	return c.launch(name, gridStride(int64(n), 256), dim3{256, 1, 1}, 0, newArgs().p(dst).p(a).p(b).q(int64(n)))
}

func (c *Context) add(dst, a, b devPtr, n int) error    { return c.ewBinary("ew_add", dst, a, b, n) }
func (c *Context) mul(dst, a, b devPtr, n int) error    { return c.ewBinary("ew_mul", dst, a, b, n) }
func (c *Context) mulAdd(dst, a, b devPtr, n int) error { return c.ewBinary("ew_muladd", dst, a, b, n) }

func (c *Context) axpy(alpha float32, x, y devPtr, n int) error {
	if n == 0 {
		return nil
	}
	return c.launch("ew_axpy", gridStride(int64(n), 256), dim3{256, 1, 1}, 0, newArgs().f(alpha).p(x).p(y).q(int64(n)))
}

func (c *Context) scale(alpha float32, x devPtr, n int) error {
	if n == 0 {
		return nil
	}
	return c.launch("ew_scale", gridStride(int64(n), 256), dim3{256, 1, 1}, 0, newArgs().f(alpha).p(x).q(int64(n)))
}

// biasAct computes x = act(x + bias) over n elements, bias (nb long, or 0)
// repeating every nb elements.
func (c *Context) biasAct(x, bias devPtr, n, nb, act int) error {
	if n == 0 {
		return nil
	}
	return c.launch("bias_act", gridStride(int64(n), 256), dim3{256, 1, 1}, 0, newArgs().p(x).p(bias).q(int64(n)).i(max(nb, 1)).i(act))
}

func (c *Context) actFwd(dst, x devPtr, n, act int) error {
	if n == 0 {
		return nil
	}
	return c.launch("act_fwd", gridStride(int64(n), 256), dim3{256, 1, 1}, 0, newArgs().p(dst).p(x).q(int64(n)).i(act))
}

func (c *Context) actBwd(dx, x, dy devPtr, n, act int, acc bool) error {
	if n == 0 {
		return nil
	}
	return c.launch("act_bwd", gridStride(int64(n), 256), dim3{256, 1, 1}, 0, newArgs().p(dx).p(x).p(dy).q(int64(n)).i(act).b(acc))
}

// dot returns Σ x·y (y == 0: Σ x²) accumulated in double.
func (c *Context) dot(x, y devPtr, n int) (float64, error) {
	if n == 0 {
		return 0, nil
	}
	g := gridStride(int64(n), 256)
	g[0] = min(g[0], 1024)
	part, err := c.alloc(8 * g[0])
	if err != nil {
		return 0, err
	}
	defer c.free(part)
	if err := c.launch("reduce_dot", g, dim3{256, 1, 1}, 0, newArgs().p(x).p(y).q(int64(n)).p(part)); err != nil {
		return 0, err
	}
	buf := make([]byte, 8*g[0])
	if err := shimDtoHBytes(buf, part); err != nil {
		return 0, err
	}
	var s float64
	for i := 0; i < g[0]; i++ {
		s += math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:]))
	}
	return s, nil
}

// ---- rows ----

// lnFwd: see ln_fwd in kernels/norm.cu. Pointers r, bias, sum, mean, rstd may
// be 0.
func (c *Context) lnFwd(x devPtr, ldx int, r devPtr, ldr int, bias, sum devPtr, lds int, out devPtr, ldo int,
	gamma, beta, mean, rstd devPtr, rows, n int, eps float32) error {
	if rows == 0 {
		return nil
	}
	return c.launch("ln_fwd", dim3{ceilDiv(rows, rowsPerBlock), 1, 1}, dim3{32 * rowsPerBlock, 1, 1}, 0,
		newArgs().p(x).i(ldx).p(r).i(ldr).p(bias).p(sum).i(lds).p(out).i(ldo).p(gamma).p(beta).p(mean).p(rstd).i(rows).i(n).f(eps))
}

func (c *Context) lnBwdDx(dx, x, dy, gamma, mean, rstd devPtr, rows, n int, acc bool) error {
	if rows == 0 {
		return nil
	}
	return c.launch("ln_bwd_dx", dim3{ceilDiv(rows, rowsPerBlock), 1, 1}, dim3{32 * rowsPerBlock, 1, 1}, 0,
		newArgs().p(dx).p(x).p(dy).p(gamma).p(mean).p(rstd).i(rows).i(n).b(acc))
}

// colChunks splits rows into at most 65535 chunks of at least 64 rows.
func colChunks(rows int) (chunkRows, chunks int) {
	chunkRows = max(64, ceilDiv(rows, 65535))
	return chunkRows, ceilDiv(rows, chunkRows)
}

// colSumAcc adds the column sums of x [rows, n] to dst [n].
func (c *Context) colSumAcc(dst, x devPtr, rows, n int) error {
	if rows == 0 || n == 0 {
		return nil
	}
	cr, chunks := colChunks(rows)
	part, err := c.alloc(8 * chunks * n)
	if err != nil {
		return err
	}
	defer c.free(part)
	if err := c.launch("col_partials", dim3{ceilDiv(n, 32), chunks, 1}, dim3{32, 8, 1}, 0,
		newArgs().p(x).i(rows).i(n).i(cr).p(part)); err != nil {
		return err
	}
	return c.launch("col_finish", grid1(n, 128), dim3{128, 1, 1}, 0, newArgs().p(dst).p(part).i(chunks).i(n))
}

// lnParamGrads adds Σ_rows dy·x̂ to dgamma and Σ_rows dy to dbeta (either 0).
func (c *Context) lnParamGrads(dgamma, dbeta, x, dy, mean, rstd devPtr, rows, n int) error {
	if rows == 0 || n == 0 || (dgamma == 0 && dbeta == 0) {
		return nil
	}
	cr, chunks := colChunks(rows)
	var pg, pb devPtr
	var err error
	if dgamma != 0 {
		if pg, err = c.alloc(8 * chunks * n); err != nil {
			return err
		}
		defer c.free(pg)
	}
	if dbeta != 0 {
		if pb, err = c.alloc(8 * chunks * n); err != nil {
			return err
		}
		defer c.free(pb)
	}
	if err := c.launch("ln_param_partials", dim3{ceilDiv(n, 32), chunks, 1}, dim3{32, 8, 1}, 0,
		newArgs().p(x).p(dy).p(mean).p(rstd).i(rows).i(n).i(cr).p(pg).p(pb)); err != nil {
		return err
	}
	for _, d := range [][2]devPtr{{dgamma, pg}, {dbeta, pb}} {
		if d[0] != 0 {
			if err := c.launch("col_finish", grid1(n, 128), dim3{128, 1, 1}, 0, newArgs().p(d[0]).p(d[1]).i(chunks).i(n)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Context) softmaxRows(x devPtr, rows, n int) error {
	if rows == 0 {
		return nil
	}
	return c.launch("softmax_rows", dim3{ceilDiv(rows, rowsPerBlock), 1, 1}, dim3{32 * rowsPerBlock, 1, 1}, 0,
		newArgs().p(x).i(rows).i(n))
}

func (c *Context) softmaxBwd(dx, y, dy devPtr, rows, n int, acc bool) error {
	if rows == 0 {
		return nil
	}
	return c.launch("softmax_bwd", dim3{ceilDiv(rows, rowsPerBlock), 1, 1}, dim3{32 * rowsPerBlock, 1, 1}, 0,
		newArgs().p(dx).p(y).p(dy).i(rows).i(n).b(acc))
}

// ---- vision input ----

func (c *Context) patchUnfold(cols, pix devPtr, B, Cin, H, W, P int) error {
	n := int64(B) * int64(H/P) * int64(W/P) * int64(Cin*P*P)
	if n == 0 {
		return nil
	}
	return c.launch("patch_unfold", gridStride(n, 256), dim3{256, 1, 1}, 0, newArgs().p(cols).p(pix).i(B).i(Cin).i(H).i(W).i(P))
}

func (c *Context) vitEmbed(x, patches, cls, pos devPtr, B, T, C int) error {
	n := int64(B) * int64(T) * int64(C)
	if n == 0 {
		return nil
	}
	return c.launch("vit_embed", gridStride(n, 256), dim3{256, 1, 1}, 0, newArgs().p(x).p(patches).p(cls).p(pos).i(B).i(T).i(C))
}

// ---- text input and pooling ----

// textEmbed writes x [B·T, C] = tok[ids] + pos[t] (ids int32 [B·T]).
func (c *Context) textEmbed(x, ids, tok, pos devPtr, B, T, C int) error {
	n := int64(B) * int64(T) * int64(C)
	if n == 0 {
		return nil
	}
	return c.launch("text_embed", gridStride(n, 256), dim3{256, 1, 1}, 0, newArgs().p(x).p(ids).p(tok).p(pos).i(B).i(T).i(C))
}

// gatherRows copies rows idx[r] (int32 [rows]) of src (rows lds apart) to
// dst (rows ldd apart), n floats each.
func (c *Context) gatherRows(dst devPtr, ldd int, src devPtr, lds int, idx devPtr, rows, n int) error {
	if rows == 0 || n == 0 {
		return nil
	}
	return c.launch("gather_rows", gridStride(int64(rows)*int64(n), 256), dim3{256, 1, 1}, 0,
		newArgs().p(dst).i(ldd).p(src).i(lds).p(idx).i(rows).i(n))
}

// ---- GEMM ----

// gemmCall is a row-major (batched) matrix product with an epilogue:
// C = act(alpha·op(A)·op(B) + beta·C + bias) per batch.
type gemmCall struct {
	transA, transB bool
	m, n, k        int
	alpha          float32
	a              devPtr
	lda            int
	sa             int64
	b              devPtr
	ldb            int
	sb             int64
	beta           float32
	c              devPtr
	ldc            int
	sc             int64
	batch          int // 0 or 1: one product
	bias           devPtr
	act            int
}

// gemm runs g with engine eng at precision prec. cuBLAS runs the product and
// a bias_act kernel the epilogue (which then needs ldc == n and, batched,
// sc == m·n); the own kernel fuses it.
func (c *Context) gemm(eng GemmEngine, prec Precision, g gemmCall) error {
	if g.m == 0 || g.n == 0 {
		return nil
	}
	batch := max(g.batch, 1)
	useBlas := false
	switch eng {
	case GemmCublas:
		if !c.blas {
			return fmt.Errorf("cuda: cuBLAS requested but not loaded: %v", cublasErr)
		}
		useBlas = true
	case GemmAuto:
		useBlas = c.blas
	}
	if prec == TF32 && !useBlas {
		return fmt.Errorf("cuda: TF32 needs cuBLAS (engine %d, cuBLAS loaded: %v)", eng, c.blas)
	}
	if !useBlas {
		return c.launch("sgemm_ep", dim3{ceilDiv(g.n, 64), ceilDiv(g.m, 64), batch}, dim3{256, 1, 1}, 0,
			newArgs().b(g.transA).b(g.transB).i(g.m).i(g.n).i(g.k).f(g.alpha).p(g.a).i(g.lda).q(g.sa).
				p(g.b).i(g.ldb).q(g.sb).f(g.beta).p(g.c).i(g.ldc).q(g.sc).p(g.bias).i(g.act))
	}
	compute := blasCompute32F
	if prec == TF32 {
		compute = blasCompute32FTF32
	}
	// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ.
	if err := shimBlasGemm(g.transB, g.transA, g.n, g.m, g.k, g.alpha, g.b, g.ldb, g.sb, g.a, g.lda, g.sa,
		g.beta, g.c, g.ldc, g.sc, batch, compute); err != nil {
		return err
	}
	if g.bias == 0 && g.act == actNone {
		return nil
	}
	if g.ldc != g.n || (batch > 1 && g.sc != int64(g.m)*int64(g.n)) {
		return fmt.Errorf("cuda: GEMM epilogue after cuBLAS needs a compact C (ldc %d, n %d, stride %d)", g.ldc, g.n, g.sc)
	}
	return c.biasAct(g.c, g.bias, batch*g.m*g.n, g.n, g.act)
}

// ---- attention ----

// attnGeom is one attention call on the device (see kernels/attention.cu).
type attnGeom struct {
	B, T, H, D         int
	ldq, ldk, ldv, ldo int
	causal             bool
	scale              float32
	keyLens            devPtr // int32[B] or 0
	headKeep           devPtr // int32[H] (nonzero = kept) or 0
	headSlot           devPtr // int32[H]: rank among kept heads or -1; 0 = all kept
	keptHeads          devPtr // int32[Hk]: the kept heads in order
	Hk                 int
}

// flashDMax returns the flash instantiation for head dimension D (0: none).
func flashDMax(D int) int {
	for _, d := range []int{16, 32, 64, 128} {
		if D <= d {
			return d
		}
	}
	return 0
}

// attnFlash runs the fused forward (no probabilities); D <= 128.
func (c *Context) attnFlash(g *attnGeom, q, k, v, out devPtr) error {
	dm := flashDMax(g.D)
	if dm == 0 {
		return fmt.Errorf("cuda: flash attention supports head dimensions up to 128, not %d", g.D)
	}
	bq := 64
	if dm == 128 {
		bq = 32
	}
	return c.launch(fmt.Sprintf("attn_flash_fwd_d%d", dm), dim3{ceilDiv(g.T, bq), g.H, g.B}, dim3{128, 1, 1}, 0,
		newArgs().p(q).p(k).p(v).p(out).i(g.T).i(g.H).i(g.D).i(g.ldq).i(g.ldk).i(g.ldv).i(g.ldo).
			f(g.scale).b(g.causal).p(g.keyLens).p(g.headKeep))
}

// attnProbs writes the probabilities P [B·Hk, T, T].
func (c *Context) attnProbs(g *attnGeom, q, k, P devPtr) error {
	return c.launch("attn_probs", dim3{g.T, g.B * g.Hk, 1}, dim3{128, 1, 1}, 4*g.D,
		newArgs().p(q).p(k).p(P).i(g.T).i(g.D).i(g.ldq).i(g.ldk).f(g.scale).b(g.causal).p(g.keyLens).p(g.keptHeads).i(g.Hk))
}

// attnPV computes out = P·V (0 for dropped heads).
func (c *Context) attnPV(g *attnGeom, P, v, out devPtr) error {
	return c.launch("attn_pv", dim3{ceilDiv(g.T*g.D, 128), g.B * g.H, 1}, dim3{128, 1, 1}, 0,
		newArgs().p(P).p(v).p(out).i(g.T).i(g.H).i(g.D).i(g.ldv).i(g.ldo).p(g.headSlot).i(g.Hk))
}

// attnNaive is the materialising forward: P then P·V.
func (c *Context) attnNaive(g *attnGeom, q, k, v, out, P devPtr) error {
	if err := c.attnProbs(g, q, k, P); err != nil {
		return err
	}
	return c.attnPV(g, P, v, out)
}

func (c *Context) attnBwdDV(g *attnGeom, P, dO, dv devPtr, beta float32) error {
	return c.launch("attn_bwd_dv", dim3{ceilDiv(g.T*g.D, 128), g.B * g.H, 1}, dim3{128, 1, 1}, 0,
		newArgs().p(P).p(dO).p(dv).i(g.T).i(g.H).i(g.D).i(g.ldo).i(g.ldv).p(g.keyLens).p(g.headSlot).i(g.Hk).f(beta))
}

func (c *Context) attnBwdDS(g *attnGeom, P, dO, v, dS devPtr) error {
	return c.launch("attn_bwd_ds", dim3{g.T, g.B * g.Hk, 1}, dim3{128, 1, 1}, 4*g.D,
		newArgs().p(P).p(dO).p(v).p(dS).i(g.T).i(g.D).i(g.ldo).i(g.ldv).b(g.causal).p(g.keyLens).p(g.keptHeads).i(g.Hk))
}

func (c *Context) attnBwdDQ(g *attnGeom, dS, k, dq devPtr, beta float32) error {
	return c.launch("attn_bwd_dq", dim3{ceilDiv(g.T*g.D, 128), g.B * g.H, 1}, dim3{128, 1, 1}, 0,
		newArgs().p(dS).p(k).p(dq).i(g.T).i(g.H).i(g.D).i(g.ldk).i(g.ldq).f(g.scale).p(g.keyLens).p(g.headSlot).i(g.Hk).f(beta))
}

func (c *Context) attnBwdDK(g *attnGeom, dS, q, dk devPtr, beta float32) error {
	return c.launch("attn_bwd_dk", dim3{ceilDiv(g.T*g.D, 128), g.B * g.H, 1}, dim3{128, 1, 1}, 0,
		newArgs().p(dS).p(q).p(dk).i(g.T).i(g.H).i(g.D).i(g.ldq).i(g.ldk).f(g.scale).p(g.keyLens).p(g.headSlot).i(g.Hk).f(beta))
}

// ---- small helpers ----

// uploadInts copies int32 values to a new device block (0 for nil).
func (c *Context) uploadInts(v []int32) (devPtr, error) {
	if v == nil {
		return 0, nil
	}
	p, err := c.alloc(4 * max(len(v), 1))
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(buf[4*i:], uint32(x))
	}
	if err := shimHtoDBytes(p, buf); err != nil {
		c.free(p)
		return 0, err
	}
	return p, nil
}

// nanBits is the float32 quiet NaN the poisoning memsets write.
const nanBits = 0x7fc00000

// poison fills n floats at p with NaN.
func (c *Context) poison(p devPtr, n int) error { return shimMemset32(p, nanBits, n, c.stream) }
