package safetensors

import "math"

// F16ToFloat32 converts IEEE 754 binary16 bits to float32. The conversion is
// exact for every input: subnormals are normalised, ±Inf stays infinite and
// a NaN keeps its sign and payload (shifted into the float32 mantissa).
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: mant × 2^-24. Shift the leading one up to bit 10,
		// lowering the exponent from that of 2^-14 (113 biased) as we go.
		e := uint32(113)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// Float32ToF16 converts f to binary16 bits, rounding to nearest, ties to
// even. Values too large become ±Inf, values too small ±0 (through the
// subnormals). A NaN stays a NaN with its sign and the top of its payload;
// if the kept payload would be zero the quiet bit is set, so that
// F16ToFloat32 followed by Float32ToF16 is the identity on all 65536 inputs.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	abs := b & 0x7fffffff
	switch {
	case abs > 0x7f800000: // NaN
		m := uint16(abs>>13) & 0x3ff
		if m == 0 {
			m = 0x200
		}
		return sign | 0x7c00 | m
	case abs >= 0x477ff000: // ≥ 65520 = max finite 65504 + half an ulp: rounds to Inf (ties to even 0x7c00)
		return sign | 0x7c00
	case abs >= 0x38800000: // ≥ 2^-14: a normal half
		abs -= 112 << 23 // rebias the exponent from 127 to 15
		abs += 0xfff + (abs>>13)&1
		return sign | uint16(abs>>13)
	case abs < 0x33000000: // < 2^-25 (half the smallest subnormal): rounds to zero
		return sign
	}
	// A half subnormal: the value is m × 2^(e-150); in units of 2^-24 that
	// is m >> (126-e), with e in [102, 112].
	e := abs >> 23
	m := abs&0x7fffff | 0x800000
	shift := 126 - e
	r := m >> shift
	rem := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || rem == half && r&1 == 1 {
		r++ // may carry into the smallest normal, which is the right answer
	}
	return sign | uint16(r)
}

// BF16ToFloat32 converts bfloat16 bits to float32 (exact: bfloat16 is the top
// half of a float32).
func BF16ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// Float32ToBF16 converts f to bfloat16 bits, rounding to nearest, ties to
// even; overflow gives ±Inf. A NaN keeps its sign and the top of its
// payload, with the quiet bit set if the kept payload would be zero.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		h := uint16(b >> 16)
		if h&0x7f == 0 {
			h |= 0x40
		}
		return h
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
