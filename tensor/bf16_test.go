package tensor

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// refToBF16 is ToBF16 by definition: the nearest bfloat16 in float64
// arithmetic (ties to the even significand), NaN quieted, denormal inputs
// flushed to a signed zero.
func refToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if f != f {
		return uint16(b>>16) | 0x40
	}
	if b&0x7f800000 == 0 { // denormal input: a signed zero
		return uint16(b>>16) & 0x8000
	}
	lo := uint16(b >> 16) // truncation: toward zero
	if b&0xffff == 0 {
		return flushBF16(lo)
	}
	hi := lo + 1 // away from zero (0x7f7f+1 is infinity: fine)
	x := math.Abs(float64(f))
	dl := x - math.Abs(float64(FromBF16(lo)))
	vh := math.Abs(float64(FromBF16(hi)))
	if hi&0x7fff == 0x7f80 {
		vh = math.Ldexp(1, 128) // rounding to infinity: as if the exponent were unbounded
	}
	dh := vh - x
	switch {
	case dl < dh:
		return flushBF16(lo)
	case dh < dl:
		return flushBF16(hi)
	case lo&1 == 0:
		return flushBF16(lo)
	}
	return flushBF16(hi)
}

func flushBF16(h uint16) uint16 {
	if h&0x7f80 == 0 {
		return h & 0x8000
	}
	return h
}

func TestToBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 16))
	check := func(b uint32) {
		f := math.Float32frombits(b)
		got, want := ToBF16(f), refToBF16(f)
		if got != want {
			t.Fatalf("ToBF16(%g = %#08x) = %#04x, want %#04x", f, b, got, want)
		}
		if f == f && RoundBF16(f) != FromBF16(want) {
			t.Fatalf("RoundBF16(%g) = %g", f, RoundBF16(f))
		}
	}
	for _, b := range []uint32{0, 0x80000000, 0x00008000, 0x00018000, 0x00800000, 0x007fffff, 0x807fffff, 0x3f808000,
		0x3f818000, 0x3f807fff, 0x3f80ffff, 0x7f7fffff, 0x7f7f8000, 0x7f7f7fff, 0x7f800000, 0xff800000, 0x7fc00000,
		0x7f800001, 0xff810000, 0x3f800000, 0xbfffffff, 0x00ff8000, 0x007f8000} {
		check(b)
	}
	for i := 0; i < 1<<20; i++ {
		b := r.Uint32()
		check(b)
		check(b&0xffff0000 | 0x8000) // ties
	}
	// bf16Pair and the kernels' vector conversions give ToBF16's bits.
	bitsOf := func(i int) uint32 {
		switch i % 5 {
		case 0:
			return r.Uint32() & 0x807fffff // denormal or zero
		case 1:
			return r.Uint32() | 0x7f800000 // NaN or infinity
		case 2:
			return r.Uint32()&0xffff0000 | 0x8000 // tie
		}
		return r.Uint32()
	}
	src := make([]float32, 4096)
	for i := range src {
		src[i] = math.Float32frombits(bitsOf(i))
	}
	want := make([]uint32, len(src)/2)
	for q := range want {
		want[q] = uint32(ToBF16(src[2*q])) | uint32(ToBF16(src[2*q+1]))<<16
		if got := bf16Pair(src[2*q], src[2*q+1]); got != want[q] {
			t.Fatalf("bf16Pair(%#x, %#x) = %#x, want %#x", math.Float32bits(src[2*q]), math.Float32bits(src[2*q+1]), got, want[q])
		}
	}
	for _, v := range bf16K.Variants() {
		if v.Fn.cvt == nil {
			continue
		}
		for _, n := range []int{16, 32, 48, len(src)} {
			got := make([]uint32, n/2+3)
			v.Fn.cvt(&got[0], &src[0], n)
			for q := 0; q < n/2; q++ {
				if got[q] != want[q] {
					t.Fatalf("%s cvt n=%d: word %d = %#x, want %#x (inputs %#x %#x)", v.Name, n, q, got[q], want[q], math.Float32bits(src[2*q]), math.Float32bits(src[2*q+1]))
				}
			}
			if got[n/2] != 0 || got[n/2+2] != 0 {
				t.Fatalf("%s cvt n=%d wrote past the end", v.Name, n)
			}
		}
	}
	for h := 0; h < 1<<16; h++ { // bfloat16 values round-trip (bar denormals, NaNs)
		if f := FromBF16(uint16(h)); f == f && uint16(h)&0x7f80 != 0 && ToBF16(f) != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, ToBF16(f))
		}
	}
}

