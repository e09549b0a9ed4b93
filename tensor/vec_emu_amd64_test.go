//go:build !noasm

package tensor

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The AVX-512 kernels (vec_avx512_amd64.s) must be checked on machines
// without AVX-512 too: the development VM lacks it and QEMU's x86 emulation
// has none. These tests disassemble the kernels in this very test binary with
// GNU objdump and interpret them: the ~70 instruction forms the vector kernels
// use, on 4-, 8- and 16-lane registers with IEEE float32 arithmetic, exactly
// rounded FMA, x86 MIN/MAX/NaN rules and opmasks. Memory is emulated too: the
// kernel sees only the buffers it is given (plus the binary's read-only
// constants), so any access outside them, even a read of an unmasked lane
// past the end, fails the test.
//
// The interpreter is validated against the real CPU: the emulated AVX2
// kernels must match the native ones bit for bit (TestVecEmuMatchesAVX2).
// The emulated AVX-512 kernels are then put through the same accuracy checks
// as the real variants (TestVecEmuAVX512). Both skip without objdump or
// AVX2.

// ---- loading the code -------------------------------------------------------

type vecInst struct {
	addr uint64
	op   string
	args []string
	rip  uint64 // the address objdump resolved for a rip-relative operand
}

type vecProg struct {
	ins []vecInst
	at  map[uint64]int
}

var (
	vecEmuLine = regexp.MustCompile(`^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$`)
	vecEmuRIP  = regexp.MustCompile(`#\s*(?:0x)?([0-9a-f]+)`)

	vecEmuOnce  sync.Once
	vecEmuExe   string
	vecEmuELF   *elf.File
	vecEmuError string
	vecEmuProgs = map[string]*vecProg{}
	vecEmuMu    sync.Mutex
)

func vecEmuSetup(t *testing.T) {
	t.Helper()
	if !cpuAVX2 {
		emuSkip(t, "the interpreter is validated against native AVX2, which this CPU lacks")
	}
	vecEmuOnce.Do(func() {
		if _, err := exec.LookPath("objdump"); err != nil {
			vecEmuError = "objdump (GNU binutils) not installed"
			return
		}
		exe, err := os.Executable()
		if err != nil {
			vecEmuError = err.Error()
			return
		}
		f, err := elf.Open(exe)
		if err != nil {
			vecEmuError = err.Error()
			return
		}
		if f.Type != elf.ET_EXEC {
			vecEmuError = "test binary is not a fixed-address executable"
			return
		}
		vecEmuExe, vecEmuELF = exe, f
	})
	if vecEmuError != "" {
		emuSkip(t, vecEmuError)
	}
}

func vecObjdump(t *testing.T, start, end uintptr) []vecInst {
	t.Helper()
	out, err := exec.Command("objdump", "-d", "-M", "intel", "--no-show-raw-insn",
		fmt.Sprintf("--start-address=%#x", start), fmt.Sprintf("--stop-address=%#x", end), vecEmuExe).Output()
	if err != nil {
		emuSkipf(t, "objdump: %v", err)
	}
	var ins []vecInst
	for _, line := range strings.Split(string(out), "\n") {
		m := vecEmuLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		addr, err := strconv.ParseUint(m[1], 16, 64)
		if err != nil {
			continue
		}
		in := vecInst{addr: addr, op: m[2]}
		rest := m[3]
		if i := strings.Index(rest, "#"); i >= 0 {
			if r := vecEmuRIP.FindStringSubmatch(rest[i:]); r != nil {
				in.rip, _ = strconv.ParseUint(r[1], 16, 64)
			}
			rest = rest[:i]
		}
		if i := strings.Index(rest, "<"); i >= 0 {
			rest = rest[:i]
		}
		depth, from := 0, 0
		rest = strings.TrimSpace(rest)
		for i, c := range rest {
			switch c {
			case '[':
				depth++
			case ']':
				depth--
			case ',':
				if depth == 0 {
					in.args = append(in.args, strings.TrimSpace(rest[from:i]))
					from = i + 1
				}
			}
		}
		if rest != "" {
			in.args = append(in.args, strings.TrimSpace(rest[from:]))
		}
		ins = append(ins, in)
	}
	return ins
}

// vecLoadProg finds the assembly body behind the Go declaration fn (whose
// value is the ABIInternal wrapper that calls it) and disassembles it.
func vecLoadProg(t *testing.T, fn any) *vecProg {
	t.Helper()
	wrapper := reflect.ValueOf(fn).Pointer()
	name := runtime.FuncForPC(wrapper).Name()
	vecEmuMu.Lock()
	defer vecEmuMu.Unlock()
	if p := vecEmuProgs[name]; p != nil {
		return p
	}
	var body uintptr
	for _, in := range vecObjdump(t, wrapper, wrapper+256) {
		if in.op == "call" && len(in.args) == 1 {
			a, err := strconv.ParseUint(strings.TrimPrefix(strings.Fields(in.args[0])[0], "0x"), 16, 64)
			if err != nil {
				continue
			}
			if f := runtime.FuncForPC(uintptr(a)); f != nil && strings.TrimSuffix(f.Name(), ".abi0") == name {
				body = uintptr(a)
				break
			}
		}
	}
	if body == 0 {
		emuSkipf(t, "could not find the assembly body of %s", name)
	}
	f := runtime.FuncForPC(body)
	end := body
	for end < body+1<<16 && runtime.FuncForPC(end) == f {
		end++
	}
	p := &vecProg{ins: vecObjdump(t, body, end), at: map[uint64]int{}}
	for i, in := range p.ins {
		p.at[in.addr] = i
	}
	if len(p.ins) < 5 {
		t.Fatalf("disassembly of %s too short", name)
	}
	vecEmuProgs[name] = p
	return p
}

// ---- machine state ----------------------------------------------------------

type vecRegion struct {
	base     uint64
	data     []byte
	writable bool
}

type vecMachine struct {
	t       *testing.T
	prog    *vecProg
	gpr     [16]uint64
	v       [32][16]uint32
	k       [8]uint64
	zf, lt  bool
	regions []*vecRegion
}

var vecGPRNames = map[string]int{
	"rax": 0, "rcx": 1, "rdx": 2, "rbx": 3, "rsp": 4, "rbp": 5, "rsi": 6, "rdi": 7,
	"eax": 0, "ecx": 1, "edx": 2, "ebx": 3, "esi": 6, "edi": 7, "cl": 1,
}

// vecGPR returns the register index and whether it is a 32-bit name.
func vecGPR(s string) (int, bool, bool) {
	if i, ok := vecGPRNames[s]; ok {
		return i, s[0] == 'e' || s == "cl", true
	}
	if strings.HasPrefix(s, "r") {
		n := strings.TrimSuffix(s[1:], "d")
		if i, err := strconv.Atoi(n); err == nil && i >= 8 && i < 16 {
			return i, strings.HasSuffix(s, "d"), true
		}
	}
	return 0, false, false
}

var (
	vecEmuMask  = regexp.MustCompile(`\{k([1-7])\}`)
	vecVRegMu   sync.Mutex
	vecVRegMemo = map[string][5]int{}
)

// vecVReg parses "zmm3{k1}{z}" into register 3, 16 lanes, mask 1, zeroing.
func vecVReg(s string) (reg, lanes, mask int, zero, ok bool) {
	vecVRegMu.Lock()
	defer vecVRegMu.Unlock()
	if v, hit := vecVRegMemo[s]; hit {
		return v[0], v[1], v[2], v[3] == 1, v[4] == 1
	}
	base := s
	if i := strings.Index(s, "{"); i >= 0 {
		base = s[:i]
		deco := s[i:]
		if m := vecEmuMask.FindStringSubmatch(deco); m != nil {
			mask, _ = strconv.Atoi(m[1])
		}
		zero = strings.Contains(deco, "{z}")
	}
	for prefix, l := range map[string]int{"xmm": 4, "ymm": 8, "zmm": 16} {
		if strings.HasPrefix(base, prefix) {
			r, err := strconv.Atoi(base[3:])
			reg, lanes, ok = r, l, err == nil
		}
	}
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	vecVRegMemo[s] = [5]int{reg, lanes, mask, b2i(zero), b2i(ok)}
	return reg, lanes, mask, zero, ok
}

