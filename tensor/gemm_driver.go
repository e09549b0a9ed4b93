package tensor

import (
	"runtime"
	"sync"
	"unsafe"
)

// The GEMM driver, GotoBLAS/BLIS style. For Sgemm, one task (a rectangle of
// C) runs
//
//	for jc: columns in blocks of nc          B block kc×nc lives in L3
//	  for pc: K in blocks of kc               (never split across threads)
//	    pack op(B)[pc:pc+kc, jc:jc+nc] into nr-column panels
//	    for ic: rows in blocks of mc          A block mc×kc lives in L2
//	      pack op(A)[ic:ic+mc, pc:pc+kc] into mr-row panels
//	      for jr: nr-column panels            B micro-panel kc×nr lives in L1
//	        for ir: mr-row panels: micro-kernel on one mr×nr tile of C
//
// A task with at most mc rows packs B a few panels at a time instead
// (taskFewRows), and the pre-packed path (SgemmPacked, gemm_packed.go) has
// its own order (packedTask).
//
// Threads split C into a grid of rectangles aligned to mr×nr tiles (over M
// and N, never K), each with its own packing buffers. Every element of C is
// computed by the same sequence of operations whatever the grid (the K
// blocking depends only on k and the kernel; edge tiles run the kernel on a
// copy of C, or an edge kernel that computes its rows exactly as the kernel
// would), so results are bit-identical for any GOMAXPROCS.

// gemmArgs is one GEMM call, after argument checks. pb is set for the
// pre-packed path (then b, ldb, tB are unused) and ep for a fused epilogue.
type gemmArgs struct {
	tA, tB       bool
	m, n, k      int
	alpha, beta  float32
	a            []float32
	lda          int
	b            []float32
	ldb          int
	c            []float32
	ldc          int
	pb           *bLayout
	hasEp        bool
	ep           Epilogue  // when hasEp (by value: no escape for the caller's)
	ldr          int       // residual row stride, when ep has one
	ap           []float32 // op(A) packed for all rows and K (packAllA), or nil
	kb           int       // K block depth (from blockLen, or from pb's layout)
	forceThreads int       // when > 0, the thread count (tests)
}

// gemmParallelMin is the m·n·k (multiply-adds) from which a second thread
// is worth its start-up cost: each thread gets at least this much work.
const gemmParallelMin = 1 << 19

// run computes the whole of C with kernel kr, in parallel when worth it.
func (g *gemmArgs) run(kr *gemmKernel, pb *bLayout) {
	if pb != nil {
		g.pb = pb
		g.kb = pb.kb
	} else {
		g.kb = blockLen(g.k, kr.kc, 4)
	}
	pm, pn := g.plan(kr)
	if pm*pn == 1 {
		w := getWork()
		g.task(kr, w, 0, g.m, 0, g.n)
		gemmPool.Put(w)
		return
	}
	gp := new(gemmArgs)
	*gp = *g
	if pb != nil && pm == 1 && g.m <= kr.mc {
		// Every part needs all rows of A: pack them once, split over the
		// workers, instead of once per part (same panels, same bits).
		w := getWork()
		gp.ap = gp.packAllA(kr, w, pn)
		gp.parallel(kr, pm, pn)
		gemmPool.Put(w)
		return
	}
	gp.parallel(kr, pm, pn)
}

// packAllA packs op(A) (all m ≤ mc rows, all of K) into w.a as packedTask
// does for one block of rows, in parallel over (K block, row panel) units on
// at most W workers, and returns it.
func (g *gemmArgs) packAllA(kr *gemmKernel, w *gemmWork, W int) []float32 {
	mr := kr.mr
	mbp := roundUp(g.m, mr)
	w.a = grow(w.a, mbp*g.k)
	ap := w.a
	panels, blocks := mbp/mr, ceilDiv(g.k, g.kb)
	Parallel(panels*blocks, W, func(_, u int) {
		pc := u / panels * g.kb
		p := u % panels
		kb := min(g.kb, g.k-pc)
		rows := min(mr, g.m-p*mr)
		packA(g.tA, g.a, g.lda, p*mr, rows, pc, kb, mr, ap[pc*mbp+p*mr*kb:])
	})
	return ap
}

func (g *gemmArgs) parallel(kr *gemmKernel, pm, pn int) {
	runTiles(&gemmPool, g.m, g.n, kr.mr, kr.nr, pm, pn, func(w *gemmWork, i0, i1, j0, j1 int) {
		g.task(kr, w, i0, i1, j0, j1)
	})
}

