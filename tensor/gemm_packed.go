package tensor

import (
	"fmt"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
)

// PackedB is a k×n matrix op(B) packed once (at model load) into the panel
// layout of the GEMM micro-kernel, for SgemmPacked. It does not refer to the
// matrix it was packed from.
//
// The layout depends on the micro-kernel (its panel width nr and K block
// depth). A PackedB remembers the layout it holds; when SgemmPacked finds a
// different kernel active (MOPECLIP_KERNELS, or Use in tests) it repacks
// lazily from its first packing and keeps that layout too, so switching back
// and forth costs one repack per layout. This is safe for concurrent use by
// several goroutines.
type PackedB struct {
	k, n    int
	cur     atomic.Pointer[bLayout]
	mu      sync.Mutex
	layouts []*bLayout // every layout made so far; layouts[0] is the first
}

// bLayout is op(B) in nr-column panels with K blocks of depth kb: the block
// starting at row pc begins at pc*npan*nr; within it, panel jp (columns
// jp*nr…) begins at jp*kbb*nr (kbb = min(kb, k-pc)) and holds element (l, j)
// at (l-pc)*nr + j%nr. Columns past n are zero.
type bLayout struct {
	nr, kb, npan int
	data         []float32
}

// K returns the number of rows of op(B) (the inner dimension).
func (p *PackedB) K() int { return p.k }

// N returns the number of columns of op(B) (columns of C).
func (p *PackedB) N() int { return p.n }

// PackB packs the k×n matrix op(B) (row-major b with row stride ldb; op(B) =
// Bᵀ when tB is Trans) for SgemmPacked, in the layout of the active GEMM
// kernel. For a Linear layer with weights W stored [out, in], y = x·Wᵀ uses
// PackB(blas.Trans, in, out, W, in). Invalid arguments panic like Sgemm's.
func PackB(tB blas.Transpose, k, n int, b []float32, ldb int) *PackedB {
	if tB != blas.NoTrans && tB != blas.Trans && tB != blas.ConjTrans {
		panic(fmt.Sprintf("tensor.PackB: bad transpose %v", tB))
	}
	if k < 0 || n < 0 {
		panic(fmt.Sprintf("tensor.PackB: negative dimension k=%d n=%d", k, n))
	}
	rows, cols := k, n
	if isTrans(tB) {
		rows, cols = n, k
	}
	if ldb < max(1, cols) {
		panic(fmt.Sprintf("tensor.PackB: bad ldb %d for %d columns", ldb, cols))
	}
	if k > 0 && n > 0 && len(b) < ldb*(rows-1)+cols {
		panic(fmt.Sprintf("tensor.PackB: short B: len %d < %d", len(b), ldb*(rows-1)+cols))
	}
	kr := sgemmK.Fn()
	l := &bLayout{nr: kr.nr, kb: blockLen(k, kr.kc, 4), npan: ceilDiv(n, kr.nr)}
	l.data = aligned[float32](k * l.npan * l.nr)
	for pc := 0; pc < k; pc += l.kb {
		kb := min(l.kb, k-pc)
		packB(isTrans(tB), b, ldb, pc, kb, 0, n, l.nr, l.data[pc*l.npan*l.nr:])
	}
	collapseHuge(l.data)
	p := &PackedB{k: k, n: n, layouts: []*bLayout{l}}
	p.cur.Store(l)
	return p
}