func (m *vecMachine) fail(in vecInst, format string, a ...any) {
	m.t.Helper()
	m.t.Fatalf("emulator at %#x %s %s: %s", in.addr, in.op, strings.Join(in.args, ","), fmt.Sprintf(format, a...))
}

// memAddr evaluates "[reg+0x10]", "[reg]" or "[rip+...]" (with its resolved
// address), ignoring a PTR prefix and mask decorations.
func (m *vecMachine) memAddr(in vecInst, op string) (uint64, bool) {
	i, j := strings.Index(op, "["), strings.Index(op, "]")
	if i < 0 || j < i {
		return 0, false
	}
	inner := op[i+1 : j]
	if strings.HasPrefix(inner, "rip") {
		return in.rip, true
	}
	var addr uint64
	for _, term := range strings.FieldsFunc(inner, func(r rune) bool { return r == '+' }) {
		if r, _, ok := vecGPR(term); ok {
			addr += m.gpr[r]
		} else if v, err := strconv.ParseUint(strings.TrimPrefix(term, "0x"), 16, 64); err == nil {
			addr += v
		} else if strings.Contains(term, "-") {
			parts := strings.SplitN(term, "-", 2)
			r, _, ok := vecGPR(parts[0])
			d, err := strconv.ParseUint(strings.TrimPrefix(parts[1], "0x"), 16, 64)
			if !ok || err != nil {
				m.fail(in, "bad address %q", op)
			}
			addr += m.gpr[r] - d
		} else {
			m.fail(in, "bad address %q", op)
		}
	}
	return addr, true
}

func (m *vecMachine) region(in vecInst, addr uint64, n int, write bool) []byte {
	for _, r := range m.regions {
		if addr >= r.base && addr+uint64(n) <= r.base+uint64(len(r.data)) {
			if write && !r.writable {
				m.fail(in, "write to read-only memory at %#x", addr)
			}
			return r.data[addr-r.base : addr-r.base+uint64(n)]
		}
	}
	if !write {
		for _, s := range vecEmuELF.Sections {
			if s.Type == elf.SHT_PROGBITS && s.Flags&elf.SHF_WRITE == 0 && addr >= s.Addr && addr+uint64(n) <= s.Addr+s.Size {
				data, err := s.Data()
				if err != nil {
					m.fail(in, "reading %s: %v", s.Name, err)
				}
				m.regions = append(m.regions, &vecRegion{base: s.Addr, data: data})
				return data[addr-s.Addr : addr-s.Addr+uint64(n)]
			}
		}
	}
	m.fail(in, "access of %d bytes at %#x outside every buffer", n, addr)
	return nil
}

func (m *vecMachine) load32(in vecInst, addr uint64) uint32 {
	return binary.LittleEndian.Uint32(m.region(in, addr, 4, false))
}

func (m *vecMachine) store32(in vecInst, addr uint64, v uint32) {
	binary.LittleEndian.PutUint32(m.region(in, addr, 4, true), v)
}

// memLanes is the lane count of a "ZMMWORD PTR [..]"-style operand.
func memLanes(op string) int {
	switch {
	case strings.HasPrefix(op, "ZMMWORD"):
		return 16
	case strings.HasPrefix(op, "YMMWORD"):
		return 8
	case strings.HasPrefix(op, "XMMWORD"):
		return 4
	case strings.HasPrefix(op, "QWORD"):
		return 2
	}
	return 1
}

// read returns the lanes of a register or memory operand; lanes beyond the
// mask (when mask != nil) are not read from memory.
func (m *vecMachine) read(in vecInst, op string, lanes int, mask func(int) bool) []uint32 {
	out := make([]uint32, lanes)
	if r, _, _, _, ok := vecVReg(op); ok {
		copy(out, m.v[r][:lanes])
		return out
	}
	addr, ok := m.memAddr(in, op)
	if !ok {
		m.fail(in, "bad operand %q", op)
	}
	if memLanes(op) < lanes && memLanes(op) != 1 {
		m.fail(in, "operand %q narrower than %d lanes", op, lanes)
	}
	for i := 0; i < lanes; i++ {
		if mask == nil || mask(i) {
			out[i] = m.load32(in, addr+4*uint64(i))
		}
	}
	return out
}

// write stores lanes into a register operand with opmask/zeroing rules;
// VEX-encoded (xmm/ymm) writes clear the rest of the register.
func (m *vecMachine) write(in vecInst, op string, vals []uint32) {
	r, lanes, mask, zero, ok := vecVReg(op)
	if !ok {
		m.fail(in, "bad destination %q", op)
	}
	for i := 0; i < 16; i++ {
		switch {
		case i >= lanes:
			m.v[r][i] = 0
		case mask == 0 || m.k[mask]>>i&1 == 1:
			m.v[r][i] = vals[i]
		case zero:
			m.v[r][i] = 0
		}
	}
}

func f32(u uint32) float32 { return math.Float32frombits(u) }
func u32(f float32) uint32 { return math.Float32bits(f) }

// x86 MINPS/MAXPS: the second operand unless the first is strictly
// smaller/greater (so NaN in either gives the second).
func vecMin(a, b uint32) uint32 {
	if f32(a) < f32(b) {
		return a
	}
	return b
}

func vecMax(a, b uint32) uint32 {
	if f32(a) > f32(b) {
		return a
	}
	return b
}

// vecFMA32 is a·b+c rounded once to float32.
func vecFMA32(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact
	s := p + float64(c)
	r := float32(s)
	if math.IsNaN(s) || math.IsInf(s, 0) || float64(r) == s {
		return r
	}
	bb := s - p
	e := (p - (s - bb)) + (float64(c) - bb) // s + e == p + c exactly
	if e == 0 {
		return r
	}
	other := math.Nextafter32(r, float32(math.Copysign(math.Inf(1), s-float64(r))))
	if (float64(r)+float64(other))/2 != s {
		return r // s is not a tie: its rounding is the exact value's
	}
	if (e > 0) == (other > r) {
		return other
	}
	return r
}

func vecScalef(a, b uint32) uint32 {
	x, y := f32(a), f32(b)
	switch {
	case x != x:
		return a | 0x400000
	case y != y:
		return b | 0x400000
	case math.IsInf(float64(y), 1):
		return u32(x * float32(math.Inf(1)))
	case math.IsInf(float64(y), -1):
		return u32(x * 0)
	}
	k := math.Floor(float64(y))
	k = math.Max(-400, math.Min(400, k))
	return u32(float32(math.Ldexp(float64(x), int(k))))
}

// ---- the interpreter --------------------------------------------------------

func (m *vecMachine) imm(in vecInst, s string) uint64 {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil {
		m.fail(in, "bad immediate %q", s)
	}
	return v
}

func (m *vecMachine) setGPR(r int, is32 bool, v uint64) {
	if is32 {
		v = uint64(uint32(v))
	}
	m.gpr[r] = v
}

func (m *vecMachine) jump(in vecInst) int {
	a, err := strconv.ParseUint(strings.TrimPrefix(strings.Fields(in.args[0])[0], "0x"), 16, 64)
	i, ok := m.prog.at[a]
	if err != nil || !ok {
		m.fail(in, "bad jump target")
	}
	return i
}

