package imageproc

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestNPYRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for i, shape := range [][]int{{}, {5}, {2, 3}, {0, 4}, {2, 3, 4, 5}, {1, 3, 7, 7}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]float32, n)
		for j := range data {
			data[j] = float32(j)*0.25 - 3
		}
		if n > 2 {
			data[1] = float32(math.Inf(-1))
			data[2] = float32(math.NaN())
		}
		p := filepath.Join(dir, "a"+string(rune('0'+i))+".npy")
		if err := WriteNPY(p, data, shape); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(p)
		hl := int(binary.LittleEndian.Uint16(raw[8:10]))
		if (10+hl)%64 != 0 || raw[10+hl-1] != '\n' || raw[6] != 1 {
			t.Errorf("%v: header not 64-byte aligned / newline-terminated / v1.0", shape)
		}
		got, gs, err := ReadNPY(p)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gs, shape) && !(len(gs) == 0 && len(shape) == 0) {
			t.Errorf("shape %v, want %v", gs, shape)
		}
		if len(got) != len(data) {
			t.Fatalf("%d values, want %d", len(got), len(data))
		}
		for j := range data {
			if math.Float32bits(got[j]) != math.Float32bits(data[j]) {
				t.Fatalf("%v: value %d = %v, want %v", shape, j, got[j], data[j])
			}
		}
	}
	if err := WriteNPY(filepath.Join(dir, "bad.npy"), make([]float32, 5), []int{2, 3}); err == nil {
		t.Error("WriteNPY with a mismatched shape succeeded")
	}
	if err := WriteNPY(filepath.Join(dir, "no", "such", "dir.npy"), nil, []int{0}); err == nil {
		t.Error("WriteNPY into a missing directory succeeded")
	}
}

func TestNPYVersion2(t *testing.T) {
	// A header over 64 KiB forces format 2.0.
	shape := make([]int, 25000)
	for i := range shape {
		shape[i] = 1
	}
	p := filepath.Join(t.TempDir(), "v2.npy")
	if err := WriteNPY(p, []float32{42}, shape); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	if raw[6] != 2 || (12+int(binary.LittleEndian.Uint32(raw[8:12])))%64 != 0 {
		t.Fatalf("version %d.%d", raw[6], raw[7])
	}
	got, gs, err := ReadNPY(p)
	if err != nil || len(gs) != len(shape) || len(got) != 1 || got[0] != 42 {
		t.Fatalf("%v %d %v", err, len(gs), got)
	}
}

// npyBytes builds a file with the given header dictionary and payload.
func npyBytes(major byte, dict string, payload []byte) []byte {
	b := []byte(npyMagic)
	b = append(b, major, 0)
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(dict)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(dict)))
	}
	b = append(b, dict...)
	return append(b, payload...)
}

func TestReadNPYErrors(t *testing.T) {
	ok := "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n"
	four := make([]byte, 16)
	cases := map[string]struct {
		data []byte
		want string
	}{
		"float64":   {npyBytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", four), "dtype"},
		"bigendian": {npyBytes(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", four), "dtype"},
		"int32":     {npyBytes(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", four), "dtype"},
		"fortran":   {npyBytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", four), "Fortran"},
		"truncated": {npyBytes(1, ok, four[:12]), "truncated"},
		"trailing":  {npyBytes(1, ok, append(four, 0, 0, 0, 0)), "trailing"},
		"hdrtrunc":  {npyBytes(1, ok, nil)[:30], "truncated"},
		"magic":     {[]byte("PK\x03\x04 this is a zip"), "magic"},
		"version":   {npyBytes(9, ok, four), "version"},
		"noshape":   {npyBytes(1, "{'descr': '<f4', 'fortran_order': False}", four), "shape"},
		"baddict":   {npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", four), "header"},
		"huge":      {npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", four), "truncated"},
		"v2trunc":   {npyBytes(2, ok, four)[:11], "truncated"},
	}
	dir := t.TempDir()
	for name, c := range cases {
		p := filepath.Join(dir, name+".npy")
		os.WriteFile(p, c.data, 0o644)
		_, _, err := ReadNPY(p)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q lacks %q or the path", name, err, c.want)
		}
	}
	// Version 2.0 and 3.0 headers, double-quoted keys and no trailing comma.
	for _, major := range []byte{2, 3} {
		d, s, err := ParseNPY(npyBytes(major, `{"descr": "<f4", "fortran_order": False, "shape": (4,)}`, four))
		if err != nil || len(d) != 4 || !slices.Equal(s, []int{4}) {
			t.Errorf("v%d: %v %v %v", major, d, s, err)
		}
	}
}