// layoutFor returns the packing for kernel kr, making it if needed.
func (p *PackedB) layoutFor(kr *gemmKernel) *bLayout {
	kb := blockLen(p.k, kr.kc, 4)
	if l := p.cur.Load(); l.nr == kr.nr && l.kb == kb {
		return l
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.layouts {
		if l.nr == kr.nr && l.kb == kb {
			p.cur.Store(l)
			return l
		}
	}
	src := p.layouts[0]
	l := &bLayout{nr: kr.nr, kb: kb, npan: ceilDiv(p.n, kr.nr)}
	l.data = aligned[float32](p.k * l.npan * l.nr)
	for pc := 0; pc < p.k; pc += l.kb {
		kbb := min(l.kb, p.k-pc)
		for jp := 0; jp < l.npan; jp++ {
			d := l.data[pc*l.npan*l.nr+jp*kbb*l.nr:][:kbb*l.nr]
			for r := 0; r < kbb; r++ {
				for c := 0; c < l.nr && jp*l.nr+c < p.n; c++ {
					d[r*l.nr+c] = src.at(p.k, pc+r, jp*l.nr+c)
				}
			}
		}
	}
	collapseHuge(l.data)
	p.layouts = append(p.layouts, l)
	p.cur.Store(l)
	return l
}

// at returns element (l, j) of op(B) from the packing.
func (b *bLayout) at(k, l, j int) float32 {
	pc := l / b.kb * b.kb
	kbb := min(b.kb, k-pc)
	return b.data[pc*b.npan*b.nr+(j/b.nr)*kbb*b.nr+(l-pc)*b.nr+j%b.nr]
}

// Activation selects the activation of an Epilogue.
type Activation int

const (
	ActNone      Activation = iota // identity
	ActQuickGELU                   // x·σ(1.702x), CLIP's (tensor.QuickGELU)
	ActGELU                        // x·Φ(x) (tensor.GELU)
)

// String returns "none", "quick_gelu" or "gelu" (the Hugging Face
// hidden_act names of the two activations).
func (a Activation) String() string {
	switch a {
	case ActNone:
		return "none"
	case ActQuickGELU:
		return "quick_gelu"
	case ActGELU:
		return "gelu"
	}
	return fmt.Sprintf("Activation(%d)", int(a))
}

// ParseActivation is the inverse of Activation.String.
func ParseActivation(s string) (Activation, error) {
	for _, a := range []Activation{ActNone, ActQuickGELU, ActGELU} {
		if a.String() == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("tensor: unknown activation %q (want none, quick_gelu or gelu)", s)
}

// Epilogue is work fused into SgemmPackedEpilogue, applied to each block of
// C once it is final (while it is still in cache):
//
//	C[i][j] = act(alpha·(op(A)·B)[i][j] + beta·C[i][j] + Bias[j]) + Residual[i*Ldr+j]
//
// Bias (length ≥ n) and Residual (m×n, row stride Ldr; 0 means n) are
// optional (nil). Residual must not overlap C (for C += … use beta = 1).
type Epilogue struct {
	Bias     []float32
	Act      Activation
	Residual []float32
	Ldr      int
}

// SgemmPacked computes C = alpha·op(A)·B + beta·C with B pre-packed by PackB:
// op(A) is m×k (A row-major with stride lda, Aᵀ when tA is Trans), B is
// pb.K()×pb.N(), C is m×pb.N() with stride ldc. beta == 0 ignores C's old
// contents. Invalid arguments panic. It allocates nothing per call (its A
// panels come from a pool) when it runs on one thread.
func SgemmPacked(tA blas.Transpose, m int, alpha float32, a []float32, lda int, pb *PackedB, beta float32, c []float32, ldc int) {
	sgemmPacked("SgemmPacked", tA, m, alpha, a, lda, pb, beta, c, ldc, false, Epilogue{})
}

// SgemmPackedEpilogue is SgemmPacked followed by the fused epilogue ep:
// C = act(alpha·op(A)·B + beta·C + ep.Bias) + ep.Residual.
func SgemmPackedEpilogue(tA blas.Transpose, m int, alpha float32, a []float32, lda int, pb *PackedB, beta float32, c []float32, ldc int, ep Epilogue) {
	sgemmPacked("SgemmPackedEpilogue", tA, m, alpha, a, lda, pb, beta, c, ldc, true, ep)
}

func sgemmPacked(op string, tA blas.Transpose, m int, alpha float32, a []float32, lda int, pb *PackedB, beta float32, c []float32, ldc int, hasEp bool, ep Epilogue) {
	g := gemmArgs{tA: isTrans(tA), m: m, alpha: alpha, beta: beta, a: a, lda: lda, c: c, ldc: ldc, hasEp: hasEp, ep: ep}
	if !checkPacked(op, tA, &g, pb) {
		return
	}
	if g.k == 0 || alpha == 0 {
		scaleC(m, g.n, beta, c, ldc)
		if hasEp {
			g.applyEpilogue(0, m, 0, g.n)
		}
		return
	}
	kr := sgemmK.Fn()
	g.run(kr, pb.layoutFor(kr))
}

// checkPacked validates SgemmPacked's arguments (panicking like Sgemm), sets
// g.k, g.n and g.ldr, and reports whether there is anything to compute.
func checkPacked(op string, tA blas.Transpose, g *gemmArgs, pb *PackedB) bool {
	if tA != blas.NoTrans && tA != blas.Trans && tA != blas.ConjTrans {
		panic(fmt.Sprintf("tensor.%s: bad transpose %v", op, tA))
	}
	if pb == nil {
		panic(fmt.Sprintf("tensor.%s: nil PackedB", op))
	}
	m, k, n := g.m, pb.k, pb.n
	g.k, g.n = k, n
	if m < 0 {
		panic(fmt.Sprintf("tensor.%s: negative dimension m=%d", op, m))
	}
	rowsA, colsA := m, k
	if g.tA {
		rowsA, colsA = k, m
	}
	if g.lda < max(1, colsA) {
		panic(fmt.Sprintf("tensor.%s: bad lda %d for %d columns", op, g.lda, colsA))
	}
	if g.ldc < max(1, n) {
		panic(fmt.Sprintf("tensor.%s: bad ldc %d for %d columns", op, g.ldc, n))
	}
	if ep := &g.ep; g.hasEp {
		if ep.Act != ActNone && ep.Act != ActQuickGELU && ep.Act != ActGELU {
			panic(fmt.Sprintf("tensor.%s: bad activation %d", op, ep.Act))
		}
		g.ldr = ep.Ldr
		if g.ldr == 0 {
			g.ldr = n
		}
		if ep.Residual != nil && g.ldr < max(1, n) {
			panic(fmt.Sprintf("tensor.%s: bad Ldr %d for %d columns", op, ep.Ldr, n))
		}
	}
	if m == 0 || n == 0 {
		return false
	}
	if k > 0 && len(g.a) < g.lda*(rowsA-1)+colsA {
		panic(fmt.Sprintf("tensor.%s: short A: len %d < %d", op, len(g.a), g.lda*(rowsA-1)+colsA))
	}
	if len(g.c) < g.ldc*(m-1)+n {
		panic(fmt.Sprintf("tensor.%s: short C: len %d < %d", op, len(g.c), g.ldc*(m-1)+n))
	}
	if ep := &g.ep; g.hasEp {
		if ep.Bias != nil && len(ep.Bias) < n {
			panic(fmt.Sprintf("tensor.%s: short Bias: len %d < %d", op, len(ep.Bias), n))
		}
		if ep.Residual != nil && len(ep.Residual) < g.ldr*(m-1)+n {
			panic(fmt.Sprintf("tensor.%s: short Residual: len %d < %d", op, len(ep.Residual), g.ldr*(m-1)+n))
		}
	}
	return true
}

// packedTask computes rows [i0,i1) × columns [j0,j1) of C from pre-packed
// B. Per block of mc rows it packs op(A) for all of K once, then sweeps the
// columns in blocks small enough that the C block stays in L2 across the K
// blocks, and applies the epilogue to each finished C block.
func (g *gemmArgs) packedTask(kr *gemmKernel, w *gemmWork, i0, i1, j0, j1 int) {
	mr, nr := kr.mr, kr.nr
	lay := g.pb
	mc := blockLen(i1-i0, kr.mc, mr)
	w.tile = grow(w.tile, mr*nr)
	for ic := i0; ic < i1; ic += mc {
		mb := min(mc, i1-ic)
		mbp := roundUp(mb, mr)
		ap := g.ap // packed by packAllA: all rows, so i0 = 0 and mb = m
		if ap == nil {
			w.a = grow(w.a, mbp*g.k)
			ap = w.a
			for pc := 0; pc < g.k; pc += g.kb {
				kb := min(g.kb, g.k-pc)
				packA(g.tA, g.a, g.lda, ic, mb, pc, kb, mr, ap[pc*mbp:])
			}
		}
		// C block of mb×ncp floats: about 256 KiB.
		ncp := blockLen(j1-j0, max(nr, min(kr.nc, (1<<16)/mb/nr*nr)), nr)
		for jc := j0; jc < j1; jc += ncp {
			nb := min(ncp, j1-jc)
			for pc := 0; pc < g.k; pc += g.kb {
				kb := min(g.kb, g.k-pc)
				beta := g.beta
				if pc > 0 {
					beta = 1
				}
				bp := lay.data[pc*lay.npan*nr+jc/nr*kb*nr:]
				macroKernel(kr, kb, mb, nb, ap[pc*mbp:], bp, g.c[ic*g.ldc+jc:], g.ldc, g.alpha, beta, w.tile)
			}
			if g.hasEp {
				g.applyEpilogue(ic, mb, jc, nb)
			}
		}
	}
}

// applyEpilogue applies g.ep to rows [i0,i0+mb) × columns [j0,j0+nb) of C.
func (g *gemmArgs) applyEpilogue(i0, mb, j0, nb int) {
	ep := &g.ep
	for i := i0; i < i0+mb; i++ {
		row := g.c[i*g.ldc+j0 : i*g.ldc+j0+nb]
		if ep.Bias != nil {
			AddBias(row, ep.Bias[j0:j0+nb])
		}
		switch ep.Act {
		case ActQuickGELU:
			QuickGELU(row, row)
		case ActGELU:
			GELU(row, row)
		}
		if ep.Residual != nil {
			Add(row, row, ep.Residual[i*g.ldr+j0:i*g.ldr+j0+nb])
		}
	}
}
