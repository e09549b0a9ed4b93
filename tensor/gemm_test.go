package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"gonum.org/v1/gonum/blas"
)

// Accuracy. Every element of C is a sum of k products accumulated in
// float32 (FMA or multiply-add, in K blocks), scaled by alpha and added to
// beta·C: at most k+4 roundings touch any one product, so with u = 2⁻²⁴
//
//	|c − ref| ≤ (k+4)·u·(|alpha|·Σ_l |a_il|·|b_lj| + |beta|·|c_ij|)
//
// where ref is computed in float64. The bound is rigorous (no flaky
// failures) yet tight enough to catch a wrong kernel: dropping or
// misplacing one product of random data in [-1,1) is an error of about
// |a||b| ≈ 0.25, while for k = 1000 the bound is ≈ 6e-5·Σ|a||b| ≈ 0.015.

const unitRoundoff = 1.0 / (1 << 24)

// sentinel marks C memory that the GEMM must not touch (outside the m×n
// region, including the gaps between rows when ldc > n).
var sentinel = math.Float32frombits(0x7fc0dead) // a NaN with a payload

// forEachVariant runs f once per kernel registered in r, with it active.
func forEachVariant[F any](t *testing.T, r *Registry[F], f func(t *testing.T, kr F)) {
	t.Helper()
	for _, v := range r.Variants() {
		restore, ok := r.Use(v.Name)
		if !ok {
			t.Fatalf("variant %s listed but not usable", v.Name)
		}
		t.Run(v.Name, func(t *testing.T) { f(t, v.Fn) })
		restore()
	}
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.Float64()*2 - 1)
	}
	return s
}

// gemmCase is one GEMM problem with its data laid out with leading
// dimensions and guard zones.
type gemmCase struct {
	tA, tB                     blas.Transpose
	m, n, k                    int
	alpha, beta                float32
	lda, ldb, ldc              int
	a, b                       []float32
	cbuf                       []float32 // guard + C + guard
	c                          []float32 // cbuf[guard:]
	c0                         []float32 // copy of cbuf before the call
	guard                      int
	refV, refB                 []float64 // reference values and bounds (m×n)
	aRows, aCols, bRows, bCols int
}

func (gc *gemmCase) String() string {
	t := func(x blas.Transpose) string {
		if x == blas.NoTrans {
			return "N"
		}
		return "T"
	}
	return fmt.Sprintf("%s%s m=%d n=%d k=%d alpha=%g beta=%g lda=%d ldb=%d ldc=%d", t(gc.tA), t(gc.tB), gc.m, gc.n, gc.k, gc.alpha, gc.beta, gc.lda, gc.ldb, gc.ldc)
}

func newGemmCase(r *rand.Rand, tA, tB blas.Transpose, m, n, k int, alpha, beta float32) *gemmCase {
	gc := &gemmCase{tA: tA, tB: tB, m: m, n: n, k: k, alpha: alpha, beta: beta}
	gc.aRows, gc.aCols = m, k
	if tA != blas.NoTrans {
		gc.aRows, gc.aCols = k, m
	}
	gc.bRows, gc.bCols = k, n
	if tB != blas.NoTrans {
		gc.bRows, gc.bCols = n, k
	}
	pad := func() int {
		if r.IntN(3) == 0 {
			return 0
		}
		return 1 + r.IntN(9)
	}
	gc.lda = max(1, gc.aCols) + pad()
	gc.ldb = max(1, gc.bCols) + pad()
	gc.ldc = max(1, n) + pad()
	gc.a = randSlice(r, max(0, gc.lda*(gc.aRows-1)+gc.aCols))
	gc.b = randSlice(r, max(0, gc.ldb*(gc.bRows-1)+gc.bCols))
	gc.guard = 1 + r.IntN(40)
	clen := 0
	if m > 0 && n > 0 {
		clen = gc.ldc*(m-1) + n
	}
	gc.cbuf = make([]float32, gc.guard+clen+1+r.IntN(40))
	for i := range gc.cbuf {
		gc.cbuf[i] = sentinel
	}
	gc.c = gc.cbuf[gc.guard:]
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			if beta == 0 {
				gc.c[i*gc.ldc+j] = float32(math.NaN()) // must be ignored
			} else {
				gc.c[i*gc.ldc+j] = float32(r.Float64()*2 - 1)
			}
		}
	}
	gc.c0 = append([]float32(nil), gc.cbuf...)
	return gc
}