// bf16TileRef is the meaning of a bf16 micro-kernel (bf16Kernel), as a
// plain loop: the executable specification the kernels are compared with.
func bf16TileRef(mr, nr, rows, kp int, a, b []uint32, c []float32, ldc int, alpha, beta float32) {
	for i := 0; i < rows; i++ {
		for j := 0; j < nr; j++ {
			var s float32
			for q := 0; q < kp; q++ {
				s += bf16Hi(a[q*mr+i]) * bf16Hi(b[q*nr+j])
				s += bf16Lo(a[q*mr+i]) * bf16Lo(b[q*nr+j])
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * s
			} else {
				c[i*ldc+j] = float32(alpha*s) + float32(beta*c[i*ldc+j])
			}
		}
	}
}

// randPairs returns n pair words of random bfloat16 values in [-1, 1).
func randPairs(r *rand.Rand, n int) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = bf16Pair(float32(r.Float64()*2-1), float32(r.Float64()*2-1))
	}
	return s
}

// checkBF16Tile runs kernel call on random panels and a guarded C tile and
// compares it with bf16TileRef bit for bit, and with a float64 reference
// within (2·kp+4)·u. It returns the inputs and the result.
func checkBF16Tile(t *testing.T, r *rand.Rand, mr, nr, kp int, alpha, beta float32,
	call func(kp int, a, b []uint32, c []float32, ldc int, alpha, beta float32) []float32) (a, b []uint32, c0, c []float32) {
	t.Helper()
	a, b = randPairs(r, kp*mr), randPairs(r, kp*nr)
	ldc := nr + 3
	c0 = make([]float32, mr*ldc+5)
	for p := range c0 {
		i, j := p/ldc, p%ldc
		switch {
		case i >= mr || j >= nr:
			c0[p] = sentinel
		case beta == 0:
			c0[p] = float32(math.NaN())
		default:
			c0[p] = float32(r.Float64()*2 - 1)
		}
	}
	c = call(kp, a, b, c0, ldc, alpha, beta)
	want := append([]float32(nil), c0...)
	bf16TileRef(mr, nr, mr, kp, a, b, want, ldc, alpha, beta)
	for p := range c {
		if math.Float32bits(c[p]) != math.Float32bits(want[p]) {
			t.Fatalf("%d×%d kp=%d alpha=%g beta=%g: c[%d] = %g (%#x), want %g (%#x)", mr, nr, kp, alpha, beta, p, c[p], math.Float32bits(c[p]), want[p], math.Float32bits(want[p]))
		}
		i, j := p/ldc, p%ldc
		if i >= mr || j >= nr {
			continue
		}
		var s, sa float64
		for q := 0; q < kp; q++ {
			for _, x := range [2]float64{
				float64(bf16Hi(a[q*mr+i])) * float64(bf16Hi(b[q*nr+j])),
				float64(bf16Lo(a[q*mr+i])) * float64(bf16Lo(b[q*nr+j])),
			} {
				s, sa = s+x, sa+math.Abs(x)
			}
		}
		v, abs := float64(alpha)*s, math.Abs(float64(alpha))*sa
		if beta != 0 {
			v += float64(beta) * float64(c0[p])
			abs += math.Abs(float64(beta) * float64(c0[p]))
		}
		if !(math.Abs(float64(c[p])-v) <= float64(2*kp+4)*unitRoundoff*abs*1.0001) {
			t.Fatalf("kp=%d: c[%d,%d] = %g, float64 reference %g", kp, i, j, c[p], v)
		}
	}
	return a, b, c0, c
}

// widenA returns an A panel of pair words in the pre-widened layout of
// bf16Kernel.wideA.
func widenA(a []uint32) []uint32 {
	w := make([]uint32, 2*len(a))
	for i, x := range a {
		putPair(w, 2*i, x, true)
	}
	return w
}

// callBF16 adapts a kernel function to checkBF16Tile (widening A for a
// wideA kernel).
func callBF16(fn func(kp int, a, b *uint32, c *float32, ldc int, alpha, beta float32), wideA bool) func(int, []uint32, []uint32, []float32, int, float32, float32) []float32 {
	return func(kp int, a, b []uint32, c0 []float32, ldc int, alpha, beta float32) []float32 {
		c := append([]float32(nil), c0...)
		if wideA {
			a = widenA(a)
		}
		fn(kp, &a[0], &b[0], &c[0], ldc, alpha, beta)
		return c
	}
}

