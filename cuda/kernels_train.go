//go:build cuda

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Typed launchers of the training kernels: the flash attention forward that
// saves its row statistics and the flash backward (kernels/attention.cu),
// the fused bias + activation backward, the loss kernels and the
// multi-tensor AdamW (kernels/train.cu). Like kernels.go they queue work on
// the context's stream and return launch errors only.

// flashTile is the number of rows (queries of the dq kernel, keys of the
// dk/dv kernel) one block of the flash backward handles at instantiation
// dm (kernels/attention.cu).
func flashTile(dm int) int {
	switch dm {
	case 64:
		return 32
	case 128:
		return 16
	}
	return 64
}

// attnFlashSave runs the fused forward and writes the row log-sum-exps
// lse [B·Hk·T] and the output rows osave [B·Hk·T·D] for attnFlashBackward.
func (c *Context) attnFlashSave(g *attnGeom, q, k, v, out, lse, osave devPtr) error {
	dm := flashDMax(g.D)
	if dm == 0 {
		return fmt.Errorf("cuda: flash attention supports head dimensions up to 128, not %d", g.D)
	}
	bq := 64
	if dm == 128 {
		bq = 32
	}
	return c.launch(fmt.Sprintf("attn_flash_fwd_save_d%d", dm), dim3{ceilDiv(g.T, bq), g.H, g.B}, dim3{128, 1, 1}, 0,
		newArgs().p(q).p(k).p(v).p(out).i(g.T).i(g.H).i(g.D).i(g.ldq).i(g.ldk).i(g.ldv).i(g.ldo).
			f(g.scale).b(g.causal).p(g.keyLens).p(g.headKeep).p(lse).p(osave).p(g.headSlot).i(g.Hk))
}

// attnFlashKV1 runs attn_flash_fwd_d128_kv1, the D = 128 tuning candidate
// (64×16 tiles, K and V taking turns in one shared buffer); 64 < D <= 128.
// Benchmarked next to attnFlash; the Backend does not use it.
func (c *Context) attnFlashKV1(g *attnGeom, q, k, v, out devPtr) error {
	if flashDMax(g.D) != 128 {
		return fmt.Errorf("cuda: attn_flash_fwd_d128_kv1 is for head dimensions 65 to 128, not %d", g.D)
	}
	return c.launch("attn_flash_fwd_d128_kv1", dim3{ceilDiv(g.T, 64), g.H, g.B}, dim3{128, 1, 1}, 0,
		newArgs().p(q).p(k).p(v).p(out).i(g.T).i(g.H).i(g.D).i(g.ldq).i(g.ldk).i(g.ldv).i(g.ldo).
			f(g.scale).b(g.causal).p(g.keyLens).p(g.headKeep))
}

// attnFlashV4 runs attn_flash_fwd_v4_d64, the D <= 64 tuning candidate
// (vectorised shared-memory reads, 64×32 tiles). Benchmarked next to
// attnFlash; the Backend does not use it.
func (c *Context) attnFlashV4(g *attnGeom, q, k, v, out devPtr) error {
	if g.D > 64 || g.D < 1 {
		return fmt.Errorf("cuda: attn_flash_fwd_v4_d64 is for head dimensions 1 to 64, not %d", g.D)
	}
	return c.launch("attn_flash_fwd_v4_d64", dim3{ceilDiv(g.T, 64), g.H, g.B}, dim3{128, 1, 1}, 0,
		newArgs().p(q).p(k).p(v).p(out).i(g.T).i(g.H).i(g.D).i(g.ldq).i(g.ldk).i(g.ldv).i(g.ldo).
			f(g.scale).b(g.causal).p(g.keyLens).p(g.headKeep))
}

// flashGrads are the outputs of the flash backward: gradients (0: not
// wanted) with the strides of q, k, v, and their betas.
type flashGrads struct {
	dq, dk, dv          devPtr
	betaQ, betaK, betaV float32
}

