package imageproc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/mopeclip/mopeclip/internal/atomicfile"
)

// NumPy .npy files (format versions 1.0 and 2.0; 3.0 is read too) holding
// little-endian float32 ("<f4") arrays in C order.

const npyMagic = "\x93NUMPY"

// WriteNPY writes data with the given shape to path as a NumPy .npy file of
// dtype '<f4' in C order (version 1.0, or 2.0 if the header needs it). The
// file is replaced atomically.
func WriteNPY(path string, data []float32, shape []int) error {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("imageproc: write %s: negative dimension in shape %v", path, shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return fmt.Errorf("imageproc: write %s: shape %v overflows", path, shape)
		}
		n *= d
	}
	if n != len(data) {
		return fmt.Errorf("imageproc: write %s: shape %v holds %d values, data has %d", path, shape, n, len(data))
	}
	header := npyHeader(shape)
	return atomicfile.Write(path, func(w io.Writer) error {
		if _, err := w.Write(header); err != nil {
			return err
		}
		buf := make([]byte, 4*4096)
		for len(data) > 0 {
			k := min(len(data), 4096)
			for i, v := range data[:k] {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
			}
			if _, err := w.Write(buf[:4*k]); err != nil {
				return err
			}
			data = data[k:]
		}
		return nil
	})
}

// npyHeader returns magic, version, header length and the padded header
// dictionary, 64-byte aligned as NumPy writes it.
func npyHeader(shape []int) []byte {
	var sb strings.Builder
	sb.WriteString("{'descr': '<f4', 'fortran_order': False, 'shape': (")
	for i, d := range shape {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(strconv.Itoa(d))
	}
	if len(shape) == 1 {
		sb.WriteString(",")
	}
	sb.WriteString("), }")
	dict := sb.String()
	pre := 10 // magic(6) + version(2) + uint16 length
	total := (pre + len(dict) + 1 + 63) / 64 * 64
	if total-pre > math.MaxUint16 {
		pre = 12 // version 2.0: uint32 length
		total = (pre + len(dict) + 1 + 63) / 64 * 64
	}
	hlen := total - pre
	out := make([]byte, 0, total)
	out = append(out, npyMagic...)
	if pre == 10 {
		out = append(out, 1, 0)
		out = binary.LittleEndian.AppendUint16(out, uint16(hlen))
	} else {
		out = append(out, 2, 0)
		out = binary.LittleEndian.AppendUint32(out, uint32(hlen))
	}
	out = append(out, dict...)
	for len(out) < total-1 {
		out = append(out, ' ')
	}
	return append(out, '\n')
}

// ReadNPY reads a NumPy .npy file of dtype '<f4' in C order and returns its
// data and shape. Other dtypes, Fortran order, malformed headers and
// truncated or oversized data are errors that name the file.
func ReadNPY(path string) ([]float32, []int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("imageproc: %w", err)
	}
	data, shape, err := ParseNPY(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("imageproc: %s: %w", path, err)
	}
	return data, shape, nil
}

