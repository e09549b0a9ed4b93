package tensor

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"gonum.org/v1/gonum/blas"
)

// The bfloat16 weight path: B (the weights) is stored as bfloat16 in the
// panel layout of a bf16 micro-kernel, op(A) (the activations) is rounded to
// bfloat16 as each A block is packed, products are summed in float32.
//
// Data layout. bfloat16 values travel in pairs along K, one pair per 32-bit
// word: the low half holds the element of even K index 2q, the high half the
// element of index 2q+1 (the operand layout of VDPBF16PS). A K block of kb
// elements has kp = ceil(kb/2) pairs; an odd tail is padded with zero.
//
// Arithmetic. Every bf16 micro-kernel computes, for each element of its
// tile and each pair q in order,
//
//	s = s + a.hi·b.hi   (one rounding to float32)
//	s = s + a.lo·b.lo   (one rounding to float32)
//
// which is VDPBF16PS as Intel's SDM specifies it (two fused multiply-adds,
// the odd element first, round to nearest even). The product of two
// bfloat16 values is exact in float32 (8-bit significands), so a plain
// float32 multiply-add, an FMA and VDPBF16PS all give the same bits as long
// as no product or partial sum leaves float32's normal range (VDPBF16PS
// treats denormal inputs as zero and flushes denormal results; ToBF16
// never makes a bfloat16 denormal, and weights and activations never come
// near 2⁻¹²⁶). Every variant uses the same K blocking (bf16KC), so the
// generic, AVX2, AVX-512F and AVX-512 BF16 kernels give bit-identical
// results, whatever the thread count.

// bf16KC is the K block depth (elements, even) of every bf16 kernel: the
// B micro-panel of the AVX-512 kernel, bf16KC×32 bfloat16 values, is 32 KiB.
const bf16KC = 512

// bf16Kernel is one bf16 micro-kernel. fn(kp, a, b, c, ldc, alpha, beta)
// computes an mr×nr tile of C from a packed A panel a (kp×mr pair words,
// a[q*mr+i] = pair q of row i) and a packed B panel b (kp×nr pair words,
// b[q*nr+j] = pair q of column j), with s accumulated as described above:
//
//	c[i*ldc+j] = alpha·s                            (beta == 0, old C ignored)
//	c[i*ldc+j] = float32(alpha·s) + float32(beta·c) (otherwise; not fused)
//
// kp ≥ 1; the tile is always whole (the driver routes edge tiles through a
// buffer).
type bf16Kernel struct {
	mr, nr int
	mc     int // rows of an A block (a multiple of mr)
	fn     func(kp int, a, b *uint32, c *float32, ldc int, alpha, beta float32)
	// cvt, when set, converts src[0:n] (n a positive multiple of 16) to
	// pair words dst[0:n/2] exactly as bf16Pair does (vector code for the
	// rounding of A).
	cvt func(dst *uint32, src *float32, n int)
	// wideA: the kernel reads A pre-widened, two words per pair (the odd
	// element's float32 bits, then the even one's: a[2(q*mr+i)] and
	// a[2(q*mr+i)+1]), sparing it the widening of A.
	wideA bool
	// note names the instruction when a variant name has two kernels
	// (avx512: VDPBF16PS or widening; see cpuBF16DotFast); KernelReport
	// prints it.
	note string
}

func (k *bf16Kernel) kernelNote() string { return k.note }

// bf16K is the registry of bf16 micro-kernels: generic (pure Go), avx2
// (bf16 widened to float32 by shifts, then FMA) and avx512 (VDPBF16PS on
// CPUs with AVX512_BF16, else the AVX-512F widening kernel).
var bf16K = NewRegistry[*bf16Kernel]("bf16gemm")

func init() {
	bf16K.Register(Generic, &bf16Kernel{mr: 2, nr: 4, mc: 128, fn: bf16KernelGeneric})
}

// BF16Kernel returns the name of the active bf16 micro-kernel variant
// (generic, avx2 or avx512).
func BF16Kernel() string { return bf16K.Name() }