// run interprets the program from its first instruction to RET.
func (m *vecMachine) run() {
	ins := m.prog.ins
	for pc, steps := 0, 0; ; steps++ {
		if pc >= len(ins) || steps > 1<<26 {
			m.t.Fatalf("emulator ran off the program")
		}
		in := ins[pc]
		pc++
		a := in.args
		lanesOf := func(op string) int {
			if _, l, _, _, ok := vecVReg(op); ok {
				return l
			}
			return memLanes(op)
		}
		// lanewise applies f to (src1, src2) lanes of "op dst, src1, src2".
		lanewise := func(f func(x, y uint32) uint32) {
			l := lanesOf(a[0])
			x, y := m.read(in, a[1], l, nil), m.read(in, a[2], l, nil)
			out := make([]uint32, l)
			for i := range out {
				out[i] = f(x[i], y[i])
			}
			m.write(in, a[0], out)
		}
		fl := func(f func(x, y float32) float32) {
			lanewise(func(x, y uint32) uint32 { return u32(f(f32(x), f32(y))) })
		}
		// scalar ops "op xmmD, xmmA, xmmB/m32": lane 0 from f, lanes 1-3
		// from xmmA.
		scalar := func(f func(x, y uint32) uint32) {
			x := m.read(in, a[1], 4, nil)
			var y uint32
			if _, _, _, _, ok := vecVReg(a[2]); ok {
				y = m.read(in, a[2], 1, nil)[0]
			} else {
				addr, _ := m.memAddr(in, a[2])
				y = m.load32(in, addr)
			}
			x[0] = f(x[0], y)
			m.write(in, a[0], x)
		}
		// scalar double ops on lanes 0-1 (as one float64).
		f64 := func(v []uint32) float64 { return math.Float64frombits(uint64(v[1])<<32 | uint64(v[0])) }
		sd := func(f func(x, y float64) float64) {
			x, y := m.read(in, a[1], 4, nil), m.read(in, a[2], 4, nil)
			r := math.Float64bits(f(f64(x), f64(y)))
			x[0], x[1] = uint32(r), uint32(r>>32)
			m.write(in, a[0], x)
		}
		fma := func(form string) {
			l := lanesOf(a[0])
			d, s2, s3 := m.read(in, a[0], l, nil), m.read(in, a[1], l, nil), m.read(in, a[2], l, nil)
			out := make([]uint32, l)
			for i := range out {
				x, y, z := f32(d[i]), f32(s2[i]), f32(s3[i])
				var r float32
				switch form {
				case "vfmadd213ps":
					r = vecFMA32(y, x, z)
				case "vfmadd231ps":
					r = vecFMA32(y, z, x)
				case "vfnmadd231ps":
					r = vecFMA32(-y, z, x)
				case "vfmsub213ps":
					r = vecFMA32(y, x, -z)
				}
				out[i] = u32(r)
			}
			m.write(in, a[0], out)
		}
		switch in.op {
		case "ret":
			return
		case "vzeroupper":
			for r := range m.v {
				for i := 4; i < 16; i++ {
					m.v[r][i] = 0
				}
			}
		case "jmp":
			pc = m.jump(in)
		case "jl":
			if m.lt {
				pc = m.jump(in)
			}
		case "je":
			if m.zf {
				pc = m.jump(in)
			}
		case "jne":
			if !m.zf {
				pc = m.jump(in)
			}
		case "mov", "movabs":
			if r, is32, ok := vecGPR(a[0]); ok {
				if s, _, ok := vecGPR(a[1]); ok {
					m.setGPR(r, is32, m.gpr[s])
				} else if strings.Contains(a[1], "[") {
					addr, _ := m.memAddr(in, a[1])
					v := uint64(m.load32(in, addr))
					if !is32 {
						v |= uint64(m.load32(in, addr+4)) << 32
					}
					m.setGPR(r, is32, v)
				} else {
					m.setGPR(r, is32, m.imm(in, a[1]))
				}
			} else {
				addr, _ := m.memAddr(in, a[0])
				s, is32, ok := vecGPR(a[1])
				if !ok || !is32 {
					m.fail(in, "unsupported store")
				}
				m.store32(in, addr, uint32(m.gpr[s]))
			}
		case "lea":
			r, is32, _ := vecGPR(a[0])
			addr, _ := m.memAddr(in, a[1])
			m.setGPR(r, is32, addr)
		case "add", "sub", "cmp", "test", "shl", "dec":
			r, is32, ok := vecGPR(a[0])
			if !ok {
				m.fail(in, "bad operand")
			}
			x := m.gpr[r]
			var y uint64
			if len(a) > 1 {
				if s, _, ok := vecGPR(a[1]); ok {
					y = m.gpr[s]
				} else {
					y = m.imm(in, a[1])
				}
			}
			var res uint64
			switch in.op {
			case "add":
				res = x + y
			case "sub", "cmp":
				res = x - y
			case "test":
				res = x & y
			case "shl":
				res = x << (y & 63)
			case "dec":
				res = x - 1
			}
			if is32 {
				res = uint64(uint32(res))
			}
			m.zf = res == 0
			if in.op == "cmp" || in.op == "sub" {
				m.lt = int64(x) < int64(y)
				if is32 {
					m.lt = int32(x) < int32(y)
				}
			} else {
				m.lt = int64(res) < 0
			}
			if in.op != "cmp" && in.op != "test" {
				m.setGPR(r, is32, res)
			}
		case "kmovw":
			s, _, _ := vecGPR(a[1])
			m.k[int(a[0][1]-'0')] = m.gpr[s] & 0xffff
		case "korw", "kxorw":
			x, y := m.k[int(a[1][1]-'0')], m.k[int(a[2][1]-'0')]
			if in.op == "korw" {
				m.k[int(a[0][1]-'0')] = (x | y) & 0xffff
			} else {
				m.k[int(a[0][1]-'0')] = (x ^ y) & 0xffff
			}
		case "kortestw":
			m.zf = (m.k[int(a[0][1]-'0')]|m.k[int(a[1][1]-'0')])&0xffff == 0
		case "vpmovd2m":
			x := m.read(in, a[1], 16, nil)
			var k uint64
			for i, v := range x {
				k |= uint64(v>>31) << i
			}
			m.k[int(a[0][1]-'0')] = k
		case "vmovups", "vmovaps", "vmovdqu":
			if _, _, _, _, ok := vecVReg(a[0]); ok {
				_, l, mask, zero, _ := vecVReg(a[0])
				var pred func(int) bool
				if mask != 0 {
					pred = func(i int) bool { return m.k[mask]>>i&1 == 1 }
				}
				vals := m.read(in, a[1], l, pred)
				if mask != 0 && !zero && !strings.Contains(a[1], "[") {
					vals = m.read(in, a[1], l, nil)
				}
				m.write(in, a[0], vals)
			} else {
				addr, _ := m.memAddr(in, a[0])
				mask := 0
				if mm := vecEmuMask.FindStringSubmatch(a[0]); mm != nil {
					mask, _ = strconv.Atoi(mm[1])
				}
				r, l, _, _, _ := vecVReg(a[1])
				if memLanes(a[0]) != l {
					m.fail(in, "store width")
				}
				for i := 0; i < l; i++ {
					if mask == 0 || m.k[mask]>>i&1 == 1 {
						m.store32(in, addr+4*uint64(i), m.v[r][i])
					}
				}
			}
		case "vmaskmovps":
			if _, _, _, _, ok := vecVReg(a[0]); ok {
				_, l, _, _, _ := vecVReg(a[0])
				mk := m.read(in, a[1], l, nil)
				m.write(in, a[0], m.read(in, a[2], l, func(i int) bool { return mk[i]>>31 == 1 }))
			} else {
				addr, _ := m.memAddr(in, a[0])
				_, l, _, _, _ := vecVReg(a[1])
				mk, v := m.read(in, a[1], l, nil), m.read(in, a[2], l, nil)
				for i := 0; i < l; i++ {
					if mk[i]>>31 == 1 {
						m.store32(in, addr+4*uint64(i), v[i])
					}
				}
			}
		case "vmovss":
			if _, _, _, _, ok := vecVReg(a[0]); ok {
				addr, _ := m.memAddr(in, a[1])
				m.write(in, a[0], []uint32{m.load32(in, addr), 0, 0, 0})
			} else {
				addr, _ := m.memAddr(in, a[0])
				m.store32(in, addr, m.read(in, a[1], 1, nil)[0])
			}
		case "vmovq":
			s, _, _ := vecGPR(a[1])
			m.write(in, a[0], []uint32{uint32(m.gpr[s]), uint32(m.gpr[s] >> 32), 0, 0})
		case "vbroadcastss":
			var x uint32
			if _, _, _, _, ok := vecVReg(a[1]); ok {
				x = m.read(in, a[1], 1, nil)[0]
			} else {
				addr, _ := m.memAddr(in, a[1])
				x = m.load32(in, addr)
			}
			out := make([]uint32, lanesOf(a[0]))
			for i := range out {
				out[i] = x
			}
			m.write(in, a[0], out)
		case "vextractf128", "vextractf64x4":
			l := lanesOf(a[0])
			x := m.read(in, a[1], 16, nil)
			off := int(m.imm(in, a[2])) * l
			m.write(in, a[0], x[off:off+l])
		case "vmovhlps":
			x, y := m.read(in, a[1], 4, nil), m.read(in, a[2], 4, nil)
			m.write(in, a[0], []uint32{y[2], y[3], x[2], x[3]})
		case "vmovshdup":
			x := m.read(in, a[1], lanesOf(a[0]), nil)
			for i := 0; i < len(x); i += 2 {
				x[i] = x[i+1]
			}
			m.write(in, a[0], x)
		case "vaddps":
			fl(func(x, y float32) float32 { return x + y })
		case "vsubps":
			fl(func(x, y float32) float32 { return x - y })
		case "vmulps":
			fl(func(x, y float32) float32 { return x * y })
		case "vdivps":
			fl(func(x, y float32) float32 { return x / y })
		case "vminps":
			lanewise(vecMin)
		case "vmaxps":
			lanewise(vecMax)
		case "vscalefps":
			lanewise(vecScalef)
		case "vandps":
			lanewise(func(x, y uint32) uint32 { return x & y })
		case "vorps":
			lanewise(func(x, y uint32) uint32 { return x | y })
		case "vxorps", "vpxord", "vxorpd":
			lanewise(func(x, y uint32) uint32 { return x ^ y })
		case "vpaddd":
			lanewise(func(x, y uint32) uint32 { return x + y })
		case "vpsubd":
			lanewise(func(x, y uint32) uint32 { return x - y })
		case "vpslld", "vpsrad":
			l := lanesOf(a[0])
			x, s := m.read(in, a[1], l, nil), m.imm(in, a[2])
			for i := range x {
				if in.op == "vpslld" {
					x[i] <<= s
				} else {
					x[i] = uint32(int32(x[i]) >> s)
				}
			}
			m.write(in, a[0], x)
		case "vfmadd213ps", "vfmadd231ps", "vfnmadd231ps", "vfmsub213ps":
			fma(in.op)
		case "vblendvps":
			l := lanesOf(a[0])
			x, y, mk := m.read(in, a[1], l, nil), m.read(in, a[2], l, nil), m.read(in, a[3], l, nil)
			for i := range x {
				if mk[i]>>31 == 1 {
					x[i] = y[i]
				}
			}
			m.write(in, a[0], x)
		case "vcmpunordps":
			l := lanesOf(a[1])
			x, y := m.read(in, a[1], l, nil), m.read(in, a[2], l, nil)
			if strings.HasPrefix(a[0], "k") {
				var k uint64
				for i := range x {
					if f32(x[i]) != f32(x[i]) || f32(y[i]) != f32(y[i]) {
						k |= 1 << i
					}
				}
				m.k[int(a[0][1]-'0')] = k
			} else {
				out := make([]uint32, l)
				for i := range x {
					if f32(x[i]) != f32(x[i]) || f32(y[i]) != f32(y[i]) {
						out[i] = 0xffffffff
					}
				}
				m.write(in, a[0], out)
			}
		case "vptest":
			x, y := m.read(in, a[0], lanesOf(a[0]), nil), m.read(in, a[1], lanesOf(a[0]), nil)
			m.zf = true
			for i := range x {
				if x[i]&y[i] != 0 {
					m.zf = false
				}
			}
		case "vaddss":
			scalar(func(x, y uint32) uint32 { return u32(f32(x) + f32(y)) })
		case "vdivss":
			scalar(func(x, y uint32) uint32 { return u32(f32(x) / f32(y)) })
		case "vmaxss":
			scalar(vecMax)
		case "vaddsd":
			sd(func(x, y float64) float64 { return x + y })
		case "vsubsd":
			sd(func(x, y float64) float64 { return x - y })
		case "vmulsd":
			sd(func(x, y float64) float64 { return x * y })
		case "vdivsd":
			sd(func(x, y float64) float64 { return x / y })
		case "vsqrtsd":
			sd(func(_, y float64) float64 { return math.Sqrt(y) })
		case "vmaxsd":
			sd(func(x, y float64) float64 {
				if x > y {
					return x
				}
				return y
			})
		case "vcvtss2sd":
			x, y := m.read(in, a[1], 4, nil), m.read(in, a[2], 1, nil)
			r := math.Float64bits(float64(f32(y[0])))
			x[0], x[1] = uint32(r), uint32(r>>32)
			m.write(in, a[0], x)
		case "vcvtsd2ss":
			x, y := m.read(in, a[1], 4, nil), m.read(in, a[2], 2, nil)
			x[0] = u32(float32(f64(y)))
			m.write(in, a[0], x)
		case "vcvtsi2ss", "vcvtsi2sd":
			x := m.read(in, a[1], 4, nil)
			s, _, _ := vecGPR(a[2])
			if in.op == "vcvtsi2ss" {
				x[0] = u32(float32(int64(m.gpr[s])))
			} else {
				r := math.Float64bits(float64(int64(m.gpr[s])))
				x[0], x[1] = uint32(r), uint32(r>>32)
			}
			m.write(in, a[0], x)
		default:
			m.fail(in, "instruction not emulated")
		}
	}
}