func (gc *gemmCase) opA(i, l int) float64 {
	if gc.tA == blas.NoTrans {
		return float64(gc.a[i*gc.lda+l])
	}
	return float64(gc.a[l*gc.lda+i])
}

func (gc *gemmCase) opB(l, j int) float64 {
	if gc.tB == blas.NoTrans {
		return float64(gc.b[l*gc.ldb+j])
	}
	return float64(gc.b[j*gc.ldb+l])
}

// ref returns the float64 reference value of C(i,j) and its error bound.
// The first call computes all of them (dense float64 copies of op(A) and
// op(B)ᵀ keep it cheap, also under qemu).
func (gc *gemmCase) ref(i, j int) (v, bound float64) {
	if gc.refV == nil {
		gc.computeRef()
	}
	return gc.refV[i*gc.n+j], gc.refB[i*gc.n+j]
}

func (gc *gemmCase) computeRef() {
	m, n, k := gc.m, gc.n, gc.k
	gc.refV = make([]float64, m*n)
	gc.refB = make([]float64, m*n)
	opA := make([]float64, m*k)
	opBT := make([]float64, n*k)
	for i := 0; i < m; i++ {
		for l := 0; l < k; l++ {
			opA[i*k+l] = gc.opA(i, l)
		}
	}
	for j := 0; j < n; j++ {
		for l := 0; l < k; l++ {
			opBT[j*k+l] = gc.opB(l, j)
		}
	}
	alpha, beta := float64(gc.alpha), float64(gc.beta)
	for i := 0; i < m; i++ {
		ar := opA[i*k : i*k+k]
		for j := 0; j < n; j++ {
			var s, sa float64
			if alpha != 0 {
				br := opBT[j*k : j*k+k]
				for l, x := range ar {
					p := x * br[l]
					s += p
					sa += math.Abs(p)
				}
			}
			v := alpha * s
			abs := math.Abs(alpha) * sa
			if beta != 0 {
				c := float64(gc.c0[gc.guard+i*gc.ldc+j])
				v += beta * c
				abs += math.Abs(beta * c)
			}
			gc.refV[i*n+j] = v
			gc.refB[i*n+j] = float64(k+4)*unitRoundoff*abs*1.0001 + 1e-37
		}
	}
}

// check compares C with the reference (through post, for epilogues) and
// checks that every guard value is untouched.
func (gc *gemmCase) check(t *testing.T, post func(i, j int, v, bound float64) (float64, float64)) {
	t.Helper()
	fails := 0
	for i := 0; i < gc.m; i++ {
		for j := 0; j < gc.n; j++ {
			want, bound := gc.ref(i, j)
			if post != nil {
				want, bound = post(i, j, want, bound)
			}
			got := float64(gc.c[i*gc.ldc+j])
			if !(math.Abs(got-want) <= bound) {
				if fails++; fails <= 3 {
					t.Errorf("%v: C[%d,%d] = %g, want %g ± %g", gc, i, j, got, want, bound)
				}
			}
		}
	}
	inRegion := func(p int) bool {
		p -= gc.guard
		if p < 0 || gc.m == 0 || gc.n == 0 {
			return false
		}
		i, j := p/gc.ldc, p%gc.ldc
		return i < gc.m && j < gc.n
	}
	for p, v := range gc.cbuf {
		if !inRegion(p) && math.Float32bits(v) != math.Float32bits(gc.c0[p]) {
			t.Fatalf("%v: wrote outside C's m×n region at offset %d (guard %d): %g", gc, p-gc.guard, gc.guard, v)
		}
	}
	if fails > 0 {
		t.Fatalf("%v: %d wrong elements", gc, fails)
	}
}

var transposes = []blas.Transpose{blas.NoTrans, blas.Trans}