// ToBF16 rounds f to bfloat16 (round to nearest, ties to even), as
// VCVTNEPS2BF16 does: NaNs stay NaNs (quieted), infinities stay infinite,
// denormal inputs become a zero of the same sign (so no result is a
// bfloat16 denormal, which VDPBF16PS would read as zero anyway).
func ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	switch {
	case b&0x7fffffff > 0x7f800000:
		return uint16(b>>16) | 0x40
	case b&0x7f800000 == 0:
		return uint16(b>>16) & 0x8000
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// FromBF16 widens a bfloat16 value to float32 (exactly).
func FromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// RoundBF16 returns f rounded to bfloat16 precision, as a float32
// (FromBF16(ToBF16(f))).
func RoundBF16(f float32) float32 { return FromBF16(ToBF16(f)) }

// bf16Pair packs two elements (x at the even K index, y at the odd one),
// each rounded by ToBF16.
func bf16Pair(x, y float32) uint32 {
	bx, by := math.Float32bits(x), math.Float32bits(y)
	// Both normal (exponent neither 0 nor 255): round to nearest even by
	// integer addition (a carry into the exponent is right, up to infinity).
	if (bx&0x7f800000)-0x00800000 <= 0x7e800000 && (by&0x7f800000)-0x00800000 <= 0x7e800000 {
		bx += 0x7fff + (bx>>16)&1
		by += 0x7fff + (by>>16)&1
		return bx>>16 | by&0xffff0000
	}
	return uint32(ToBF16(x)) | uint32(ToBF16(y))<<16
}

// PackedBF16 is a k×n matrix op(B) rounded to bfloat16 and packed once into
// the panel layout of the active bf16 micro-kernel, for SgemmPackedBF16 (it
// takes half the memory of a PackedB). Like PackedB it repacks lazily when
// another kernel becomes active, and is safe for concurrent use.
type PackedBF16 struct {
	k, n    int
	cur     atomic.Pointer[bf16Layout]
	mu      sync.Mutex
	layouts []*bf16Layout
}

// bf16Layout is op(B) in nr-column panels of pair words, K blocks of
// bf16KC elements: the block starting at row pc (even) begins at word
// pc/2·npan·nr; within it panel jp begins at jp·kp·nr (kp pairs in the
// block) and holds pair q of column j at q·nr + j%nr. Columns past n and
// the odd tail of K are zero.
type bf16Layout struct {
	nr, kb, npan int
	data         []uint32
}

// K returns the number of rows of op(B).
func (p *PackedBF16) K() int { return p.k }

// N returns the number of columns of op(B).
func (p *PackedBF16) N() int { return p.n }

// Bytes returns the size of the packed data in bytes (of the layouts made
// so far).
func (p *PackedBF16) Bytes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := 0
	for _, l := range p.layouts {
		s += 4 * len(l.data)
	}
	return s
}

func bf16KB(k int) int { return blockLen(k, bf16KC, 2) }

// PackBBF16 rounds the k×n matrix op(B) (row-major b, row stride ldb; op(B)
// = Bᵀ when tB is Trans) to bfloat16 and packs it for SgemmPackedBF16. For
// a Linear layer with weights W [out, in], use PackBBF16(blas.Trans, in,
// out, W, in). Invalid arguments panic like PackB's.
func PackBBF16(tB blas.Transpose, k, n int, b []float32, ldb int) *PackedBF16 {
	if tB != blas.NoTrans && tB != blas.Trans && tB != blas.ConjTrans {
		panic(fmt.Sprintf("tensor.PackBBF16: bad transpose %v", tB))
	}
	if k < 0 || n < 0 {
		panic(fmt.Sprintf("tensor.PackBBF16: negative dimension k=%d n=%d", k, n))
	}
	rows, cols := k, n
	if isTrans(tB) {
		rows, cols = n, k
	}
	if ldb < max(1, cols) {
		panic(fmt.Sprintf("tensor.PackBBF16: bad ldb %d for %d columns", ldb, cols))
	}
	if k > 0 && n > 0 && len(b) < ldb*(rows-1)+cols {
		panic(fmt.Sprintf("tensor.PackBBF16: short B: len %d < %d", len(b), ldb*(rows-1)+cols))
	}
	tr := isTrans(tB)
	at := func(l, j int) float32 {
		if tr {
			return b[j*ldb+l]
		}
		return b[l*ldb+j]
	}
	l := newBF16Layout(k, n, bf16K.Fn().nr, at)
	p := &PackedBF16{k: k, n: n, layouts: []*bf16Layout{l}}
	p.cur.Store(l)
	return p
}

