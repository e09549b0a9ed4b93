package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// rawFile assembles a file from a header string and a data buffer, without
// any padding: the layout the tests control byte by byte.
func rawFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func encode(t testing.TB, f *File) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, f); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return buf.Bytes()
}

// sameFile compares two Files, float data bit for bit (so NaN payloads and
// signed zeros count) and treating nil and empty slices alike.
func sameFile(a, b *File) error {
	if !slices.Equal(a.Names, b.Names) {
		return fmt.Errorf("names %q vs %q", a.Names, b.Names)
	}
	if len(a.Tensors) != len(b.Tensors) {
		return fmt.Errorf("%d vs %d tensors", len(a.Tensors), len(b.Tensors))
	}
	if (a.Metadata == nil) != (b.Metadata == nil) || !reflect.DeepEqual(a.Metadata, b.Metadata) && len(a.Metadata)+len(b.Metadata) > 0 {
		return fmt.Errorf("metadata %v vs %v", a.Metadata, b.Metadata)
	}
	for _, name := range a.Names {
		x, y := a.Tensors[name], b.Tensors[name]
		if x == nil || y == nil {
			return fmt.Errorf("tensor %q missing", name)
		}
		if x.DType != y.DType || !slices.Equal(x.Shape, y.Shape) {
			return fmt.Errorf("tensor %q: %s%v vs %s%v", name, x.DType, x.Shape, y.DType, y.Shape)
		}
		if len(x.F32) != len(y.F32) || len(x.I64) != len(y.I64) {
			return fmt.Errorf("tensor %q: data lengths differ", name)
		}
		for i := range x.F32 {
			if math.Float32bits(x.F32[i]) != math.Float32bits(y.F32[i]) {
				return fmt.Errorf("tensor %q[%d]: %#08x vs %#08x", name, i, math.Float32bits(x.F32[i]), math.Float32bits(y.F32[i]))
			}
		}
		if !slices.Equal(x.I64, y.I64) {
			return fmt.Errorf("tensor %q: I64 data differ", name)
		}
	}
	return nil
}

// pyTorchFixture is the file that
//
//	safetensors.torch.save_file({
//	    "weight": torch.tensor([[1.0, -2.0], [0.5, 3.0]]),
//	    "bias": torch.tensor([1.0, -0.5, 65504.0], dtype=torch.float16),
//	    "position_ids": torch.tensor([[0, 1, 2]]),
//	    "scale": torch.tensor(1.5, dtype=torch.bfloat16),
//	}, path, metadata={"format": "pt"})
//
// writes: tensors ordered by dtype alignment descending, then name; compact
// JSON with "__metadata__" first; header padded with spaces to a multiple of
// 8; little-endian data. Written out by hand, byte by byte.
func pyTorchFixture() (want []byte, f *File) {
	header := `{"__metadata__":{"format":"pt"},` +
		`"position_ids":{"dtype":"I64","shape":[1,3],"data_offsets":[0,24]},` +
		`"weight":{"dtype":"F32","shape":[2,2],"data_offsets":[24,40]},` +
		`"scale":{"dtype":"BF16","shape":[],"data_offsets":[40,42]},` +
		`"bias":{"dtype":"F16","shape":[3],"data_offsets":[42,48]}}` +
		"  " // 278 bytes of JSON + 2 spaces = 280
	want = []byte{0x18, 0x01, 0, 0, 0, 0, 0, 0} // 280
	want = append(want, header...)
	want = append(want,
		0, 0, 0, 0, 0, 0, 0, 0, // position_ids: 0, 1, 2
		1, 0, 0, 0, 0, 0, 0, 0,
		2, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0x00, 0x80, 0x3f, // weight: 1.0
		0x00, 0x00, 0x00, 0xc0, // -2.0
		0x00, 0x00, 0x00, 0x3f, // 0.5
		0x00, 0x00, 0x40, 0x40, // 3.0
		0xc0, 0x3f, // scale: bf16 1.5
		0x00, 0x3c, // bias: f16 1.0
		0x00, 0xb8, // -0.5
		0xff, 0x7b, // 65504
	)
	f = &File{Metadata: map[string]string{"format": "pt"}}
	f.Add("position_ids", &Tensor{DType: I64, Shape: []int{1, 3}, I64: []int64{0, 1, 2}})
	f.Add("weight", &Tensor{DType: F32, Shape: []int{2, 2}, F32: []float32{1, -2, 0.5, 3}})
	f.Add("scale", &Tensor{DType: BF16, Shape: []int{}, F32: []float32{1.5}})
	f.Add("bias", &Tensor{DType: F16, Shape: []int{3}, F32: []float32{1, -0.5, 65504}})
	return want, f
}

