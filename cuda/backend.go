//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"sync"

	"github.com/mopeclip/mopeclip/ops"
)

// Backend implements ops.Backend with the package's kernels and cuBLAS. The
// interface works on host slices, so every call uploads its inputs, queues
// the kernels and downloads its outputs before returning (a host slice that
// appears several times in one call, aliased as the interface allows, is
// copied once). Host slices registered with Pin stay on the device and are
// not copied at all; outputs written into a pinned slice update both copies.
//
// With BackendOptions.Resident the copies are kept instead (resident.go):
// inputs are uploaded when the host copy is newer, outputs stay on the
// device until Sync.
//
// Methods panic on a device error (the interface has no error results), as
// the CPU backend panics on bad arguments. A Backend is safe for concurrent
// use (calls are serialised).
type Backend struct {
	c      *Context
	opt    BackendOptions
	mu     sync.Mutex
	pinned map[hostKey]devPtr
	res    *residency // resident mode; nil otherwise
	xfer   Transfers
}

// hostKey identifies a host slice by its first element and length.
type hostKey struct {
	p *float32
	n int
}

func keyOf(x []float32) hostKey {
	if len(x) == 0 {
		return hostKey{}
	}
	return hostKey{&x[0], len(x)}
}

// NewBackend returns a Backend on c. With opt.Precision TF32 the GEMMs run
// on tensor cores (cuBLAS required).
func NewBackend(c *Context, opt BackendOptions) (*Backend, error) {
	if c == nil {
		return nil, fmt.Errorf("cuda: NewBackend on a nil Context")
	}
	if (opt.Precision == TF32 || opt.Gemm == GemmCublas) && !c.blas {
		return nil, fmt.Errorf("cuda: backend with %v / engine %d needs cuBLAS: %v", opt.Precision, opt.Gemm, cublasErr)
	}
	if opt.Precision == TF32 && opt.Gemm == GemmOwn {
		return nil, fmt.Errorf("cuda: the package's SGEMM is fp32 only")
	}
	b := &Backend{c: c, opt: opt, pinned: map[hostKey]devPtr{}}
	if opt.Resident {
		b.res = &residency{ints: map[string]*intsEntry{}}
	}
	return b, nil
}

// Name returns "cuda".
func (b *Backend) Name() string { return "cuda" }

// Pin uploads each slice and keeps the device copy: later calls use it
// instead of copying the slice. The caller must not change a pinned slice
// other than through this Backend (or must Pin it again, which re-uploads).
// In the resident mode it is Keep followed by Wrote (uploaded on next use).
func (b *Backend) Pin(xs ...[]float32) error {
	if b.res != nil {
		b.Keep(xs...)
		b.Wrote(xs...)
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range xs {
		if len(x) == 0 {
			continue
		}
		k := keyOf(x)
		p, ok := b.pinned[k]
		if !ok {
			var err error
			if p, err = b.c.alloc(4 * len(x)); err != nil {
				return err
			}
			b.pinned[k] = p
		}
		if err := shimHtoD(p, x); err != nil {
			return err
		}
		b.countUp(4*len(x), true)
	}
	return nil
}

// Unpin drops the device copies of xs (in the resident mode: they are no
// longer kept past the next EndStep).
func (b *Backend) Unpin(xs ...[]float32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.res != nil {
		for _, x := range xs {
			if len(x) > 0 {
				lo := addr(x)
				for _, e := range b.res.overlapping(lo, lo+4*uintptr(len(x))) {
					e.kept = false
				}
			}
		}
		return
	}
	for _, x := range xs {
		k := keyOf(x)
		if p, ok := b.pinned[k]; ok {
			b.c.free(p)
			delete(b.pinned, k)
		}
	}
}

// Close drops every pinned (resident) copy.
func (b *Backend) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closeResident()
	for k, p := range b.pinned {
		b.c.free(p)
		delete(b.pinned, k)
	}
}

// frame holds the device buffers of one call.
type frame struct {
	b       *Backend
	bufs    map[hostKey]devPtr
	owned   []devPtr
	outs    []pendingDownload
	inputs  []*resEntry // resident mode: entries the call reads
	written []*resEntry // resident mode: entries the call writes
	err     error
}

