//go:build amd64 && !noasm

package tensor

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// callInt8 runs an int8 kernel in the emulator on copies of its operands
// laid out with an ABI0 argument frame, and returns c.
func (e *emulator) callInt8(kq int, a, b []byte, c []float32, ldc int, ra, sw []float32, corr []int32, beta float32) []float32 {
	const aAt, bAt, cAt, raAt, swAt, corrAt, sp = 0x1000, 0x40000, 0x80000, 0xc0000, 0xc1000, 0xc2000, 0xf0000
	e.mem = make([]byte, 1<<20)
	le := binary.LittleEndian
	putF := func(at int, s []float32) {
		for i, x := range s {
			le.PutUint32(e.mem[at+4*i:], math.Float32bits(x))
		}
	}
	copy(e.mem[aAt:], a)
	copy(e.mem[bAt:], b)
	putF(cAt, c)
	putF(raAt, ra)
	putF(swAt, sw)
	for i, x := range corr {
		le.PutUint32(e.mem[corrAt+4*i:], uint32(x))
	}
	for i, v := range []uint64{uint64(kq), aAt, bAt, cAt, uint64(ldc), raAt, swAt, corrAt} {
		le.PutUint64(e.mem[sp+8+8*i:], v)
	}
	le.PutUint32(e.mem[sp+72:], math.Float32bits(beta))
	e.run(sp)
	out := make([]float32, len(c))
	for i := range out {
		out[i] = e.f(cAt + 4*int64(i))
	}
	return out
}

// int8TileRef is the meaning of an int8 micro-kernel (int8Kernel) as a
// plain loop.
func int8TileRef(mr, nr, kq int, a, b []byte, c []float32, ldc int, ra, sw []float32, corr []int32, beta float32) {
	for i := 0; i < mr; i++ {
		for j := 0; j < nr; j++ {
			var s int32
			for l := 0; l < 4*kq; l++ {
				s += int32(int8(a[(l/4*mr+i)*4+l%4])) * int32(b[(l/4*nr+j)*4+l%4])
			}
			c[i*ldc+j] = int8Dequant(s-corr[i], ra[i], sw[j], beta, c[i*ldc+j])
		}
	}
}

// TestInt8KernelEmulated runs the assembly int8 kernels in the instruction
// emulator (gemm_emu_amd64_test.go) and compares them with the plain-loop
// specification bit for bit, on random bytes (the full ranges, not only
// what quantisation produces) and scales; where the CPU has the
// instructions it also compares the emulator with the real kernel. This is
// what keeps the AVX-512 VNNI and AVX-VNNI kernels tested on CPUs that lack
// them, and it checks that GNU objdump reads the hand-encoded VEX
// VPDPBUSD as intended (the emulator refuses any other instruction).
func TestInt8KernelEmulated(t *testing.T) {
	type kfn = func(kq int, a, b *byte, c *float32, ldc int, ra, sw *float32, corr *int32, beta float32)
	for _, kc := range []struct {
		name      string
		mr, nr    int
		lanes     int
		fn        kfn
		canNative bool
	}{
		{"avxvnni", 6, 16, 8, int8KernelAVXVNNI, cpuAVXVNNI},
		{AVX512, 10, 32, 16, int8KernelAVX512, cpuAVX512VNNI},
	} {
		t.Run(kc.name, func(t *testing.T) {
			ins := disassemble(t, kc.fn)
			nDP := 0
			for _, in := range ins {
				if in.op == "vpdpbusd" {
					nDP++
				}
			}
			if want := 2 * kc.mr * 5; nDP != want { // 4 unrolled steps + the tail step
				t.Fatalf("disassembly has %d vpdpbusd, want %d", nDP, want)
			}
			e := &emulator{ins: ins, idx: map[uint64]int{}, lanes: kc.lanes}
			for i, in := range ins {
				e.idx[in.addr] = i
			}
			r := rand.New(rand.NewPCG(8, uint64(kc.mr)))
			ldc := kc.nr + 3
			for _, kq := range []int{1, 2, 3, 4, 5, 7, 8, 9, 13, 40} {
				for _, beta := range []float32{0, float32(math.Copysign(0, -1)), 1, -0.6} {
					a := make([]byte, kq*kc.mr*4)
					b := make([]byte, kq*kc.nr*4)
					for i := range a {
						a[i] = byte(r.IntN(256))
					}
					for i := range b {
						b[i] = byte(r.IntN(256))
					}
					ra, sw := randSlice(r, kc.mr), randSlice(r, kc.nr)
					corr := make([]int32, kc.mr)
					for i := range corr {
						corr[i] = int32(r.IntN(1<<20) - 1<<19)
					}
					c0 := randSlice(r, kc.mr*ldc)
					want := append([]float32(nil), c0...)
					int8TileRef(kc.mr, kc.nr, kq, a, b, want, ldc, ra, sw, corr, beta)
					got := e.callInt8(kq, a, b, c0, ldc, ra, sw, corr, beta)
					if !bitsEqual(got, want) {
						t.Fatalf("kq=%d beta=%g: emulated kernel differs from the specification", kq, beta)
					}
					if kc.canNative {
						nat := append([]float32(nil), c0...)
						kc.fn(kq, &a[0], &b[0], &nat[0], ldc, &ra[0], &sw[0], &corr[0], beta)
						if !bitsEqual(nat, want) {
							t.Fatalf("kq=%d beta=%g: CPU kernel differs from the specification", kq, beta)
						}
					}
				}
			}
		})
	}
}