// ---- calling kernels --------------------------------------------------------

// vecEmuCall runs prog with an ABI0 frame holding words (8 bytes each; a
// float32 argument goes in the low half of its word) and the given buffers
// mapped at the addresses their pointer arguments name; it returns the frame
// after the call (results follow the arguments).
type vecEmuBuf struct {
	data []float32
	addr uint64
}

func vecEmuCall(t *testing.T, prog *vecProg, frame []uint64, bufs ...*vecEmuBuf) []uint64 {
	t.Helper()
	m := &vecMachine{t: t, prog: prog}
	const stackBase = 0x7f0000000000
	fb := make([]byte, 8*(len(frame)+2))
	for i, w := range frame {
		binary.LittleEndian.PutUint64(fb[8*(i+1):], w)
	}
	m.regions = append(m.regions, &vecRegion{base: stackBase, data: fb, writable: true})
	m.gpr[4] = stackBase
	for _, b := range bufs {
		d := make([]byte, 4*len(b.data))
		for i, v := range b.data {
			binary.LittleEndian.PutUint32(d[4*i:], math.Float32bits(v))
		}
		m.regions = append(m.regions, &vecRegion{base: b.addr, data: d, writable: true})
	}
	// Scribble on the registers so that nothing depends on their contents
	// at entry.
	for r := range m.v {
		for i := range m.v[r] {
			m.v[r][i] = 0x7fa5a5a5
		}
	}
	for i := range m.k {
		m.k[i] = 0x5a5a
	}
	m.run()
	for i, b := range bufs {
		d := m.regions[1+i].data
		for j := range b.data {
			b.data[j] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*j:]))
		}
	}
	out := make([]uint64, len(frame)+1)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(fb[8*(i+1):])
	}
	return out
}

// vecEmuBufs places slices at distinct fake addresses, 16-byte aligned plus
// a per-case offset so that alignment varies.
func vecEmuBufs(off int, slices ...[]float32) []*vecEmuBuf {
	bufs := make([]*vecEmuBuf, len(slices))
	for i, s := range slices {
		bufs[i] = &vecEmuBuf{data: s, addr: 0x10000000*uint64(i+1) + uint64(4*(off%16))}
	}
	return bufs
}

func w32(f float32) uint64 { return uint64(math.Float32bits(f)) }

// vecEmuKernels adapts emulated assembly kernels to the registry signatures.
type vecEmuKernels struct {
	t   *testing.T
	off int
}

func (e *vecEmuKernels) unary(fn any) func(dst, x []float32) {
	p := vecLoadProg(e.t, fn)
	return func(dst, x []float32) {
		if len(x) == 0 {
			return
		}
		xs := append([]float32(nil), x...)
		b := vecEmuBufs(e.off, dst[:len(x)], xs)
		e.off++
		vecEmuCall(e.t, p, []uint64{b[0].addr, b[1].addr, uint64(len(x))}, b...)
	}
}

func (e *vecEmuKernels) bias(fn any) func(x, bias []float32) {
	p := vecLoadProg(e.t, fn)
	return func(x, bias []float32) {
		n := len(bias)
		for r := 0; r+n <= len(x); r += n {
			b := vecEmuBufs(e.off, x[r:r+n], append([]float32(nil), bias...))
			e.off++
			vecEmuCall(e.t, p, []uint64{b[0].addr, b[1].addr, uint64(n)}, b...)
		}
	}
}

