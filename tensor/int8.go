package tensor

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"gonum.org/v1/gonum/blas"
)

// The int8 weight path: B (the weights) is quantised once per column
// (output channel), op(A) (the activations) dynamically per row as each A
// block is packed, products are summed exactly in int32, and each sum is
// scaled back to float32.
//
// Quantisation. For a vector x (a row of op(A), or a column of B) with
// m = max|x| (float32, NaNs ignored):
//
//	scale = m / 127, inv = 127 / m        (float32 divisions; both 0 when
//	                                       m = 0 or 127/m overflows)
//	y     = float32(x·inv)
//	y     = 127 unless y < 127             (so NaN reads as 127)
//	y     = -127 unless y > -127
//	q     = RoundToEven(y)
//
// (what VMULPS, VMINPS, VMAXPS and VCVTPS2DQ do, in that order). Rows or
// columns holding NaN or ±Inf give meaningless (but still deterministic)
// results.
//
// Arithmetic. VPDPBUSD multiplies unsigned bytes by signed ones, so the
// weights are stored biased, u = qB + 128 ∈ [1, 255], and the activations
// signed, qA ∈ [-127, 127]. For element (i, j):
//
//	acc = Σ_l u[l,j]·qA[i,l] − 128·Σ_l qA[i,l] = Σ_l qB[l,j]·qA[i,l]   (int32, exact)
//	v   = float32(float32(float32(acc)·ra[i])·sw[j])
//	c   = v                          (beta == 0)
//	c   = v + float32(beta·c)        (otherwise; not fused)
//
// where ra[i] = float32(alpha·scaleA[i]) and sw[j] = scaleB[j]. Every sum
// is exact (|acc| ≤ K·255·127 < 2³¹ for K ≤ Int8MaxK) and every rounding is
// one float32 operation in a fixed order, so the generic, AVX-VNNI and
// AVX-512 VNNI kernels give bit-identical results, whatever the thread
// count. K is not blocked: each kernel call sums all of K.

// Int8MaxK is the largest inner dimension of SgemmPackedInt8: beyond it the
// int32 sums could overflow.
const Int8MaxK = 1 << 16

// int8Kernel is one int8 micro-kernel. fn(kq, a, b, c, ldc, ra, sw, corr,
// beta) computes an mr×nr tile of C from a packed A panel a (kq×mr×4
// signed bytes: group q of row i is the 4 bytes at (q·mr+i)·4, elements
// 4q..4q+3 of the row) and a packed B panel b (kq×nr×4 biased bytes: group
// q of column j at (q·nr+j)·4), with the row corrections corr[0:mr]
// (128·Σ_l qA[i,l]), row scales ra[0:mr] and column scales sw[0:nr], as
// described above. kq ≥ 1; the tile is always whole (the driver routes edge
// tiles through a buffer).
type int8Kernel struct {
	mr, nr int
	mc     int // rows of an A block (a multiple of mr)
	fn     func(kq int, a, b *byte, c *float32, ldc int, ra, sw *float32, corr *int32, beta float32)
}

// int8K is the registry of int8 micro-kernels: generic (pure Go), avx2
// (AVX-VNNI, the VEX-encoded VPDPBUSD of recent Intel and AMD cores) and
// avx512 (AVX-512 VNNI).
var int8K = NewRegistry[*int8Kernel]("int8gemm")

func init() {
	int8K.Register(Generic, &int8Kernel{mr: 4, nr: 4, mc: 128, fn: int8KernelGeneric})
}

// Int8Kernel returns the name of the active int8 micro-kernel variant
// (generic, avx2 or avx512).
func Int8Kernel() string { return int8K.Name() }

// quantScale returns scale = m/127 and inv = 127/m for m = max|x| (both 0
// when m is 0 or 127/m overflows).
func quantScale(m float32) (scale, inv float32) {
	inv = 127 / m
	if m == 0 || inv > math.MaxFloat32 {
		return 0, 0
	}
	return m / 127, inv
}