type pendingDownload struct {
	host            []float32
	dev             devPtr
	rows, cols, ldh int // 2-D: rows×cols, host rows ldh apart (device compact)
	twoD            bool
}

func (b *Backend) begin() *frame {
	b.mu.Lock()
	return &frame{b: b, bufs: map[hostKey]devPtr{}}
}

func (f *frame) fail(err error) {
	if f.err == nil && err != nil {
		f.err = err
	}
}

func (f *frame) alloc(n int) devPtr {
	if f.err != nil {
		return 0
	}
	p, err := f.b.c.alloc(4 * max(n, 1))
	if err != nil {
		f.fail(err)
		return 0
	}
	f.owned = append(f.owned, p)
	return p
}

// in returns a device copy of x (nil → 0).
func (f *frame) in(x []float32) devPtr {
	if len(x) == 0 || f.err != nil {
		return 0
	}
	if f.b.res != nil {
		return f.resIn(x)
	}
	k := keyOf(x)
	if p, ok := f.b.pinned[k]; ok {
		return p
	}
	if p, ok := f.bufs[k]; ok {
		return p
	}
	p := f.alloc(len(x))
	f.fail(shimHtoD(p, x))
	f.b.countUp(4*len(x), false)
	f.bufs[k] = p
	return p
}

// out returns the device buffer that will be downloaded into x when the call
// ends: the one of an input aliasing x, else a new one holding x's contents
// when load is set, or NaN (PoisonOutputs) / undefined contents otherwise.
func (f *frame) out(x []float32, load bool) devPtr {
	if len(x) == 0 || f.err != nil {
		return 0
	}
	if f.b.res != nil {
		return f.resOut(x, load)
	}
	k := keyOf(x)
	p, pinned := f.b.pinned[k]
	if !pinned {
		var ok bool
		if p, ok = f.bufs[k]; !ok {
			p = f.alloc(len(x))
			if load {
				f.fail(shimHtoD(p, x))
				f.b.countUp(4*len(x), false)
			} else if f.b.opt.PoisonOutputs {
				f.fail(f.b.c.poison(p, len(x)))
			}
			f.bufs[k] = p
		}
	}
	for _, d := range f.outs {
		if d.dev == p && !d.twoD {
			return p
		}
	}
	f.outs = append(f.outs, pendingDownload{host: x, dev: p})
	return p
}

// in2D returns a device copy of the rows×cols matrix at x with row stride
// ld, and its row stride on the device: compact (cols) in the per-call mode,
// ld in the resident mode (the device copy has the host's layout).
func (f *frame) in2D(x []float32, rows, cols, ld int) (devPtr, int) {
	if rows == 0 || cols == 0 || f.err != nil {
		return 0, cols
	}
	if f.b.res != nil {
		return f.in(x[:(rows-1)*ld+cols]), ld
	}
	if ld == cols || rows == 1 {
		return f.in(x[:(rows-1)*ld+cols]), cols
	}
	p := f.alloc(rows * cols)
	f.fail(shimHtoD2D(p, cols, x, ld, rows, cols))
	f.b.countUp(4*rows*cols, false)
	return p, cols
}

// out2D is out for a rows×cols matrix with row stride ld; it returns the
// device row stride as in2D. In the resident mode a strided output (ld >
// cols) is loaded (the gaps between rows are the host's).
func (f *frame) out2D(x []float32, rows, cols, ld int, load bool) (devPtr, int) {
	if rows == 0 || cols == 0 || f.err != nil {
		return 0, cols
	}
	if f.b.res != nil {
		if ld != cols && rows > 1 && !load {
			// Only the rows are written: poisoning the whole range would
			// destroy the gaps, so poison nothing.
			e, off, err := f.b.entry(x[:(rows-1)*ld+cols])
			if err != nil {
				f.fail(err)
				return 0, ld
			}
			if !e.devValid {
				f.fail(f.b.upload(e))
			}
			f.written = append(f.written, e)
			return e.dev + devPtr(4*off), ld
		}
		return f.out(x[:(rows-1)*ld+cols], load), ld
	}
	if ld == cols || rows == 1 {
		return f.out(x[:(rows-1)*ld+cols], load), cols
	}
	p := f.alloc(rows * cols)
	if load {
		f.fail(shimHtoD2D(p, cols, x, ld, rows, cols))
		f.b.countUp(4*rows*cols, false)
	} else if f.b.opt.PoisonOutputs {
		f.fail(f.b.c.poison(p, rows*cols))
	}
	f.outs = append(f.outs, pendingDownload{host: x, dev: p, rows: rows, cols: cols, ldh: ld, twoD: true})
	return p, cols
}

