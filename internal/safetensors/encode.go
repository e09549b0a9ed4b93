package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/mopeclip/mopeclip/internal/atomicfile"
)

// Encode writes f in safetensors format: the tensors in Names order, laid
// out contiguously. F32 tensors are written as F32; a tensor with DType F16
// or BF16 has its F32 data rounded to that dtype (nearest, ties to even); I64
// tensors are written from I64. Names must be unique and list exactly the
// keys of Tensors. Nothing is written if f is invalid.
func Encode(w io.Writer, f *File) error {
	p, err := f.plan()
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := p.write(w); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// Save writes f to path atomically: on any error the previous file, if any,
// is left as it was.
func Save(path string, f *File) error {
	p, err := f.plan()
	if err != nil {
		return fmt.Errorf("safetensors: save %s: %w", path, err)
	}
	write := p.write
	if testWrapWriter != nil {
		write = func(w io.Writer) error { return p.write(testWrapWriter(w)) }
	}
	if err := atomicfile.Write(path, write); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// testWrapWriter, set only by tests, wraps the writer Save writes to (to
// inject I/O failures).
var testWrapWriter func(io.Writer) io.Writer

// encodePlan is a validated File with its serialised header.
type encodePlan struct {
	header  []byte // length prefix, JSON, padding
	tensors []*Tensor
	counts  []int // planned element counts
	names   []string
}

func (f *File) plan() (*encodePlan, error) {
	if f == nil {
		return nil, errf("nil File")
	}
	p := &encodePlan{
		tensors: make([]*Tensor, len(f.Names)),
		counts:  make([]int, len(f.Names)),
		names:   slices.Clone(f.Names),
	}
	var js bytes.Buffer
	js.WriteString("{")
	if f.Metadata != nil {
		js.WriteString(`"__metadata__":{`)
		keys := make([]string, 0, len(f.Metadata))
		for k := range f.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			v := f.Metadata[k]
			if !utf8.ValidString(k) {
				return nil, errf("metadata key %q is not valid UTF-8", k)
			}
			if !utf8.ValidString(v) {
				return nil, errf("metadata value for key %q is not valid UTF-8", k)
			}
			if i > 0 {
				js.WriteByte(',')
			}
			writeJSONString(&js, k)
			js.WriteByte(':')
			writeJSONString(&js, v)
		}
		js.WriteString("}")
	}
	seen := make(map[string]bool, len(f.Names))
	var offset int64
	for i, name := range f.Names {
		if seen[name] {
			return nil, errf("duplicate tensor name %q in Names", name)
		}
		seen[name] = true
		if name == metadataKey {
			return nil, errf("a tensor cannot be named %q", name)
		}
		if !utf8.ValidString(name) {
			return nil, errf("tensor name %q is not valid UTF-8", name)
		}
		t := f.Tensors[name]
		if t == nil {
			return nil, errf("tensor %q is in Names but has no entry in Tensors", name)
		}
		if !t.DType.Supported() {
			if t.DType.Known() {
				return nil, errf("unsupported dtype %s for tensor %q (writable: F32, F16, BF16, I64)", t.DType, name)
			}
			return nil, errf("unknown dtype %q for tensor %q", string(t.DType), name)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return nil, errf("shape %v of tensor %q has a negative dimension", t.Shape, name)
			}
		}
		size, ok := byteSize(t.Shape, t.DType.Bits())
		if !ok || size > math.MaxInt64-offset {
			return nil, errf("shape %v of tensor %q overflows", t.Shape, name)
		}
		nelem := int(size / int64(t.DType.Bits()/8))
		if t.DType == I64 {
			if len(t.I64) != nelem {
				return nil, errf("tensor %q: shape %v has %d elements but I64 holds %d", name, t.Shape, nelem, len(t.I64))
			}
		} else if len(t.F32) != nelem {
			return nil, errf("tensor %q: shape %v has %d elements but F32 holds %d", name, t.Shape, nelem, len(t.F32))
		}
		p.tensors[i] = t
		p.counts[i] = nelem
		if i > 0 || f.Metadata != nil {
			js.WriteByte(',')
		}
		writeJSONString(&js, name)
		js.WriteString(`:{"dtype":`)
		writeJSONString(&js, string(t.DType))
		js.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				js.WriteByte(',')
			}
			js.WriteString(strconv.Itoa(d))
		}
		js.WriteString(`],"data_offsets":[`)
		js.WriteString(strconv.FormatInt(offset, 10))
		js.WriteByte(',')
		offset += size
		js.WriteString(strconv.FormatInt(offset, 10))
		js.WriteString("]}")
	}
	if len(seen) != len(f.Tensors) {
		var extra []string
		for name := range f.Tensors {
			if !seen[name] {
				extra = append(extra, name)
			}
		}
		slices.Sort(extra)
		return nil, errf("tensor %q is in Tensors but not in Names", extra[0])
	}
	js.WriteString("}")
	for js.Len()%8 != 0 {
		js.WriteByte(' ')
	}
	if js.Len() > MaxHeaderSize {
		return nil, errf("header would be %d bytes, more than the limit of %d", js.Len(), MaxHeaderSize)
	}
	p.header = binary.LittleEndian.AppendUint64(make([]byte, 0, 8+js.Len()), uint64(js.Len()))
	p.header = append(p.header, js.Bytes()...)
	return p, nil
}

// writeChunk is the size of the staging buffer for converted data.
const writeChunk = 256 << 10

func (p *encodePlan) write(w io.Writer) error {
	if _, err := w.Write(p.header); err != nil {
		return err
	}
	var buf []byte
	for i, t := range p.tensors {
		// A File changed since plan() must not make the data disagree with
		// the header already written.
		n := len(t.F32)
		if t.DType == I64 {
			n = len(t.I64)
		}
		if n != p.counts[i] {
			return errf("tensor %q changed size while being written", p.names[i])
		}
		if nativeLittleEndian && (t.DType == F32 || t.DType == I64) {
			b := float32Bytes(t.F32)
			if t.DType == I64 {
				b = int64Bytes(t.I64)
			}
			if _, err := w.Write(b); err != nil {
				return fmt.Errorf("writing tensor %q: %w", p.names[i], err)
			}
			continue
		}
		if buf == nil {
			buf = make([]byte, 0, writeChunk)
		}
		for start := 0; start < n; {
			buf = buf[:0]
			end := min(n, start+writeChunk/8)
			switch t.DType {
			case F32:
				for _, v := range t.F32[start:end] {
					buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
				}
			case F16:
				for _, v := range t.F32[start:end] {
					buf = binary.LittleEndian.AppendUint16(buf, Float32ToF16(v))
				}
			case BF16:
				for _, v := range t.F32[start:end] {
					buf = binary.LittleEndian.AppendUint16(buf, Float32ToBF16(v))
				}
			case I64:
				for _, v := range t.I64[start:end] {
					buf = binary.LittleEndian.AppendUint64(buf, uint64(v))
				}
			}
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("writing tensor %q: %w", p.names[i], err)
			}
			start = end
		}
	}
	return nil
}

// writeJSONString writes s as a JSON string the way serde_json (the
// reference implementation's serialiser) does: only '"', '\\' and control
// characters are escaped, with the short forms \b \t \n \f \r where they
// exist and \u00xx (lower-case hex) otherwise. s is valid UTF-8.
func writeJSONString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b.WriteString(s[start:i])
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
		start = i + 1
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}
