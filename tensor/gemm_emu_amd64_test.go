//go:build amd64 && !noasm

package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// The AVX-512 kernel must be tested on machines without AVX-512 too (the
// development machines and CI may lack it, and QEMU's x86 emulation has no
// AVX-512). TestGemmKernelEmulated disassembles the assembly kernels in this
// very test binary with GNU objdump and interprets them: the handful of
// instructions the generator emits (gemm_asmgen.go), on 8- or 16-lane
// vectors with exactly rounded float32 FMA. The emulator is checked against
// the real CPU: the emulated AVX2 kernel must match the native one bit for
// bit. Skipped where objdump is missing (a failure when
// MOPECLIP_REQUIRE_EMU is set, as in CI).

var emuLine = regexp.MustCompile(`^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$`)
var emuMem = regexp.MustCompile(`\[(\w+)(?:\+(0x[0-9a-f]+))?\]`)

type emuInst struct {
	addr uint64
	op   string
	args []string
}

// disassemble returns the instructions of the assembly function whose Go
// declaration is fn. The test binary may have no symbol table (go test
// strips it), so the code is located through the runtime's own function
// table: fn's value is the ABIInternal wrapper, whose CALL leads to the
// assembly body; the body ends where the runtime's table says it does.
func disassemble(t *testing.T, fn any) []emuInst {
	t.Helper()
	objdump, err := exec.LookPath("objdump")
	if err != nil {
		emuSkip(t, "objdump (GNU binutils) not installed")
	}
	exe, err := os.Executable()
	if err != nil {
		emuSkip(t, err)
	}
	dis := func(start, end uintptr) []emuInst {
		out, err := exec.Command(objdump, "-d", "-M", "intel", "--no-show-raw-insn",
			fmt.Sprintf("--start-address=%#x", start), fmt.Sprintf("--stop-address=%#x", end), exe).Output()
		if err != nil {
			emuSkipf(t, "objdump: %v", err)
		}
		return parseObjdump(string(out))
	}
	wrapper := reflect.ValueOf(fn).Pointer()
	name := runtime.FuncForPC(wrapper).Name()
	var body uintptr
	for _, in := range dis(wrapper, wrapper+256) {
		if in.op == "call" && len(in.args) == 1 {
			a, err := parseTarget(in.args[0])
			if f := runtime.FuncForPC(uintptr(a)); err == nil && f != nil && strings.TrimSuffix(f.Name(), ".abi0") == name {
				body = uintptr(a)
				break
			}
		}
	}
	if body == 0 {
		emuSkip(t, "could not find the assembly body (PIE or unexpected wrapper)")
	}
	f := runtime.FuncForPC(body)
	end := body
	for end < body+1<<16 && runtime.FuncForPC(end) == f {
		end++
	}
	ins := dis(body, end)
	if len(ins) < 10 || ins[0].op != "mov" {
		emuSkipf(t, "unexpected disassembly of %s", f.Name())
	}
	return ins
}

// parseTarget reads a branch target: "562820" or "0x562820" (stripped).
func parseTarget(s string) (uint64, error) {
	return strconv.ParseUint(strings.TrimPrefix(strings.Fields(s)[0], "0x"), 16, 64)
}

func parseObjdump(out string) []emuInst {
	var ins []emuInst
	for _, line := range strings.Split(out, "\n") {
		m := emuLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		addr, _ := strconv.ParseUint(m[1], 16, 64)
		if m[2] == "{vex}" { // an explicit VEX form (AVX-VNNI): "{vex} vpdpbusd ..."
			f := strings.Fields(m[3])
			if len(f) == 0 {
				continue
			}
			m[2], m[3] = f[0], strings.TrimSpace(strings.TrimPrefix(m[3], f[0]))
		}
		argStr := strings.TrimSpace(strings.SplitN(m[3], "#", 2)[0])
		argStr = strings.TrimSpace(strings.SplitN(argStr, "<", 2)[0])
		var args []string
		depth, start := 0, 0
		for i, ch := range argStr {
			switch ch {
			case '[':
				depth++
			case ']':
				depth--
			case ',':
				if depth == 0 {
					args = append(args, strings.TrimSpace(argStr[start:i]))
					start = i + 1
				}
			}
		}
		if argStr != "" {
			args = append(args, strings.TrimSpace(argStr[start:]))
		}
		ins = append(ins, emuInst{addr, m[2], args})
	}
	return ins
}