func (f *frame) ints(v []int32) devPtr {
	if v == nil || f.err != nil {
		return 0
	}
	if f.b.res != nil {
		return f.resInts(v)
	}
	f.b.countUp(4*len(v), false)
	p, err := f.b.c.uploadInts(v)
	if err != nil {
		f.fail(err)
		return 0
	}
	f.owned = append(f.owned, p)
	return p
}

// end downloads the outputs, frees the call's buffers and panics on any
// error of the call.
func (f *frame) end(op string) {
	defer f.b.mu.Unlock()
	if f.b.res != nil {
		f.endResident()
	}
	if f.err == nil {
		for _, d := range f.outs {
			var err error
			if d.twoD {
				err = shimDtoH2D(d.host, d.ldh, d.dev, d.cols, d.rows, d.cols)
				f.b.countDown(4*d.rows*d.cols, false)
			} else {
				err = shimDtoH(d.host, d.dev)
				f.b.countDown(4*len(d.host), false)
			}
			if err != nil {
				f.fail(err)
				break
			}
		}
	}
	if f.err != nil {
		// A failed kernel may leave the stream in an error state; wait so
		// that the buffers are idle before they are reused.
		shimStreamSync(f.b.c.stream)
	}
	for _, p := range f.owned {
		f.b.c.free(p)
	}
	if f.err != nil {
		panic(fmt.Errorf("cuda backend %s: %w", op, f.err))
	}
}

