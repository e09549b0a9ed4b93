package imageproc

import "image"

// libjpeg's YCbCr→RGB conversion (jdcolor.c) works in 16-bit fixed point with
// per-value tables; the constants are round(c·2^16) for c = 1.402, 1.772,
// 0.71414 and 0.34414.
const (
	yccScaleBits = 16
	yccHalf      = 1 << (yccScaleBits - 1)
	fixCrR       = 91881  // 1.40200
	fixCbB       = 116130 // 1.77200
	fixCrG       = 46802  // 0.71414
	fixCbG       = 22554  // 0.34414
)

var crRTab, cbBTab, crGTab, cbGTab [256]int32

// rangeLimit is libjpeg's range_limit: rangeLimit[v+rangeOff] = clamp(v, 0, 255)
// for every v that Y + chroma terms can produce.
const rangeOff = 512

// rangeLimit is sized to a power of two so that an index masked with
// rangeMask needs no bounds check and no division; every index the
// conversion forms is below 1024+256, so the mask never changes it.
var rangeLimit [2048]uint8

const rangeMask = len(rangeLimit) - 1

func init() {
	for i := range rangeLimit {
		rangeLimit[i] = clamp255(int32(i - rangeOff))
	}
	for i := range 256 {
		x := int32(i - 128)
		crRTab[i] = (fixCrR*x + yccHalf) >> yccScaleBits
		cbBTab[i] = (fixCbB*x + yccHalf) >> yccScaleBits
		crGTab[i] = -fixCrG * x
		cbGTab[i] = -fixCbG*x + yccHalf
	}
}

func clamp255(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// yccToRGB is libjpeg's ycc_rgb_convert for one pixel.
func yccToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	Y := int32(y) + rangeOff
	return rangeLimit[int(Y+crRTab[cr])&rangeMask],
		rangeLimit[int(Y+((cbGTab[cb]+crGTab[cr])>>yccScaleBits))&rangeMask],
		rangeLimit[int(Y+cbBTab[cb])&rangeMask]
}