// TestBF16Kernels: every registered kernel (native) against the plain-loop
// specification, bit for bit, and float64.
func TestBF16Kernels(t *testing.T) {
	forEachVariant(t, bf16K, func(t *testing.T, kr *bf16Kernel) {
		r := rand.New(rand.NewPCG(2, uint64(kr.nr)))
		for _, kp := range []int{1, 2, 3, 4, 5, 7, 8, 9, 13, 40, 256} {
			for _, beta := range []float32{0, float32(math.Copysign(0, -1)), 1, -0.6} {
				checkBF16Tile(t, r, kr.mr, kr.nr, kp, 1.25, beta, callBF16(kr.fn, kr.wideA))
			}
		}
	})
}

// bf16Case rounds a GEMM case's A and B to bfloat16 in place, so that the
// float64 reference of gemmCase is the exact product of the bf16 inputs.
func bf16Case(gc *gemmCase) *gemmCase {
	for i, x := range gc.a {
		gc.a[i] = RoundBF16(x)
	}
	for i, x := range gc.b {
		gc.b[i] = RoundBF16(x)
	}
	return gc
}

func TestSgemmPackedBF16(t *testing.T) {
	forEachVariant(t, bf16K, checkSgemmPackedBF16)
}

// checkSgemmPackedBF16 checks SgemmPackedBF16, whose active kernel is kr,
// against the float64 product of the bf16-rounded inputs on awkward shapes.
func checkSgemmPackedBF16(t *testing.T, kr *bf16Kernel) {
	ms := []int{0, 1, 7, 50, 77, 130}
	kns := [][2]int{{1, 1}, {2, 5}, {7, 33}, {65, 100}, {300, 70}, {33, 1000}, {1025, 37}}
	if testing.Short() {
		ms = []int{0, 1, 7, 50}
	}
	r := rand.New(rand.NewPCG(3, uint64(kr.mr)))
	idx := 0
	for _, kn := range kns {
		for _, tB := range transposes {
			k, n := kn[0], kn[1]
			proto := bf16Case(newGemmCase(r, blas.NoTrans, tB, 1, n, k, 1, 0))
			pb := PackBBF16(tB, k, n, proto.b, proto.ldb)
			if pb.K() != k || pb.N() != n || pb.Bytes() != 4*ceilDiv(k, 2)*roundUp(n, kr.nr) {
				t.Fatalf("PackBBF16: K, N, Bytes = %d, %d, %d", pb.K(), pb.N(), pb.Bytes())
			}
			for _, m := range ms {
				for _, tA := range transposes {
					idx++
					alpha := alphas[idx%len(alphas)]
					beta := betas[(idx/len(alphas))%len(betas)]
					gc := bf16Case(newGemmCase(r, tA, tB, m, n, k, alpha, beta))
					gc.b, gc.ldb = proto.b, proto.ldb
					SgemmPackedBF16(gc.tA, gc.m, gc.alpha, gc.a, gc.lda, pb, gc.beta, gc.c, gc.ldc)
					gc.check(t, nil)
				}
			}
		}
	}
}

// TestSgemmPackedBF16Rounds: A and B that are not bfloat16 are rounded to
// nearest even (the result is that of the rounded inputs, bit for bit).
func TestSgemmPackedBF16Rounds(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	m, n, k := 9, 21, 35
	a, b := randSlice(r, m*k), randSlice(r, n*k)
	ar, br := make([]float32, len(a)), make([]float32, len(b))
	for i := range a {
		ar[i] = RoundBF16(a[i])
	}
	for i := range b {
		br[i] = RoundBF16(b[i])
	}
	c1, c2 := make([]float32, m*n), make([]float32, m*n)
	SgemmPackedBF16(blas.NoTrans, m, 1, a, k, PackBBF16(blas.Trans, k, n, b, k), 0, c1, n)
	SgemmPackedBF16(blas.NoTrans, m, 1, ar, k, PackBBF16(blas.Trans, k, n, br, k), 0, c2, n)
	if !bitsEqual(c1, c2) {
		t.Fatal("rounding the inputs first changed the result")
	}
}