// addBias runs an add kernel with dst = a = each row of x, b = bias.
func (e *vecEmuKernels) addBias(fn any) func(x, bias []float32) {
	p := vecLoadProg(e.t, fn)
	return func(x, bias []float32) {
		n := len(bias)
		for r := 0; r+n <= len(x); r += n {
			b := vecEmuBufs(e.off, x[r:r+n], append([]float32(nil), bias...))
			e.off++
			vecEmuCall(e.t, p, []uint64{b[0].addr, b[0].addr, b[1].addr, uint64(n)}, b...)
		}
	}
}

func (e *vecEmuKernels) softmax(fn any) func(x []float32, n int) {
	p := vecLoadProg(e.t, fn)
	return func(x []float32, n int) {
		for r := 0; r+n <= len(x); r += n {
			b := vecEmuBufs(e.off, x[r:r+n])
			e.off++
			vecEmuCall(e.t, p, []uint64{b[0].addr, uint64(n)}, b...)
		}
	}
}

func (e *vecEmuKernels) layerNorm(fn any) func(out, x, gamma, beta []float32, n int, eps float32, mean, rstd []float32) {
	p := vecLoadProg(e.t, fn)
	return func(out, x, gamma, beta []float32, n int, eps float32, mean, rstd []float32) {
		for r := 0; r*n < len(x); r++ {
			b := vecEmuBufs(e.off, out[r*n:(r+1)*n], append([]float32(nil), x[r*n:(r+1)*n]...),
				append([]float32(nil), gamma[:n]...), append([]float32(nil), beta[:n]...))
			e.off++
			res := vecEmuCall(e.t, p, []uint64{b[0].addr, b[1].addr, b[2].addr, b[3].addr, uint64(n), w32(eps)}, b...)
			if mean != nil {
				mean[r] = math.Float32frombits(uint32(res[6]))
			}
			if rstd != nil {
				rstd[r] = math.Float32frombits(uint32(res[6] >> 32))
			}
		}
	}
}

func (e *vecEmuKernels) addLayerNorm(fn any) func(sum, out, x, r, gamma, beta []float32, n int, eps float32) {
	p := vecLoadProg(e.t, fn)
	return func(sum, out, x, res, gamma, beta []float32, n int, eps float32) {
		for i := 0; i < len(x); i += n {
			xs, rs := append([]float32(nil), x[i:i+n]...), append([]float32(nil), res[i:i+n]...)
			b := vecEmuBufs(e.off, sum[i:i+n], out[i:i+n], xs, rs,
				append([]float32(nil), gamma[:n]...), append([]float32(nil), beta[:n]...))
			e.off++
			vecEmuCall(e.t, p, []uint64{b[0].addr, b[1].addr, b[2].addr, b[3].addr, b[4].addr, b[5].addr, uint64(n), w32(eps)}, b...)
		}
	}
}

func (e *vecEmuKernels) reduce(fn any, empty float32) func(x []float32) float32 {
	p := vecLoadProg(e.t, fn)
	return func(x []float32) float32 {
		if len(x) == 0 {
			return empty
		}
		b := vecEmuBufs(e.off, append([]float32(nil), x...))
		e.off++
		res := vecEmuCall(e.t, p, []uint64{b[0].addr, uint64(len(x))}, b...)
		return math.Float32frombits(uint32(res[2]))
	}
}

func (e *vecEmuKernels) dot(fn any) func(x, y []float32) float32 {
	p := vecLoadProg(e.t, fn)
	return func(x, y []float32) float32 {
		if len(x) == 0 {
			return 0
		}
		b := vecEmuBufs(e.off, append([]float32(nil), x...), append([]float32(nil), y[:len(x)]...))
		e.off++
		res := vecEmuCall(e.t, p, []uint64{b[0].addr, b[1].addr, uint64(len(x))}, b...)
		return math.Float32frombits(uint32(res[3]))
	}
}

func (e *vecEmuKernels) axpy(fn any) func(alpha float32, x, y []float32) {
	p := vecLoadProg(e.t, fn)
	return func(alpha float32, x, y []float32) {
		if len(x) == 0 {
			return
		}
		b := vecEmuBufs(e.off, append([]float32(nil), x...), y[:len(x)])
		e.off++
		vecEmuCall(e.t, p, []uint64{w32(alpha), b[0].addr, b[1].addr, uint64(len(x))}, b...)
	}
}

func (e *vecEmuKernels) scale(fn any) func(alpha float32, x []float32) {
	p := vecLoadProg(e.t, fn)
	return func(alpha float32, x []float32) {
		if len(x) == 0 {
			return
		}
		b := vecEmuBufs(e.off, x)
		e.off++
		vecEmuCall(e.t, p, []uint64{w32(alpha), b[0].addr, uint64(len(x))}, b...)
	}
}

func (e *vecEmuKernels) binary(fn any) func(dst, a, b []float32) {
	p := vecLoadProg(e.t, fn)
	return func(dst, a, bb []float32) {
		if len(a) == 0 {
			return
		}
		b := vecEmuBufs(e.off, dst[:len(a)], append([]float32(nil), a...), append([]float32(nil), bb[:len(a)]...))
		e.off++
		vecEmuCall(e.t, p, []uint64{b[0].addr, b[1].addr, b[2].addr, uint64(len(a))}, b...)
	}
}

// vecKernelSet is one variant's kernels behind the registry signatures.
type vecKernelSet struct {
	exp, quickGelu, gelu             func(dst, x []float32)
	biasQuickGelu, biasGelu, addBias func(x, bias []float32)
	softmax                          func(x []float32, n int)
	layerNorm                        func(out, x, gamma, beta []float32, n int, eps float32, mean, rstd []float32)
	addLayerNorm                     func(sum, out, x, r, gamma, beta []float32, n int, eps float32)
	sum, sumSq, max                  func(x []float32) float32
	dot                              func(x, y []float32) float32
	axpy                             func(alpha float32, x, y []float32)
	scale                            func(alpha float32, x []float32)
	add, mul                         func(dst, a, b []float32)
}

func vecEmuSet(t *testing.T, avx512 bool) *vecKernelSet {
	e := &vecEmuKernels{t: t}
	if avx512 {
		return &vecKernelSet{
			e.unary(expAVX512), e.unary(quickGeluAVX512), e.unary(geluAVX512),
			e.bias(biasQuickGeluAVX512), e.bias(biasGeluAVX512), e.addBias(addAVX512),
			e.softmax(softmaxRowAVX512), e.layerNorm(layerNormRowAVX512), e.addLayerNorm(addLayerNormRowAVX512),
			e.reduce(sumAVX512, 0), e.reduce(sumSqAVX512, 0), e.reduce(maxAVX512, negInf32), e.dot(dotAVX512),
			e.axpy(axpyAVX512), e.scale(scaleAVX512), e.binary(addAVX512), e.binary(mulAVX512),
		}
	}
	return &vecKernelSet{
		e.unary(expAVX2), e.unary(quickGeluAVX2), e.unary(geluAVX2),
		e.bias(biasQuickGeluAVX2), e.bias(biasGeluAVX2), e.addBias(addAVX2),
		e.softmax(softmaxRowAVX2), e.layerNorm(layerNormRowAVX2), e.addLayerNorm(addLayerNormRowAVX2),
		e.reduce(sumAVX2, 0), e.reduce(sumSqAVX2, 0), e.reduce(maxAVX2, negInf32), e.dot(dotAVX2),
		e.axpy(axpyAVX2), e.scale(scaleAVX2), e.binary(addAVX2), e.binary(mulAVX2),
	}
}

func vecNativeAVX2() *vecKernelSet {
	return &vecKernelSet{
		unaryVariant(expAVX2), unaryVariant(quickGeluAVX2), unaryVariant(geluAVX2),
		biasVariant(biasQuickGeluAVX2), biasVariant(biasGeluAVX2), addBiasVariant(addAVX2),
		softmaxVariant(softmaxRowAVX2), layerNormVariant(layerNormRowAVX2), addLayerNormVariant(addLayerNormRowAVX2),
		reduceVariant(sumAVX2), reduceVariant(sumSqAVX2), maxVariant(maxAVX2), dotVariant(dotAVX2),
		axpyVariant(axpyAVX2), scaleVariant(scaleAVX2), binaryVariant(addAVX2), binaryVariant(mulAVX2),
	}
}

// ---- tests -------------------------------------------------------------------