// gemmShapes lists (m, n, k): the cartesian product of small sizes, plus
// 1000 in each position and shapes that cross the cache blocks (k > kc,
// m > mc, n > nc) for every kernel.
func gemmShapes(short bool) [][3]int {
	small := []int{0, 1, 7, 33, 65, 127}
	if short {
		small = []int{0, 1, 7, 33, 65}
	}
	var s [][3]int
	for _, m := range small {
		for _, n := range small {
			for _, k := range small {
				s = append(s, [3]int{m, n, k})
			}
		}
	}
	s = append(s,
		[3]int{1000, 33, 65}, [3]int{7, 1000, 33}, [3]int{65, 7, 1000},
		[3]int{1000, 1, 1000}, [3]int{1, 1000, 127}, [3]int{33, 65, 1000},
		[3]int{340, 40, 260}, [3]int{20, 2100, 10}, [3]int{150, 40, 257},
	)
	return s
}

var (
	alphas = []float32{1, 0, -0.7, 2.5}
	betas  = []float32{0, 1, 0.3, -1.5}
)

func TestGemmSgemm(t *testing.T) {
	shapes := gemmShapes(testing.Short())
	forEachVariant(t, sgemmK, func(t *testing.T, kr *gemmKernel) {
		r := rand.New(rand.NewPCG(1, uint64(kr.mr*100+kr.nr)))
		idx := 0
		for _, sh := range shapes {
			for _, tA := range transposes {
				for _, tB := range transposes {
					idx++
					alpha := alphas[idx%len(alphas)]
					beta := betas[(idx/len(alphas))%len(betas)]
					gc := newGemmCase(r, tA, tB, sh[0], sh[1], sh[2], alpha, beta)
					Sgemm(gc.tA, gc.tB, gc.m, gc.n, gc.k, gc.alpha, gc.a, gc.lda, gc.b, gc.ldb, gc.beta, gc.c, gc.ldc)
					gc.check(t, nil)
				}
			}
		}
	})
}

// TestGemmAlphaZeroIgnoresAB: with alpha == 0, A and B are not read (NaN in
// them does not leak), as in the reference BLAS.
func TestGemmAlphaZeroIgnoresAB(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	for _, beta := range betas {
		gc := newGemmCase(r, blas.NoTrans, blas.Trans, 9, 11, 13, 0, beta)
		for i := range gc.a {
			gc.a[i] = float32(math.NaN())
		}
		Sgemm(gc.tA, gc.tB, gc.m, gc.n, gc.k, gc.alpha, gc.a, gc.lda, gc.b, gc.ldb, gc.beta, gc.c, gc.ldc)
		gc.a = make([]float32, len(gc.a)) // reference: any finite A
		gc.refV = nil
		gc.check(t, nil)
	}
}

// TestGemmMicroKernel calls each micro-kernel (and its edge kernels, which
// must write only their rows) directly: every k up to 9 (the unrolled loop
// and its remainder) and a long one, beta 0 (NaN in C, ±0), 1 and other,
// and a row stride wider than the tile with guard values.
func TestGemmMicroKernel(t *testing.T) {
	forEachVariant(t, sgemmK, func(t *testing.T, kr *gemmKernel) {
		r := rand.New(rand.NewPCG(3, 3))
		for rows := 1; rows <= kr.mr; rows++ {
			fn := kr.fn
			if rows < kr.mr {
				if kr.edge == nil {
					continue
				}
				fn = kr.edge[rows]
			}
			for _, k := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 257} {
				for _, beta := range []float32{0, float32(math.Copysign(0, -1)), 1, -0.6} {
					checkKernel(t, r, kr.mr, kr.nr, rows, fn, k, 1.25, beta, nil)
				}
			}
		}
	})
}

