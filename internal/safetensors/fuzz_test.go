package safetensors

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite testdata/fuzz/FuzzDecode from fuzzSeeds")

// fuzzSeeds are small valid files and near misses of them.
func fuzzSeeds() map[string][]byte {
	pt, _ := pyTorchFixture()
	seeds := map[string][]byte{
		"valid_pytorch":       pt,
		"valid_empty":         rawFile(`{}`, nil),
		"valid_metadata_only": rawFile(`{"__metadata__":{"format":"pt","a\n\"b":"\u00e9"}}`, nil),
		"valid_f32":           rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, []byte{0, 0, 0x80, 0x3f, 0, 0, 0xc0, 0x7f}),
		"valid_f16_nan":       rawFile(`{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]}}`, []byte{1, 0x7c, 0, 0xfc, 1, 0}),
		"valid_bf16":          rawFile(`{"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[0,4]}}`, []byte{0x81, 0x7f, 0x80, 0xff}),
		"valid_i64_scalar":    rawFile(`{"i":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}`, le64(-2)),
		"valid_unordered": rawFile(`{"b":{"dtype":"F16","shape":[1],"data_offsets":[2,4]},"z":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`,
			[]byte{0, 0x3c, 0, 0xc0}),
		"valid_extra_field": rawFile(`{"w":{"dtype":"I64","x":[{"y":null}],"shape":[1],"data_offsets":[0,8]}}`, le64(7)),
		"short":             {8, 0, 0, 0},
		"header_past_end":   rawFile(`{}`, nil)[:9],
		"header_huge":       append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "{}"...),
		"not_object":        rawFile(`[]`, nil),
		"bad_json":          rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}`, make([]byte, 4)),
		"dup_name":          rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)),
		"dup_field":         rawFile(`{"w":{"dtype":"F32","shape":[1],"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)),
		"unsupported_f64":   rawFile(`{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)),
		"unknown_dtype":     rawFile(`{"w":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1)),
		"negative_shape":    rawFile(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4)),
		"float_shape":       rawFile(`{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}`, make([]byte, 4)),
		"overflow_shape":    rawFile(`{"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}}`, make([]byte, 4)),
		"size_mismatch":     rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)),
		"overlap":           rawFile(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"F16","shape":[2],"data_offsets":[2,6]}}`, make([]byte, 6)),
		"gap":               rawFile(`{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"F16","shape":[1],"data_offsets":[4,6]}}`, make([]byte, 6)),
		"trailing":          rawFile(`{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`, make([]byte, 3)),
		"offsets_reversed":  rawFile(`{"a":{"dtype":"F16","shape":[0],"data_offsets":[2,0]}}`, make([]byte, 2)),
		"metadata_number":   rawFile(`{"__metadata__":{"k":1}}`, nil),
		"trailing_json":     rawFile(`{}[]`, nil),
	}
	return seeds
}

// TestFuzzCorpus keeps testdata/fuzz/FuzzDecode in step with fuzzSeeds
// (regenerate with -update-fuzz-corpus).
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for name, data := range fuzzSeeds() {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		path := filepath.Join(dir, name)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Errorf("%s is missing or stale; run go test -run TestFuzzCorpus -update-fuzz-corpus ./internal/safetensors", path)
		}
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes into a
// file that decodes to the same tensors, and re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, data := range fuzzSeeds() {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Decode(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "safetensors: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := Encode(&buf, file); err != nil {
			t.Fatalf("re-encoding a decoded file: %v", err)
		}
		again, err := Decode(buf.Bytes())
		if err != nil {
			t.Fatalf("decoding a re-encoded file: %v", err)
		}
		if err := sameFile(file, again); err != nil {
			t.Fatalf("round trip changed the file: %v", err)
		}
		var buf2 bytes.Buffer
		if err := Encode(&buf2, again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatal("encoding is not stable")
		}
	})
}