// fma32 is float32(a*b + c) rounded once.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact
	s := p + float64(c)
	bb := s - p
	e := (p - (s - bb)) + (float64(c) - bb) // s + e == p + c exactly
	r := float32(s)
	if e != 0 && float64(r) != s {
		other := math.Nextafter32(r, float32(math.Inf(1)))
		if float64(r) > s {
			other = math.Nextafter32(r, float32(math.Inf(-1)))
		}
		if s == (float64(r)+float64(other))/2 && (e > 0) == (other > r) {
			r = other // a tie after the first rounding: e decides
		}
	}
	return r
}

// dpbf16 is one 32-bit lane of VDPBF16PS: acc plus the products of the
// bfloat16 pairs in x and y, as Intel's SDM specifies it:
//
//	acc += float32(x.bf16[1]) * float32(y.bf16[1])   // odd (high) element first
//	acc += float32(x.bf16[0]) * float32(y.bf16[0])
//
// each line an FMA "with DAZ in, FTZ out and RNE rounding; MXCSR neither
// consulted nor updated": denormal inputs (the accumulator and the
// bfloat16 values) are read as zeros of their sign, and results that are
// denormal after rounding become zeros of their sign. Assumptions where the
// SDM is silent: tininess is detected after rounding (as x86 does for SSE),
// and a NaN result is whatever the float64 arithmetic gives (the kernels
// never see NaNs). TestBF16KernelEmulated checks this against the real
// instruction where the CPU has it.
func dpbf16(acc float32, x, y uint32) float32 {
	acc = flushDenormal(acc)
	hx, hy := flushDenormal(math.Float32frombits(x&^0xffff)), flushDenormal(math.Float32frombits(y&^0xffff))
	acc = flushDenormal(fma32(hx, hy, acc))
	lx, ly := flushDenormal(math.Float32frombits(x<<16)), flushDenormal(math.Float32frombits(y<<16))
	return flushDenormal(fma32(lx, ly, acc))
}

// flushDenormal returns a zero of x's sign when x is denormal, else x.
func flushDenormal(x float32) float32 {
	b := math.Float32bits(x)
	if b&0x7f800000 == 0 {
		return math.Float32frombits(b & 0x80000000)
	}
	return x
}

type emulator struct {
	ins   []emuInst
	idx   map[uint64]int
	mem   []byte
	gpr   map[string]int64
	vec   map[string][]float32
	zf    bool
	lanes int
}

func (e *emulator) ea(o string) int64 {
	m := emuMem.FindStringSubmatch(o)
	if m == nil {
		panic("bad memory operand " + o)
	}
	a, ok := e.gpr[m[1]]
	if !ok {
		panic("unset register " + m[1])
	}
	if m[2] != "" {
		off, _ := strconv.ParseInt(m[2][2:], 16, 64)
		a += off
	}
	return a
}

func isVecReg(o string) bool {
	return len(o) > 3 && (o[0] == 'x' || o[0] == 'y' || o[0] == 'z') && o[1:3] == "mm"
}

func (e *emulator) f(a int64) float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(e.mem[a:]))
}

func (e *emulator) vread(o string) []float32 {
	if isVecReg(o) {
		if v, ok := e.vec[o[1:]]; ok {
			return v
		}
		return make([]float32, e.lanes)
	}
	a := e.ea(o)
	v := make([]float32, e.lanes)
	for i := range v {
		v[i] = e.f(a + 4*int64(i))
	}
	return v
}

func (e *emulator) val(o string) int64 {
	if strings.HasPrefix(o, "0x") {
		v, _ := strconv.ParseInt(o[2:], 16, 64)
		return v
	}
	if strings.Contains(o, "PTR") {
		a := e.ea(o)
		if strings.HasPrefix(o, "QWORD") {
			return int64(binary.LittleEndian.Uint64(e.mem[a:]))
		}
		return int64(binary.LittleEndian.Uint32(e.mem[a:]))
	}
	if v, err := strconv.ParseInt(o, 10, 64); err == nil {
		return v
	}
	return e.gpr[reg64(o)]
}

// reg64 maps a 32-bit register name to its 64-bit one (edx → rdx).
func reg64(r string) string {
	if strings.HasPrefix(r, "e") {
		return "r" + r[1:]
	}
	return r
}