// checkKernel runs a micro-kernel fn (tile mr×nr, computing the first rows
// rows) on random panels and checks C against the float64 reference and
// the guard values. When call is set it runs the kernel instead of fn (the
// emulator). It returns a, b and C before and after, for further checks.
func checkKernel(t *testing.T, r *rand.Rand, mr, nr, rows int, fn func(k int, a, b, c *float32, ldc int, alpha, beta float32),
	k int, alpha, beta float32, call func(k int, a, b, c []float32, ldc int, alpha, beta float32) []float32) (a, b, c0, c []float32) {
	t.Helper()
	a = randSlice(r, k*mr)
	b = randSlice(r, k*nr)
	ldc := nr + 3
	c0 = make([]float32, mr*ldc+5)
	for p := range c0 {
		i, j := p/ldc, p%ldc
		switch {
		case i >= rows || j >= nr:
			c0[p] = sentinel
		case beta == 0:
			c0[p] = float32(math.NaN())
		default:
			c0[p] = float32(r.Float64()*2 - 1)
		}
	}
	if call != nil {
		c = call(k, a, b, c0, ldc, alpha, beta)
	} else {
		c = append([]float32(nil), c0...)
		fn(k, &a[0], &b[0], &c[0], ldc, alpha, beta)
	}
	for p := range c {
		i, j := p/ldc, p%ldc
		if i >= rows || j >= nr {
			if math.Float32bits(c[p]) != math.Float32bits(sentinel) {
				t.Fatalf("rows=%d k=%d beta=%g: wrote c[%d] outside the tile", rows, k, beta, p)
			}
			continue
		}
		var s, sa float64
		for l := 0; l < k; l++ {
			x := float64(a[l*mr+i]) * float64(b[l*nr+j])
			s, sa = s+x, sa+math.Abs(x)
		}
		want, abs := float64(alpha)*s, math.Abs(float64(alpha))*sa
		if beta != 0 {
			want += float64(beta) * float64(c0[p])
			abs += math.Abs(float64(beta) * float64(c0[p]))
		}
		if !(math.Abs(float64(c[p])-want) <= float64(k+4)*unitRoundoff*abs*1.0001) {
			t.Fatalf("rows=%d k=%d beta=%g: c[%d,%d] = %g, want %g", rows, k, beta, i, j, c[p], want)
		}
	}
	return a, b, c0, c
}

func TestGemmPacked(t *testing.T) {
	ms := []int{0, 1, 7, 50, 77, 130}
	kns := [][2]int{{1, 1}, {7, 33}, {65, 100}, {300, 70}, {33, 1000}}
	if testing.Short() {
		ms = []int{0, 1, 7, 50, 77}
	}
	forEachVariant(t, sgemmK, func(t *testing.T, kr *gemmKernel) {
		r := rand.New(rand.NewPCG(4, uint64(kr.mr)))
		idx := 0
		for _, kn := range kns {
			for _, tB := range transposes {
				k, n := kn[0], kn[1]
				// B's data must be the same for every m: pack it once.
				proto := newGemmCase(r, blas.NoTrans, tB, 1, n, k, 1, 0)
				pb := PackB(tB, k, n, proto.b, proto.ldb)
				if pb.K() != k || pb.N() != n {
					t.Fatalf("PackB: K, N = %d, %d; want %d, %d", pb.K(), pb.N(), k, n)
				}
				for _, m := range ms {
					for _, tA := range transposes {
						idx++
						alpha := alphas[idx%len(alphas)]
						beta := betas[(idx/len(alphas))%len(betas)]
						gc := newGemmCase(r, tA, tB, m, n, k, alpha, beta)
						gc.b, gc.ldb = proto.b, proto.ldb
						SgemmPacked(gc.tA, gc.m, gc.alpha, gc.a, gc.lda, pb, gc.beta, gc.c, gc.ldc)
						gc.check(t, nil)
					}
				}
			}
		}
	})
}

// TestGemmPackedSwitchVariant packs B with each kernel active and multiplies
// with every other: PackedB must repack for the active kernel's layout.
func TestGemmPackedSwitchVariant(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, packer := range sgemmK.Variants() {
		restore, _ := sgemmK.Use(packer.Name)
		proto := newGemmCase(r, blas.NoTrans, blas.Trans, 1, 45, 530, 1, 0)
		pb := PackB(blas.Trans, 530, 45, proto.b, proto.ldb)
		restore()
		for round := 0; round < 2; round++ {
			forEachVariant(t, sgemmK, func(t *testing.T, kr *gemmKernel) {
				gc := newGemmCase(r, blas.NoTrans, blas.Trans, 23, 45, 530, 1, 0.5)
				gc.b, gc.ldb = proto.b, proto.ldb
				SgemmPacked(gc.tA, gc.m, gc.alpha, gc.a, gc.lda, pb, gc.beta, gc.c, gc.ldc)
				gc.check(t, nil)
			})
		}
	}
}

func actRef(act Activation, x float64) float64 {
	switch act {
	case ActQuickGELU:
		return x / (1 + math.Exp(-1.702*x))
	case ActGELU:
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	}
	return x
}