// runTiles computes an m×n C on the pm×pn thread grid: part (ti, tj) is
// task on rows and columns split in whole mr×nr tiles, with a worker W
// taken from pool for the call. The parts run as one parallel region
// (Parallel), and runTiles returns when all are done.
func runTiles[W any](pool *sync.Pool, m, n, mr, nr, pm, pn int, task func(w *W, i0, i1, j0, j1 int)) {
	tm, tn := ceilDiv(m, mr), ceilDiv(n, nr)
	Parallel(pm*pn, pm*pn, func(_, t int) {
		ti, tj := t/pn, t%pn
		i0, i1 := ti*tm/pm*mr, min(m, (ti+1)*tm/pm*mr)
		j0, j1 := tj*tn/pn*nr, min(n, (tj+1)*tn/pn*nr)
		w := pool.Get().(*W)
		task(w, i0, i1, j0, j1)
		pool.Put(w)
	})
}

// plan picks the thread grid pm×pn (threads over rows × over columns). It
// is 1×1 for small problems. Otherwise it weighs the packing each split
// repeats (every column group packs its rows of A, every row group packs or
// streams its columns of B) against load imbalance in whole tiles.
func (g *gemmArgs) plan(kr *gemmKernel) (pm, pn int) {
	threads := runtime.GOMAXPROCS(0)
	if g.forceThreads > 0 {
		threads = g.forceThreads
	}
	work := g.m * g.n * g.k
	if g.forceThreads == 0 {
		threads = min(threads, work/gemmParallelMin)
	}
	tm := ceilDiv(g.m, kr.mr)
	tn := ceilDiv(g.n, kr.nr)
	threads = min(threads, tm*tn)
	if threads <= 1 {
		return 1, 1
	}
	best := -1.0
	for t := threads; t >= max(1, threads-1); t-- { // allow one idle thread if that balances better
		for p := 1; p <= t; p++ {
			if t%p != 0 || p > tm || t/p > tn {
				continue
			}
			q := t / p
			rows := ceilDiv(tm, p) * kr.mr
			cols := ceilDiv(tn, q) * kr.nr
			// Cost in multiply-add units per k: the slowest task's tile
			// work plus repeated packing (≈16 multiply-adds per float).
			cost := float64(rows*cols) + 16*float64(q*g.m+p*g.n)/float64(t)
			if best < 0 || cost < best {
				best, pm, pn = cost, p, q
			}
		}
	}
	if best < 0 {
		return 1, 1
	}
	return pm, pn
}

// task computes rows [i0,i1) × columns [j0,j1) of C.
func (g *gemmArgs) task(kr *gemmKernel, w *gemmWork, i0, i1, j0, j1 int) {
	if g.pb != nil {
		g.packedTask(kr, w, i0, i1, j0, j1)
		return
	}
	mr, nr := kr.mr, kr.nr
	nc := blockLen(j1-j0, kr.nc, nr)
	mc := blockLen(i1-i0, kr.mc, mr)
	w.tile = grow(w.tile, mr*nr)
	if i1-i0 <= mc {
		g.taskFewRows(kr, w, i0, i1, j0, j1, nc)
		return
	}
	for jc := j0; jc < j1; jc += nc {
		nb := min(nc, j1-jc)
		for pc := 0; pc < g.k; pc += g.kb {
			kb := min(g.kb, g.k-pc)
			beta := g.beta
			if pc > 0 {
				beta = 1
			}
			w.b = grow(w.b, roundUp(nb, nr)*kb)
			packB(g.tB, g.b, g.ldb, pc, kb, jc, nb, nr, w.b)
			for ic := i0; ic < i1; ic += mc {
				mb := min(mc, i1-ic)
				w.a = grow(w.a, roundUp(mb, mr)*kb)
				packA(g.tA, g.a, g.lda, ic, mb, pc, kb, mr, w.a)
				macroKernel(kr, kb, mb, nb, w.a, w.b, g.c[ic*g.ldc+jc:], g.ldc, g.alpha, beta, w.tile)
			}
		}
	}
}