// newBF16Layout packs the k×n matrix with elements at(l, j) in nr-column
// panels.
func newBF16Layout(k, n, nr int, at func(l, j int) float32) *bf16Layout {
	l := &bf16Layout{nr: nr, kb: bf16KB(k), npan: ceilDiv(n, nr)}
	l.data = aligned[uint32](ceilDiv(k, 2) * l.npan * nr)
	for pc := 0; pc < k; pc += l.kb {
		kb := min(l.kb, k-pc)
		kp := ceilDiv(kb, 2)
		blk := l.data[pc/2*l.npan*nr:]
		for jp := 0; jp < l.npan; jp++ {
			d := blk[jp*kp*nr : (jp+1)*kp*nr]
			for c := 0; c < nr && jp*nr+c < n; c++ {
				j := jp*nr + c
				for q := 0; q < kp; q++ {
					x := at(pc+2*q, j)
					var y float32
					if 2*q+1 < kb {
						y = at(pc+2*q+1, j)
					}
					d[q*nr+c] = bf16Pair(x, y)
				}
			}
		}
	}
	collapseHuge(l.data)
	return l
}

// at returns element (l, j) of the layout's matrix (k rows), widened.
func (b *bf16Layout) at(k, l, j int) float32 {
	pc := l / b.kb * b.kb
	kp := ceilDiv(min(b.kb, k-pc), 2)
	q := (l - pc) / 2
	w := b.data[pc/2*b.npan*b.nr+(j/b.nr)*kp*b.nr+q*b.nr+j%b.nr]
	if (l-pc)%2 == 1 {
		w >>= 16
	}
	return FromBF16(uint16(w))
}

// layoutFor returns the packing for kernel kr, making it if needed (the
// values are already bfloat16, so repacking rounds nothing).
func (p *PackedBF16) layoutFor(kr *bf16Kernel) *bf16Layout {
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
	l := newBF16Layout(p.k, p.n, kr.nr, func(l, j int) float32 { return src.at(p.k, l, j) })
	p.layouts = append(p.layouts, l)
	p.cur.Store(l)
	return l
}

// SgemmPackedBF16 computes C = alpha·op(A)·B + beta·C like SgemmPacked, with
// B in bfloat16 (PackBBF16) and op(A) rounded to bfloat16 (round to nearest
// even) as it is packed; products are summed in float32. Invalid arguments
// panic. Results do not depend on the kernel variant or thread count.
func SgemmPackedBF16(tA blas.Transpose, m int, alpha float32, a []float32, lda int, pb *PackedBF16, beta float32, c []float32, ldc int) {
	sgemmPackedBF16("SgemmPackedBF16", tA, m, alpha, a, lda, pb, beta, c, ldc, false, Epilogue{})
}

// SgemmPackedBF16Epilogue is SgemmPackedBF16 followed by the fused epilogue
// ep (see Epilogue and SgemmPackedEpilogue).
func SgemmPackedBF16Epilogue(tA blas.Transpose, m int, alpha float32, a []float32, lda int, pb *PackedBF16, beta float32, c []float32, ldc int, ep Epilogue) {
	sgemmPackedBF16("SgemmPackedBF16Epilogue", tA, m, alpha, a, lda, pb, beta, c, ldc, true, ep)
}

func sgemmPackedBF16(op string, tA blas.Transpose, m int, alpha float32, a []float32, lda int, pb *PackedBF16, beta float32, c []float32, ldc int, hasEp bool, ep Epilogue) {
	if pb == nil {
		panic(fmt.Sprintf("tensor.%s: nil PackedBF16", op))
	}
	g := gemmArgs{tA: isTrans(tA), m: m, alpha: alpha, beta: beta, a: a, lda: lda, c: c, ldc: ldc, hasEp: hasEp, ep: ep}
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
	kr := bf16K.Fn()
	g.kb = bf16KB(g.k)
	h := bf16Args{g: g, kr: kr, lay: pb.layoutFor(kr)}
	pm, pn := g.plan(&gemmKernel{mr: kr.mr, nr: kr.nr})
	if pm*pn == 1 {
		w := bf16Pool.Get().(*bf16Work)
		h.task(w, 0, m, 0, g.n)
		bf16Pool.Put(w)
		return
	}
	hp := new(bf16Args) // shared with the goroutines (h stays on the stack)
	*hp = h
	hp.parallel(pm, pn)
}

// bf16Args is one SgemmPackedBF16 call.
type bf16Args struct {
	g   gemmArgs
	kr  *bf16Kernel
	lay *bf16Layout
}

// bf16Work holds one thread's packed A block and edge tile.
type bf16Work struct {
	a, cvt []uint32
	tile   []float32
}

var bf16Pool = sync.Pool{New: func() any { return new(bf16Work) }}

func (h *bf16Args) parallel(pm, pn int) {
	kr, g := h.kr, &h.g
	runTiles(&bf16Pool, g.m, g.n, kr.mr, kr.nr, pm, pn, h.task)
}