func TestGemmPackedEpilogue(t *testing.T) {
	forEachVariant(t, sgemmK, func(t *testing.T, kr *gemmKernel) {
		r := rand.New(rand.NewPCG(6, uint64(kr.nr)))
		idx := 0
		for _, sh := range [][3]int{{1, 1, 1}, {7, 33, 65}, {50, 100, 300}, {77, 70, 33}, {130, 1000, 7}} {
			m, n, k := sh[0], sh[1], sh[2]
			for _, act := range []Activation{ActNone, ActQuickGELU, ActGELU} {
				for _, withBias := range []bool{false, true} {
					for _, withRes := range []bool{false, true} {
						idx++
						alpha := alphas[idx%len(alphas)]
						beta := betas[(idx/len(alphas))%len(betas)]
						gc := newGemmCase(r, blas.NoTrans, blas.Trans, m, n, k, alpha, beta)
						pb := PackB(gc.tB, k, n, gc.b, gc.ldb)
						var ep Epilogue
						ep.Act = act
						if withBias {
							ep.Bias = randSlice(r, n)
						}
						if withRes {
							ep.Ldr = n + r.IntN(3)
							ep.Residual = randSlice(r, ep.Ldr*(m-1)+n)
						}
						SgemmPackedEpilogue(gc.tA, gc.m, gc.alpha, gc.a, gc.lda, pb, gc.beta, gc.c, gc.ldc, ep)
						gc.check(t, func(i, j int, v, bound float64) (float64, float64) {
							if ep.Bias != nil {
								v += float64(ep.Bias[j])
								bound += 2 * unitRoundoff * math.Abs(v)
							}
							// The activations have slope ≤ 1.13 in magnitude;
							// allow the vector kernels a few ulps of their own.
							v = actRef(act, v)
							bound = 1.13*bound + 8*unitRoundoff*math.Abs(v) + 1e-30
							if ep.Residual != nil {
								v += float64(ep.Residual[i*ep.Ldr+j])
								bound += 2 * unitRoundoff * math.Abs(v)
							}
							return v, bound
						})
					}
				}
			}
		}
	})
}

// TestGemmDeterministic: results are bit-identical whatever the thread count
// (public API with GOMAXPROCS 1–4, and every thread grid the driver can
// pick, forced, on awkward shapes).
func TestGemmDeterministic(t *testing.T) {
	forEachVariant(t, sgemmK, func(t *testing.T, kr *gemmKernel) {
		r := rand.New(rand.NewPCG(7, 7))
		m, n, k := 301, 257, 300
		if kr == sgemmK.Variants()[0].Fn && testing.Short() {
			m, n, k = 151, 129, 300
		}
		a := randSlice(r, m*k)
		b := randSlice(r, k*n)
		c0 := randSlice(r, m*n)
		pb := PackB(blas.NoTrans, k, n, b, n)
		run := func(procs int) (c, cp []float32) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			c = append([]float32(nil), c0...)
			Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1.5, a, k, b, n, 0.5, c, n)
			cp = append([]float32(nil), c0...)
			SgemmPacked(blas.Trans, m, 1.5, a, m, pb, 0.5, cp, n) // a read as k×m, op(A) = Aᵀ
			return c, cp
		}
		want, wantP := run(1)
		for procs := 2; procs <= 4; procs++ {
			got, gotP := run(procs)
			if !bitsEqual(got, want) || !bitsEqual(gotP, wantP) {
				t.Fatalf("GOMAXPROCS=%d: result differs from GOMAXPROCS=1", procs)
			}
		}
		// Forced grids on small, odd shapes.
		for _, sh := range [][3]int{{37, 53, 70}, {13, 200, 9}, {200, 5, 31}} {
			m, n, k := sh[0], sh[1], sh[2]
			for _, packed := range []bool{false, true} {
				var ref []float32
				for threads := 1; threads <= 5; threads++ {
					g := gemmArgs{m: m, n: n, k: k, alpha: 0.75, beta: 0.25, a: a, lda: k, b: b, ldb: n, c: append([]float32(nil), c0[:m*n]...), ldc: n, forceThreads: threads}
					if packed {
						g.run(kr, PackB(blas.NoTrans, k, n, b, n).layoutFor(kr))
					} else {
						g.run(kr, nil)
					}
					if threads == 1 {
						ref = g.c
					} else if !bitsEqual(g.c, ref) {
						t.Fatalf("%v packed=%v: %d threads differ from 1", sh, packed, threads)
					}
				}
			}
		}
	})
}

