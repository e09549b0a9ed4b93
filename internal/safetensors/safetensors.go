// Package safetensors reads and writes Hugging Face safetensors files.
//
// # Format
//
// A file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON,
// then the data buffer:
//
//	{"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...}
//
// data_offsets are [begin, end) byte ranges relative to the start of the data
// buffer. A valid file's ranges tile the buffer exactly: no overlaps, no gaps,
// no trailing bytes. Element data are little-endian and row-major.
//
// # What is supported
//
// [ReadHeader] accepts every dtype of the reference implementation (F64, I32,
// U8, BOOL, F8_E4M3, F4, ...) so that tools can describe any file. [Decode]
// and [Load] materialise only F32, F16, BF16 (all into float32) and I64; a
// file holding any other dtype fails with "unsupported dtype X for tensor Y".
// [Encode] writes F32, F16, BF16 (float32 data rounded to nearest even) and
// I64.
//
// # Validation
//
// Decoding treats the input as hostile: every length, offset and shape is
// checked before it is used, so a corrupt file gives an error naming the
// tensor or field at fault, never a panic or an allocation larger than the
// file implies. Repeated JSON keys (which encoding/json would silently
// collapse) are rejected; the header is parsed with a token-level decoder.
//
// # Memory
//
// [Load] reads the header, then reads each tensor's bytes straight into its
// destination slice: F32 and I64 data are read into the []float32 / []int64
// backing array itself (on little-endian machines; big-endian ones convert
// through a 256 KiB buffer), and F16/BF16 are converted through that buffer.
// Loading an F32 checkpoint therefore needs about 1× its size (plus the
// header), an F16/BF16 one about 2× (the float32 result). [Decode] works on a
// caller-supplied buffer and copies out of it, so its peak is the input plus
// the decoded tensors; the result never aliases the input.
//
// # Byte compatibility
//
// [Encode] writes the header exactly as the reference (Rust) implementation
// does: compact JSON, "__metadata__" first, then the tensors in Names order
// with fields dtype, shape, data_offsets, the same string escaping, and
// padding with spaces to a multiple of 8 bytes. Given Names in the order
// PyTorch's safetensors.torch.save_file chooses (by dtype alignment
// descending, then by name), the output is byte-identical to it, except that
// metadata keys are written sorted (the reference writes a hash map in
// arbitrary order, so files with two or more metadata keys differ only in
// that order).
package safetensors

import (
	"errors"
	"fmt"
)

// DType is a safetensors element type as spelled in the header.
type DType string

// The dtypes that Decode/Load materialise and Encode writes.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
)

// bitsOf lists every dtype of the reference implementation with its element
// size in bits. Dtypes outside this table are unknown.
var bitsOf = map[DType]int{
	"BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
	"U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
	"F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
	"I16": 16, "U16": 16, "F16": 16, "BF16": 16,
	"I32": 32, "U32": 32, "F32": 32,
	"C64": 64, "F64": 64, "I64": 64, "U64": 64,
}

// Bits is the element size in bits (4 and 6 for the sub-byte float formats),
// or 0 for a dtype that is not part of the safetensors format.
func (d DType) Bits() int { return bitsOf[d] }

// Known reports whether d is one of the format's dtypes.
func (d DType) Known() bool { return bitsOf[d] != 0 }

// Supported reports whether this package can load and write tensors of d.
func (d DType) Supported() bool {
	switch d {
	case F32, F16, BF16, I64:
		return true
	}
	return false
}

// IsFloat reports whether d is loaded into Tensor.F32.
func (d DType) IsFloat() bool { return d == F32 || d == F16 || d == BF16 }

// Tensor is one named array.
type Tensor struct {
	DType DType     // dtype in the file; F16/BF16 are converted to float32 on load (F32 field), I64 into I64
	Shape []int     // row-major dimensions; empty for a scalar
	F32   []float32 // for F32/F16/BF16
	I64   []int64   // for I64
}

// NumElements is the product of Shape (1 for a scalar). It does not check for
// overflow; shapes coming out of Decode are known not to overflow.
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is the content of a safetensors file.
type File struct {
	Names    []string           // tensor names in data-offset order (as read), or the order to write
	Tensors  map[string]*Tensor // by name
	Metadata map[string]string  // the "__metadata__" map, kept; nil when absent
}

// Add stores t under name. A new name is appended to Names; an existing one
// keeps its position and its tensor is replaced.
func (f *File) Add(name string, t *Tensor) {
	if f.Tensors == nil {
		f.Tensors = make(map[string]*Tensor)
	}
	if _, ok := f.Tensors[name]; !ok {
		f.Names = append(f.Names, name)
	}
	f.Tensors[name] = t
}

// Float32 returns the float32 data and shape of a floating-point tensor
// (F32, F16 or BF16 in the file). The slices are the tensor's own, not
// copies.
func (f *File) Float32(name string) ([]float32, []int, error) {
	t, ok := f.Tensors[name]
	if !ok || t == nil {
		return nil, nil, fmt.Errorf("safetensors: no tensor %q", name)
	}
	if !t.DType.IsFloat() {
		return nil, nil, fmt.Errorf("safetensors: tensor %q has dtype %s, not a float dtype", name, t.DType)
	}
	return t.F32, t.Shape, nil
}

// Int64 returns the data and shape of an I64 tensor (the tensor's own
// slices).
func (f *File) Int64(name string) ([]int64, []int, error) {
	t, ok := f.Tensors[name]
	if !ok || t == nil {
		return nil, nil, fmt.Errorf("safetensors: no tensor %q", name)
	}
	if t.DType != I64 {
		return nil, nil, fmt.Errorf("safetensors: tensor %q has dtype %s, not I64", name, t.DType)
	}
	return t.I64, t.Shape, nil
}

// ErrFormat matches (with errors.Is) every error that reports a malformed
// file, as opposed to an I/O error.
var ErrFormat = errors.New("malformed safetensors file")

type formatError struct{ msg string }

func (e *formatError) Error() string        { return e.msg }
func (e *formatError) Is(target error) bool { return target == ErrFormat }

func errf(format string, args ...any) error {
	return &formatError{msg: fmt.Sprintf(format, args...)}
}