// TestVecEmuFMA checks the interpreter's FMA against exact big.Float
// arithmetic, on random operands and on near-ties that rounding through
// float64 would get wrong.
func TestVecEmuFMA(t *testing.T) {
	r := vecRNG(t, 0)
	exact := func(a, b, c float32) float32 {
		x := new(big.Float).SetPrec(200).SetFloat64(float64(a))
		x.Mul(x, new(big.Float).SetPrec(200).SetFloat64(float64(b)))
		x.Add(x, new(big.Float).SetPrec(200).SetFloat64(float64(c)))
		f, _ := x.Float32()
		return f
	}
	rnd := func() float32 {
		return math.Float32frombits(uint32(r.Uint64()) & 0xbfffffff) // finite, |x| < 2
	}
	for i := 0; i < 200000; i++ {
		a, b, c := rnd(), rnd(), rnd()
		if i%3 == 0 {
			// c cancels most of a·b and leaves a near-tie.
			c = -float32(float64(a) * float64(b))
			c = math.Nextafter32(c, float32(r.NormFloat64()))
		}
		if got, want := vecFMA32(a, b, c), exact(a, b, c); math.Float32bits(got) != math.Float32bits(want) && got != want {
			t.Fatalf("fma(%v, %v, %v) = %v, want %v", a, b, c, got, want)
		}
	}
	// (1+2⁻¹⁵)·2⁻²⁴(1-2⁻¹⁵) + (1+2⁻²³) = 1 + 3·2⁻²⁴ - 2⁻⁵⁴: just below the
	// tie between 1+2⁻²³ and 1+2⁻²², but exactly on it once rounded to
	// float64 (where ties-to-even would pick 1+2⁻²²).
	if got := vecFMA32(1+0x1p-15, 0x1p-24*(1-0x1p-15), 1+0x1p-23); got != 1+0x1p-23 {
		t.Fatalf("tie-break: got %v", got)
	}
}

func vecNativeAVX512() *vecKernelSet {
	return &vecKernelSet{
		unaryVariant(expAVX512), unaryVariant(quickGeluAVX512), unaryVariant(geluAVX512),
		biasVariant(biasQuickGeluAVX512), biasVariant(biasGeluAVX512), addBiasVariant(addAVX512),
		softmaxVariant(softmaxRowAVX512), layerNormVariant(layerNormRowAVX512), addLayerNormVariant(addLayerNormRowAVX512),
		reduceVariant(sumAVX512), reduceVariant(sumSqAVX512), maxVariant(maxAVX512), dotVariant(dotAVX512),
		axpyVariant(axpyAVX512), scaleVariant(scaleAVX512), binaryVariant(addAVX512), binaryVariant(mulAVX512),
	}
}

// TestVecEmuMatchesAVX2 validates the interpreter: emulated AVX2 kernels
// must reproduce the native ones bit for bit (any NaN matching any NaN).
func TestVecEmuMatchesAVX2(t *testing.T) {
	vecEmuSetup(t)
	vecEmuMatches(t, vecEmuSet(t, false), vecNativeAVX2())
}

// TestVecEmuMatchesAVX512 compares the emulated AVX-512 kernels with the
// real ones where the CPU has AVX-512 (elsewhere the emulator is all that
// runs them: TestVecEmuAVX512).
func TestVecEmuMatchesAVX512(t *testing.T) {
	vecEmuSetup(t)
	if !cpuAVX512 {
		t.Skip("no AVX-512 on this CPU: the emulated kernels are checked against the specification only (TestVecEmuAVX512)")
	}
	vecEmuMatches(t, vecEmuSet(t, true), vecNativeAVX512())
}

func vecEmuMatches(t *testing.T, emu, nat *vecKernelSet) {
	same := func(what string, got, want []float32) {
		t.Helper()
		for i := range want {
			g, w := got[i], want[i]
			if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
				t.Fatalf("%s[%d]: emulated %v (%#x), native %v (%#x)", what, i, g, math.Float32bits(g), w, math.Float32bits(w))
			}
		}
	}
	for c, n := range []int{1, 3, 7, 8, 9, 16, 17, 31, 33, 64, 77, 100} {
		r := vecRNG(t, c)
		x := vecRand(r, n, -30, 30)
		y := vecRand(r, n, -3, 3)
		for i := range x {
			if i%5 == 0 {
				x[i] = actSpecials[r.IntN(len(actSpecials))]
			}
		}
		type un struct {
			name string
			e, f func(dst, x []float32)
		}
		for _, u := range []un{{"exp", emu.exp, nat.exp}, {"quickgelu", emu.quickGelu, nat.quickGelu}, {"gelu", emu.gelu, nat.gelu}} {
			g, w := make([]float32, n), make([]float32, n)
			u.e(g, x)
			u.f(w, x)
			same(u.name, g, w)
		}
		type bi struct {
			name string
			e, f func(x, b []float32)
		}
		for _, b := range []bi{{"biasquickgelu", emu.biasQuickGelu, nat.biasQuickGelu}, {"biasgelu", emu.biasGelu, nat.biasGelu}, {"addbias", emu.addBias, nat.addBias}} {
			g, w := append([]float32(nil), x...), append([]float32(nil), x...)
			b.e(g, y)
			b.f(w, y)
			same(b.name, g, w)
		}
		g, w := append([]float32(nil), y...), append([]float32(nil), y...)
		emu.softmax(g, n)
		nat.softmax(w, n)
		same("softmax", g, w)
		gm, gr, wm, wr := make([]float32, 1), make([]float32, 1), make([]float32, 1), make([]float32, 1)
		emu.layerNorm(g, x, y, x, n, 1e-5, gm, gr)
		nat.layerNorm(w, x, y, x, n, 1e-5, wm, wr)
		same("layernorm", append(g, gm[0], gr[0]), append(w, wm[0], wr[0]))
		gs, ws := make([]float32, n), make([]float32, n)
		emu.addLayerNorm(gs, g, x, y, y, x, n, 1e-5)
		nat.addLayerNorm(ws, w, x, y, y, x, n, 1e-5)
		same("addlayernorm", append(g, gs...), append(w, ws...))
		same("reductions",
			[]float32{emu.sum(x), emu.sumSq(x), emu.max(x), emu.max(y), emu.dot(x, y)},
			[]float32{nat.sum(x), nat.sumSq(x), nat.max(x), nat.max(y), nat.dot(x, y)})
		g, w = append([]float32(nil), y...), append([]float32(nil), y...)
		emu.axpy(0.3, x, g)
		nat.axpy(0.3, x, w)
		same("axpy", g, w)
		emu.scale(-1.5, g)
		nat.scale(-1.5, w)
		same("scale", g, w)
		emu.add(g, x, y)
		nat.add(w, x, y)
		same("add", g, w)
		emu.mul(g, x, y)
		nat.mul(w, x, y)
		same("mul", g, w)
	}
}