// attnFlashBackward runs the flash backward from attnFlashSave's lse and
// osave: the dq kernel (which also fills delta [B·Hk·T], scratch), then the
// dk/dv kernel. dO has row stride lddo. dq, dk, dv must not overlap (the
// Backend resolves aliasing before calling).
func (c *Context) attnFlashBackward(g *attnGeom, q, k, v, dO devPtr, lddo int, lse, osave, delta devPtr, gr flashGrads) error {
	dm := flashDMax(g.D)
	if dm == 0 {
		return fmt.Errorf("cuda: flash attention supports head dimensions up to 128, not %d", g.D)
	}
	tile := flashTile(dm)
	grid := dim3{ceilDiv(g.T, tile), g.H, g.B}
	a := func(dq, dk, dv devPtr) *args {
		return newArgs().p(q).p(k).p(v).p(dO).p(lse).p(osave).p(delta).p(dq).p(dk).p(dv).
			i(g.T).i(g.H).i(g.D).i(g.ldq).i(g.ldk).i(g.ldv).i(lddo).f(g.scale).b(g.causal).
			p(g.keyLens).p(g.headSlot).i(g.Hk).f(gr.betaQ).f(gr.betaK).f(gr.betaV)
	}
	if err := c.launch(fmt.Sprintf("attn_flash_bwd_dq_d%d", dm), grid, dim3{128, 1, 1}, 0, a(gr.dq, 0, 0)); err != nil {
		return err
	}
	if gr.dk == 0 && gr.dv == 0 {
		return nil
	}
	return c.launch(fmt.Sprintf("attn_flash_bwd_dkdv_d%d", dm), grid, dim3{128, 1, 1}, 0, a(0, gr.dk, gr.dv))
}

// biasActBwd: dx (=|+= by acc) dy·act'(x) over x [rows, n] and, when dbias
// is not 0, dbias += the column sums of dy·act'(x) (two stages, as
// colSumAcc).
func (c *Context) biasActBwd(dx, dbias, x, dy devPtr, rows, n, act int, acc bool) error {
	if rows == 0 || n == 0 {
		return nil
	}
	cr, chunks := colChunks(rows)
	var part devPtr
	if dbias != 0 {
		var err error
		if part, err = c.alloc(8 * chunks * n); err != nil {
			return err
		}
		defer c.free(part)
	}
	if err := c.launch("bias_act_bwd", dim3{ceilDiv(n, 32), chunks, 1}, dim3{32, 8, 1}, 0,
		newArgs().p(dx).p(x).p(dy).i(rows).i(n).i(cr).i(act).b(acc).p(part)); err != nil {
		return err
	}
	if dbias == 0 {
		return nil
	}
	return c.launch("col_finish", grid1(n, 128), dim3{128, 1, 1}, 0, newArgs().p(dbias).p(part).i(chunks).i(n))
}

// sumFinish writes out[0] = float32(Σ part[:n] / div) (part: float64).
func (c *Context) sumFinish(part devPtr, n int, div float64, out devPtr) error {
	return c.launch("sum_finish", dim3{1, 1, 1}, dim3{256, 1, 1}, 0, newArgs().p(part).i(n).d(div).p(out))
}

// infoNCE is LossKernels.InfoNCELogits on the device: logits [n, n]; dScale
// 0 means no gradient (logits then stay unchanged).
func (c *Context) infoNCE(loss, dScale, logits devPtr, n int) error {
	scratch, err := c.alloc(8 * 4 * n) // rowLSE, colLSE, lossPart, dsPart (float64)
	if err != nil {
		return err
	}
	defer c.free(scratch)
	rowLSE, colLSE := scratch, scratch+devPtr(8*n)
	lossPart, dsPart := scratch+devPtr(16*n), scratch+devPtr(24*n)
	rows := dim3{ceilDiv(n, rowsPerBlock), 1, 1}
	blk := dim3{32 * rowsPerBlock, 1, 1}
	if err := c.launch("nce_row_lse", rows, blk, 0, newArgs().p(logits).i(n).p(rowLSE)); err != nil {
		return err
	}
	if err := c.launch("nce_col_lse", grid1(n, 128), dim3{128, 1, 1}, 0, newArgs().p(logits).i(n).p(colLSE)); err != nil {
		return err
	}
	if err := c.launch("nce_rows", rows, blk, 0, newArgs().p(logits).i(n).p(rowLSE).p(colLSE).b(dScale != 0).p(lossPart).p(dsPart)); err != nil {
		return err
	}
	if err := c.sumFinish(lossPart, n, float64(2*n), loss); err != nil {
		return err
	}
	if dScale == 0 {
		return nil
	}
	return c.sumFinish(dsPart, n, 1, dScale)
}

// softCE is LossKernels.SoftCrossEntropy on the device over rows of m; grad
// may be 0.
func (c *Context) softCE(loss, grad, student, teacher devPtr, rows, m int, temp float32) error {
	part, err := c.alloc(8 * rows)
	if err != nil {
		return err
	}
	defer c.free(part)
	if err := c.launch("soft_ce_rows", dim3{ceilDiv(rows, rowsPerBlock), 1, 1}, dim3{32 * rowsPerBlock, 1, 1}, 0,
		newArgs().p(student).p(teacher).p(grad).i(rows).i(m).f(temp).p(part)); err != nil {
		return err
	}
	return c.sumFinish(part, rows, float64(rows), loss)
}