// YCbCrToRGB8 converts a YCbCr image to RGB the way libjpeg(-turbo) does
// when decoding with its defaults (as Pillow does): subsampled chroma is
// first brought to full resolution with libjpeg's "fancy" triangular
// upsampling for 4:2:2 (h2v1), 4:2:0 (h2v2) and 4:4:0 (h1v2) — each output
// sample is (3·nearer + further)/4 per upsampled direction, with libjpeg's
// alternating rounding biases and edge replication — and then converted with
// libjpeg's fixed-point tables. As in libjpeg, 4:2:2 and 4:2:0 fall back to
// plain replication when the chroma plane is at most 2 samples wide, and
// 4:1:1 / 4:1:0 always replicate.
//
// For an image straight from image/jpeg this reproduces libjpeg's output
// exactly given the same planes; the planes themselves still differ slightly
// because Go's IDCT is not libjpeg's islow IDCT.
func YCbCrToRGB8(m *image.YCbCr) *RGB8 {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	out := NewRGB8(w, h)
	if w == 0 || h == 0 {
		return out
	}
	hsub, vsub := 1, 1 // chroma subsampling factors
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		hsub = 2
	case image.YCbCrSubsampleRatio420:
		hsub, vsub = 2, 2
	case image.YCbCrSubsampleRatio440:
		vsub = 2
	case image.YCbCrSubsampleRatio411:
		hsub = 4
	case image.YCbCrSubsampleRatio410:
		hsub, vsub = 4, 2
	}

	// Chroma column offset (within a chroma row) of every pixel column, and
	// of its "further" horizontal neighbour for the triangular filter.
	base := m.COffset(b.Min.X, b.Min.Y)
	colOwn := make([]int, w)
	colNb := make([]int, w)
	for i := range w {
		x := b.Min.X + i
		colOwn[i] = m.COffset(x, b.Min.Y) - base
	}
	cw := colOwn[w-1] - colOwn[0] + 1 // chroma samples per row in use
	fancyH := hsub == 2 && cw > 2
	if hsub == 2 && vsub == 2 && !fancyH {
		vsub = -2 // libjpeg's h2v2_upsample: plain replication in both directions
	}
	for i := range w {
		x := b.Min.X + i
		nb := i
		if x&1 == 0 { // left sample of a pair: the further neighbour is to the left
			nb = i - 1
		} else {
			nb = i + 1
		}
		if nb < 0 || nb >= w {
			nb = i
		}
		colNb[i] = colOwn[nb]
	}

	cbFull := make([]uint8, w) // full-resolution chroma of the current row
	crFull := make([]uint8, w)
	cbSum := make([]int32, 0, cw) // 3·near + far row sums (h2v2)
	crSum := make([]int32, 0, cw)
	o := 0
	for j := range h {
		y := b.Min.Y + j
		yrow := m.Y[m.YOffset(b.Min.X, y):]
		rowOwn := m.COffset(b.Min.X, y) - colOwn[0]
		rowNb := rowOwn
		if vsub == 2 {
			ny := y - 1
			if y&1 == 1 {
				ny = y + 1
			}
			if ny >= b.Min.Y && ny < b.Max.Y {
				rowNb = m.COffset(b.Min.X, ny) - colOwn[0]
			}
		}
		c0 := colOwn[0]
		switch {
		case vsub == 2 && fancyH: // h2v2 fancy
			cbSum, crSum = cbSum[:0], crSum[:0]
			for k := c0; k < c0+cw; k++ {
				cbSum = append(cbSum, 3*int32(m.Cb[rowOwn+k])+int32(m.Cb[rowNb+k]))
				crSum = append(crSum, 3*int32(m.Cr[rowOwn+k])+int32(m.Cr[rowNb+k]))
			}
			for i := range w {
				k, n := colOwn[i]-c0, colNb[i]-c0
				bias := int32(8)
				if (b.Min.X+i)&1 == 1 {
					bias = 7
				}
				cbFull[i] = uint8((3*cbSum[k] + cbSum[n] + bias) >> 4)
				crFull[i] = uint8((3*crSum[k] + crSum[n] + bias) >> 4)
			}
		case vsub == 2 && hsub == 1: // h1v2 fancy (4:4:0)
			bias := int32(1)
			if y&1 == 1 {
				bias = 2
			}
			for i := range w {
				k := colOwn[i]
				cbFull[i] = uint8((3*int32(m.Cb[rowOwn+k]) + int32(m.Cb[rowNb+k]) + bias) >> 2)
				crFull[i] = uint8((3*int32(m.Cr[rowOwn+k]) + int32(m.Cr[rowNb+k]) + bias) >> 2)
			}
		case vsub == 1 && fancyH: // h2v1 fancy (4:2:2)
			for i := range w {
				k, n := colOwn[i], colNb[i]
				bias := int32(1)
				if (b.Min.X+i)&1 == 1 {
					bias = 2
				}
				cbFull[i] = uint8((3*int32(m.Cb[rowOwn+k]) + int32(m.Cb[rowOwn+n]) + bias) >> 2)
				crFull[i] = uint8((3*int32(m.Cr[rowOwn+k]) + int32(m.Cr[rowOwn+n]) + bias) >> 2)
			}
		default: // 4:4:4, replication cases
			for i := range w {
				k := colOwn[i]
				cbFull[i] = m.Cb[rowOwn+k]
				crFull[i] = m.Cr[rowOwn+k]
			}
		}
		dst := out.Pix[o : o+3*w]
		yrow = yrow[:w]
		for i, yv := range yrow {
			d := dst[3*i : 3*i+3 : 3*i+3]
			d[0], d[1], d[2] = yccToRGB(yv, cbFull[i], crFull[i])
		}
		o += 3 * w
	}
	return out
}