func (e *emulator) run(sp int64) {
	e.gpr = map[string]int64{"rsp": sp}
	e.vec = map[string][]float32{}
	pc := 0
	for steps := 0; ; steps++ {
		if steps > 1e7 || pc >= len(e.ins) {
			panic("runaway")
		}
		in := e.ins[pc]
		pc++
		o := in.args
		jump := func() int {
			a, err := parseTarget(o[0])
			i, ok := e.idx[a]
			if err != nil || !ok {
				panic("bad jump target " + o[0])
			}
			return i
		}
		switch in.op {
		case "mov":
			d := o[0]
			v := e.val(o[1])
			if strings.HasPrefix(d, "e") {
				v &= 0xffffffff
			}
			e.gpr[reg64(d)] = v
		case "add", "and", "shl", "shr":
			d := reg64(o[0])
			a, b := e.gpr[d], e.val(o[1])
			var r int64
			switch in.op {
			case "add":
				r = a + b
			case "and":
				r = a & b
			case "shl":
				r = a << b
			case "shr":
				r = int64(uint64(a) >> b)
			}
			if strings.HasPrefix(o[0], "e") {
				r &= 0xffffffff
			}
			e.gpr[d], e.zf = r, r == 0
		case "dec":
			e.gpr[o[0]]--
			e.zf = e.gpr[o[0]] == 0
		case "je":
			if e.zf {
				pc = jump()
			}
		case "jne":
			if !e.zf {
				pc = jump()
			}
		case "jmp":
			pc = jump()
		case "prefetcht0", "prefetcht1", "vzeroupper", "nop":
		case "vpxord", "vxorps", "vpxor":
			if o[0] != o[1] || o[1] != o[2] {
				panic("xor is only used to zero")
			}
			e.vec[o[0][1:]] = make([]float32, e.lanes)
		case "vmovups", "vmovdqu", "vmovdqu32":
			if isVecReg(o[0]) {
				e.vec[o[0][1:]] = append([]float32(nil), e.vread(o[1])...)
			} else {
				a := e.ea(o[0])
				for i, x := range e.vread(o[1]) {
					binary.LittleEndian.PutUint32(e.mem[a+4*int64(i):], math.Float32bits(x))
				}
			}
		case "vbroadcastss":
			x := e.f(e.ea(o[1]))
			v := make([]float32, e.lanes)
			for i := range v {
				v[i] = x
			}
			e.vec[o[0][1:]] = v
		case "vfmadd231ps": // o0 = o1*o2 + o0
			d, s1, s2 := e.vread(o[0]), e.vread(o[1]), e.vread(o[2])
			r := make([]float32, e.lanes)
			for i := range r {
				r[i] = fma32(s1[i], s2[i], d[i])
			}
			e.vec[o[0][1:]] = r
		case "vmulps", "vaddps":
			s1, s2 := e.vread(o[1]), e.vread(o[2])
			r := make([]float32, e.lanes)
			for i := range r {
				if in.op == "vaddps" {
					r[i] = s1[i] + s2[i]
				} else {
					r[i] = s1[i] * s2[i]
				}
			}
			e.vec[o[0][1:]] = r
		case "vdpbf16ps": // o0 += pairwise products of o1 and o2 (see dpbf16)
			d, s1, s2 := e.vread(o[0]), e.vread(o[1]), e.vread(o[2])
			r := make([]float32, e.lanes)
			for i := range r {
				r[i] = dpbf16(d[i], math.Float32bits(s1[i]), math.Float32bits(s2[i]))
			}
			e.vec[o[0][1:]] = r
		case "movq": // xmm ← 64-bit register, upper lanes zeroed
			if !isVecReg(o[0]) {
				panic("movq is only used to load a vector register")
			}
			x := uint64(e.val(o[1]))
			v := make([]float32, e.lanes)
			v[0], v[1] = math.Float32frombits(uint32(x)), math.Float32frombits(uint32(x>>32))
			e.vec[o[0][1:]] = v
		case "vpbroadcastd":
			var x float32
			if isVecReg(o[1]) {
				x = e.vread(o[1])[0]
			} else {
				x = e.f(e.ea(o[1]))
			}
			v := make([]float32, e.lanes)
			for i := range v {
				v[i] = x
			}
			e.vec[o[0][1:]] = v
		case "vpslld", "vpand", "vpandd":
			s1 := e.vread(o[1])
			r := make([]float32, e.lanes)
			var s2 []float32
			if in.op != "vpslld" {
				s2 = e.vread(o[2])
			}
			for i := range r {
				x := math.Float32bits(s1[i])
				if in.op != "vpslld" {
					x &= math.Float32bits(s2[i])
				} else {
					x <<= uint(e.val(o[2]))
				}
				r[i] = math.Float32frombits(x)
			}
			e.vec[o[0][1:]] = r
		case "vpdpbusd", "vpsubd", "vcvtdq2ps": // integer lanes, held as float32 bits
			d, s1 := e.vread(o[0]), e.vread(o[1])
			var s2 []float32
			if len(o) > 2 {
				s2 = e.vread(o[2])
			}
			r := make([]float32, e.lanes)
			for i := range r {
				x := math.Float32bits(s1[i])
				switch in.op {
				case "vpdpbusd": // o0 += Σ zext(o1 bytes)·sext(o2 bytes), wrapping
					acc, y := int32(math.Float32bits(d[i])), math.Float32bits(s2[i])
					for b := 0; b < 32; b += 8 {
						acc += int32(uint8(x>>b)) * int32(int8(y>>b))
					}
					r[i] = math.Float32frombits(uint32(acc))
				case "vpsubd": // o0 = o1 − o2
					r[i] = math.Float32frombits(uint32(int32(x) - int32(math.Float32bits(s2[i]))))
				case "vcvtdq2ps": // round to nearest even, as Go's conversion
					r[i] = float32(int32(x))
				}
			}
			e.vec[o[0][1:]] = r
		case "ret":
			return
		default:
			panic(fmt.Sprintf("emulator: unsupported instruction %x: %s %v", in.addr, in.op, o))
		}
	}
}