// task computes rows [i0,i1) × columns [j0,j1) of C, in the order of
// packedTask: per block of rows, op(A) is packed (and rounded) for all of
// K once, then the columns are swept in blocks whose C stays in L2 across
// the K blocks, and the epilogue is applied to each finished C block.
func (h *bf16Args) task(w *bf16Work, i0, i1, j0, j1 int) {
	g, kr, lay := &h.g, h.kr, h.lay
	mr, nr := kr.mr, kr.nr
	mc := blockLen(i1-i0, kr.mc, mr)
	kp := ceilDiv(g.k, 2)
	aw := 1 // words per pair of A
	if kr.wideA {
		aw = 2
	}
	w.tile = grow(w.tile, mr*nr)
	w.cvt = growUint32(w.cvt, g.kb/2)
	for ic := i0; ic < i1; ic += mc {
		mb := min(mc, i1-ic)
		mbp := roundUp(mb, mr)
		w.a = growUint32(w.a, mbp*kp*aw)
		for pc := 0; pc < g.k; pc += g.kb {
			kb := min(g.kb, g.k-pc)
			packABF16(g.tA, g.a, g.lda, ic, mb, pc, kb, mr, w.a[pc/2*mbp*aw:], kr.cvt, w.cvt, kr.wideA)
		}
		ncp := blockLen(j1-j0, max(nr, min(2048, (1<<16)/mb/nr*nr)), nr)
		for jc := j0; jc < j1; jc += ncp {
			nb := min(ncp, j1-jc)
			for pc := 0; pc < g.k; pc += g.kb {
				kbp := ceilDiv(min(g.kb, g.k-pc), 2)
				beta := g.beta
				if pc > 0 {
					beta = 1
				}
				bp := lay.data[pc/2*lay.npan*nr+jc/nr*kbp*nr:]
				bf16Macro(kr, kbp, mb, nb, w.a[pc/2*mbp*aw:], bp, g.c[ic*g.ldc+jc:], g.ldc, g.alpha, beta, w.tile)
			}
			if g.hasEp {
				g.applyEpilogue(ic, mb, jc, nb)
			}
		}
	}
}

// bf16Macro runs the micro-kernel over an mb×nb block of C from packed A
// (ap) and packed B (bp) with kp pairs; edge tiles go through tile (as in
// macroKernel), so every element gets the same operations.
func bf16Macro(kr *bf16Kernel, kp, mb, nb int, ap, bp []uint32, c []float32, ldc int, alpha, beta float32, tile []float32) {
	mr, nr := kr.mr, kr.nr
	amr := mr // words per pair-row of an A panel
	if kr.wideA {
		amr = 2 * mr
	}
	for jp := 0; jp*nr < nb; jp++ {
		nw := min(nr, nb-jp*nr)
		bpan := &bp[jp*kp*nr : (jp+1)*kp*nr][0]
		for ip := 0; ip*mr < mb; ip++ {
			mh := min(mr, mb-ip*mr)
			apan := &ap[ip*kp*amr : (ip+1)*kp*amr][0]
			off := ip*mr*ldc + jp*nr
			if nw == nr && mh == mr {
				_ = c[off+(mr-1)*ldc+nr-1]
				kr.fn(kp, apan, bpan, &c[off], ldc, alpha, beta)
				continue
			}
			if beta != 0 {
				for r := 0; r < mh; r++ {
					copy(tile[r*nr:r*nr+nw], c[off+r*ldc:off+r*ldc+nw])
				}
			}
			kr.fn(kp, apan, bpan, &tile[0], nr, alpha, beta)
			for r := 0; r < mh; r++ {
				copy(c[off+r*ldc:off+r*ldc+nw], tile[r*nr:r*nr+nw])
			}
		}
	}
}