func need(op string, ok bool, format string, a ...any) {
	if !ok {
		panic(fmt.Sprintf("cuda backend %s: "+format, append([]any{op}, a...)...))
	}
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C (row-major, strides lda, ldb,
// ldc). k == 0 or alpha == 0 only scales C, on the host.
func (b *Backend) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, bm []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		cr := c[:(m-1)*ldc+n]
		b.Sync(cr)
		ops.CPU.Gemm(transA, transB, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
		b.Wrote(cr)
		return
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	need("Gemm", lda >= ac && len(a) >= (ar-1)*lda+ac, "A %dx%d with lda %d in %d floats", ar, ac, lda, len(a))
	need("Gemm", ldb >= bc && len(bm) >= (br-1)*ldb+bc, "B %dx%d with ldb %d in %d floats", br, bc, ldb, len(bm))
	need("Gemm", ldc >= n && len(c) >= (m-1)*ldc+n, "C %dx%d with ldc %d in %d floats", m, n, ldc, len(c))
	f := b.begin()
	da, dlda := f.in2D(a, ar, ac, lda)
	db, dldb := f.in2D(bm, br, bc, ldb)
	dc, dldc := f.out2D(c, m, n, ldc, beta != 0)
	if f.err == nil {
		f.fail(b.c.gemm(b.opt.Gemm, b.opt.Precision, gemmCall{transA: transA, transB: transB, m: m, n: n, k: k,
			alpha: alpha, a: da, lda: dlda, b: db, ldb: dldb, beta: beta, c: dc, ldc: dldc}))
	}
	f.end("Gemm")
}

func (b *Backend) binary(op string, dst, x, y []float32, n int, run func(d, a, c devPtr) error) {
	if n == 0 {
		return
	}
	need(op, len(x) >= n && len(y) >= n && len(dst) >= n, "lengths %d, %d, %d for %d", len(dst), len(x), len(y), n)
	f := b.begin()
	dx, dy := f.in(x[:n]), f.in(y[:n])
	dd := f.out(dst[:n], false)
	if f.err == nil {
		f.fail(run(dd, dx, dy))
	}
	f.end(op)
}

// Add computes dst = a + b over len(a) elements.
func (b *Backend) Add(dst, x, y []float32) {
	b.binary("Add", dst, x, y, len(x), func(d, a, c devPtr) error { return b.c.add(d, a, c, len(x)) })
}

// Mul computes dst = a ⊙ b over len(a) elements.
func (b *Backend) Mul(dst, x, y []float32) {
	b.binary("Mul", dst, x, y, len(x), func(d, a, c devPtr) error { return b.c.mul(d, a, c, len(x)) })
}

// MulAdd computes dst += a ⊙ b over len(dst) elements.
func (b *Backend) MulAdd(dst, x, y []float32) {
	n := len(dst)
	if n == 0 {
		return
	}
	need("MulAdd", len(x) >= n && len(y) >= n, "lengths %d, %d for %d", len(x), len(y), n)
	f := b.begin()
	dx, dy := f.in(x[:n]), f.in(y[:n])
	dd := f.out(dst, true)
	if f.err == nil {
		f.fail(b.c.mulAdd(dd, dx, dy, n))
	}
	f.end("MulAdd")
}

// Axpy computes y += alpha·x over len(x) elements.
func (b *Backend) Axpy(alpha float32, x, y []float32) {
	n := len(x)
	if n == 0 {
		return
	}
	need("Axpy", len(y) >= n, "len(y) %d < len(x) %d", len(y), n)
	f := b.begin()
	dx := f.in(x)
	dy := f.out(y[:n], true)
	if f.err == nil {
		f.fail(b.c.axpy(alpha, dx, dy, n))
	}
	f.end("Axpy")
}

// Scale computes x *= alpha.
func (b *Backend) Scale(alpha float32, x []float32) {
	if len(x) == 0 {
		return
	}
	f := b.begin()
	dx := f.out(x, true)
	if f.err == nil {
		f.fail(b.c.scale(alpha, dx, len(x)))
	}
	f.end("Scale")
}

// AddBias adds bias to every row of len(bias) of x.
func (b *Backend) AddBias(x, bias []float32) {
	if len(x) == 0 {
		return
	}
	need("AddBias", len(bias) > 0 && len(x)%len(bias) == 0, "length %d is not a multiple of %d", len(x), len(bias))
	f := b.begin()
	dbias := f.in(bias)
	dx := f.out(x, true)
	if f.err == nil {
		f.fail(b.c.biasAct(dx, dbias, len(x), len(bias), actNone))
	}
	f.end("AddBias")
}

// ColSumAcc adds the column sums of the whole rows of len(dst) of x to dst.
func (b *Backend) ColSumAcc(dst, x []float32) {
	n := len(dst)
	if n == 0 {
		return
	}
	rows := len(x) / n
	if rows == 0 {
		return
	}
	f := b.begin()
	dx := f.in(x[:rows*n])
	dd := f.out(dst, true)
	if f.err == nil {
		f.fail(b.c.colSumAcc(dd, dx, rows, n))
	}
	f.end("ColSumAcc")
}

func (b *Backend) reduce(op string, x, y []float32) float32 {
	if len(x) == 0 {
		return 0
	}
	f := b.begin()
	dx := f.in(x)
	var dy devPtr
	if y != nil {
		dy = f.in(y[:len(x)])
	}
	var s float64
	if f.err == nil {
		var err error
		s, err = b.c.dot(dx, dy, len(x))
		f.fail(err)
		g := gridStride(int64(len(x)), 256)
		b.xfer.Scalars++
		b.countDown(8*min(g[0], 1024), false)
	}
	f.end(op)
	return float32(s)
}

// SumSq returns Σ x² (accumulated in double).
func (b *Backend) SumSq(x []float32) float32 { return b.reduce("SumSq", x, nil) }

// Dot returns Σ x·y over len(x) elements (accumulated in double).
func (b *Backend) Dot(x, y []float32) float32 {
	need("Dot", len(y) >= len(x), "len(y) %d < len(x) %d", len(y), len(x))
	return b.reduce("Dot", x, y)
}

func checkRows(op string, l, n int) int {
	need(op, n > 0 && l%n == 0, "length %d is not a multiple of row length %d", l, n)
	return l / n
}

// Softmax replaces each row of n of x by its softmax.
func (b *Backend) Softmax(x []float32, n int) {
	if len(x) == 0 {
		return
	}
	rows := checkRows("Softmax", len(x), n)
	f := b.begin()
	dx := f.out(x, true)
	if f.err == nil {
		f.fail(b.c.softmaxRows(dx, rows, n))
	}
	f.end("Softmax")
}

// SoftmaxBackward: dx (=|+=) y ⊙ (dy − Σ_row dy⊙y).
func (b *Backend) SoftmaxBackward(dx, y, dy []float32, n int, acc bool) {
	if len(y) == 0 {
		return
	}
	rows := checkRows("SoftmaxBackward", len(y), n)
	need("SoftmaxBackward", len(dy) >= len(y) && len(dx) >= len(y), "lengths %d, %d for %d", len(dx), len(dy), len(y))
	f := b.begin()
	d1, d2 := f.in(y), f.in(dy[:len(y)])
	dd := f.out(dx[:len(y)], acc)
	if f.err == nil {
		f.fail(b.c.softmaxBwd(dd, d1, d2, rows, n, acc))
	}
	f.end("SoftmaxBackward")
}

// LayerNorm normalises rows of n (out may alias x).
func (b *Backend) LayerNorm(out, x, gamma, beta []float32, n int, eps float32, mean, rstd []float32) {
	if len(x) == 0 {
		return
	}
	rows := checkRows("LayerNorm", len(x), n)
	need("LayerNorm", len(out) >= len(x) && len(gamma) >= n && len(beta) >= n, "lengths out %d gamma %d beta %d", len(out), len(gamma), len(beta))
	need("LayerNorm", (mean == nil || len(mean) >= rows) && (rstd == nil || len(rstd) >= rows), "mean/rstd shorter than %d rows", rows)
	f := b.begin()
	dx, dg, db := f.in(x), f.in(gamma[:n]), f.in(beta[:n])
	do := f.out(out[:len(x)], false)
	var dm, dr devPtr
	if mean != nil {
		dm = f.out(mean[:rows], false)
	}
	if rstd != nil {
		dr = f.out(rstd[:rows], false)
	}
	if f.err == nil {
		f.fail(b.c.lnFwd(dx, n, 0, 0, 0, 0, 0, do, n, dg, db, dm, dr, rows, n, eps))
	}
	f.end("LayerNorm")
}

// LayerNormBackward computes dx (=|+= by acc) and adds into dgamma and dbeta.
func (b *Backend) LayerNormBackward(dx, dgamma, dbeta, x, dy, gamma, mean, rstd []float32, n int, acc bool) {
	if len(x) == 0 {
		return
	}
	rows := checkRows("LayerNormBackward", len(x), n)
	need("LayerNormBackward", len(dy) >= len(x) && len(gamma) >= n && len(mean) >= rows && len(rstd) >= rows, "short dy/gamma/mean/rstd")
	need("LayerNormBackward", (dx == nil || len(dx) >= len(x)) && (dgamma == nil || len(dgamma) >= n) && (dbeta == nil || len(dbeta) >= n), "short dx/dgamma/dbeta")
	f := b.begin()
	d1, d2, dgm := f.in(x), f.in(dy[:len(x)]), f.in(gamma[:n])
	dm, dr := f.in(mean[:rows]), f.in(rstd[:rows])
	var ddg, ddb, ddx devPtr
	if dgamma != nil {
		ddg = f.out(dgamma[:n], true)
	}
	if dbeta != nil {
		ddb = f.out(dbeta[:n], true)
	}
	if dx != nil {
		ddx = f.out(dx[:len(x)], acc)
	}
	if f.err == nil {
		// Parameter gradients first: dx may alias x or dy.
		f.fail(b.c.lnParamGrads(ddg, ddb, d1, d2, dm, dr, rows, n))
	}
	if f.err == nil && dx != nil {
		f.fail(b.c.lnBwdDx(ddx, d1, d2, dgm, dm, dr, rows, n, acc))
	}
	f.end("LayerNormBackward")
}

func (b *Backend) act(op string, dst, x []float32, act int) {
	if len(x) == 0 {
		return
	}
	need(op, len(dst) >= len(x), "len(dst) %d < len(x) %d", len(dst), len(x))
	f := b.begin()
	dx := f.in(x)
	dd := f.out(dst[:len(x)], false)
	if f.err == nil {
		f.fail(b.c.actFwd(dd, dx, len(x), act))
	}
	f.end(op)
}

func (b *Backend) actBackward(op string, dx, x, dy []float32, acc bool, act int) {
	if len(x) == 0 {
		return
	}
	need(op, len(dy) >= len(x) && len(dx) >= len(x), "lengths dx %d dy %d for %d", len(dx), len(dy), len(x))
	f := b.begin()
	d1, d2 := f.in(x), f.in(dy[:len(x)])
	dd := f.out(dx[:len(x)], acc)
	if f.err == nil {
		f.fail(b.c.actBwd(dd, d1, d2, len(x), act, acc))
	}
	f.end(op)
}

// GELU computes dst = x·Φ(x).
func (b *Backend) GELU(dst, x []float32) { b.act("GELU", dst, x, actGELU) }

// QuickGELU computes dst = x·σ(1.702x).
func (b *Backend) QuickGELU(dst, x []float32) { b.act("QuickGELU", dst, x, actQuickGELU) }

// GELUBackward: dx (=|+=) dy·GELU'(x).
func (b *Backend) GELUBackward(dx, x, dy []float32, acc bool) {
	b.actBackward("GELUBackward", dx, x, dy, acc, actGELU)
}

// QuickGELUBackward: dx (=|+=) dy·QuickGELU'(x).
func (b *Backend) QuickGELUBackward(dx, x, dy []float32, acc bool) {
	b.actBackward("QuickGELUBackward", dx, x, dy, acc, actQuickGELU)
}

// attnMasks returns the int32 tables of a: key lengths, head-keep flags,
// head slots and the kept heads.
func attnMasks(a *ops.AttnArgs) (keyLens, keep, slot, kept []int32) {
	if a.KeyLens != nil {
		keyLens = make([]int32, len(a.KeyLens))
		for i, l := range a.KeyLens {
			keyLens[i] = int32(l)
		}
	}
	slot = make([]int32, a.H)
	for h := 0; h < a.H; h++ {
		if a.HeadKeep == nil || a.HeadKeep[h] {
			slot[h] = int32(len(kept))
			kept = append(kept, int32(h))
		} else {
			slot[h] = -1
		}
	}
	if a.HeadKeep != nil {
		keep = make([]int32, a.H)
		for h, k := range a.HeadKeep {
			if k {
				keep[h] = 1
			}
		}
	}
	return
}

func (f *frame) geom(a *ops.AttnArgs) *attnGeom {
	keyLens, keep, slot, kept := attnMasks(a)
	ld := a.H * a.D
	return &attnGeom{B: a.B, T: a.T, H: a.H, D: a.D, ldq: ld, ldk: ld, ldv: ld, ldo: ld, causal: a.Causal, scale: a.Scale,
		keyLens: f.ints(keyLens), headKeep: f.ints(keep), headSlot: f.ints(slot), keptHeads: f.ints(kept), Hk: len(kept)}
}

// AttentionForward computes the attention output; with probs it also fills
// the saved buffer of AttentionBackward: the flash statistics when probs
// has AttnSavedLen's flash length, else the probabilities (the CPU backend's
// layout: B·kept·T·T).
func (b *Backend) AttentionForward(a *ops.AttnArgs, q, k, v, out, probs []float32) {
	n := a.B * a.T * a.H * a.D
	if n == 0 {
		return
	}
	need("AttentionForward", len(q) >= n && len(k) >= n && len(v) >= n && len(out) >= n, "q/k/v/out shorter than %d", n)
	if usesFlashSaved(a, probs) {
		b.attentionForwardFlash(a, q, k, v, out, probs)
		return
	}
	f := b.begin()
	g := f.geom(a)
	dq, dk, dv := f.in(q[:n]), f.in(k[:n]), f.in(v[:n])
	do := f.out(out[:n], false)
	if probs == nil && flashDMax(a.D) != 0 {
		if f.err == nil {
			f.fail(b.c.attnFlash(g, dq, dk, dv, do))
		}
	} else {
		np := a.B * g.Hk * a.T * a.T
		var dp devPtr
		if probs != nil {
			need("AttentionForward", len(probs) >= np, "probs of %d, need %d", len(probs), np)
			dp = f.out(probs[:np], false)
		} else {
			dp = f.alloc(np)
		}
		if f.err == nil {
			f.fail(b.c.attnNaive(g, dq, dk, dv, do, dp))
		}
	}
	f.end("AttentionForward")
}

// AttentionBackward propagates dOut into dq, dk, dv from the saved buffer
// of AttentionForward (flash backward or materialised probabilities), dv
// first, then dq, then dk, as the interface orders aliased gradients.
func (b *Backend) AttentionBackward(a *ops.AttnArgs, q, k, v, probs, dOut, dq, dk, dv []float32, betaQ, betaK, betaV float32) {
	n := a.B * a.T * a.H * a.D
	if n == 0 || (dq == nil && dk == nil && dv == nil) {
		return
	}
	if usesFlashSaved(a, probs) {
		b.attentionBackwardFlash(a, q, k, v, probs, dOut, dq, dk, dv, betaQ, betaK, betaV)
		return
	}
	f := b.begin()
	g := f.geom(a)
	np := a.B * g.Hk * a.T * a.T
	need("AttentionBackward", len(probs) >= np && len(dOut) >= n, "probs %d (need %d) or dOut %d (need %d)", len(probs), np, len(dOut), n)
	grads := attnGradArgs(n, dq, dk, dv, betaQ, betaK, betaV)
	dP := f.in(probs[:np])
	dO := f.in(dOut[:n])
	var dqq, dkk, dvv devPtr
	if dq != nil || dk != nil {
		dqq, dkk = f.in(q[:n]), f.in(k[:n])
	}
	dev := f.attnGradOuts(grads, n)
	if dq != nil || dk != nil {
		dvv = f.in(v[:n])
	}
	if f.err == nil && dv != nil {
		f.fail(b.c.attnBwdDV(g, dP, dO, dev[0], betaV))
	}
	if f.err == nil && (dq != nil || dk != nil) {
		dS := f.alloc(max(np, 1))
		if f.err == nil && g.Hk > 0 {
			f.fail(b.c.attnBwdDS(g, dP, dO, dvv, dS))
		}
		if f.err == nil && dq != nil {
			f.fail(b.c.attnBwdDQ(g, dS, dkk, dev[1], betaQ))
		}
		if f.err == nil && dk != nil {
			f.fail(b.c.attnBwdDK(g, dS, dqq, dev[2], betaK))
		}
	}
	f.end("AttentionBackward")
}

// Copy computes dst = src over len(src) elements (a device-to-device copy).
func (b *Backend) Copy(dst, src []float32) {
	n := len(src)
	if n == 0 {
		return
	}
	need("Copy", len(dst) >= n, "len(dst) %d < len(src) %d", len(dst), n)
	f := b.begin()
	ds := f.in(src)
	dd := f.out(dst[:n], false)
	if f.err == nil {
		f.fail(shimDtoD(dd, ds, 4*n, b.c.stream))
	}
	f.end("Copy")
}

// Fill sets every element of x to v (a memset).
func (b *Backend) Fill(x []float32, v float32) {
	if len(x) == 0 {
		return
	}
	f := b.begin()
	dx := f.out(x, false)
	if f.err == nil {
		f.fail(shimMemset32(dx, math.Float32bits(v), len(x), b.c.stream))
	}
	f.end("Fill")
}

// GatherRows copies row idx[r] of src (rows of n) into row r of dst.
func (b *Backend) GatherRows(dst, src []float32, n int, idx []int) {
	rows := len(idx)
	if rows == 0 || n == 0 {
		return
	}
	need("GatherRows", len(dst) >= rows*n, "dst %d for %d rows of %d", len(dst), rows, n)
	ids := make([]int32, rows)
	for r, i := range idx {
		need("GatherRows", i >= 0 && (i+1)*n <= len(src), "index %d of %d out of range", i, len(src)/n)
		ids[r] = int32(i)
	}
	f := b.begin()
	ds := f.in(src)
	di := f.ints(ids)
	dd := f.out(dst[:rows*n], false)
	if f.err == nil {
		f.fail(b.c.gatherRows(dd, n, ds, n, di, rows, n))
	}
	f.end("GatherRows")
}

// PatchUnfold writes the P×P patches of pix [B, Cin, H, W] into the rows of
// cols (ops.Backend).
func (b *Backend) PatchUnfold(cols, pix []float32, B, Cin, H, W, P int) {
	need("PatchUnfold", P > 0 && H%P == 0 && W%P == 0, "image %dx%d, patch %d", H, W, P)
	n := B * Cin * H * W
	if n == 0 {
		return
	}
	need("PatchUnfold", len(pix) >= n && len(cols) >= n, "pix %d, cols %d for %d", len(pix), len(cols), n)
	f := b.begin()
	dp := f.in(pix[:n])
	dc := f.out(cols[:n], false)
	if f.err == nil {
		f.fail(b.c.patchUnfold(dc, dp, B, Cin, H, W, P))
	}
	f.end("PatchUnfold")
}

// ScatterAddRows adds row r of src (rows of n) into row idx[r] of dst, in
// order of r (one thread per output element over the rows grouped by
// target: deterministic, bit-identical to the CPU backend's Adds).
func (b *Backend) ScatterAddRows(dst, src []float32, n int, idx []int) {
	if len(idx) == 0 || n == 0 {
		return
	}
	need("ScatterAddRows", len(src) >= len(idx)*n, "src %d for %d rows of %d", len(src), len(idx), n)
	for _, i := range idx {
		need("ScatterAddRows", i >= 0 && (i+1)*n <= len(dst), "index %d of %d out of range", i, len(dst)/n)
	}
	targets, offsets, rows := scatterTable(idx)
	f := b.begin()
	ds := f.in(src[:len(idx)*n])
	dt, do, dr := f.ints(targets), f.ints(offsets), f.ints(rows)
	dd := f.out(dst, true)
	if f.err == nil {
		f.fail(b.c.scatterAddRows(dd, ds, n, dt, do, dr, len(targets)))
	}
	f.end("ScatterAddRows")
}

// attnGrad is one gradient output of AttentionBackward with its beta.
type attnGrad struct {
	x    []float32
	beta float32
}

// attnGradArgs checks the gradient outputs of AttentionBackward and lists
// them in the interface's processing order: dv, dq, dk.
func attnGradArgs(n int, dq, dk, dv []float32, betaQ, betaK, betaV float32) [3]attnGrad {
	grads := [3]attnGrad{{dv, betaV}, {dq, betaQ}, {dk, betaK}}
	for _, gr := range grads {
		if gr.x != nil {
			need("AttentionBackward", len(gr.x) >= n, "gradient of %d, need %d", len(gr.x), n)
		}
	}
	return grads
}

// attnGradOuts returns the device buffers of the gradient outputs (0 for a
// nil one). A host slice that appears several times (aliased gradients) is
// one buffer, loaded from the host when any of its uses accumulates.
func (f *frame) attnGradOuts(grads [3]attnGrad, n int) [3]devPtr {
	load := map[hostKey]bool{}
	for _, gr := range grads {
		if gr.x != nil {
			load[keyOf(gr.x[:n])] = load[keyOf(gr.x[:n])] || gr.beta != 0
		}
	}
	var dev [3]devPtr
	for i, gr := range grads {
		if gr.x != nil {
			dev[i] = f.out(gr.x[:n], load[keyOf(gr.x[:n])])
		}
	}
	return dev
}
