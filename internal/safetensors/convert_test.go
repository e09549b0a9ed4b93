package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// refF16 is an independent, arithmetic decoding of binary16 into float64.
func refF16(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0:
		return s * math.Ldexp(m, -24)
	case 31:
		if m == 0 {
			return math.Inf(int(s))
		}
		return math.NaN()
	}
	return s * math.Ldexp(1024+m, e-25)
}

func TestF16ToFloat32Exhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := F16ToFloat32(h)
		want := refF16(h)
		gb := math.Float32bits(got)
		if math.IsNaN(want) {
			// A NaN keeps its sign and payload, shifted into place.
			wb := uint32(h&0x8000)<<16 | 0x7f800000 | uint32(h&0x3ff)<<13
			if gb != wb {
				t.Fatalf("F16ToFloat32(%#04x) = %#08x, want NaN %#08x", h, gb, wb)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("F16ToFloat32(%#04x) = %g (%#08x), want %g", h, got, gb, want)
		}
	}
}

func TestBF16ToFloat32Exhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := BF16ToFloat32(h)
		// bfloat16 has float32's exponent: decode arithmetically too.
		s := 1.0
		if h&0x8000 != 0 {
			s = -1
		}
		e := int(h>>7) & 0xff
		m := float64(h & 0x7f)
		var want float64
		switch e {
		case 0:
			want = s * math.Ldexp(m, -133)
		case 255:
			if m == 0 {
				want = math.Inf(int(s))
			} else {
				want = math.NaN()
			}
		default:
			want = s * math.Ldexp(128+m, e-134)
		}
		if math.IsNaN(want) {
			if math.Float32bits(got) != uint32(h)<<16 {
				t.Fatalf("BF16ToFloat32(%#04x) = %#08x, want the NaN %#08x", h, math.Float32bits(got), uint32(h)<<16)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("BF16ToFloat32(%#04x) = %g, want %g", h, got, want)
		}
	}
}

// Every 16-bit pattern, NaNs included, survives widening and narrowing.
func TestHalfRoundTripExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		if got := Float32ToF16(F16ToFloat32(h)); got != h {
			t.Fatalf("F16 %#04x -> %g -> %#04x", h, F16ToFloat32(h), got)
		}
		if got := Float32ToBF16(BF16ToFloat32(h)); got != h {
			t.Fatalf("BF16 %#04x -> %g -> %#04x", h, BF16ToFloat32(h), got)
		}
	}
}

// refRound rounds a non-negative finite x to nearest-even among the ordered
// non-negative finite codes [0, maxFinite] of a format decoded by dec, with
// overflow at the value infVal (what the next code would be worth with an
// unbounded exponent). Midpoints of neighbouring codes are exact in float64,
// so the comparison is exact.
func refRound(x float64, dec func(uint16) float64, maxFinite uint16, infVal float64) uint16 {
	// Largest code whose value is <= x.
	lo := uint16(sort.Search(int(maxFinite)+1, func(i int) bool { return dec(uint16(i)) > x }) - 1)
	hiVal := infVal
	if lo < maxFinite {
		hiVal = dec(lo + 1)
	}
	mid := (dec(lo) + hiVal) / 2
	switch {
	case x < mid:
		return lo
	case x > mid:
		return lo + 1
	case lo&1 == 0:
		return lo
	}
	return lo + 1
}

func refFloat32ToF16(f float32) uint16 {
	x := float64(f)
	var sign uint16
	if math.Signbit(x) {
		sign = 0x8000
		x = -x
	}
	if math.IsInf(x, 0) {
		return sign | 0x7c00
	}
	return sign | refRound(x, refF16, 0x7bff, 65536)
}

func refFloat32ToBF16(f float32) uint16 {
	x := float64(f)
	var sign uint16
	if math.Signbit(x) {
		sign = 0x8000
		x = -x
	}
	if math.IsInf(x, 0) {
		return sign | 0x7f80
	}
	dec := func(h uint16) float64 { return float64(BF16ToFloat32(h)) }
	return sign | refRound(x, dec, 0x7f7f, math.Ldexp(1, 128))
}