// packABF16 packs rows [i0, i0+mb) and columns [l0, l0+kb) of op(A),
// rounded to bfloat16, into mr-row panels of pair words: panel p at
// p·kp·mr, pair q of row i at q·mr+i. Rows past mb and the odd tail are 0.
// With wide, each pair takes two words instead (see bf16Kernel.wideA).
//
// cvt (optional, see bf16Kernel) converts runs of a row into tmp (at least
// kb/2 words) first.
func packABF16(trans bool, a []float32, lda, i0, mb, l0, kb, mr int, dst []uint32, cvt func(dst *uint32, src *float32, n int), tmp []uint32, wide bool) {
	kp := ceilDiv(kb, 2)
	aw := 1
	if wide {
		aw = 2
	}
	for p := 0; p*mr < mb; p++ {
		rows := min(mr, mb-p*mr)
		d := dst[p*kp*mr*aw : (p+1)*kp*mr*aw]
		for r := 0; r < rows; r++ {
			i := i0 + p*mr + r
			if trans {
				for q := 0; q < kp; q++ {
					x := a[(l0+2*q)*lda+i]
					var y float32
					if 2*q+1 < kb {
						y = a[(l0+2*q+1)*lda+i]
					}
					putPair(d, (q*mr+r)*aw, bf16Pair(x, y), wide)
				}
				continue
			}
			src := a[i*lda+l0 : i*lda+l0+kb]
			o, step := r*aw, mr*aw
			q := 0
			if n16 := kb &^ 15; cvt != nil && n16 > 0 {
				t := tmp[:n16/2]
				cvt(&t[0], &src[0], n16)
				if wide {
					for _, x := range t {
						w := d[o : o+2 : o+2]
						w[0], w[1] = x&^0xffff, x<<16
						o += step
					}
				} else {
					for _, x := range t {
						d[o] = x
						o += step
					}
				}
				q = n16 / 2
			}
			for ; 2*q+1 < kb; q++ {
				xy := src[2*q : 2*q+2 : 2*q+2]
				putPair(d, o, bf16Pair(xy[0], xy[1]), wide)
				o += step
			}
			if q < kp {
				putPair(d, o, bf16Pair(src[2*q], 0), wide)
			}
		}
		if rows < mr {
			for q := 0; q < kp; q++ {
				clear(d[(q*mr+rows)*aw : (q+1)*mr*aw])
			}
		}
	}
}

// putPair stores pair word x at d[o], or widened at d[o], d[o+1].
func putPair(d []uint32, o int, x uint32, wide bool) {
	if wide {
		d[o], d[o+1] = x&^0xffff, x<<16
		return
	}
	d[o] = x
}

// growUint32 is grow for pair words.
func growUint32(buf []uint32, n int) []uint32 {
	if cap(buf) >= n {
		return buf[:n]
	}
	return aligned[uint32](n + n/8)[:n]
}

// bf16Hi and bf16Lo widen the odd (high) and even (low) element of a pair.
func bf16Hi(w uint32) float32 { return math.Float32frombits(w &^ 0xffff) }
func bf16Lo(w uint32) float32 { return math.Float32frombits(w << 16) }

// bf16KernelGeneric is the portable 2×4 bf16 micro-kernel, the pure-Go twin
// of the assembly ones (see bf16Kernel for its meaning). Each product of
// two bfloat16 values is exact in float32, so `s += x*y` rounds once
// whether or not the compiler fuses it, exactly like VDPBF16PS's FMAs.
func bf16KernelGeneric(kp int, a, b *uint32, c *float32, ldc int, alpha, beta float32) {
	ap := unsafe.Slice(a, 2*kp)
	bp := unsafe.Slice(b, 4*kp)
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	for q := 0; q < kp; q++ {
		av := ap[2*q : 2*q+2 : 2*q+2]
		bv := bp[4*q : 4*q+4 : 4*q+4]
		a0, a1 := bf16Hi(av[0]), bf16Hi(av[1])
		b0, b1, b2, b3 := bf16Hi(bv[0]), bf16Hi(bv[1]), bf16Hi(bv[2]), bf16Hi(bv[3])
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a0, a1 = bf16Lo(av[0]), bf16Lo(av[1])
		b0, b1, b2, b3 = bf16Lo(bv[0]), bf16Lo(bv[1]), bf16Lo(bv[2]), bf16Lo(bv[3])
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
	}
	cs := unsafe.Slice(c, ldc+4)
	bf16Store4(cs[0:4:4], c00, c01, c02, c03, alpha, beta)
	bf16Store4(cs[ldc:ldc+4:ldc+4], c10, c11, c12, c13, alpha, beta)
}

// bf16Store4 stores alpha·s (+ beta·c, rounded separately: the explicit
// conversions forbid fusing, to match the kernels' VMULPS, VMULPS, VADDPS).
func bf16Store4(r []float32, s0, s1, s2, s3, alpha, beta float32) {
	if beta == 0 {
		r[0], r[1], r[2], r[3] = alpha*s0, alpha*s1, alpha*s2, alpha*s3
		return
	}
	r[0] = float32(alpha*s0) + float32(beta*r[0])
	r[1] = float32(alpha*s1) + float32(beta*r[1])
	r[2] = float32(alpha*s2) + float32(beta*r[2])
	r[3] = float32(alpha*s3) + float32(beta*r[3])
}
