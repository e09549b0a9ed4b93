package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderSize is the largest JSON header accepted, the reference
// implementation's limit. Real checkpoints have headers of kilobytes to a few
// megabytes.
const MaxHeaderSize = 100_000_000

const metadataKey = "__metadata__"

// TensorInfo describes one tensor of a file without its data.
type TensorInfo struct {
	Name  string
	DType DType // any dtype of the format, not only the supported ones
	Shape []int
	// Begin and End are the data_offsets: the tensor's bytes are
	// [Begin, End) relative to the start of the data buffer, i.e. at
	// [Header.DataOffset+Begin, Header.DataOffset+End) in the file.
	Begin, End int64
}

// NumElements is the product of Shape (1 for a scalar).
func (ti *TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range ti.Shape {
		n *= int64(d)
	}
	return n
}

// Header is a validated safetensors header.
type Header struct {
	Tensors    []TensorInfo      // in data-offset order
	Metadata   map[string]string // "__metadata__"; nil when absent
	DataOffset int64             // file offset of the data buffer: 8 + header length
	DataSize   int64             // length of the data buffer; the file is DataOffset+DataSize bytes
	index      map[string]int
}

// Names returns the tensor names in data-offset order.
func (h *Header) Names() []string {
	names := make([]string, len(h.Tensors))
	for i := range h.Tensors {
		names[i] = h.Tensors[i].Name
	}
	return names
}

// Tensor looks a tensor up by name.
func (h *Header) Tensor(name string) (*TensorInfo, bool) {
	i, ok := h.index[name]
	if !ok {
		return nil, false
	}
	return &h.Tensors[i], true
}

// ReadHeader reads and validates the header of the file at path without
// reading tensor data. Every dtype of the format is accepted. Errors name the
// path.
func ReadHeader(path string) (*Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	h, err := readHeader(f)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return h, nil
}

// readHeader reads the length prefix and header from the start of f, leaving
// the file position at the start of the data buffer.
func readHeader(f *os.File) (*Header, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < 8 {
		return nil, errf("file is %d bytes, shorter than the 8-byte header length", size)
	}
	var prefix [8]byte
	if _, err := io.ReadFull(f, prefix[:]); err != nil {
		return nil, fmt.Errorf("reading header length: %w", err)
	}
	n, err := checkHeaderLen(binary.LittleEndian.Uint64(prefix[:]), size)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	return parseHeader(hdr, size-8-n)
}

// checkHeaderLen validates the length prefix n against the cap and the file
// size.
func checkHeaderLen(n uint64, fileSize int64) (int64, error) {
	if n > MaxHeaderSize {
		return 0, errf("header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(fileSize-8) {
		return 0, errf("header length %d runs past the end of the file (%d bytes after the length prefix)", n, fileSize-8)
	}
	return int64(n), nil
}

// rawTensor is one header entry before validation.
type rawTensor struct {
	name       string
	dtype      string
	shape      []int
	begin, end int64
	seen       uint8 // fieldDType | fieldShape | fieldOffsets
}

const (
	fieldDType = 1 << iota
	fieldShape
	fieldOffsets
)

// parseHeader parses and validates the JSON header hdr for a data buffer of
// dataSize bytes.
func parseHeader(hdr []byte, dataSize int64) (*Header, error) {
	if !utf8.Valid(hdr) {
		return nil, errf("header is not valid UTF-8")
	}
	p := &headerParser{dec: json.NewDecoder(bytes.NewReader(hdr))}
	p.dec.UseNumber()
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.syntax(err, "header")
	}
	if tok != json.Delim('{') {
		return nil, errf("header is not a JSON object (it starts with %s)", describe(tok))
	}
	h := &Header{DataOffset: 8 + int64(len(hdr)), DataSize: dataSize}
	var raws []rawTensor
	seen := make(map[string]bool)
	for p.dec.More() {
		key, err := p.key("header")
		if err != nil {
			return nil, err
		}
		if seen[key] {
			if key == metadataKey {
				return nil, errf("duplicate %q in header", key)
			}
			return nil, errf("duplicate tensor name %q in header", key)
		}
		seen[key] = true
		if key == metadataKey {
			if h.Metadata, err = p.metadata(); err != nil {
				return nil, err
			}
			continue
		}
		rt, err := p.tensor(key)
		if err != nil {
			return nil, err
		}
		raws = append(raws, rt)
	}
	if _, err := p.dec.Token(); err != nil { // the closing '}'
		return nil, p.syntax(err, "header")
	}
	if tok, err := p.dec.Token(); err != io.EOF {
		if err != nil {
			return nil, p.syntax(err, "header")
		}
		return nil, errf("header has data after the JSON object (%s)", describe(tok))
	}
	if err := h.validate(raws); err != nil {
		return nil, err
	}
	return h, nil
}

// validate checks every entry against its dtype and the data buffer, and
// fills h.Tensors in data-offset order.
func (h *Header) validate(raws []rawTensor) error {
	h.Tensors = make([]TensorInfo, 0, len(raws))
	for i := range raws {
		r := &raws[i]
		dt := DType(r.dtype)
		b := dt.Bits()
		if b == 0 {
			return errf("unknown dtype %q for tensor %q", r.dtype, r.name)
		}
		nbytes, ok := byteSize(r.shape, b)
		if !ok {
			return errf("shape %v of tensor %q overflows", r.shape, r.name)
		}
		if nbytes < 0 {
			return errf("shape %v of tensor %q with dtype %s is not a whole number of bytes", r.shape, r.name, dt)
		}
		if r.end < r.begin {
			return errf("data_offsets [%d, %d] of tensor %q end before they begin", r.begin, r.end, r.name)
		}
		if r.end > h.DataSize {
			return errf("data_offsets [%d, %d] of tensor %q are out of range: the data buffer is %d bytes", r.begin, r.end, r.name, h.DataSize)
		}
		if r.end-r.begin != nbytes {
			return errf("tensor %q: shape %v of %s needs %d bytes but data_offsets [%d, %d] span %d", r.name, r.shape, dt, nbytes, r.begin, r.end, r.end-r.begin)
		}
		h.Tensors = append(h.Tensors, TensorInfo{Name: r.name, DType: dt, Shape: r.shape, Begin: r.begin, End: r.end})
	}
	// Stable, so tensors sharing an offset (empty ones) keep header order.
	slices.SortStableFunc(h.Tensors, func(a, b TensorInfo) int {
		if a.Begin != b.Begin {
			return cmpInt64(a.Begin, b.Begin)
		}
		return cmpInt64(a.End, b.End)
	})
	var pos int64
	for i := range h.Tensors {
		t := &h.Tensors[i]
		switch {
		case t.Begin < pos:
			prev := &h.Tensors[i-1] // pos > 0 only after a tensor
			return errf("data_offsets [%d, %d] of tensor %q overlap tensor %q at [%d, %d]", t.Begin, t.End, t.Name, prev.Name, prev.Begin, prev.End)
		case t.Begin > pos:
			return errf("data buffer has a gap of %d bytes at offset %d before tensor %q", t.Begin-pos, pos, t.Name)
		}
		pos = t.End
	}
	if pos != h.DataSize {
		if len(h.Tensors) == 0 {
			return errf("data buffer has %d bytes but the header lists no tensors", h.DataSize)
		}
		return errf("data buffer has %d trailing bytes after the last tensor %q", h.DataSize-pos, h.Tensors[len(h.Tensors)-1].Name)
	}
	h.index = make(map[string]int, len(h.Tensors))
	for i := range h.Tensors {
		h.index[h.Tensors[i].Name] = i
	}
	return nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// byteSize returns the byte length of shape elements of the given bit width;
// ok is false on overflow of int64 (or int for the element count), and the
// size is -1 when the bits do not fill whole bytes.
func byteSize(shape []int, elemBits int) (n int64, ok bool) {
	count := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(count, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, false
		}
		count = lo
	}
	hi, total := bits.Mul64(count, uint64(elemBits))
	if hi != 0 || total > math.MaxInt64 || count > math.MaxInt {
		return 0, false
	}
	if total%8 != 0 {
		return -1, true
	}
	return int64(total / 8), true
}

type headerParser struct {
	dec *json.Decoder
}

// syntax turns a decoder error into a format error naming where it happened.
func (p *headerParser) syntax(err error, where string) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return errf("invalid JSON in %s: unexpected end of header", where)
	}
	return errf("invalid JSON in %s: %v (at header byte %d)", where, err, p.dec.InputOffset())
}

// key reads an object key.
func (p *headerParser) key(where string) (string, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return "", p.syntax(err, where)
	}
	s, ok := tok.(string)
	if !ok { // the decoder reports non-string keys itself; be defensive
		return "", errf("invalid JSON in %s: expected a key, found %s", where, describe(tok))
	}
	return s, nil
}

