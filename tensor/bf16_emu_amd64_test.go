//go:build amd64 && !noasm

package tensor

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// emuBF16 returns an emulator of the assembly kernel fn (see
// gemm_emu_amd64_test.go), called like a bf16 kernel.
func emuBF16(t *testing.T, fn func(kp int, a, b *uint32, c *float32, ldc int, alpha, beta float32), lanes int, wideA bool) func(int, []uint32, []uint32, []float32, int, float32, float32) []float32 {
	ins := disassemble(t, fn)
	e := &emulator{ins: ins, idx: map[uint64]int{}, lanes: lanes}
	for i, in := range ins {
		e.idx[in.addr] = i
	}
	words := func(s []uint32) []float32 {
		f := make([]float32, len(s))
		for i, w := range s {
			f[i] = math.Float32frombits(w)
		}
		return f
	}
	return func(kp int, a, b []uint32, c []float32, ldc int, alpha, beta float32) []float32 {
		if wideA {
			a = widenA(a)
		}
		return e.call(kp, words(a), words(b), c, ldc, alpha, beta)
	}
}

// TestBF16KernelEmulated runs the assembly bf16 kernels in the instruction
// emulator (VDPBF16PS as dpbf16 specifies it) and compares them with the
// plain-loop specification bit for bit; where the CPU has the instructions
// it also compares the emulator with the real kernel, on ordinary data and
// on data whose products and sums leave float32's normal range (denormal
// inputs, underflowing products, cancellation to denormals: the DAZ/FTZ
// behaviour that dpbf16 assumes).
func TestBF16KernelEmulated(t *testing.T) {
	for _, kc := range []struct {
		name      string
		mr, nr    int
		lanes     int
		fn        func(kp int, a, b *uint32, c *float32, ldc int, alpha, beta float32)
		canNative bool
		wideA     bool
	}{
		{AVX2, 5, 16, 8, bf16KernelAVX2, cpuAVX2, true},
		{AVX512, 14, 32, 16, bf16KernelAVX512, cpuAVX512BF16, false},
		{"avx512w", 12, 32, 16, bf16KernelAVX512W, cpuAVX512, true},
	} {
		t.Run(kc.name, func(t *testing.T) {
			call := emuBF16(t, kc.fn, kc.lanes, kc.wideA)
			r := rand.New(rand.NewPCG(7, uint64(kc.mr)))
			for _, kp := range []int{1, 2, 3, 4, 5, 7, 8, 9, 13, 40} {
				for _, beta := range []float32{0, float32(math.Copysign(0, -1)), 1, -0.6} {
					alpha := float32(1.25)
					if kp%2 == 0 {
						alpha = -0.5
					}
					a, b, c0, got := checkBF16Tile(t, r, kc.mr, kc.nr, kp, alpha, beta, call)
					if kc.canNative {
						if nat := callBF16(kc.fn, kc.wideA)(kp, a, b, c0, kc.nr+3, alpha, beta); !bitsEqual(nat, got) {
							t.Fatalf("kp=%d beta=%g: emulated kernel differs from the CPU", kp, beta)
						}
					}
				}
			}
			if !kc.canNative {
				return
			}
			// Edge data: tiny values, against the real instruction only.
			for trial := 0; trial < 20; trial++ {
				kp := 1 + r.IntN(9)
				tiny := func(n int) []uint32 {
					s := make([]uint32, n)
					for i := range s {
						var h [2]uint16
						for p := range h {
							switch r.IntN(4) {
							case 0: // denormal bfloat16
								h[p] = uint16(r.IntN(0x7f)+1) | uint16(r.IntN(2))<<15
							case 1: // small normal: products underflow
								h[p] = uint16(0x0080+r.IntN(0x1800)) | uint16(r.IntN(2))<<15
							default: // around 2⁻⁶³: products near 2⁻¹²⁶
								h[p] = uint16(0x2000+r.IntN(0x100)) | uint16(r.IntN(2))<<15
							}
						}
						s[i] = uint32(h[0]) | uint32(h[1])<<16
					}
					return s
				}
				a, b := tiny(kp*kc.mr), tiny(kp*kc.nr)
				c0 := make([]float32, kc.mr*(kc.nr+3)+5)
				for i := range c0 {
					c0[i] = math.Float32frombits(uint32(r.IntN(0x01000000)) | uint32(r.IntN(2))<<31) // denormal or tiny
				}
				got := call(kp, a, b, c0, kc.nr+3, 1, 1)
				nat := callBF16(kc.fn, kc.wideA)(kp, a, b, c0, kc.nr+3, 1, 1)
				diff := 0
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(nat[i]) {
						if diff++; diff <= 3 {
							t.Errorf("tiny data kp=%d: c[%d] emulated %g (%#08x), CPU %g (%#08x)", kp, i, got[i], math.Float32bits(got[i]), nat[i], math.Float32bits(nat[i]))
						}
					}
				}
				if diff > 0 {
					t.Fatalf("tiny data: %d of %d elements differ: dpbf16's DAZ/FTZ assumptions do not hold", diff, len(got))
				}
			}
		})
	}
}