// TestVecEmuAVX512 puts the emulated AVX-512 kernels through the accuracy,
// special-value and bounds checks of the real variants.
func TestVecEmuAVX512(t *testing.T) {
	vecEmuSetup(t)
	k := vecEmuSet(t, true)
	sizes := []int{1, 7, 15, 16, 17, 31, 33, 65, 127, 200}
	t.Run("exp", func(t *testing.T) {
		for c, n := range sizes {
			x := vecRand(vecRNG(t, c), n, -104, 89)
			got := make([]float32, n)
			k.exp(got, x)
			checkExp(t, x, got)
		}
		for shift := 0; shift < 17; shift++ {
			x := make([]float32, shift+len(expSpecials))
			copy(x[shift:], expSpecials)
			got := make([]float32, len(x))
			k.exp(got, x)
			checkExp(t, x, got)
		}
		var x []float32
		for b := uint64(0); b < 1<<32; b += 1 << 18 {
			x = append(x, math.Float32frombits(uint32(b)))
		}
		got := make([]float32, len(x))
		k.exp(got, x)
		checkExp(t, x, got)
	})
	for _, ac := range []struct {
		name string
		f    func(dst, x []float32)
		bias func(x, b []float32)
		ref  func(float64) float64
		rel  float64
	}{
		{"QuickGELU", k.quickGelu, k.biasQuickGelu, quickGeluRef, quickGeluRelBound},
		{"GELU", k.gelu, k.biasGelu, geluRef, geluRelBound},
	} {
		t.Run(ac.name, func(t *testing.T) {
			for c, n := range sizes {
				r := vecRNG(t, c)
				x := vecRand(r, n, -12, 12)
				got := make([]float32, n)
				ac.f(got, x)
				checkAct(t, ac.name, ac.ref, ac.rel, x, got)
				bias := vecRand(r, n, -2, 2)
				xb := append([]float32(nil), x...)
				ac.bias(xb, bias)
				for i, v := range x {
					s := v + bias[i]
					want := ac.ref(float64(s))
					vecCheckClose(t, "Bias"+ac.name, i, s, xb[i], want, math.Max(ac.rel*math.Abs(want), actAbsBound))
				}
			}
			for shift := 0; shift < 17; shift++ {
				x := make([]float32, shift+len(actSpecials))
				copy(x[shift:], actSpecials)
				got := make([]float32, len(x))
				ac.f(got, x)
				checkAct(t, ac.name, ac.ref, ac.rel, x, got)
			}
			var x []float32
			for i := -3000; i <= 3000; i++ {
				x = append(x, float32(i)*float32(math.Abs(float64(i)))*1.7e-5)
			}
			got := make([]float32, len(x))
			ac.f(got, x)
			checkAct(t, ac.name+" sweep", ac.ref, ac.rel, x, got)
		})
	}
	t.Run("softmax", func(t *testing.T) {
		for c, n := range sizes {
			r := vecRNG(t, c)
			for _, row := range [][]float32{
				vecRand(r, n, -10, 10),
				vecRand(r, n, -1e4, 1e4),
				append(vecRand(r, n-1, -1, 1), float32(math.Inf(-1))),
			} {
				got := append([]float32(nil), row...)
				k.softmax(got, n)
				checkSoftmaxRow(t, row, got)
			}
		}
	})
	t.Run("layernorm", func(t *testing.T) {
		for _, gen := range layerNormRows {
			for c, n := range sizes {
				r := vecRNG(t, c)
				x := gen.f(r, n)
				gamma, beta := vecRand(r, n, -2, 2), vecRand(r, n, -1, 1)
				out, mean, rstd := make([]float32, n), make([]float32, 1), make([]float32, 1)
				k.layerNorm(out, x, gamma, beta, n, 1e-5, mean, rstd)
				checkLayerNormRow(t, "LayerNorm "+gen.name, x, gamma, beta, out, 1e-5, mean[0], rstd[0])
				res := vecRand(r, n, -1, 1)
				sum := make([]float32, n)
				k.addLayerNorm(sum, out, x, res, gamma, beta, n, 1e-5)
				for i := range x {
					if sum[i] != x[i]+res[i] {
						t.Fatalf("AddLayerNorm sum[%d] = %v, want %v", i, sum[i], x[i]+res[i])
					}
				}
				_, mu, rs := layerNormRef(sum, 1e-5)
				checkLayerNormRow(t, "AddLayerNorm "+gen.name, sum, gamma, beta, out, 1e-5, float32(mu), float32(rs))
			}
		}
	})
	t.Run("reductions", func(t *testing.T) {
		for c, n := range append(sizes, 1000) {
			r := vecRNG(t, c)
			x, y := vecRand(r, n, -2, 3), vecRand(r, n, -2, 2)
			var s, ss, d, as, ass, ad float64
			mx := math.Inf(-1)
			for i, v := range x {
				s += float64(v)
				as += math.Abs(float64(v))
				ss += float64(v) * float64(v)
				d += float64(v) * float64(y[i])
				ad += math.Abs(float64(v) * float64(y[i]))
				mx = math.Max(mx, float64(v))
			}
			ass = ss
			tol := float64(n) * vecEps
			if math.Abs(float64(k.sum(x))-s) > tol*as || math.Abs(float64(k.sumSq(x))-ss) > tol*ass || math.Abs(float64(k.dot(x, y))-d) > tol*ad {
				t.Fatalf("n=%d: sum %v/%v sumsq %v/%v dot %v/%v", n, k.sum(x), s, k.sumSq(x), ss, k.dot(x, y), d)
			}
			if float64(k.max(x)) != mx {
				t.Fatalf("max n=%d: %v, want %v", n, k.max(x), mx)
			}
			neg := vecRand(r, n, -1e6, -1e3)
			want := math.Inf(-1)
			for _, v := range neg {
				want = math.Max(want, float64(v))
			}
			if float64(k.max(neg)) != want {
				t.Fatalf("max of negatives n=%d: %v, want %v", n, k.max(neg), want)
			}
			for _, pos := range []int{0, n / 2, n - 1} {
				z := append([]float32(nil), x...)
				z[pos] = float32(math.NaN())
				if got := k.max(z); got == got {
					t.Fatalf("max with NaN at %d of %d = %v", pos, n, got)
				}
			}
		}
	})
	t.Run("elementwise", func(t *testing.T) {
		for c, n := range sizes {
			r := vecRNG(t, c)
			x, y := vecRand(r, n, -5, 5), vecRand(r, n, -5, 5)
			got := make([]float32, n)
			k.add(got, x, y)
			for i := range x {
				if got[i] != x[i]+y[i] {
					t.Fatalf("add[%d]", i)
				}
			}
			k.mul(got, x, y)
			for i := range x {
				if got[i] != x[i]*y[i] {
					t.Fatalf("mul[%d]", i)
				}
			}
			copy(got, y)
			k.axpy(0.7, x, got)
			for i := range x {
				ax := float64(float32(0.7)) * float64(x[i])
				if math.Abs(float64(got[i])-(ax+float64(y[i]))) > vecEps*(math.Abs(ax)+math.Abs(float64(y[i]))) {
					t.Fatalf("axpy[%d]", i)
				}
			}
			copy(got, x)
			k.scale(-2.5, got)
			for i := range x {
				if got[i] != -2.5*x[i] {
					t.Fatalf("scale[%d]", i)
				}
			}
			copy(got, x)
			k.addBias(got, y)
			for i := range x {
				if got[i] != x[i]+y[i] {
					t.Fatalf("addbias[%d]", i)
				}
			}
		}
	})
}

// TestVecEmuAVX512Errors measures the emulated AVX-512 exp, GELU and
// QuickGELU over every 977th float32 when MOPECLIP_VEC_EXHAUSTIVE=1 (as
// TestVecActivationErrors does for the native variants).
func TestVecEmuAVX512Errors(t *testing.T) {
	if os.Getenv("MOPECLIP_VEC_EXHAUSTIVE") == "" {
		t.Skip("set MOPECLIP_VEC_EXHAUSTIVE=1")
	}
	vecEmuSetup(t)
	k := vecEmuSet(t, true)
	var x []float32
	for b := uint64(0); b < 1<<32; b += 977 {
		if f := math.Float32frombits(uint32(b)); f == f && !math.IsInf(float64(f), 0) {
			x = append(x, f)
		}
	}
	got := make([]float32, len(x))
	k.exp(got, x)
	checkExp(t, x, got)
	var worstULP float64
	for i, v := range x {
		want := math.Exp(float64(v))
		if want <= math.MaxFloat32 {
			worstULP = math.Max(worstULP, math.Abs(float64(got[i])-want)/vecULP(want))
		}
	}
	t.Logf("exp: max error %.3f ulp", worstULP)
	for _, ac := range []struct {
		name string
		f    func(dst, x []float32)
		ref  func(float64) float64
		rel  float64
	}{
		{"QuickGELU", k.quickGelu, quickGeluRef, quickGeluRelBound},
		{"GELU", k.gelu, geluRef, geluRelBound},
	} {
		ac.f(got, x)
		var worst float64
		for i, v := range x {
			want := ac.ref(float64(v))
			if math.Abs(want) >= 0x1p-126 {
				worst = math.Max(worst, math.Abs(float64(got[i])-want)/math.Abs(want))
			}
		}
		t.Logf("%s: max relative error %.3g", ac.name, worst)
		if worst > ac.rel {
			t.Fatalf("%s: max relative error %.3g > %.3g", ac.name, worst, ac.rel)
		}
	}
}