func TestPyTorchByteCompatibility(t *testing.T) {
	want, f := pyTorchFixture()
	if len(want) != 8+280+48 {
		t.Fatalf("fixture is %d bytes", len(want))
	}
	got := encode(t, f)
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode differs from the PyTorch layout:\n got %q\nwant %q", got, want)
	}
	back, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameFile(back, f); err != nil {
		t.Fatal(err)
	}
}

// Outputs of the reference (Rust) implementation's own serialisation tests.
func TestReferenceSerializationVectors(t *testing.T) {
	f32le := func(vs ...float32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		return b
	}
	one := func(name string, shape ...int) *File {
		f := &File{}
		f.Add(name, &Tensor{DType: F32, Shape: shape, F32: []float32{0, 1, 2, 3, 4, 5}})
		return f
	}
	cases := []struct {
		name string
		f    *File
		want []byte
	}{
		{"empty", &File{}, []byte("\x08\x00\x00\x00\x00\x00\x00\x00{}      ")},
		{"empty with metadata", &File{Metadata: map[string]string{"framework": "pt"}},
			[]byte("\x28\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\":{\"framework\":\"pt\"}}     ")},
		{"no padding needed", one("attn.0", 1, 2, 3),
			append([]byte("\x40\x00\x00\x00\x00\x00\x00\x00{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}"), f32le(0, 1, 2, 3, 4, 5)...)},
		{"forced alignment", one("attn0", 1, 1, 2, 3),
			append([]byte("\x48\x00\x00\x00\x00\x00\x00\x00{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       "), f32le(0, 1, 2, 3, 4, 5)...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := encode(t, c.f); !bytes.Equal(got, c.want) {
				t.Fatalf("\n got %q\nwant %q", got, c.want)
			}
			if _, err := Decode(c.want); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// With the Python safetensors package installed, files it writes are
// byte-identical to ours and each side reads the other's.
func TestPythonSafetensorsInterop(t *testing.T) {
	py := requirePython(t, "safetensors.numpy, numpy", false)
	dir := t.TempDir()
	theirs := filepath.Join(dir, "theirs.safetensors")
	ours := filepath.Join(dir, "ours.safetensors")
	// One metadata key, so that the reference's hash-map order cannot differ.
	script := `
import sys, numpy as np
from safetensors.numpy import save_file, load_file
save_file({
    "w": np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5,
    "h": np.array([1.0, -0.5, 65504.0, 6e-8], dtype=np.float16),
    "ids": np.array([[0, -1, 2**62]], dtype=np.int64),
    "a.b": np.array(7.25, dtype=np.float32),
}, sys.argv[1], metadata={"format": "np"})
got = load_file(sys.argv[2])
assert got["x"].dtype == np.float32 and got["x"].shape == (2, 2), got["x"]
assert (got["x"] == np.array([[1, 2], [3, 4]], dtype=np.float32)).all()
assert got["y"].dtype == np.float16 and got["y"].tolist() == [0.5, -2.0]
assert got["z"].dtype == np.int64 and got["z"].tolist() == [-7]
`
	f := &File{Metadata: map[string]string{"k": "v"}}
	f.Add("x", &Tensor{DType: F32, Shape: []int{2, 2}, F32: []float32{1, 2, 3, 4}})
	f.Add("y", &Tensor{DType: F16, Shape: []int{2}, F32: []float32{0.5, -2}})
	f.Add("z", &Tensor{DType: I64, Shape: []int{1}, I64: []int64{-7}})
	if err := Save(ours, f); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, "-c", script, theirs, ours).CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ids", "a.b", "w", "h"}; !slices.Equal(got.Names, want) {
		t.Fatalf("names %q, want the reference's order %q", got.Names, want)
	}
	if v, _, _ := got.Float32("h"); v[3] != F16ToFloat32(Float32ToF16(6e-8)) {
		t.Fatalf("h = %v", v)
	}
	if !bytes.Equal(encode(t, got), raw) {
		t.Fatalf("re-encoding the reference's file changed its bytes")
	}
}

func TestRoundTripEveryDType(t *testing.T) {
	nan := math.Float32frombits(0x7fc12345)
	f32 := []float32{0, float32(math.Copysign(0, -1)), 1, -1.5, math.MaxFloat32, math.SmallestNonzeroFloat32,
		float32(math.Inf(1)), float32(math.Inf(-1)), nan, 3.14159265, 1e-40}
	// Values exactly representable in the narrow types come back bit for bit.
	f16 := []float32{0, float32(math.Copysign(0, -1)), 1, -2, 65504, -65504, 6.1035156e-05, 5.9604645e-08,
		float32(math.Inf(1)), float32(math.Inf(-1)), F16ToFloat32(0x7e01), F16ToFloat32(0xfc01)}
	bf16 := []float32{0, 1, -3.5, BF16ToFloat32(0x7f7f), BF16ToFloat32(0x0001), float32(math.Inf(-1)), BF16ToFloat32(0x7fc1)}
	i64 := []int64{0, 1, -1, math.MaxInt64, math.MinInt64, 1 << 40}
	build := func() *File {
		f := &File{Metadata: map[string]string{"format": "pt", "quote\"\\\n\x01é": "✓ <&> \u2028"}}
		f.Add("f32", &Tensor{DType: F32, Shape: []int{11}, F32: f32})
		f.Add("f16", &Tensor{DType: F16, Shape: []int{3, 4}, F32: f16})
		f.Add("bf16", &Tensor{DType: BF16, Shape: []int{7, 1}, F32: bf16})
		f.Add("i64", &Tensor{DType: I64, Shape: []int{2, 3}, I64: i64})
		f.Add("scalar", &Tensor{DType: F32, Shape: []int{}, F32: []float32{42}})
		f.Add("empty", &Tensor{DType: F16, Shape: []int{0, 5}, F32: nil})
		f.Add("empty_i64", &Tensor{DType: I64, Shape: []int{0}})
		f.Add("odd\tname \"q\" ü", &Tensor{DType: BF16, Shape: []int{1}, F32: []float32{-0.0}})
		return f
	}
	for _, native := range []bool{true, false} {
		t.Run(fmt.Sprintf("native=%v", native), func(t *testing.T) {
			defer func(old bool) { nativeLittleEndian = old }(nativeLittleEndian)
			nativeLittleEndian = native && nativeLittleEndian

			f := build()
			data := encode(t, f)
			back, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameFile(back, f); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "m.safetensors")
			if err := Save(path, f); err != nil {
				t.Fatal(err)
			}
			onDisk, _ := os.ReadFile(path)
			if !bytes.Equal(onDisk, data) {
				t.Fatal("Save and Encode wrote different bytes")
			}
			loaded, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameFile(loaded, f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNarrowingOnWrite(t *testing.T) {
	vals := []float32{1 + 1.0/2048, 1 + 3.0/2048, 70000, 1e-9, 0.1}
	f := &File{}
	f.Add("h", &Tensor{DType: F16, Shape: []int{5}, F32: slices.Clone(vals)})
	f.Add("b", &Tensor{DType: BF16, Shape: []int{5}, F32: slices.Clone(vals)})
	back, err := Decode(encode(t, f))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if got, want := back.Tensors["h"].F32[i], F16ToFloat32(Float32ToF16(v)); math.Float32bits(got) != math.Float32bits(want) {
			t.Errorf("F16 %g -> %g, want %g", v, got, want)
		}
		if got, want := back.Tensors["b"].F32[i], BF16ToFloat32(Float32ToBF16(v)); math.Float32bits(got) != math.Float32bits(want) {
			t.Errorf("BF16 %g -> %g, want %g", v, got, want)
		}
	}
	// Ties to even: 1+2^-11 lies between 1 and 1+2^-10 and goes to 1;
	// 1+3·2^-11 goes up to 1+2^-9.
	if h := back.Tensors["h"].F32; h[0] != 1 || h[1] != 1+4.0/2048 || !math.IsInf(float64(h[2]), 1) {
		t.Errorf("F16 rounding: %v", h)
	}
}

// Tensors larger than the staging buffers, in every dtype, on both paths.
func TestLoadLargeTensors(t *testing.T) {
	const n = 3*loadChunk/2 + 7
	f := &File{}
	for _, dt := range []DType{F32, F16, BF16} {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i%256-128) * float32(int(1)<<(i%3)) // exact in every dtype
		}
		f.Add(string(dt), &Tensor{DType: dt, Shape: []int{n}, F32: v})
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i) * -12345
	}
	f.Add("i64", &Tensor{DType: I64, Shape: []int{n}, I64: ids})
	for _, native := range []bool{true, false} {
		t.Run(fmt.Sprintf("native=%v", native), func(t *testing.T) {
			defer func(old bool) { nativeLittleEndian = old }(nativeLittleEndian)
			nativeLittleEndian = native && nativeLittleEndian
			path := filepath.Join(t.TempDir(), "big.safetensors")
			if err := Save(path, f); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameFile(got, f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Loading an F32 checkpoint allocates about its size once: the data are read
// straight into the tensors.
func TestLoadMemory(t *testing.T) {
	if !nativeLittleEndian {
		t.Skip("big-endian machines stage through a buffer")
	}
	const elems = 8 << 20 // 32 MiB of F32
	f := &File{}
	for i := range 4 {
		f.Add(fmt.Sprintf("layer.%d", i), &Tensor{DType: F32, Shape: []int{elems / 4}, F32: make([]float32, elems/4)})
	}
	path := filepath.Join(t.TempDir(), "big.safetensors")
	if err := Save(path, f); err != nil {
		t.Fatal(err)
	}
	f = nil
	measure := func(load func() *File) uint64 {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		got := load()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(got)
		return after.TotalAlloc - before.TotalAlloc
	}
	size := uint64(elems * 4)
	if got := measure(func() *File {
		g, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}); got > size+size/16 {
		t.Errorf("Load allocated %d bytes for a %d-byte checkpoint", got, size)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := measure(func() *File {
		g, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}); got > size+size/16 {
		t.Errorf("Decode allocated %d bytes beyond its %d-byte input", got, size)
	}
}

func TestReadHeader(t *testing.T) {
	want, _ := pyTorchFixture()
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h.Names(), []string{"position_ids", "weight", "scale", "bias"}) {
		t.Fatalf("names %q", h.Names())
	}
	if h.DataOffset != 288 || h.DataSize != 48 || h.Metadata["format"] != "pt" {
		t.Fatalf("DataOffset %d DataSize %d Metadata %v", h.DataOffset, h.DataSize, h.Metadata)
	}
	w, ok := h.Tensor("weight")
	if !ok || w.DType != F32 || !slices.Equal(w.Shape, []int{2, 2}) || w.Begin != 24 || w.End != 40 || w.NumElements() != 4 {
		t.Fatalf("weight: %+v", w)
	}
	if _, ok := h.Tensor("nope"); ok {
		t.Fatal("found a missing tensor")
	}

	// ReadHeader describes dtypes that Load refuses.
	other := rawFile(`{"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"q":{"dtype":"F4","shape":[2,3],"data_offsets":[16,19]}}`, make([]byte, 19))
	opath := filepath.Join(dir, "f64.safetensors")
	if err := os.WriteFile(opath, other, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err = ReadHeader(opath)
	if err != nil {
		t.Fatal(err)
	}
	if h.Tensors[0].DType != "F64" || h.Tensors[1].DType != "F4" || h.Tensors[0].DType.Supported() || !h.Tensors[0].DType.Known() {
		t.Fatalf("%+v", h.Tensors)
	}
	_, err = Load(opath)
	if err == nil || !strings.Contains(err.Error(), `unsupported dtype F64 for tensor "d"`) || !strings.Contains(err.Error(), opath) || !errors.Is(err, ErrFormat) {
		t.Fatalf("Load: %v", err)
	}
	if _, err := ReadHeader(filepath.Join(dir, "missing")); err == nil || errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("ReadHeader(missing): %v", err)
	}
}

func TestFileHelpers(t *testing.T) {
	f := &File{}
	f.Add("a", &Tensor{DType: F32, Shape: []int{1}, F32: []float32{1}})
	f.Add("b", &Tensor{DType: I64, Shape: []int{1}, I64: []int64{2}})
	f.Add("a", &Tensor{DType: BF16, Shape: []int{2}, F32: []float32{3, 4}})
	if !slices.Equal(f.Names, []string{"a", "b"}) {
		t.Fatalf("names %q", f.Names)
	}
	if v, shape, err := f.Float32("a"); err != nil || !slices.Equal(v, []float32{3, 4}) || !slices.Equal(shape, []int{2}) {
		t.Fatalf("Float32(a) = %v %v %v", v, shape, err)
	}
	if _, _, err := f.Float32("b"); err == nil || !strings.Contains(err.Error(), `"b"`) || !strings.Contains(err.Error(), "I64") {
		t.Fatalf("Float32(b): %v", err)
	}
	if _, _, err := f.Float32("c"); err == nil || !strings.Contains(err.Error(), `"c"`) {
		t.Fatalf("Float32(c): %v", err)
	}
	if v, _, err := f.Int64("b"); err != nil || v[0] != 2 {
		t.Fatalf("Int64(b) = %v %v", v, err)
	}
	if _, _, err := f.Int64("a"); err == nil {
		t.Fatal("Int64(a) succeeded")
	}
}

// Every malformed input fails in Decode and Load alike, with an error that
// names the problem and the tensor or field; ErrFormat matches it.
func TestDecodeValidation(t *testing.T) {
	f32 := func(name, shape, offs string) string {
		return fmt.Sprintf(`%q:{"dtype":"F32","shape":%s,"data_offsets":%s}`, name, shape, offs)
	}
	obj := func(entries ...string) string { return "{" + strings.Join(entries, ",") + "}" }
	le := func(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, n) }
	cases := []struct {
		name string
		file []byte
		want []string
	}{
		{"empty file", nil, []string{"0 bytes", "shorter than the 8-byte header length"}},
		{"7 bytes", []byte{1, 0, 0, 0, 0, 0, 0}, []string{"7 bytes", "shorter"}},
		{"header past end", append(le(100), "{}"...), []string{"header length 100", "past the end"}},
		{"header over cap", append(le(MaxHeaderSize+1), "{}"...), []string{"header length 100000001", "exceeds the limit"}},
		{"header length 2^64-1", append(le(math.MaxUint64), "{}"...), []string{"header length 18446744073709551615", "exceeds the limit"}},
		{"truncated JSON", rawFile(`{"w":`, nil), []string{"invalid JSON", `tensor "w"`}},
		{"bad JSON", rawFile(`{"w" 1}`, nil), []string{"invalid JSON", "after object key"}},
		{"bad JSON in entry", rawFile(`{"w":{"dtype":"F32",}}`, nil), []string{"invalid JSON", `tensor "w"`}},
		{"empty header", rawFile(``, nil), []string{"invalid JSON", "unexpected end"}},
		{"not UTF-8", rawFile("{\"w\xff\":1}", nil), []string{"not valid UTF-8"}},
		{"header array", rawFile(`[1,2]`, nil), []string{"not a JSON object", "an array"}},
		{"header string", rawFile(`"x"`, nil), []string{"not a JSON object", `the string "x"`}},
		{"header null", rawFile(`null`, nil), []string{"not a JSON object", "null"}},
		{"trailing JSON", rawFile(`{}{}`, nil), []string{"data after the JSON object"}},
		{"trailing garbage", rawFile(`{} x`, nil), []string{"invalid JSON in header"}},
		{"unknown dtype", rawFile(`{"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)),
			[]string{`unknown dtype "F33" for tensor "w"`}},
		{"unsupported F64", rawFile(`{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)),
			[]string{`unsupported dtype F64 for tensor "w"`}},
		{"unsupported I32", rawFile(`{"w":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)),
			[]string{`unsupported dtype I32 for tensor "w"`}},
		{"unsupported U8", rawFile(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1)),
			[]string{`unsupported dtype U8 for tensor "w"`}},
		{"unsupported BOOL", rawFile(`{"w":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}}`, make([]byte, 2)),
			[]string{`unsupported dtype BOOL for tensor "w"`}},
		{"unsupported F8_E4M3", rawFile(`{"w":{"dtype":"F8_E4M3","shape":[3],"data_offsets":[0,3]}}`, make([]byte, 3)),
			[]string{`unsupported dtype F8_E4M3 for tensor "w"`}},
		{"F4 not whole bytes", rawFile(`{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, make([]byte, 2)),
			[]string{`tensor "w"`, "not a whole number of bytes"}},
		{"dtype not a string", rawFile(`{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)),
			[]string{`dtype of tensor "w" must be a string`, "number 4"}},
		{"negative shape", rawFile(obj(f32("w", "[-1]", "[0,4]")), make([]byte, 4)), []string{`shape of tensor "w"`, "entry -1 is negative"}},
		{"fractional shape", rawFile(obj(f32("w", "[1.5]", "[0,4]")), make([]byte, 4)), []string{`shape of tensor "w"`, "1.5 is not an integer"}},
		{"exponent shape", rawFile(obj(f32("w", "[1e0]", "[0,4]")), make([]byte, 4)), []string{`shape of tensor "w"`, "1e0 is not an integer"}},
		{"string shape entry", rawFile(obj(f32("w", `["1"]`, "[0,4]")), make([]byte, 4)), []string{`shape of tensor "w"`, "array of integers", `the string "1"`}},
		{"shape not array", rawFile(obj(f32("w", `1`, "[0,4]")), make([]byte, 4)), []string{`shape of tensor "w"`, "array of integers"}},
		{"shape entry too big", rawFile(obj(f32("w", "[99999999999999999999]", "[0,4]")), make([]byte, 4)), []string{`shape of tensor "w"`, "out of range"}},
		{"shape overflow", rawFile(obj(f32("w", "[65536,65536,65536,65536,65536]", "[0,4]")), make([]byte, 4)), []string{`tensor "w"`, "overflows"}},
		{"shape × size overflow", rawFile(obj(f32("w", "[1073741824,1073741824,4]", "[0,4]")), make([]byte, 4)), []string{`tensor "w"`, "overflows"}},
		{"shape rank", rawFile(obj(f32("w", "["+strings.Repeat("1,", maxRank)+"1]", "[0,4]")), make([]byte, 4)), []string{`shape of tensor "w"`, "more than 1024 entries"}},
		{"offsets reversed", rawFile(obj(f32("w", "[1]", "[4,0]")), make([]byte, 4)), []string{`tensor "w"`, "end before they begin"}},
		{"offsets out of range", rawFile(obj(f32("w", "[4]", "[0,16]")), make([]byte, 8)), []string{`tensor "w"`, "out of range", "8 bytes"}},
		{"offsets negative", rawFile(obj(f32("w", "[1]", "[-4,0]")), make([]byte, 4)), []string{`data_offsets of tensor "w"`, "negative"}},
		{"offsets too few", rawFile(obj(f32("w", "[1]", "[4]")), make([]byte, 4)), []string{`data_offsets of tensor "w"`, "[begin, end]"}},
		{"offsets too many", rawFile(obj(f32("w", "[1]", "[0,4,8]")), make([]byte, 4)), []string{`data_offsets of tensor "w"`, "[begin, end]"}},
		{"offsets not array", rawFile(obj(f32("w", "[1]", `{"a":1}`)), make([]byte, 4)), []string{`data_offsets of tensor "w"`, "array of integers"}},
		{"offsets float", rawFile(obj(f32("w", "[1]", `[0,4.0]`)), make([]byte, 4)), []string{`data_offsets of tensor "w"`, "not an integer"}},
		{"size mismatch", rawFile(obj(f32("w", "[3]", "[0,8]")), make([]byte, 8)), []string{`tensor "w"`, "needs 12 bytes", "span 8"}},
		{"overlap", rawFile(obj(f32("a", "[2]", "[0,8]"), f32("b", "[2]", "[4,12]")), make([]byte, 12)), []string{`tensor "b"`, `overlap tensor "a"`}},
		{"overlap same range", rawFile(obj(f32("a", "[2]", "[0,8]"), f32("b", "[2]", "[0,8]")), make([]byte, 8)), []string{`tensor "b"`, `overlap tensor "a"`}},
		{"empty tensor inside another", rawFile(obj(f32("a", "[2]", "[0,8]"), f32("e", "[0]", "[4,4]")), make([]byte, 8)), []string{`tensor "e"`, `overlap tensor "a"`}},
		{"gap", rawFile(obj(f32("a", "[1]", "[0,4]"), f32("b", "[1]", "[8,12]")), make([]byte, 12)), []string{"gap of 4 bytes", `tensor "b"`}},
		{"gap at start", rawFile(obj(f32("a", "[1]", "[4,8]")), make([]byte, 8)), []string{"gap of 4 bytes at offset 0", `tensor "a"`}},
		{"trailing bytes", rawFile(obj(f32("a", "[1]", "[0,4]")), make([]byte, 9)), []string{"5 trailing bytes", `tensor "a"`}},
		{"data without tensors", rawFile(`{}`, make([]byte, 3)), []string{"3 bytes", "no tensors"}},
		{"duplicate tensor", rawFile(obj(f32("w", "[1]", "[0,4]"), f32("w", "[1]", "[4,8]")), make([]byte, 8)), []string{`duplicate tensor name "w"`}},
		{"duplicate metadata", rawFile(`{"__metadata__":{},"__metadata__":{}}`, nil), []string{`duplicate "__metadata__"`}},
		{"duplicate field", rawFile(`{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), []string{`duplicate field "dtype" for tensor "w"`}},
		{"missing field", rawFile(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, make([]byte, 4)), []string{`tensor "w" has no "shape" field`}},
		{"missing offsets", rawFile(`{"w":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)), []string{`tensor "w" has no "data_offsets" field`}},
		{"entry not object", rawFile(`{"w":[1]}`, nil), []string{`entry for tensor "w" must be an object`, "an array"}},
		{"metadata array", rawFile(`{"__metadata__":["a"]}`, nil), []string{"__metadata__ must be an object of strings", "an array"}},
		{"metadata string", rawFile(`{"__metadata__":"pt"}`, nil), []string{"__metadata__ must be an object of strings", `the string "pt"`}},
		{"metadata number value", rawFile(`{"__metadata__":{"format":1}}`, nil), []string{`__metadata__ value for key "format" must be a string`, "number 1"}},
		{"metadata object value", rawFile(`{"__metadata__":{"cfg":{"a":"b"}}}`, nil), []string{`__metadata__ value for key "cfg" must be a string`, "an object"}},
		{"metadata duplicate key", rawFile(`{"__metadata__":{"k":"a","k":"b"}}`, nil), []string{`duplicate key "k" in __metadata__`}},
		{"metadata bad JSON", rawFile(`{"__metadata__":{"k":}}`, nil), []string{"invalid JSON in __metadata__"}},
	}
	dir := t.TempDir()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s succeeded", what)
				}
				for _, w := range c.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s error %q does not mention %q", what, err, w)
					}
				}
				if !errors.Is(err, ErrFormat) {
					t.Errorf("%s error %q is not ErrFormat", what, err)
				}
			}
			_, err := Decode(c.file)
			check("Decode", err)
			path := filepath.Join(dir, fmt.Sprintf("case%d.safetensors", i))
			if err := os.WriteFile(path, c.file, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = Load(path)
			check("Load", err)
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("Load error %q does not name the path", err)
			}
		})
	}
}

// Inputs that are unusual but valid.
func TestDecodeAccepts(t *testing.T) {
	cases := []struct {
		name   string
		file   []byte
		expect func(*File) bool
	}{
		{"empty", rawFile(`{}`, nil), func(f *File) bool { return len(f.Names) == 0 && f.Metadata == nil }},
		{"whitespace and padding", rawFile(" \n{ \"w\" : {\"shape\":[ 1 ], \"data_offsets\" : [0,4],\"dtype\":\"F32\"} }\t  ", []byte{0, 0, 0x80, 0x3f}),
			func(f *File) bool { return f.Tensors["w"].F32[0] == 1 }},
		{"null metadata", rawFile(`{"__metadata__":null}`, nil), func(f *File) bool { return f.Metadata == nil }},
		{"empty metadata", rawFile(`{"__metadata__":{}}`, nil), func(f *File) bool { return f.Metadata != nil && len(f.Metadata) == 0 }},
		{"unknown fields ignored", rawFile(`{"w":{"dtype":"I64","extra":{"a":[1,{"b":null}]},"shape":[],"data_offsets":[0,8]}}`, le64(-3)),
			func(f *File) bool { return f.Tensors["w"].I64[0] == -3 && len(f.Tensors["w"].Shape) == 0 }},
		{"offset order differs from header order", rawFile(`{"b":{"dtype":"F16","shape":[1],"data_offsets":[2,4]},"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`, []byte{0, 0x3c, 0, 0xc0}),
			func(f *File) bool {
				return slices.Equal(f.Names, []string{"a", "b"}) && f.Tensors["a"].F32[0] == 1 && f.Tensors["b"].F32[0] == -2
			}},
		{"empty tensors share an offset", rawFile(`{"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"BF16","shape":[2,0],"data_offsets":[4,4]}}`, make([]byte, 4)),
			func(f *File) bool { return slices.Equal(f.Names, []string{"a", "z", "y"}) }},
		{"escaped names", rawFile(`{"a\u00e9\n\"":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}`, nil),
			func(f *File) bool { return f.Names[0] == "aé\n\"" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Decode(c.file)
			if err != nil {
				t.Fatal(err)
			}
			if !c.expect(f) {
				t.Fatalf("unexpected result: names %q metadata %v", f.Names, f.Metadata)
			}
			back, err := Decode(encode(t, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := sameFile(back, f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func le64(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

func TestEncodeValidation(t *testing.T) {
	ok := func() *Tensor { return &Tensor{DType: F32, Shape: []int{2}, F32: []float32{1, 2}} }
	cases := []struct {
		name string
		f    *File
		want []string
	}{
		{"nil file", nil, []string{"nil File"}},
		{"duplicate name", &File{Names: []string{"a", "a"}, Tensors: map[string]*Tensor{"a": ok()}}, []string{`duplicate tensor name "a"`}},
		{"name not in Tensors", &File{Names: []string{"a"}, Tensors: map[string]*Tensor{}}, []string{`tensor "a" is in Names but has no entry`}},
		{"nil tensor", &File{Names: []string{"a"}, Tensors: map[string]*Tensor{"a": nil}}, []string{`tensor "a"`}},
		{"tensor not in Names", &File{Names: []string{"a"}, Tensors: map[string]*Tensor{"a": ok(), "b": ok()}}, []string{`tensor "b" is in Tensors but not in Names`}},
		{"reserved name", &File{Names: []string{"__metadata__"}, Tensors: map[string]*Tensor{"__metadata__": ok()}}, []string{`cannot be named "__metadata__"`}},
		{"invalid UTF-8 name", &File{Names: []string{"a\xff"}, Tensors: map[string]*Tensor{"a\xff": ok()}}, []string{"not valid UTF-8", `"a\xff"`}},
		{"invalid UTF-8 metadata", &File{Metadata: map[string]string{"k": "\xfe"}}, []string{`metadata value for key "k"`, "UTF-8"}},
		{"unsupported dtype", one(&Tensor{DType: "F64", Shape: []int{1}, F32: []float32{1}}), []string{`unsupported dtype F64 for tensor "t"`}},
		{"unknown dtype", one(&Tensor{DType: "f32", Shape: []int{1}, F32: []float32{1}}), []string{`unknown dtype "f32" for tensor "t"`}},
		{"missing dtype", one(&Tensor{Shape: []int{1}, F32: []float32{1}}), []string{`unknown dtype "" for tensor "t"`}},
		{"negative dim", one(&Tensor{DType: F32, Shape: []int{-1, -2}, F32: []float32{1, 2}}), []string{`tensor "t"`, "negative"}},
		{"overflowing shape", one(&Tensor{DType: F32, Shape: []int{math.MaxInt, 2}}), []string{`tensor "t"`, "overflows"}},
		{"too little data", one(&Tensor{DType: F16, Shape: []int{2, 2}, F32: []float32{1, 2, 3}}), []string{`tensor "t"`, "4 elements but F32 holds 3"}},
		{"I64 data missing", one(&Tensor{DType: I64, Shape: []int{1}, F32: []float32{1}}), []string{`tensor "t"`, "1 elements but I64 holds 0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Encode(&buf, c.f)
			if err == nil {
				t.Fatal("Encode succeeded")
			}
			if buf.Len() != 0 {
				t.Errorf("Encode wrote %d bytes before failing", buf.Len())
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func one(t *Tensor) *File {
	f := &File{}
	f.Add("t", t)
	return f
}

// failingWriter fails once more than limit bytes have been written.
type failingWriter struct {
	w     io.Writer
	limit int
}

func (fw *failingWriter) Write(p []byte) (int, error) {
	if len(p) > fw.limit {
		n, _ := fw.w.Write(p[:fw.limit])
		fw.limit = 0
		return n, errors.New("disk full")
	}
	fw.limit -= len(p)
	return fw.w.Write(p)
}

func TestSaveIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	want, good := pyTorchFixture()
	if err := Save(path, good); err != nil {
		t.Fatal(err)
	}
	big := &File{}
	big.Add("w", &Tensor{DType: F32, Shape: []int{1 << 20}, F32: make([]float32, 1<<20)})

	unchanged := func(t *testing.T, err error, mention ...string) {
		t.Helper()
		if err == nil {
			t.Fatal("Save succeeded")
		}
		for _, m := range mention {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("error %q does not mention %q", err, m)
			}
		}
		got, rerr := os.ReadFile(path)
		if rerr != nil || !bytes.Equal(got, want) {
			t.Fatalf("the old file changed (%v)", rerr)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("directory holds %q", names)
		}
	}
	t.Run("invalid file", func(t *testing.T) {
		bad := &File{Names: []string{"x"}}
		unchanged(t, Save(path, bad), path, `tensor "x"`)
	})
	t.Run("write fails midway", func(t *testing.T) {
		testWrapWriter = func(w io.Writer) io.Writer { return &failingWriter{w: w, limit: 1 << 20} }
		defer func() { testWrapWriter = nil }()
		unchanged(t, Save(path, big), path, "disk full", `tensor "w"`)
	})
	t.Run("success replaces", func(t *testing.T) {
		if err := Save(path, big); err != nil {
			t.Fatal(err)
		}
		got, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameFile(got, big); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkLoadF32(b *testing.B) {
	f := &File{}
	f.Add("w", &Tensor{DType: F32, Shape: []int{16 << 20}, F32: make([]float32, 16<<20)})
	path := filepath.Join(b.TempDir(), "b.safetensors")
	if err := Save(path, f); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(64 << 20)
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}
