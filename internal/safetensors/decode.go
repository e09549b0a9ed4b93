package safetensors

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// Decode parses a whole safetensors file held in data. The result does not
// alias data.
func Decode(data []byte) (*File, error) {
	f, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return f, nil
}

func decode(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, errf("file is %d bytes, shorter than the 8-byte header length", len(data))
	}
	n, err := checkHeaderLen(binary.LittleEndian.Uint64(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	h, err := parseHeader(data[8:8+n], int64(len(data))-8-n)
	if err != nil {
		return nil, err
	}
	if err := h.checkSupported(); err != nil {
		return nil, err
	}
	f := h.newFile()
	buf := data[h.DataOffset:]
	for i := range h.Tensors {
		ti := &h.Tensors[i]
		t := newTensor(ti)
		t.fill(0, buf[ti.Begin:ti.End])
		f.Tensors[ti.Name] = t
	}
	return f, nil
}

// Load reads the safetensors file at path. Each tensor is read straight into
// its destination slice (see the package documentation on memory). Errors
// name the path.
func Load(path string) (*File, error) {
	f, err := load(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return f, nil
}

// loadChunk is the size of the staging buffer for data that are converted
// on the way in; a multiple of every element size.
const loadChunk = 256 << 10

func load(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	h, err := readHeader(fd) // leaves fd at the data buffer
	if err != nil {
		return nil, err
	}
	if err := h.checkSupported(); err != nil {
		return nil, err
	}
	f := h.newFile()
	var chunk []byte
	// The tensors tile the data buffer in this order, so one sequential pass
	// reads them all.
	for i := range h.Tensors {
		ti := &h.Tensors[i]
		t := newTensor(ti)
		size := ti.End - ti.Begin
		var direct []byte
		if nativeLittleEndian {
			switch t.DType {
			case F32:
				direct = float32Bytes(t.F32)
			case I64:
				direct = int64Bytes(t.I64)
			}
		}
		if direct != nil || size == 0 {
			if _, err := io.ReadFull(fd, direct); err != nil {
				return nil, fmt.Errorf("reading tensor %q: %w", ti.Name, err)
			}
		} else {
			if chunk == nil {
				chunk = make([]byte, loadChunk)
			}
			elemSize := int64(ti.DType.Bits() / 8)
			for done := int64(0); done < size; {
				c := chunk[:min(size-done, loadChunk)]
				if _, err := io.ReadFull(fd, c); err != nil {
					return nil, fmt.Errorf("reading tensor %q: %w", ti.Name, err)
				}
				t.fill(int(done/elemSize), c)
				done += int64(len(c))
			}
		}
		f.Tensors[ti.Name] = t
	}
	return f, nil
}

// checkSupported rejects headers holding dtypes that Decode cannot load,
// before anything is allocated for the data.
func (h *Header) checkSupported() error {
	for i := range h.Tensors {
		if dt := h.Tensors[i].DType; !dt.Supported() {
			return errf("unsupported dtype %s for tensor %q (supported: %s)", dt, h.Tensors[i].Name, strings.Join([]string{string(F32), string(F16), string(BF16), string(I64)}, ", "))
		}
	}
	return nil
}

func (h *Header) newFile() *File {
	return &File{
		Names:    h.Names(),
		Tensors:  make(map[string]*Tensor, len(h.Tensors)),
		Metadata: h.Metadata,
	}
}

// newTensor allocates the destination of a validated tensor of a supported
// dtype.
func newTensor(ti *TensorInfo) *Tensor {
	n := int(ti.NumElements())
	t := &Tensor{DType: ti.DType, Shape: ti.Shape}
	if ti.DType == I64 {
		t.I64 = make([]int64, n)
	} else {
		t.F32 = make([]float32, n)
	}
	return t
}

// fill decodes the little-endian elements in src into t's data starting at
// element off. len(src) is a multiple of the element size.
func (t *Tensor) fill(off int, src []byte) {
	switch t.DType {
	case F32:
		dst := t.F32[off : off+len(src)/4]
		if nativeLittleEndian {
			copy(float32Bytes(dst), src)
			return
		}
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		dst := t.F32[off : off+len(src)/2]
		for i := range dst {
			dst[i] = F16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		dst := t.F32[off : off+len(src)/2]
		for i := range dst {
			dst[i] = BF16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case I64:
		dst := t.I64[off : off+len(src)/8]
		if nativeLittleEndian {
			copy(int64Bytes(dst), src)
			return
		}
		for i := range dst {
			dst[i] = int64(binary.LittleEndian.Uint64(src[8*i:]))
		}
	}
}