func bitsEqual(x, y []float32) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
			return false
		}
	}
	return true
}

// TestGemmPlan: the thread grid never has more tasks than tiles or threads.
func TestGemmPlan(t *testing.T) {
	kr := sgemmK.Fn()
	for _, sh := range [][3]int{{1, 1, 1}, {50, 3072, 768}, {3072, 50, 768}, {400, 768, 3072}, {2048, 2048, 2048}, {7, 7, 100000}} {
		for _, threads := range []int{1, 2, 3, 4, 16} {
			g := gemmArgs{m: sh[0], n: sh[1], k: sh[2], forceThreads: threads}
			pm, pn := g.plan(kr)
			if pm < 1 || pn < 1 || pm*pn > threads || pm > ceilDiv(sh[0], kr.mr) || pn > ceilDiv(sh[1], kr.nr) {
				t.Errorf("%v threads=%d: grid %d×%d", sh, threads, pm, pn)
			}
		}
	}
}

// TestGemmNoAlloc: one-thread Sgemm and SgemmPacked allocate nothing once
// their pooled buffers exist.
func TestGemmNoAlloc(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage counters")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	r := rand.New(rand.NewPCG(8, 8))
	m, n, k := 20, 40, 300
	a, b, c := randSlice(r, m*k), randSlice(r, n*k), make([]float32, m*n)
	pb := PackB(blas.Trans, k, n, b, k)
	ep := Epilogue{Bias: randSlice(r, n), Act: ActQuickGELU}
	for name, f := range map[string]func(){
		"Sgemm":               func() { Sgemm(blas.NoTrans, blas.Trans, m, n, k, 1, a, k, b, k, 0, c, n) },
		"SgemmPacked":         func() { SgemmPacked(blas.NoTrans, m, 1, a, k, pb, 0, c, n) },
		"SgemmPackedEpilogue": func() { SgemmPackedEpilogue(blas.NoTrans, m, 1, a, k, pb, 0, c, n, ep) },
	} {
		if allocs := testing.AllocsPerRun(20, f); allocs > 0 {
			t.Errorf("%s: %v allocations per call", name, allocs)
		}
	}
}