func checkNarrow(t *testing.T, f float32) {
	t.Helper()
	if math.IsNaN(float64(f)) {
		if h := Float32ToF16(f); h&0x7c00 != 0x7c00 || h&0x3ff == 0 || h>>15 != uint16(math.Float32bits(f)>>31) {
			t.Fatalf("Float32ToF16(NaN %#08x) = %#04x, not a NaN of the same sign", math.Float32bits(f), h)
		}
		if h := Float32ToBF16(f); h&0x7f80 != 0x7f80 || h&0x7f == 0 || h>>15 != uint16(math.Float32bits(f)>>31) {
			t.Fatalf("Float32ToBF16(NaN %#08x) = %#04x, not a NaN of the same sign", math.Float32bits(f), h)
		}
		return
	}
	if got, want := Float32ToF16(f), refFloat32ToF16(f); got != want {
		t.Fatalf("Float32ToF16(%g = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
	}
	if got, want := Float32ToBF16(f), refFloat32ToBF16(f); got != want {
		t.Fatalf("Float32ToBF16(%g = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
	}
}

// For every pair of neighbouring 16-bit codes, the values at, just around
// and exactly between them round the right way (ties to even).
func TestNarrowingBoundariesExhaustive(t *testing.T) {
	probe := func(v float64) {
		f := float32(v)
		if float64(f) != v {
			t.Fatalf("probe %g is not a float32", v)
		}
		for _, g := range []float32{f, math.Nextafter32(f, float32(math.Inf(-1))), math.Nextafter32(f, float32(math.Inf(1)))} {
			checkNarrow(t, g)
			checkNarrow(t, -g)
		}
	}
	for h := uint16(0); h <= 0x7bff; h++ {
		lo := refF16(h)
		hi := 65536.0
		if h < 0x7bff {
			hi = refF16(h + 1)
		}
		probe(lo)
		probe((lo + hi) / 2)
	}
	for h := uint16(0); h <= 0x7f7f; h++ {
		lo := float64(BF16ToFloat32(h))
		hi := math.Ldexp(1, 128)
		if h < 0x7f7f {
			hi = float64(BF16ToFloat32(h + 1))
		}
		probe(lo)
		if mid := (lo + hi) / 2; mid <= math.MaxFloat32 {
			probe(mid)
		}
	}
	probe(65520) // the F16 overflow threshold, a tie that goes to Inf
	checkNarrow(t, float32(math.Inf(1)))
	checkNarrow(t, float32(math.Inf(-1)))
	checkNarrow(t, math.MaxFloat32)
	checkNarrow(t, math.Float32frombits(1))
	checkNarrow(t, math.Float32frombits(0x7f800001))
	checkNarrow(t, math.Float32frombits(0xffc00000))
}

func TestNarrowingRandom(t *testing.T) {
	n := 1 << 20
	if testing.Short() {
		n = 1 << 16
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i++ {
		checkNarrow(t, math.Float32frombits(r.Uint32()))
	}
	if got := Float32ToF16(65520); got != 0x7c00 {
		t.Fatalf("Float32ToF16(65520) = %#04x, want Inf", got)
	}
	if got := Float32ToF16(65519.996); got != 0x7bff {
		t.Fatalf("Float32ToF16(65519.996) = %#04x, want 0x7bff", got)
	}
}

// pythonPath is the interpreter for the optional cross-checks.
func pythonPath() string {
	if p := os.Getenv("MOPECLIP_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// requirePython skips unless the interpreter can import mod; under
// MOPECLIP_REQUIRE_TORCH=1 (CI, which installs numpy and torch) a missing
// numpy is a failure instead.
func requirePython(t *testing.T, mod string, mandatory bool) string {
	t.Helper()
	py := pythonPath()
	if out, err := exec.Command(py, "-c", "import "+mod).CombinedOutput(); err != nil {
		if mandatory && os.Getenv("MOPECLIP_REQUIRE_TORCH") == "1" {
			t.Fatalf("%s cannot import %s: %v\n%s", py, mod, err, out)
		}
		t.Skipf("%s cannot import %s: %v", py, mod, err)
	}
	return py
}

// NumPy's float16 conversions (round to nearest even) agree with ours on all
// 65536 halves and on a million float32 inputs.
func TestF16AgainstNumPy(t *testing.T) {
	py := requirePython(t, "numpy", true)
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	var f32 bytes.Buffer
	n := 1 << 20
	inputs := make([]float32, 0, n+1<<16)
	for i := 0; i < 1<<16; i++ { // every midpoint between neighbouring halves
		h := uint16(i)
		if h&0x7fff < 0x7bff {
			inputs = append(inputs, float32((refF16(h)+refF16(h+1))/2))
		}
	}
	for range n {
		v := math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(v)) {
			continue // NumPy's NaN payload handling differs, and does not matter
		}
		inputs = append(inputs, v)
	}
	for _, v := range inputs {
		binary.Write(&f32, binary.LittleEndian, v)
	}
	in := filepath.Join(dir, "in.f32")
	if err := os.WriteFile(in, f32.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
import sys, numpy as np
d = sys.argv[1]
np.arange(65536, dtype='<u2').view('<f2').astype('<f4').tofile(d + '/halves.f32')
np.fromfile(d + '/in.f32', dtype='<f4').astype('<f2').tofile(d + '/out.f16')
`
	if out, err := exec.Command(py, "-c", script, dir).CombinedOutput(); err != nil {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	halves, err := os.ReadFile(filepath.Join(dir, "halves.f32"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1<<16; i++ {
		want := binary.LittleEndian.Uint32(halves[4*i:])
		got := math.Float32bits(F16ToFloat32(uint16(i)))
		if math.IsNaN(float64(math.Float32frombits(want))) {
			if !math.IsNaN(float64(math.Float32frombits(got))) {
				t.Fatalf("half %#04x: got %#08x, numpy NaN", i, got)
			}
			continue
		}
		if got != want {
			t.Fatalf("half %#04x: got %#08x, numpy %#08x", i, got, want)
		}
	}
	out, err := os.ReadFile(filepath.Join(dir, "out.f16"))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range inputs {
		if got, want := Float32ToF16(v), binary.LittleEndian.Uint16(out[2*i:]); got != want {
			t.Fatalf("%g (%#08x): got %#04x, numpy %#04x", v, math.Float32bits(v), got, want)
		}
	}
	t.Logf("checked 65536 halves and %d float32 values against numpy", len(inputs))
}

func BenchmarkF16ToFloat32(b *testing.B) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	var sink float32
	b.SetBytes(int64(2 * len(src)))
	for b.Loop() {
		for _, h := range src {
			sink += F16ToFloat32(h)
		}
	}
	_ = fmt.Sprint(sink)
}