// mse writes loss[0] = Σ (a−b)² / n.
func (c *Context) mse(loss, a, b devPtr, n int) error {
	g := gridStride(int64(n), 256)
	g[0] = min(g[0], 1024)
	part, err := c.alloc(8 * g[0])
	if err != nil {
		return err
	}
	defer c.free(part)
	if err := c.launch("mse_partials", g, dim3{256, 1, 1}, 0, newArgs().p(a).p(b).q(int64(n)).p(part)); err != nil {
		return err
	}
	return c.sumFinish(part, g[0], float64(n), loss)
}

// mseBwd: see LossKernels.MSEBackward; da or db may be 0.
func (c *Context) mseBwd(da, db, a, b, dy devPtr, n int, accA, accB bool) error {
	return c.launch("mse_bwd", gridStride(int64(n), 256), dim3{256, 1, 1}, 0,
		newArgs().p(da).p(db).p(a).p(b).p(dy).q(int64(n)).b(accA).b(accB))
}

// ---- multi-tensor AdamW ----

// mtChunk is MT_CHUNK of kernels/train.cu: elements per block.
const mtChunk = 4096

// mtTensor is one row of the device tensor table (struct MtTensor: four
// pointers, the length, the decay factor, padding; 48 bytes).
type mtTensor struct {
	p, g, m, v devPtr
	n          int
	decay      float32
}

const mtTensorBytes = 48

// mtTable is a tensor table and its chunk list on the device.
type mtTable struct {
	tensors, chunks devPtr
	nChunks         int
}

// uploadMT packs ts and their chunks (tensor index, chunk index: int32
// pairs) into new device blocks; free releases them.
func (c *Context) uploadMT(ts []mtTensor) (mtTable, error) {
	tab := make([]byte, 0, mtTensorBytes*len(ts))
	var chunks []byte
	for i, t := range ts {
		for _, p := range []devPtr{t.p, t.g, t.m, t.v} {
			tab = binary.LittleEndian.AppendUint64(tab, uint64(p))
		}
		tab = binary.LittleEndian.AppendUint64(tab, uint64(t.n))
		tab = binary.LittleEndian.AppendUint32(tab, math.Float32bits(t.decay))
		tab = binary.LittleEndian.AppendUint32(tab, 0)
		nc := ceilDiv(t.n, mtChunk)
		if nc > math.MaxInt32 {
			return mtTable{}, fmt.Errorf("cuda: tensor %d of %d elements has too many chunks", i, t.n)
		}
		for j := 0; j < nc; j++ {
			chunks = binary.LittleEndian.AppendUint32(chunks, uint32(i))
			chunks = binary.LittleEndian.AppendUint32(chunks, uint32(j))
		}
	}
	var mt mtTable
	mt.nChunks = len(chunks) / 8
	if mt.nChunks == 0 {
		return mt, nil
	}
	var err error
	if mt.tensors, err = c.alloc(len(tab)); err != nil {
		return mtTable{}, err
	}
	if mt.chunks, err = c.alloc(len(chunks)); err != nil {
		c.free(mt.tensors)
		return mtTable{}, err
	}
	if err = shimHtoDBytes(mt.tensors, tab); err == nil {
		err = shimHtoDBytes(mt.chunks, chunks)
	}
	if err != nil {
		c.freeMT(mt)
		return mtTable{}, err
	}
	return mt, nil
}

func (c *Context) freeMT(mt mtTable) {
	if mt.tensors != 0 {
		c.free(mt.tensors)
	}
	if mt.chunks != 0 {
		c.free(mt.chunks)
	}
}

// gradNormSq writes Σ g² over the gradients of mt into normSq[0:2] as a
// float32 pair (ops.FusedAdamW.GradNormSq): two launches.
func (c *Context) gradNormSq(mt mtTable, normSq devPtr) error {
	part, err := c.alloc(8 * max(mt.nChunks, 1))
	if err != nil {
		return err
	}
	defer c.free(part)
	if err := c.launch("mt_sumsq", dim3{mt.nChunks, 1, 1}, dim3{256, 1, 1}, 0, newArgs().p(mt.tensors).p(mt.chunks).p(part)); err != nil {
		return err
	}
	return c.launch("norm_finish", dim3{1, 1, 1}, dim3{256, 1, 1}, 0, newArgs().p(part).i(mt.nChunks).p(normSq))
}

// adamW runs one AdamW step over mt (one launch); normSq 0: no clipping.
func (c *Context) adamW(mt mtTable, k [7]float32, normSq devPtr, maxNorm float64) error {
	a := newArgs().p(mt.tensors).p(mt.chunks)
	for _, x := range k {
		a.f(x)
	}
	return c.launch("mt_adamw", dim3{mt.nChunks, 1, 1}, dim3{256, 1, 1}, 0, a.p(normSq).d(maxNorm))
}