// quantize returns q for x (see the top of this file).
func quantize(x, inv float32) int8 {
	y := x * inv
	if !(y < 127) {
		y = 127
	}
	if !(y > -127) {
		y = -127
	}
	return int8(math.RoundToEven(float64(y)))
}

// maxAbs returns max|x| over s (NaNs ignored).
func maxAbs(s []float32) float32 {
	var m float32
	for _, x := range s {
		if x < 0 {
			x = -x
		}
		if x > m {
			m = x
		}
	}
	return m
}

// int8Quantizer quantises x into dst (same length) and returns the scale
// and Σ dst.
type int8Quantizer func(dst []int8, x []float32) (scale float32, sum int32)

// int8Q is the registry of the activation quantisers: generic (pure Go) and
// avx512. All give the same bits.
var int8Q = NewRegistry[int8Quantizer]("int8quant")

func init() { int8Q.Register(Generic, quantizeGeneric) }

func quantizeGeneric(dst []int8, x []float32) (float32, int32) {
	scale, inv := quantScale(maxAbs(x))
	var sum int32
	for i, v := range x {
		q := quantize(v, inv)
		dst[i] = q
		sum += int32(q)
	}
	return scale, sum
}

// QuantizeInt8 quantises x to dst (same length) as the int8 path quantises
// a row of activations, and returns the scale: x[i] ≈ scale·dst[i].
func QuantizeInt8(dst []int8, x []float32) float32 {
	scale, _ := int8Q.Fn()(dst[:len(x)], x)
	return scale
}

// PackedInt8 is a k×n matrix op(B) quantised to int8 per column and packed
// once into the panel layout of the active int8 micro-kernel, for
// SgemmPackedInt8 (a quarter of the memory of a PackedB). Like PackedB it
// repacks lazily when another kernel becomes active, and is safe for
// concurrent use.
type PackedInt8 struct {
	k, n    int
	scale   []float32 // per column
	cur     atomic.Pointer[int8Layout]
	mu      sync.Mutex
	layouts []*int8Layout
}

// int8Layout is op(B) in nr-column panels of biased bytes: panel jp begins
// at jp·kq·nr·4 and holds group q (K elements 4q..4q+3) of column j at
// (q·nr + j%nr)·4. Columns past n and K past k are zero bytes; sw holds
// the column scales padded with zeros to npan·nr.
type int8Layout struct {
	nr, kq, npan int
	data         []byte
	sw           []float32
}

// K returns the number of rows of op(B).
func (p *PackedInt8) K() int { return p.k }

// N returns the number of columns of op(B).
func (p *PackedInt8) N() int { return p.n }

// Scales returns the per-column scales (op(B)[l,j] ≈ Scales()[j]·q[l,j]).
func (p *PackedInt8) Scales() []float32 { return p.scale }

// Bytes returns the size of the packed data in bytes (of the layouts made
// so far, scales included).
func (p *PackedInt8) Bytes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := 4 * len(p.scale)
	for _, l := range p.layouts {
		s += len(l.data) + 4*len(l.sw)
	}
	return s
}