// TestSgemmPackedBF16Deterministic: every variant, any thread count and any
// packing kernel give the same bits (same K blocking, exact products).
func TestSgemmPackedBF16Deterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	m, n, k := 130, 150, 1100
	a := randSlice(r, m*k)
	b := randSlice(r, n*k)
	var want []float32
	for _, packer := range bf16K.Variants() {
		restore, _ := bf16K.Use(packer.Name)
		pb := PackBBF16(blas.Trans, k, n, b, k)
		restore()
		for _, procs := range []int{1, 3} {
			prev := runtime.GOMAXPROCS(procs)
			forEachVariant(t, bf16K, func(t *testing.T, kr *bf16Kernel) {
				c := make([]float32, m*n)
				for i := range c {
					c[i] = float32(i%7) - 3
				}
				SgemmPackedBF16(blas.NoTrans, m, 0.75, a, k, pb, -0.5, c, n)
				if want == nil {
					want = c
				} else if !bitsEqual(c, want) {
					t.Errorf("packed by %s, GOMAXPROCS %d: result differs", packer.Name, procs)
				}
			})
			runtime.GOMAXPROCS(prev)
		}
	}
}

func TestSgemmPackedBF16Epilogue(t *testing.T) {
	forEachVariant(t, bf16K, func(t *testing.T, kr *bf16Kernel) {
		r := rand.New(rand.NewPCG(6, uint64(kr.nr)))
		for _, sh := range [][3]int{{1, 1, 1}, {7, 33, 65}, {50, 100, 300}, {77, 70, 33}, {130, 1000, 7}} {
			m, n, k := sh[0], sh[1], sh[2]
			for _, act := range []Activation{ActNone, ActQuickGELU, ActGELU} {
				for _, withRes := range []bool{false, true} {
					gc := newGemmCase(r, blas.NoTrans, blas.Trans, m, n, k, 1, 0.5)
					pb := PackBBF16(gc.tB, k, n, gc.b, gc.ldb)
					ep := Epilogue{Act: act, Bias: randSlice(r, n)}
					if withRes {
						ep.Ldr = n + r.IntN(3)
						ep.Residual = randSlice(r, ep.Ldr*(m-1)+n)
					}
					want := append([]float32(nil), gc.cbuf...)
					SgemmPackedBF16Epilogue(gc.tA, m, 1, gc.a, gc.lda, pb, 0.5, gc.c, gc.ldc, ep)
					wc := want[gc.guard:]
					SgemmPackedBF16(gc.tA, m, 1, gc.a, gc.lda, pb, 0.5, wc, gc.ldc)
					for i := 0; i < m; i++ {
						row := wc[i*gc.ldc : i*gc.ldc+n]
						AddBias(row, ep.Bias[:n])
						switch act {
						case ActQuickGELU:
							QuickGELU(row, row)
						case ActGELU:
							GELU(row, row)
						}
						if withRes {
							Add(row, row, ep.Residual[i*ep.Ldr:i*ep.Ldr+n])
						}
					}
					if !bitsEqual(gc.cbuf, want) {
						t.Fatalf("m=%d n=%d k=%d act=%d res=%v: fused epilogue differs from the separate ops", m, n, k, act, withRes)
					}
				}
			}
		}
	})
}

func TestSgemmPackedBF16Panics(t *testing.T) {
	pb := PackBBF16(blas.NoTrans, 4, 3, make([]float32, 12), 3)
	for name, f := range map[string]func(){
		"nil":    func() { SgemmPackedBF16(blas.NoTrans, 2, 1, make([]float32, 8), 4, nil, 0, make([]float32, 6), 3) },
		"shortA": func() { SgemmPackedBF16(blas.NoTrans, 2, 1, make([]float32, 7), 4, pb, 0, make([]float32, 6), 3) },
		"shortC": func() { SgemmPackedBF16(blas.NoTrans, 2, 1, make([]float32, 8), 4, pb, 0, make([]float32, 5), 3) },
		"ldb":    func() { PackBBF16(blas.NoTrans, 4, 3, make([]float32, 12), 2) },
		"shortB": func() { PackBBF16(blas.Trans, 4, 3, make([]float32, 11), 4) },
		"badAct": func() {
			SgemmPackedBF16Epilogue(blas.NoTrans, 2, 1, make([]float32, 8), 4, pb, 0, make([]float32, 6), 3, Epilogue{Act: 9})
		},
		"negM":    func() { SgemmPackedBF16(blas.NoTrans, -1, 1, nil, 4, pb, 0, nil, 3) },
		"badTran": func() { PackBBF16(blas.Transpose(0), 4, 3, make([]float32, 12), 3) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	// k = 0 and alpha = 0 only scale C.
	c := []float32{1, 2, 3}
	SgemmPackedBF16(blas.NoTrans, 1, 0, []float32{9, 9, 9, 9}, 4, pb, 2, c, 3)
	if c[0] != 2 || c[1] != 4 || c[2] != 6 {
		t.Fatalf("alpha = 0: C = %v", c)
	}
}