// TestVecEmuQuickGeluBwd checks the fused QuickGELU backward kernels in the
// interpreter: the emulated AVX2 kernel must match the native one bit for
// bit, and the emulated AVX-512 kernel must equal quickGeluBackwardVia over
// the emulated AVX-512 exp bit for bit (the AVX2 kernel's contract) and
// pass TestVecActivationBackward's accuracy bound, guards included.
func TestVecEmuQuickGeluBwd(t *testing.T) {
	vecEmuSetup(t)
	e := &vecEmuKernels{t: t}
	emu2, emu512 := e.binary(quickGeluBwdAVX2), e.binary(quickGeluBwdAVX512)
	via512 := quickGeluBackwardVia(e.unary(expAVX512))
	same := func(what string, x, got, want []float32) {
		t.Helper()
		for i := range want {
			g, w := got[i], want[i]
			if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
				t.Fatalf("%s x[%d]=%v: got %v (%#x), want %v (%#x)", what, i, x[i], g, math.Float32bits(g), w, math.Float32bits(w))
			}
		}
	}
	sig := func(z float64) float64 { return 1 / (1 + math.Exp(-z)) }
	for c, n := range []int{1, 7, 8, 9, 15, 16, 17, 31, 33, 65, 127, 200} {
		r := vecRNG(t, c)
		x, dy := vecRand(r, n, -7, 7), vecRand(r, n, -2, 2)
		for i := range x {
			if i%5 == 0 {
				x[i] = actSpecials[r.IntN(len(actSpecials))]
			}
		}
		g, w := make([]float32, n), make([]float32, n)
		emu2(g, x, dy)
		binaryVariant(quickGeluBwdAVX2)(w, x, dy)
		same("avx2", x, g, w)
		xb, dyb, got := vecBufOf(x), vecBufOf(dy), newVecBuf(n)
		emu512(got.s, xb.s, dyb.s)
		for _, b := range []*vecBuf{xb, dyb, got} {
			b.check(t, "quickGeluBwdAVX512")
		}
		via512(w, x, dy)
		same("avx512", x, got.s, w)
		for i, v := range x {
			if v != v || math.IsInf(float64(v), 0) {
				continue
			}
			xv := float64(v)
			want := float64(dy[i]) * vecNumGrad(quickGeluRef, xv)
			s := sig(1.702 * xv)
			tol := 2e-6*math.Abs(float64(dy[i]))*(s+math.Abs(1.702*xv*s*(1-s))) + 1e-30
			vecCheckClose(t, "quickGeluBwdAVX512", i, v, got.s[i], want, tol)
		}
	}
}

// layerNormBwd adapts a LayerNormBackward row kernel: one emulated call per
// row, each buffer exactly the row (or n) long.
func (e *vecEmuKernels) layerNormBwd(fn any) func(dx, dgamma, dbeta, x, dy, gamma, mean, rstd []float32, n int) {
	p := vecLoadProg(e.t, fn)
	return func(dx, dgamma, dbeta, x, dy, gamma, mean, rstd []float32, n int) {
		for r := 0; r*n < len(x); r++ {
			b := vecEmuBufs(e.off, dx[r*n:(r+1)*n], dgamma[:n], dbeta[:n], append([]float32(nil), x[r*n:(r+1)*n]...),
				append([]float32(nil), dy[r*n:(r+1)*n]...), append([]float32(nil), gamma[:n]...))
			e.off++
			vecEmuCall(e.t, p, []uint64{b[0].addr, b[1].addr, b[2].addr, b[3].addr, b[4].addr, b[5].addr,
				uint64(n), w32(mean[r]) | w32(rstd[r])<<32}, b...)
		}
	}
}

// TestVecEmuLayerNormBwd checks the LayerNormBackward row kernels in the
// interpreter: emulated AVX2 equals native AVX2 bit for bit, and emulated
// AVX-512 is within float32 rounding of the float64 generic kernel (the
// algorithm is the AVX2 one, whose accuracy TestVecLayerNormBackward
// checks against central differences), every tail length included.
func TestVecEmuLayerNormBwd(t *testing.T) {
	vecEmuSetup(t)
	e := &vecEmuKernels{t: t}
	emu2, emu512 := e.layerNormBwd(layerNormBwdRowAVX2), e.layerNormBwd(layerNormBwdRowAVX512)
	nat2 := layerNormBwdVariant(layerNormBwdRowAVX2)
	for c, n := range []int{1, 7, 8, 9, 15, 16, 17, 31, 33, 65, 127, 200} {
		r := vecRNG(t, c)
		rows := 1 + r.IntN(3)
		x, dy := vecRand(r, rows*n, -3, 3), vecRand(r, rows*n, -1, 1)
		gamma, dg0, db0 := vecRand(r, n, -2, 2), vecRand(r, n, -1, 1), vecRand(r, n, -1, 1)
		mean, rstd := make([]float32, rows), make([]float32, rows)
		for i := 0; i < rows; i++ {
			_, mu, rs := layerNormRef(x[i*n:(i+1)*n], 1e-5)
			mean[i], rstd[i] = float32(mu), float32(rs)
		}
		type out struct{ dx, dg, db []float32 }
		run := func(k func(dx, dgamma, dbeta, x, dy, gamma, mean, rstd []float32, n int)) out {
			o := out{make([]float32, rows*n), append([]float32(nil), dg0...), append([]float32(nil), db0...)}
			k(o.dx, o.dg, o.db, x, dy, gamma, mean, rstd, n)
			return o
		}
		e2, n2, e512, ref := run(emu2), run(nat2), run(emu512), run(layerNormBackwardGeneric)
		for _, p := range [][2][]float32{{e2.dx, n2.dx}, {e2.dg, n2.dg}, {e2.db, n2.db}} {
			for i := range p[1] {
				if math.Float32bits(p[0][i]) != math.Float32bits(p[1][i]) {
					t.Fatalf("n=%d: emulated AVX2 %v at %d, native %v", n, p[0][i], i, p[1][i])
				}
			}
		}
		for _, p := range [][2][]float32{{e512.dx, ref.dx}, {e512.dg, ref.dg}, {e512.db, ref.db}} {
			var scale float64
			for _, v := range p[1] {
				scale = max(scale, math.Abs(float64(v)))
			}
			for i := range p[1] {
				if d := math.Abs(float64(p[0][i]) - float64(p[1][i])); !(d <= 2e-6*(scale+1)*float64(rows)) {
					t.Fatalf("n=%d rows=%d: AVX-512 %v at %d, generic %v", n, rows, p[0][i], i, p[1][i])
				}
			}
		}
	}
}

// TestVecEmuSoftmaxBwd checks the SoftmaxBackwardRows row kernels in the
// interpreter: emulated AVX2 equals native AVX2 bit for bit, and emulated
// AVX-512 is within float32 rounding of the float64 generic kernel, every
// tail length included, with guards around the output.
func TestVecEmuSoftmaxBwd(t *testing.T) {
	vecEmuSetup(t)
	e := &vecEmuKernels{t: t}
	emu2, emu512 := e.binary(softmaxBwdRowAVX2), e.binary(softmaxBwdRowAVX512)
	for c, n := range []int{1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 127, 200} {
		r := vecRNG(t, c)
		y, dy := vecRand(r, n, -5, 5), vecRand(r, n, -1, 1)
		SoftmaxRows(y, n)
		g, w := make([]float32, n), make([]float32, n)
		emu2(g, y, dy)
		softmaxBwdRowAVX2(&w[0], &y[0], &dy[0], n)
		for i := range w {
			if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
				t.Fatalf("n=%d: emulated AVX2 %v at %d, native %v", n, g[i], i, w[i])
			}
		}
		yb, dyb, got := vecBufOf(y), vecBufOf(dy), newVecBuf(n)
		emu512(got.s, yb.s, dyb.s)
		for _, b := range []*vecBuf{yb, dyb, got} {
			b.check(t, "softmaxBwdRowAVX512")
		}
		softmaxBackwardGeneric(w, y, dy, n)
		var scale float64
		for i := range y {
			scale += math.Abs(float64(y[i]) * float64(dy[i]))
		}
		for i := range w {
			tol := 1e-6*(scale+math.Abs(float64(dy[i])))*float64(y[i]) + 1e-12
			if d := math.Abs(float64(got.s[i]) - float64(w[i])); !(d <= tol) {
				t.Fatalf("n=%d: AVX-512 %v at %d, generic %v", n, got.s[i], i, w[i])
			}
		}
	}
}