// taskFewRows is task for at most one block of rows (mb ≤ mc): a packed B
// block would be used by one row block only, so instead of packing it
// whole (a round trip through L3 or memory) B is packed a few panels at a
// time into an L2-sized buffer right before the micro-kernels use them.
// The K blocking is the same, so results equal task's bit for bit.
func (g *gemmArgs) taskFewRows(kr *gemmKernel, w *gemmWork, i0, i1, j0, j1, nc int) {
	mr, nr := kr.mr, kr.nr
	mb := i1 - i0
	chunk := max(nr, fewRowsChunk/nr*nr)
	w.b = grow(w.b, g.kb*min(roundUp(j1-j0, nr), chunk))
	for jc := j0; jc < j1; jc += nc {
		nb := min(nc, j1-jc)
		for pc := 0; pc < g.k; pc += g.kb {
			kb := min(g.kb, g.k-pc)
			beta := g.beta
			if pc > 0 {
				beta = 1
			}
			w.a = grow(w.a, roundUp(mb, mr)*kb)
			packA(g.tA, g.a, g.lda, i0, mb, pc, kb, mr, w.a)
			for jr := jc; jr < jc+nb; jr += chunk {
				nw := min(chunk, jc+nb-jr)
				packB(g.tB, g.b, g.ldb, pc, kb, jr, nw, nr, w.b)
				macroKernel(kr, kb, mb, nw, w.a, w.b, g.c[i0*g.ldc+jr:], g.ldc, g.alpha, beta, w.tile)
			}
		}
	}
}

// fewRowsChunk is how many columns of B taskFewRows packs at a time: kb×128
// floats (128 KiB at kb = 256) stay in L2, and the packing reads B in runs
// long enough for the hardware prefetcher.
var fewRowsChunk = 128

// macroKernel runs the micro-kernel over an mb×nb block of C (c starts at
// its top-left element) from packed A (ap) and packed B (bp) of depth kb.
// Tiles cut short at the bottom use the kernel's edge kernels (when it has
// them), which compute only the rows that exist. Tiles cut short at the
// right go through tile: C's valid part is copied in (unless beta is 0),
// the kernel runs on the whole tile with the same alpha and beta, and the
// valid part is copied back. Either way an element goes through the same
// operations, so its value never depends on where tile boundaries fall.
func macroKernel(kr *gemmKernel, kb, mb, nb int, ap, bp, c []float32, ldc int, alpha, beta float32, tile []float32) {
	mr, nr := kr.mr, kr.nr
	fn := kr.fn
	for jp := 0; jp*nr < nb; jp++ {
		nw := min(nr, nb-jp*nr)
		bpan := &bp[jp*kb*nr : (jp+1)*kb*nr][0]
		for ip := 0; ip*mr < mb; ip++ {
			mh := min(mr, mb-ip*mr)
			apan := &ap[ip*kb*mr : (ip+1)*kb*mr][0]
			off := ip*mr*ldc + jp*nr
			if nw == nr {
				_ = c[off+(mh-1)*ldc+nr-1] // the kernel stays inside c
				if mh == mr {
					fn(kb, apan, bpan, &c[off], ldc, alpha, beta)
					continue
				}
				if kr.edge != nil {
					kr.edge[mh](kb, apan, bpan, &c[off], ldc, alpha, beta)
					continue
				}
			}
			if beta != 0 {
				for r := 0; r < mh; r++ {
					copy(tile[r*nr:r*nr+nw], c[off+r*ldc:off+r*ldc+nw])
				}
			}
			if mh < mr && kr.edge != nil {
				kr.edge[mh](kb, apan, bpan, &tile[0], nr, alpha, beta)
			} else {
				fn(kb, apan, bpan, &tile[0], nr, alpha, beta)
			}
			for r := 0; r < mh; r++ {
				copy(c[off+r*ldc:off+r*ldc+nw], tile[r*nr:r*nr+nw])
			}
		}
	}
}

// scaleC sets C = beta·C over the m×n region (C = 0 when beta is 0, NaN
// included).
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// gemmWork holds one thread's packing buffers and edge tile.
type gemmWork struct {
	a, b, tile []float32
}

var gemmPool = sync.Pool{New: func() any { return new(gemmWork) }}

func getWork() *gemmWork { return gemmPool.Get().(*gemmWork) }

// grow returns buf resized to n, reallocating (64-byte aligned) if it is
// too small.
func grow(buf []float32, n int) []float32 {
	if cap(buf) >= n {
		return buf[:n]
	}
	return aligned[float32](n + n/8)[:n]
}

// aligned returns n zeroed elements of T (a plain-data type) starting on a
// 64-byte boundary (one cache line: whole-vector loads of packed panels).
func aligned[T any](n int) []T {
	var zero T
	size := int(unsafe.Sizeof(zero))
	s := make([]T, n+64/size)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&s[0])) % 64); r != 0 {
		off = (64 - r) / size
	}
	return s[off : off+n : off+n]
}

// blockLen splits total into the fewest blocks of at most maxLen and returns
// the (equal, align-rounded) block length, so that no block is a sliver.
func blockLen(total, maxLen, align int) int {
	if total <= 0 {
		return maxLen
	}
	nb := ceilDiv(total, maxLen)
	return min(maxLen, roundUp(ceilDiv(total, nb), align))
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }
