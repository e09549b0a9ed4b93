package imageproc

import "math"

// This file reproduces Pillow's Image.resize(size, Image.BICUBIC) for 8-bit
// images (libImaging/Resample.c, unchanged in this respect from Pillow 7 to
// 11): a separable convolution with the a = −0.5 cubic kernel whose support
// grows with the downscale factor, coefficients normalised to sum 1 in double
// precision and then quantised to 22-bit fixed point, a horizontal pass
// first, rounding and clipping to 8 bits after each pass. Image.resize with
// its default reducing_gap=None never takes the Image.reduce shortcut.
//
// Every product that a compiler could fuse into an FMA is wrapped in an
// explicit float64 conversion, which the Go spec defines as a rounding point,
// so the coefficients are bit-identical to Pillow's on every GOARCH.

// precisionBits is Pillow's PRECISION_BITS (32 − 8 − 2).
const precisionBits = 32 - 8 - 2

// bicubic is Pillow's bicubic_filter with a = −0.5.
func bicubic(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		t := float64((a+2.0)*x) - (a + 3.0)
		return float64(float64(t*x)*x) + 1
	}
	if x < 2 {
		t := float64((x-5)*x) + 8
		t = float64(t*x) - 4
		return float64(t * a)
	}
	return 0
}

// coeffs is one axis of a resampling: output sample i reads the input
// samples start[i] … start[i]+n[i]−1 with the fixed-point weights
// k[i*ksize : i*ksize+n[i]].
type coeffs struct {
	ksize int
	start []int
	n     []int
	k     []int32
}

// precomputeCoeffs is Pillow's precompute_coeffs + normalize_coeffs_8bpc for
// the box [0, inSize) mapped onto outSize samples, restricted to the output
// samples [first, first+count).
func precomputeCoeffs(inSize, outSize, first, count int) coeffs {
	// Pillow passes the box edges as C floats; (double)(in1 - in0).
	scale := float64(float32(inSize)) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := 2.0 * filterscale // BICUBIC support is 2
	ksize := int(math.Ceil(support))*2 + 1
	c := coeffs{
		ksize: ksize,
		start: make([]int, count),
		n:     make([]int, count),
		k:     make([]int32, count*ksize),
	}
	w := make([]float64, ksize)
	ss := 1.0 / filterscale
	for i := range count {
		xx := first + i
		center := float64((float64(xx) + 0.5) * scale)
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		if xmax > ksize { // cannot happen; keeps the slices in range
			xmax = ksize
		}
		ww := 0.0
		for x := range xmax {
			v := bicubic(float64((float64(x+xmin) - center + 0.5) * ss))
			w[x] = v
			ww += v
		}
		k := c.k[i*ksize : (i+1)*ksize]
		for x := range xmax {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			p := float64(v * (1 << precisionBits))
			if v < 0 {
				k[x] = int32(-0.5 + p)
			} else {
				k[x] = int32(0.5 + p)
			}
		}
		c.start[i] = xmin
		c.n[i] = xmax
	}
	return c
}

// clip8 is Pillow's clip8: drop the fraction bits and saturate.
func clip8(v int32) uint8 {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// ResizeBicubic returns src resized to w×h exactly as Pillow's
// Image.resize((w, h), Image.BICUBIC) does for an RGB image.
func ResizeBicubic(src *RGB8, w, h int) *RGB8 {
	return resizeWindow(src, w, h, 0, 0, w, h)
}

// resizeWindow returns the window [x0, x0+cw) × [y0, y0+ch) of src resized to
// outW×outH with Pillow's bicubic filter. Every output pixel depends only on
// its own coefficients, so the window equals the same crop of the full
// resize; only the rows and columns it needs are computed.
func resizeWindow(src *RGB8, outW, outH, x0, y0, cw, ch int) *RGB8 {
	if outW <= 0 || outH <= 0 || src.Width <= 0 || src.Height <= 0 {
		panic("imageproc: resize of or to an empty image")
	}
	if x0 < 0 || y0 < 0 || cw < 0 || ch < 0 || x0+cw > outW || y0+ch > outH {
		panic("imageproc: resize window out of range")
	}
	needH := outW != src.Width
	needV := outH != src.Height

	// Rows of src the vertical pass reads (all window rows if no vertical pass).
	rowLo, rowHi := y0, y0+ch
	var vc coeffs
	if needV {
		vc = precomputeCoeffs(src.Height, outH, y0, ch)
		rowLo, rowHi = math.MaxInt, 0
		for i := range ch {
			if vc.n[i] == 0 {
				continue
			}
			rowLo = min(rowLo, vc.start[i])
			rowHi = max(rowHi, vc.start[i]+vc.n[i])
		}
		if rowLo > rowHi {
			rowLo, rowHi = 0, 0
		}
	}

	// Horizontal pass: tmp holds rows [rowLo, rowHi) of the horizontally
	// resized image, window columns only.
	var tmp *RGB8
	if needH {
		hc := precomputeCoeffs(src.Width, outW, x0, cw)
		tmp = NewRGB8(cw, rowHi-rowLo)
		const half = int32(1) << (precisionBits - 1)
		for r := rowLo; r < rowHi; r++ {
			in := src.Pix[3*r*src.Width : 3*(r+1)*src.Width]
			out := tmp.Pix[3*(r-rowLo)*cw : 3*(r-rowLo+1)*cw]
			for i := range cw {
				k := hc.k[i*hc.ksize : i*hc.ksize+hc.n[i]]
				p := in[3*hc.start[i]:]
				s0, s1, s2 := half, half, half
				for x, kv := range k {
					s0 += int32(p[3*x]) * kv
					s1 += int32(p[3*x+1]) * kv
					s2 += int32(p[3*x+2]) * kv
				}
				out[3*i], out[3*i+1], out[3*i+2] = clip8(s0), clip8(s1), clip8(s2)
			}
		}
	} else {
		tmp = NewRGB8(cw, rowHi-rowLo)
		for r := rowLo; r < rowHi; r++ {
			copy(tmp.Pix[3*(r-rowLo)*cw:3*(r-rowLo+1)*cw], src.Pix[3*(r*src.Width+x0):3*(r*src.Width+x0+cw)])
		}
	}
	if !needV {
		return tmp // rows [y0, y0+ch) exactly
	}

	// Vertical pass, accumulated row by row (integer sums, so the order of
	// the additions does not matter).
	out := NewRGB8(cw, ch)
	const half = int32(1) << (precisionBits - 1)
	stride := 3 * cw
	acc := make([]int32, stride)
	for j := range ch {
		for i := range acc {
			acc[i] = half
		}
		for t, kv := range vc.k[j*vc.ksize : j*vc.ksize+vc.n[j]] {
			r := vc.start[j] - rowLo + t
			row := tmp.Pix[r*stride : (r+1)*stride]
			for i, v := range row {
				acc[i] += int32(v) * kv
			}
		}
		o := out.Pix[j*stride : (j+1)*stride]
		for i, s := range acc {
			o[i] = clip8(s)
		}
	}
	return out
}