func TestGemmPanics(t *testing.T) {
	a := make([]float32, 100)
	b := make([]float32, 100)
	c := make([]float32, 100)
	pb := PackB(blas.NoTrans, 4, 5, b, 5)
	N, T := blas.NoTrans, blas.Trans
	for _, tc := range []struct {
		name, want string
		f          func()
	}{
		{"bad tA", "bad transpose", func() { Sgemm('x', N, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2) }},
		{"bad tB", "bad transpose", func() { Sgemm(N, 0, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2) }},
		{"neg m", "negative dimension", func() { Sgemm(N, N, -1, 2, 2, 1, a, 2, b, 2, 0, c, 2) }},
		{"neg n", "negative dimension", func() { Sgemm(N, N, 2, -1, 2, 1, a, 2, b, 2, 0, c, 2) }},
		{"neg k", "negative dimension", func() { Sgemm(N, N, 2, 2, -1, 1, a, 2, b, 2, 0, c, 2) }},
		{"lda", "bad lda", func() { Sgemm(N, N, 2, 3, 4, 1, a, 3, b, 3, 0, c, 3) }},
		{"lda T", "bad lda", func() { Sgemm(T, N, 5, 3, 4, 1, a, 4, b, 3, 0, c, 3) }},
		{"ldb", "bad ldb", func() { Sgemm(N, N, 2, 3, 4, 1, a, 4, b, 2, 0, c, 3) }},
		{"ldb T", "bad ldb", func() { Sgemm(N, T, 2, 3, 4, 1, a, 4, b, 3, 0, c, 3) }},
		{"ldc", "bad ldc", func() { Sgemm(N, N, 2, 3, 4, 1, a, 4, b, 3, 0, c, 2) }},
		{"ldc 0", "bad ldc", func() { Sgemm(N, N, 0, 0, 0, 1, a, 1, b, 1, 0, c, 0) }},
		{"short A", "short A", func() { Sgemm(N, N, 30, 3, 4, 1, a, 4, b, 3, 0, c, 3) }},
		{"short B", "short B", func() { Sgemm(N, N, 2, 3, 40, 1, a, 40, b, 3, 0, c, 3) }},
		{"short C", "short C", func() { Sgemm(N, N, 40, 3, 2, 1, a, 2, b, 3, 0, c, 3) }},
		{"PackB tB", "bad transpose", func() { PackB('q', 2, 2, b, 2) }},
		{"PackB neg", "negative dimension", func() { PackB(N, -2, 2, b, 2) }},
		{"PackB ldb", "bad ldb", func() { PackB(T, 4, 3, b, 3) }},
		{"PackB short", "short B", func() { PackB(N, 40, 5, b, 5) }},
		{"Packed tA", "bad transpose", func() { SgemmPacked(7, 2, 1, a, 4, pb, 0, c, 5) }},
		{"Packed nil", "nil PackedB", func() { SgemmPacked(N, 2, 1, a, 4, nil, 0, c, 5) }},
		{"Packed neg m", "negative dimension", func() { SgemmPacked(N, -2, 1, a, 4, pb, 0, c, 5) }},
		{"Packed lda", "bad lda", func() { SgemmPacked(N, 2, 1, a, 3, pb, 0, c, 5) }},
		{"Packed lda T", "bad lda", func() { SgemmPacked(T, 6, 1, a, 5, pb, 0, c, 5) }},
		{"Packed ldc", "bad ldc", func() { SgemmPacked(N, 2, 1, a, 4, pb, 0, c, 4) }},
		{"Packed short A", "short A", func() { SgemmPacked(N, 30, 1, a, 4, pb, 0, c, 5) }},
		{"Packed short C", "short C", func() { SgemmPacked(N, 21, 1, a, 4, pb, 0, c, 5) }},
		{"Epilogue act", "bad activation", func() { SgemmPackedEpilogue(N, 2, 1, a, 4, pb, 0, c, 5, Epilogue{Act: 9}) }},
		{"Epilogue bias", "short Bias", func() { SgemmPackedEpilogue(N, 2, 1, a, 4, pb, 0, c, 5, Epilogue{Bias: b[:4]}) }},
		{"Epilogue ldr", "bad Ldr", func() { SgemmPackedEpilogue(N, 2, 1, a, 4, pb, 0, c, 5, Epilogue{Residual: b, Ldr: 4}) }},
		{"Epilogue res", "short Residual", func() { SgemmPackedEpilogue(N, 3, 1, a, 4, pb, 0, c, 5, Epilogue{Residual: b[:14]}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("no panic, want %q", tc.want)
				}
				if s := fmt.Sprint(r); !strings.Contains(s, tc.want) {
					t.Fatalf("panic %q, want %q", s, tc.want)
				}
			}()
			tc.f()
		})
	}
}

// loopKernel is a plain-loop micro-kernel of any tile shape (with edge
// kernels), to run the driver with the geometry (tile and blocking) of
// kernels this CPU lacks.
func loopKernel(mr, nr, kc, mc int) *gemmKernel {
	rowsKernel := func(rows int) func(k int, a, b, c *float32, ldc int, alpha, beta float32) {
		return func(k int, a, b, c *float32, ldc int, alpha, beta float32) {
			ap, bp := unsafe.Slice(a, k*mr), unsafe.Slice(b, k*nr)
			cs := unsafe.Slice(c, (rows-1)*ldc+nr)
			for i := 0; i < rows; i++ {
				for j := 0; j < nr; j++ {
					var s float32
					for l := 0; l < k; l++ {
						s += ap[l*mr+i] * bp[l*nr+j]
					}
					if beta == 0 {
						cs[i*ldc+j] = alpha * s
					} else {
						cs[i*ldc+j] = alpha*s + beta*cs[i*ldc+j]
					}
				}
			}
		}
	}
	kr := &gemmKernel{mr: mr, nr: nr, kc: kc, mc: mc, nc: 2048, fn: rowsKernel(mr)}
	kr.edge = make([]func(k int, a, b, c *float32, ldc int, alpha, beta float32), mr)
	for r := 1; r < mr; r++ {
		kr.edge[r] = rowsKernel(r)
	}
	return kr
}