// call runs the kernel on copies of a, b, c (c with row stride ldc) laid
// out in the emulator's memory with an ABI0 argument frame, and returns c.
func (e *emulator) call(k int, a, b, c []float32, ldc int, alpha, beta float32) []float32 {
	const aAt, bAt, cAt, sp = 0x1000, 0x40000, 0x80000, 0xf0000
	e.mem = make([]byte, 1<<20)
	put := func(at int, s []float32) {
		for i, x := range s {
			binary.LittleEndian.PutUint32(e.mem[at+4*i:], math.Float32bits(x))
		}
	}
	put(aAt, a)
	put(bAt, b)
	put(cAt, c)
	le := binary.LittleEndian
	le.PutUint64(e.mem[sp+8:], uint64(k))
	le.PutUint64(e.mem[sp+16:], aAt)
	le.PutUint64(e.mem[sp+24:], bAt)
	le.PutUint64(e.mem[sp+32:], cAt)
	le.PutUint64(e.mem[sp+40:], uint64(ldc))
	le.PutUint32(e.mem[sp+48:], math.Float32bits(alpha))
	le.PutUint32(e.mem[sp+52:], math.Float32bits(beta))
	e.run(sp)
	out := make([]float32, len(c))
	for i := range out {
		out[i] = e.f(cAt + 4*int64(i))
	}
	return out
}

func TestGemmKernelEmulated(t *testing.T) {
	type kfn = func(k int, a, b, c *float32, ldc int, alpha, beta float32)
	for _, kc := range []struct {
		name          string
		mr, nr, lanes int
		native        kfn
		edge          []kfn
		canNative     bool
	}{
		{AVX2, 6, 16, 8, sgemmKernelAVX2, sgemmKernelAVX2Edge[:], cpuAVX2},
		{AVX512, 14, 32, 16, sgemmKernelAVX512, sgemmKernelAVX512Edge[:], cpuAVX512},
	} {
		t.Run(kc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, uint64(kc.mr)))
			for rows := 1; rows <= kc.mr; rows++ {
				fn := kc.native
				if rows < kc.mr {
					fn = kc.edge[rows]
				}
				ins := disassemble(t, fn)
				e := &emulator{ins: ins, idx: map[uint64]int{}, lanes: kc.lanes}
				for i, in := range ins {
					e.idx[in.addr] = i
				}
				ks := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 40}
				if rows < kc.mr {
					ks = []int{1, 3, 4, 6}
				}
				for _, k := range ks {
					for _, beta := range []float32{0, float32(math.Copysign(0, -1)), 1, -0.6} {
						alpha := float32(1.25)
						if k%2 == 0 {
							alpha = -0.5
						}
						a, b, c0, got := checkKernel(t, r, kc.mr, kc.nr, rows, nil, k, alpha, beta, e.call)
						if kc.canNative {
							nat := append([]float32(nil), c0...)
							fn(k, &a[0], &b[0], &nat[0], kc.nr+3, alpha, beta)
							if !bitsEqual(nat, got) {
								t.Fatalf("rows=%d k=%d beta=%g: emulated kernel differs from the CPU", rows, k, beta)
							}
						}
					}
				}
			}
		})
	}
}