// TestSgemmPackedBF16OtherAVX512: the registry runs one of the two AVX-512
// bf16 kernels (cpuBF16DotFast decides); where the CPU has both, the other
// one goes through the whole GEMM driver too, swapped into the avx512
// variant, and must give the same bits as the one registered.
func TestSgemmPackedBF16OtherAVX512(t *testing.T) {
	dot, wide := avx512BF16Kernels()
	if dot == nil || wide == nil {
		t.Skip("the CPU lacks AVX512_BF16: only one AVX-512 bf16 kernel can run (both are emulated in TestBF16KernelEmulated)")
	}
	restore, ok := bf16K.Use(AVX512)
	if !ok {
		t.Fatal("no avx512 bf16 variant registered")
	}
	defer restore()
	i := slices.IndexFunc(bf16K.variants, func(v Variant[*bf16Kernel]) bool { return v.Name == AVX512 })
	reg := bf16K.variants[i].Fn
	other := dot // the kernels differ in their height: 14 (dot) and 12 rows
	if reg.mr == dot.mr {
		other = wide
	}
	r := rand.New(rand.NewPCG(9, 9))
	m, k, n := 61, 517, 97
	a, b := randSlice(r, m*k), randSlice(r, n*k)
	pb := PackBBF16(blas.Trans, k, n, b, k)
	want := make([]float32, m*n)
	SgemmPackedBF16(blas.NoTrans, m, 1, a, k, pb, 0, want, n)

	bf16K.variants[i].Fn = other
	defer func() { bf16K.variants[i].Fn = reg }()
	if bf16K.Fn().mr != other.mr {
		t.Fatalf("swapped in the %d-row kernel, the registry runs the %d-row one", other.mr, bf16K.Fn().mr)
	}
	checkSgemmPackedBF16(t, other)
	got := make([]float32, m*n)
	SgemmPackedBF16(blas.NoTrans, m, 1, a, k, pb, 0, got, n)
	if !bitsEqual(got, want) {
		t.Fatal("the two AVX-512 bf16 kernels differ")
	}
}

// TestBF16KernelChoice: the avx512 bf16 variant is the VDPBF16PS kernel
// exactly where that instruction is fast, and KernelReport names the one
// that runs.
func TestBF16KernelChoice(t *testing.T) {
	dot, wide := avx512BF16Kernels()
	if wide == nil {
		t.Skip("no AVX-512: no avx512 bf16 variant")
	}
	restore, ok := bf16K.Use(AVX512)
	if !ok {
		t.Fatal("no avx512 bf16 variant registered")
	}
	defer restore()
	want := wide
	if dot != nil && cpuBF16DotFast {
		want = dot
	}
	if got := bf16K.Fn(); got.mr != want.mr || got.note != want.note {
		t.Errorf("avx512 bf16 kernel: %d rows (%s), want %d (%s)", got.mr, got.note, want.mr, want.note)
	}
	if r := KernelReport(); !strings.Contains(r, "bf16gemm=avx512 ("+want.note+"; have ") {
		t.Errorf("KernelReport does not name the %s kernel: %s", want.note, r)
	}
}