// metadata reads the "__metadata__" value: an object of strings, or null.
func (p *headerParser) metadata() (map[string]string, error) {
	const where = "__metadata__"
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.syntax(err, where)
	}
	if tok == nil {
		return nil, nil
	}
	if tok != json.Delim('{') {
		return nil, errf("%s must be an object of strings, found %s", where, describe(tok))
	}
	m := make(map[string]string)
	for p.dec.More() {
		k, err := p.key(where)
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, errf("duplicate key %q in %s", k, where)
		}
		tok, err := p.dec.Token()
		if err != nil {
			return nil, p.syntax(err, where)
		}
		v, ok := tok.(string)
		if !ok {
			return nil, errf("%s value for key %q must be a string, found %s", where, k, describe(tok))
		}
		m[k] = v
	}
	if _, err := p.dec.Token(); err != nil {
		return nil, p.syntax(err, where)
	}
	return m, nil
}

// tensor reads one tensor entry.
func (p *headerParser) tensor(name string) (rawTensor, error) {
	rt := rawTensor{name: name}
	where := fmt.Sprintf("tensor %q", name)
	tok, err := p.dec.Token()
	if err != nil {
		return rt, p.syntax(err, where)
	}
	if tok != json.Delim('{') {
		return rt, errf("entry for tensor %q must be an object, found %s", name, describe(tok))
	}
	for p.dec.More() {
		field, err := p.key(where)
		if err != nil {
			return rt, err
		}
		var bit uint8
		switch field {
		case "dtype":
			bit = fieldDType
		case "shape":
			bit = fieldShape
		case "data_offsets":
			bit = fieldOffsets
		default:
			// The reference implementation ignores unknown fields.
			if err := p.skip(where); err != nil {
				return rt, err
			}
			continue
		}
		if rt.seen&bit != 0 {
			return rt, errf("duplicate field %q for tensor %q", field, name)
		}
		rt.seen |= bit
		switch field {
		case "dtype":
			tok, err := p.dec.Token()
			if err != nil {
				return rt, p.syntax(err, where)
			}
			s, ok := tok.(string)
			if !ok {
				return rt, errf("dtype of tensor %q must be a string, found %s", name, describe(tok))
			}
			rt.dtype = s
		case "shape":
			dims, err := p.ints(name, "shape", math.MaxInt)
			if err != nil {
				return rt, err
			}
			rt.shape = make([]int, len(dims))
			for i, d := range dims {
				rt.shape[i] = int(d)
			}
		case "data_offsets":
			offs, err := p.ints(name, "data_offsets", math.MaxInt64)
			if err != nil {
				return rt, err
			}
			if len(offs) != 2 {
				return rt, errf("data_offsets of tensor %q must be [begin, end], found %d numbers", name, len(offs))
			}
			rt.begin, rt.end = offs[0], offs[1]
		}
	}
	if _, err := p.dec.Token(); err != nil {
		return rt, p.syntax(err, where)
	}
	for _, f := range []struct {
		bit  uint8
		name string
	}{{fieldDType, "dtype"}, {fieldShape, "shape"}, {fieldOffsets, "data_offsets"}} {
		if rt.seen&f.bit == 0 {
			return rt, errf("tensor %q has no %q field", name, f.name)
		}
	}
	return rt, nil
}

// maxRank bounds the number of dimensions of a shape, so that a header of
// ones cannot make the parser allocate several times the header's size.
const maxRank = 1024

// ints reads an array of non-negative integers no larger than max.
func (p *headerParser) ints(name, field string, max int64) ([]int64, error) {
	where := fmt.Sprintf("%s of tensor %q", field, name)
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.syntax(err, where)
	}
	if tok != json.Delim('[') {
		return nil, errf("%s must be an array of integers, found %s", where, describe(tok))
	}
	out := []int64{}
	for p.dec.More() {
		if len(out) == maxRank {
			return nil, errf("%s has more than %d entries", where, maxRank)
		}
		tok, err := p.dec.Token()
		if err != nil {
			return nil, p.syntax(err, where)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, errf("%s must be an array of integers, found %s", where, describe(tok))
		}
		v, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return nil, errf("%s: entry %s is out of range", where, num)
			}
			return nil, errf("%s: entry %s is not an integer", where, num)
		}
		if v < 0 {
			return nil, errf("%s: entry %d is negative", where, v)
		}
		if v > max {
			return nil, errf("%s: entry %d is out of range", where, v)
		}
		out = append(out, v)
	}
	if _, err := p.dec.Token(); err != nil {
		return nil, p.syntax(err, where)
	}
	return out, nil
}

// skip consumes one JSON value.
func (p *headerParser) skip(where string) error {
	depth := 0
	for {
		tok, err := p.dec.Token()
		if err != nil {
			return p.syntax(err, where)
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// describe names a JSON token for an error message.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return fmt.Sprintf("%q", string(v))
	case string:
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return fmt.Sprintf("the string %q", v)
	case json.Number:
		return "the number " + string(v)
	case bool:
		return fmt.Sprintf("%v", v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}