// PackBInt8 quantises the k×n matrix op(B) (row-major b, row stride ldb;
// op(B) = Bᵀ when tB is Trans) per column and packs it for SgemmPackedInt8.
// For a Linear layer with weights W [out, in], use PackBInt8(blas.Trans,
// in, out, W, in): one scale per output channel. Invalid arguments, and k >
// Int8MaxK, panic.
func PackBInt8(tB blas.Transpose, k, n int, b []float32, ldb int) *PackedInt8 {
	if tB != blas.NoTrans && tB != blas.Trans && tB != blas.ConjTrans {
		panic(fmt.Sprintf("tensor.PackBInt8: bad transpose %v", tB))
	}
	if k < 0 || n < 0 {
		panic(fmt.Sprintf("tensor.PackBInt8: negative dimension k=%d n=%d", k, n))
	}
	if k > Int8MaxK {
		panic(fmt.Sprintf("tensor.PackBInt8: k=%d > Int8MaxK (%d)", k, Int8MaxK))
	}
	rows, cols := k, n
	tr := isTrans(tB)
	if tr {
		rows, cols = n, k
	}
	if ldb < max(1, cols) {
		panic(fmt.Sprintf("tensor.PackBInt8: bad ldb %d for %d columns", ldb, cols))
	}
	if k > 0 && n > 0 && len(b) < ldb*(rows-1)+cols {
		panic(fmt.Sprintf("tensor.PackBInt8: short B: len %d < %d", len(b), ldb*(rows-1)+cols))
	}
	// Quantise column by column into q (k×n, column-major).
	q := make([]int8, k*n)
	scale := make([]float32, n)
	col := make([]float32, k)
	for j := 0; j < n; j++ {
		for l := range col {
			if tr {
				col[l] = b[j*ldb+l]
			} else {
				col[l] = b[l*ldb+j]
			}
		}
		scale[j] = QuantizeInt8(q[j*k:(j+1)*k], col)
	}
	at := func(l, j int) int8 { return q[j*k+l] }
	lay := newInt8Layout(k, n, int8K.Fn().nr, at, scale)
	p := &PackedInt8{k: k, n: n, scale: scale, layouts: []*int8Layout{lay}}
	p.cur.Store(lay)
	return p
}

// newInt8Layout packs the k×n quantised matrix with elements at(l, j) and
// column scales scale in nr-column panels.
func newInt8Layout(k, n, nr int, at func(l, j int) int8, scale []float32) *int8Layout {
	l := &int8Layout{nr: nr, kq: ceilDiv(k, 4), npan: ceilDiv(n, nr)}
	l.data = aligned[byte](l.kq * 4 * l.npan * nr)
	l.sw = make([]float32, l.npan*nr)
	copy(l.sw, scale)
	for j := 0; j < n; j++ {
		pan := l.data[j/nr*l.kq*nr*4:]
		for ll := 0; ll < k; ll++ {
			pan[(ll/4*nr+j%nr)*4+ll%4] = byte(int(at(ll, j)) + 128)
		}
	}
	collapseHuge(l.data)
	return l
}

// at returns quantised element (l, j) of the layout's matrix.
func (b *int8Layout) at(l, j int) int8 {
	return int8(int(b.data[j/b.nr*b.kq*b.nr*4+(l/4*b.nr+j%b.nr)*4+l%4]) - 128)
}