// TestGemmGeometries runs the driver (Sgemm and the packed path) with the
// tile shapes and blocking of every assembly kernel, whether or not this CPU
// can run it: AVX-512 14×32 (mc 336), AVX2 6×16, NEON 8×8; with edge
// kernels and without (the 8×8 NEON kernel has none).
func TestGemmGeometries(t *testing.T) {
	shapes := [][3]int{{1, 1, 1}, {13, 31, 7}, {15, 33, 65}, {29, 64, 257}, {340, 40, 260}, {50, 2100, 3}, {77, 100, 513}}
	noEdge := loopKernel(14, 32, 256, 336)
	noEdge.edge = nil
	for _, kr := range []*gemmKernel{loopKernel(14, 32, 256, 336), noEdge, loopKernel(6, 16, 256, 144), loopKernel(8, 8, 256, 128)} {
		t.Run(fmt.Sprintf("%dx%d/edge=%v", kr.mr, kr.nr, kr.edge != nil), func(t *testing.T) {
			r := rand.New(rand.NewPCG(12, uint64(kr.mr)))
			idx := 0
			for _, sh := range shapes {
				for _, tA := range transposes {
					for _, tB := range transposes {
						idx++
						gc := newGemmCase(r, tA, tB, sh[0], sh[1], sh[2], alphas[idx%4], betas[(idx/4)%4])
						g := gemmArgs{tA: tA == blas.Trans, tB: tB == blas.Trans, m: gc.m, n: gc.n, k: gc.k, alpha: gc.alpha, beta: gc.beta,
							a: gc.a, lda: gc.lda, b: gc.b, ldb: gc.ldb, c: gc.c, ldc: gc.ldc, forceThreads: 1 + idx%3}
						if idx%2 == 0 {
							g.run(kr, nil)
						} else {
							g.tB = false
							g.run(kr, PackB(tB, gc.k, gc.n, gc.b, gc.ldb).layoutFor(kr))
						}
						gc.check(t, nil)
					}
				}
			}
		})
	}
}

// TestGemmPackedConcurrent: one PackedB shared by goroutines (inference
// serving), including its first lazy repack for another kernel layout.
func TestGemmPackedConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 13))
	m, k, n := 9, 70, 40
	w := randSlice(r, n*k)
	vs := sgemmK.Variants()
	restore, _ := sgemmK.Use(vs[0].Name) // pack for the first variant…
	pb := PackB(blas.Trans, k, n, w, k)
	restore() // …and multiply with the best one: the first calls repack
	a := randSlice(r, m*k)
	want := make([]float32, m*n)
	Sgemm(blas.NoTrans, blas.Trans, m, n, k, 1, a, k, w, k, 0, want, n)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := make([]float32, m*n)
			for it := 0; it < 20; it++ {
				SgemmPacked(blas.NoTrans, m, 1, a, k, pb, 0, c, n)
				if !bitsEqual(c, want) {
					errs <- "concurrent SgemmPacked differs from Sgemm"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

// TestGemmMatchesRef compares Sgemm with sgemmRef, the plain-loop float32
// specification in gemm.go (each has the error bound above, so they differ
// by at most twice it).
func TestGemmMatchesRef(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 14))
	for _, sh := range [][3]int{{5, 9, 300}, {40, 33, 17}} {
		for _, tA := range transposes {
			for _, tB := range transposes {
				gc := newGemmCase(r, tA, tB, sh[0], sh[1], sh[2], -1.5, 0.5)
				ref := append([]float32(nil), gc.c...)
				sgemmRef(tA, tB, gc.m, gc.n, gc.k, gc.alpha, gc.a, gc.lda, gc.b, gc.ldb, gc.beta, ref, gc.ldc)
				Sgemm(tA, tB, gc.m, gc.n, gc.k, gc.alpha, gc.a, gc.lda, gc.b, gc.ldb, gc.beta, gc.c, gc.ldc)
				for i := 0; i < gc.m; i++ {
					for j := 0; j < gc.n; j++ {
						_, bound := gc.ref(i, j)
						if d := math.Abs(float64(gc.c[i*gc.ldc+j] - ref[i*gc.ldc+j])); !(d <= 2*bound) {
							t.Fatalf("%v: C[%d,%d] = %g, sgemmRef %g", gc, i, j, gc.c[i*gc.ldc+j], ref[i*gc.ldc+j])
						}
					}
				}
			}
		}
	}
}