// ParseNPY is ReadNPY for the file's bytes.
func ParseNPY(raw []byte) ([]float32, []int, error) {
	if len(raw) < 10 || string(raw[:6]) != npyMagic {
		return nil, nil, errors.New("not a .npy file (bad magic)")
	}
	major, minor := raw[6], raw[7]
	var hlen, start int
	switch major {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(raw[8:10])), 10
	case 2, 3:
		if len(raw) < 12 {
			return nil, nil, errors.New("truncated .npy header")
		}
		h := binary.LittleEndian.Uint32(raw[8:12])
		if uint64(h) > uint64(len(raw)) {
			return nil, nil, fmt.Errorf("truncated .npy header (declares %d bytes, file has %d)", h, len(raw))
		}
		hlen, start = int(h), 12
	default:
		return nil, nil, fmt.Errorf("unsupported .npy format version %d.%d", major, minor)
	}
	if start+hlen > len(raw) {
		return nil, nil, fmt.Errorf("truncated .npy header (declares %d bytes, file has %d)", hlen, len(raw)-start)
	}
	dict, err := parsePyDict(string(raw[start : start+hlen]))
	if err != nil {
		return nil, nil, fmt.Errorf("bad .npy header: %w", err)
	}
	descr, ok := dict["descr"].(string)
	if !ok {
		return nil, nil, errors.New("bad .npy header: no 'descr' string")
	}
	if descr != "<f4" {
		return nil, nil, fmt.Errorf("unsupported dtype %q (want '<f4', little-endian float32)", descr)
	}
	fortran, ok := dict["fortran_order"].(bool)
	if !ok {
		return nil, nil, errors.New("bad .npy header: no 'fortran_order' bool")
	}
	if fortran {
		return nil, nil, errors.New("unsupported Fortran-order array (want C order)")
	}
	shapeV, ok := dict["shape"].([]int)
	if !ok {
		return nil, nil, errors.New("bad .npy header: no 'shape' tuple")
	}
	body := raw[start+hlen:]
	n, maxN := 1, len(body)/4
	for _, d := range shapeV {
		if d == 0 {
			n = 0
			break
		}
	}
	for _, d := range shapeV {
		if n == 0 {
			break
		}
		if n > maxN/d {
			return nil, nil, fmt.Errorf("truncated data: shape %v needs more than the %d bytes present", shapeV, len(body))
		}
		n *= d
	}
	if 4*n > len(body) {
		return nil, nil, fmt.Errorf("truncated data: shape %v needs %d bytes, file has %d", shapeV, 4*n, len(body))
	}
	if 4*n < len(body) {
		return nil, nil, fmt.Errorf("%d bytes of trailing data after the array of shape %v", len(body)-4*n, shapeV)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return out, shapeV, nil
}

// parsePyDict parses the Python literal dictionary of an .npy header:
// string keys; values are strings, True/False or tuples of integers.
func parsePyDict(s string) (map[string]any, error) {
	p := &pyParser{s: s}
	p.space()
	if !p.eat('{') {
		return nil, errors.New("want '{'")
	}
	out := map[string]any{}
	for {
		p.space()
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if !p.eat(':') {
			return nil, fmt.Errorf("want ':' after %q", key)
		}
		p.space()
		v, err := p.value()
		if err != nil {
			return nil, fmt.Errorf("value of %q: %w", key, err)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		out[key] = v
		p.space()
		if p.eat(',') {
			continue
		}
		p.space()
		if !p.eat('}') {
			return nil, errors.New("want ',' or '}'")
		}
		break
	}
	p.space()
	if p.i != len(p.s) {
		return nil, errors.New("trailing characters after the dictionary")
	}
	return out, nil
}

type pyParser struct {
	s string
	i int
}

func (p *pyParser) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *pyParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *pyParser) str() (string, error) {
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", errors.New("want a quoted string")
	}
	q := p.s[p.i]
	j := strings.IndexByte(p.s[p.i+1:], q)
	if j < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+j]
	p.i += j + 2
	return v, nil
}

func (p *pyParser) value() (any, error) {
	if p.i >= len(p.s) {
		return nil, errors.New("missing value")
	}
	switch c := p.s[p.i]; {
	case c == '\'' || c == '"':
		return p.str()
	case strings.HasPrefix(p.s[p.i:], "True"):
		p.i += 4
		return true, nil
	case strings.HasPrefix(p.s[p.i:], "False"):
		p.i += 5
		return false, nil
	case c == '(':
		p.i++
		var dims []int
		for {
			p.space()
			if p.eat(')') {
				return append([]int{}, dims...), nil
			}
			j := p.i
			for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
				p.i++
			}
			if j == p.i {
				return nil, errors.New("want an integer in the shape tuple")
			}
			d, err := strconv.Atoi(p.s[j:p.i])
			if err != nil {
				return nil, fmt.Errorf("shape dimension: %w", err)
			}
			// Python writes long integers of old NumPy versions as 3L.
			p.eat('L')
			dims = append(dims, d)
			p.space()
			if p.eat(',') {
				continue
			}
			p.space()
			if !p.eat(')') {
				return nil, errors.New("want ',' or ')' in the shape tuple")
			}
			return dims, nil
		}
	}
	return nil, fmt.Errorf("unsupported value at %q", p.s[p.i:min(len(p.s), p.i+12)])
}