// layoutFor returns the packing for kernel kr, making it if needed.
func (p *PackedInt8) layoutFor(kr *int8Kernel) *int8Layout {
	if l := p.cur.Load(); l.nr == kr.nr {
		return l
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.layouts {
		if l.nr == kr.nr {
			p.cur.Store(l)
			return l
		}
	}
	src := p.layouts[0]
	l := newInt8Layout(p.k, p.n, kr.nr, src.at, p.scale)
	p.layouts = append(p.layouts, l)
	p.cur.Store(l)
	return l
}

// SgemmPackedInt8 computes C = alpha·op(A)·B + beta·C like SgemmPacked, with
// B quantised per column (PackBInt8) and each row of op(A) quantised to
// int8 as it is packed; products are summed exactly in int32 and scaled
// back (see the description at the top of int8.go). Invalid arguments
// panic. Results do not depend on the kernel variant or thread count.
func SgemmPackedInt8(tA blas.Transpose, m int, alpha float32, a []float32, lda int, pb *PackedInt8, beta float32, c []float32, ldc int) {
	sgemmPackedInt8("SgemmPackedInt8", tA, m, alpha, a, lda, pb, beta, c, ldc, false, Epilogue{}, 0)
}

// SgemmPackedInt8Epilogue is SgemmPackedInt8 followed by the fused epilogue
// ep (see Epilogue and SgemmPackedEpilogue).
func SgemmPackedInt8Epilogue(tA blas.Transpose, m int, alpha float32, a []float32, lda int, pb *PackedInt8, beta float32, c []float32, ldc int, ep Epilogue) {
	sgemmPackedInt8("SgemmPackedInt8Epilogue", tA, m, alpha, a, lda, pb, beta, c, ldc, true, ep, 0)
}

func sgemmPackedInt8(op string, tA blas.Transpose, m int, alpha float32, a []float32, lda int, pb *PackedInt8, beta float32, c []float32, ldc int, hasEp bool, ep Epilogue, forceThreads int) {
	if pb == nil {
		panic(fmt.Sprintf("tensor.%s: nil PackedInt8", op))
	}
	g := gemmArgs{tA: isTrans(tA), m: m, alpha: alpha, beta: beta, a: a, lda: lda, c: c, ldc: ldc, hasEp: hasEp, ep: ep, forceThreads: forceThreads}
	// checkPacked only reads the dimensions of its PackedB.
	if !checkPacked(op, tA, &g, &PackedB{k: pb.k, n: pb.n}) {
		return
	}
	if g.k == 0 || alpha == 0 {
		scaleC(m, g.n, beta, c, ldc)
		if hasEp {
			g.applyEpilogue(0, m, 0, g.n)
		}
		return
	}
	kr := int8K.Fn()
	h := int8Args{g: g, kr: kr, lay: pb.layoutFor(kr)}
	pm, pn := h.g.plan(&gemmKernel{mr: kr.mr, nr: kr.nr})
	if pm*pn == 1 {
		w := int8Pool.Get().(*int8Work)
		h.task(w, 0, m, 0, g.n)
		int8Pool.Put(w)
		return
	}
	hp := new(int8Args) // shared with the goroutines (h stays on the stack)
	*hp = h
	if pm == 1 && m <= kr.mc {
		// Every part needs all rows of A: quantise and pack them once,
		// split over the workers, instead of once per part (same bits).
		sh := int8Pool.Get().(*int8Work)
		hp.packAllA(sh, pn)
		hp.shared = sh
		hp.parallel(pm, pn)
		int8Pool.Put(sh)
		return
	}
	hp.parallel(pm, pn)
}

// packAllA quantises and packs all m ≤ mc rows of op(A) into sh, panel by
// panel on at most W workers (each with its own scratch).
func (h *int8Args) packAllA(sh *int8Work, W int) {
	mr, m := h.kr.mr, h.g.m
	mbp := roundUp(m, mr)
	sh.a = growBytes(sh.a, mbp*h.lay.kq*4)
	sh.ra = grow(sh.ra, mbp)
	sh.corr = growInt32(sh.corr, mbp)
	Parallel(mbp/mr, W, func(_, p int) {
		s := int8Pool.Get().(*int8Work)
		h.packRows(sh, s, 0, m, p*mr, (p+1)*mr)
		int8Pool.Put(s)
	})
}

// int8Args is one SgemmPackedInt8 call.
type int8Args struct {
	g      gemmArgs
	kr     *int8Kernel
	lay    *int8Layout
	shared *int8Work // all rows of op(A) packed by packAllA, or nil
}

// int8Work holds one thread's packed A block, its row scales and
// corrections, a quantisation buffer and an edge tile.
type int8Work struct {
	a    []byte
	q    []int8
	ra   []float32
	corr []int32
	row  []float32
	tile []float32
}

var int8Pool = sync.Pool{New: func() any { return new(int8Work) }}

func (h *int8Args) parallel(pm, pn int) {
	kr, g := h.kr, &h.g
	runTiles(&int8Pool, g.m, g.n, kr.mr, kr.nr, pm, pn, h.task)
}

// task computes rows [i0,i1) × columns [j0,j1) of C: per block of rows,
// op(A) is quantised and packed for all of K once, then the columns are
// swept panel by panel, and the epilogue is applied to each finished C
// block.
func (h *int8Args) task(w *int8Work, i0, i1, j0, j1 int) {
	g, kr, lay := &h.g, h.kr, h.lay
	mr, nr := kr.mr, kr.nr
	mc := blockLen(i1-i0, kr.mc, mr)
	kq := lay.kq
	w.tile = grow(w.tile, mr*nr)
	for ic := i0; ic < i1; ic += mc {
		mb := min(mc, i1-ic)
		mbp := roundUp(mb, mr)
		pa := h.shared // all rows (then i0 = 0 and mb = m)
		if pa == nil {
			w.a = growBytes(w.a, mbp*kq*4)
			w.ra = grow(w.ra, mbp)
			w.corr = growInt32(w.corr, mbp)
			h.packRows(w, w, ic, mb, 0, mbp)
			pa = w
		}
		ncp := blockLen(j1-j0, max(nr, min(2048, (1<<16)/mb/nr*nr)), nr)
		for jc := j0; jc < j1; jc += ncp {
			nb := min(ncp, j1-jc)
			int8Macro(kr, kq, mb, nb, pa.a, lay.data[jc/nr*kq*nr*4:], lay.sw[jc:], pa.ra, pa.corr, g.c[ic*g.ldc+jc:], g.ldc, g.beta, w.tile)
			if g.hasEp {
				g.applyEpilogue(ic, mb, jc, nb)
			}
		}
	}
}

// packRows quantises rows i0+r, r in [r0, r1), of the block of op(A)
// holding rows [i0, i0+mb), and packs them into dst's mr-row panels of
// 4-byte groups (panel p at p·kq·mr·4, group q of row r at (q·mr+r%mr)·4),
// with dst.ra[r] = alpha·scale and dst.corr[r] = 128·Σ q; rows r ≥ mb and
// K past k are zero. scratch lends its quantisation buffers (it may be dst).
func (h *int8Args) packRows(dst, scratch *int8Work, i0, mb, r0, r1 int) {
	g, mr, kq := &h.g, h.kr.mr, h.lay.kq
	k := g.k
	quant := int8Q.Fn()
	scratch.q = growInt8(scratch.q, kq*4)
	scratch.row = grow(scratch.row, k)
	w := scratch
	for r := r0; r < r1; r++ {
		p, ri := r/mr, r%mr
		d := dst.a[p*kq*mr*4:]
		if r >= mb {
			for q := 0; q < kq; q++ {
				*(*uint32)(unsafe.Pointer(&d[(q*mr+ri)*4])) = 0
			}
			dst.ra[r], dst.corr[r] = 0, 0
			continue
		}
		i := i0 + r
		var x []float32
		if g.tA {
			x = w.row[:k]
			for l := range x {
				x[l] = g.a[l*g.lda+i]
			}
		} else {
			x = g.a[i*g.lda : i*g.lda+k]
		}
		qs := w.q[:kq*4]
		scale, sum := quant(qs[:k], x)
		clear(qs[k:])
		dst.ra[r] = g.alpha * scale
		dst.corr[r] = 128 * sum
		for q := 0; q < kq; q++ {
			*(*uint32)(unsafe.Pointer(&d[(q*mr+ri)*4])) = *(*uint32)(unsafe.Pointer(&qs[q*4]))
		}
	}
}

// int8Macro runs the micro-kernel over an mb×nb block of C from packed A
// (ap, with row scales ra and corrections corr) and packed B (bp, column
// scales sw); edge tiles go through tile, so every element gets the same
// operations.
func int8Macro(kr *int8Kernel, kq, mb, nb int, ap, bp []byte, sw, ra []float32, corr []int32, c []float32, ldc int, beta float32, tile []float32) {
	mr, nr := kr.mr, kr.nr
	for jp := 0; jp*nr < nb; jp++ {
		nw := min(nr, nb-jp*nr)
		bpan := &bp[jp*kq*nr*4]
		swp := &sw[jp*nr]
		for ip := 0; ip*mr < mb; ip++ {
			mh := min(mr, mb-ip*mr)
			apan := &ap[ip*kq*mr*4]
			off := ip*mr*ldc + jp*nr
			if nw == nr && mh == mr {
				_ = c[off+(mr-1)*ldc+nr-1]
				kr.fn(kq, apan, bpan, &c[off], ldc, &ra[ip*mr], swp, &corr[ip*mr], beta)
				continue
			}
			if beta != 0 {
				for r := 0; r < mh; r++ {
					copy(tile[r*nr:r*nr+nw], c[off+r*ldc:off+r*ldc+nw])
				}
			}
			kr.fn(kq, apan, bpan, &tile[0], nr, &ra[ip*mr], swp, &corr[ip*mr], beta)
			for r := 0; r < mh; r++ {
				copy(c[off+r*ldc:off+r*ldc+nw], tile[r*nr:r*nr+nw])
			}
		}
	}
}

// int8KernelGeneric is the portable 4×4 int8 micro-kernel, the pure-Go twin
// of the assembly ones (see int8Kernel and the top of this file).
func int8KernelGeneric(kq int, a, b *byte, c *float32, ldc int, ra, sw *float32, corr *int32, beta float32) {
	const mr, nr = 4, 4
	ap := unsafe.Slice((*int8)(unsafe.Pointer(a)), kq*mr*4)
	bp := unsafe.Slice(b, kq*nr*4)
	var acc [mr][nr]int32
	for q := 0; q < kq; q++ {
		av := ap[q*mr*4 : (q+1)*mr*4 : (q+1)*mr*4]
		bv := bp[q*nr*4 : (q+1)*nr*4 : (q+1)*nr*4]
		for i := 0; i < mr; i++ {
			a0, a1, a2, a3 := int32(av[i*4]), int32(av[i*4+1]), int32(av[i*4+2]), int32(av[i*4+3])
			for j := 0; j < nr; j++ {
				acc[i][j] += int32(bv[j*4])*a0 + int32(bv[j*4+1])*a1 + int32(bv[j*4+2])*a2 + int32(bv[j*4+3])*a3
			}
		}
	}
	ras := unsafe.Slice(ra, mr)
	sws := unsafe.Slice(sw, nr)
	cor := unsafe.Slice(corr, mr)
	cs := unsafe.Slice(c, (mr-1)*ldc+nr)
	for i := 0; i < mr; i++ {
		for j := 0; j < nr; j++ {
			cs[i*ldc+j] = int8Dequant(acc[i][j]-cor[i], ras[i], sws[j], beta, cs[i*ldc+j])
		}
	}
}

// int8Dequant is the store of every int8 kernel: float32(float32(float32(s)·ra)·sw),
// plus float32(beta·c) unless beta is 0 (the explicit conversions forbid
// fusing, to match VCVTDQ2PS, VMULPS, VMULPS, VMULPS, VADDPS).
func int8Dequant(s int32, ra, sw, beta, c float32) float32 {
	v := float32(float32(float32(s)*ra) * sw)
	if beta == 0 {
		return v
	}
	return v + float32(beta*c)
}

// growBytes, growInt8 and growInt32 are grow for the int8 path's buffers
// (64-byte aligned).
func growBytes(buf []byte, n int) []byte {
	if cap(buf) >= n {
		return buf[:n]
	}
	return aligned[byte](n + n/8)[:n]
}

func growInt8(buf []int8, n int) []int8 {
	if cap(buf) >= n {
		return buf[:n]
	}
	return make([]int8, n+n/8)[:n]
}

func growInt32(buf []int32, n int) []int32 {
	if cap(buf) >= n {
		return buf[:n]
	}
	return make([]int32, n+n/8)[:n]
}
