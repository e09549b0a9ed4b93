package imageproc

import (
	"image"
	"image/color"
)

// RGB8 is an 8-bit RGB image with packed rows: the pixel (x, y) is
// Pix[3*(y*Width+x) : 3*(y*Width+x)+3]. Its origin is always (0, 0).
// It implements image.Image.
type RGB8 struct {
	Pix           []uint8
	Width, Height int
}

// NewRGB8 returns a black w×h image.
func NewRGB8(w, h int) *RGB8 {
	if w < 0 || h < 0 {
		panic("imageproc: negative image size")
	}
	return &RGB8{Pix: make([]uint8, 3*w*h), Width: w, Height: h}
}

// ColorModel implements image.Image.
func (m *RGB8) ColorModel() color.Model { return color.RGBAModel }

// Bounds implements image.Image.
func (m *RGB8) Bounds() image.Rectangle { return image.Rect(0, 0, m.Width, m.Height) }

// At implements image.Image.
func (m *RGB8) At(x, y int) color.Color {
	if x < 0 || y < 0 || x >= m.Width || y >= m.Height {
		return color.RGBA{}
	}
	i := 3 * (y*m.Width + x)
	return color.RGBA{m.Pix[i], m.Pix[i+1], m.Pix[i+2], 0xff}
}

// ToRGB8 converts img to 8-bit RGB the way Pillow's Image.convert("RGB") does
// for the image Pillow would have decoded from the same file:
//
//   - alpha is dropped, never composited (NRGBA/NRGBA64 colour values are
//     used as stored; premultiplied RGBA/RGBA64 pixels are un-premultiplied
//     first);
//   - 16-bit channels keep their high byte, except 16-bit grayscale, which
//     Pillow opens as mode "I"/"I;16" and converts to RGB by clipping the
//     value to 255;
//   - *image.YCbCr (what image/jpeg returns) is converted with libjpeg's
//     fancy chroma upsampling and integer YCbCr→RGB tables (see
//     YCbCrToRGB8);
//   - CMYK uses Pillow's cmyk2rgb (R = 255−K − C·(255−K)/255, rounded as
//     Pillow does); image/jpeg already undoes the Adobe inversion, as Pillow's
//     "CMYK;I" raw mode does;
//   - paletted images are looked up in their palette.
//
// If img is already an *RGB8 it is returned as is (not copied).
func ToRGB8(img image.Image) *RGB8 {
	switch m := img.(type) {
	case *RGB8:
		return m
	case *image.YCbCr:
		return YCbCrToRGB8(m)
	case *image.NYCbCrA:
		return YCbCrToRGB8(&m.YCbCr)
	case *image.Gray:
		return grayToRGB8(m)
	case *image.Gray16:
		return gray16ClipToRGB8(m)
	case *image.NRGBA:
		return nrgbaToRGB8(m)
	case *image.NRGBA64:
		return nrgba64ToRGB8(m)
	case *image.RGBA:
		return rgbaToRGB8(m)
	case *image.CMYK:
		return cmykToRGB8(m)
	case *image.Paletted:
		return palettedToRGB8(m)
	}
	return genericToRGB8(img)
}

func grayToRGB8(m *image.Gray) *RGB8 {
	b := m.Bounds()
	out := NewRGB8(b.Dx(), b.Dy())
	o := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for x := 0; x < b.Dx(); x++ {
			v := row[x]
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = v, v, v
			o += 3
		}
	}
	return out
}

// clip16 is Pillow's I;16 / I → RGB rule: values above 255 saturate.
func clip16(v uint16) uint8 {
	if v > 255 {
		return 255
	}
	return uint8(v)
}

func gray16ClipToRGB8(m *image.Gray16) *RGB8 {
	b := m.Bounds()
	out := NewRGB8(b.Dx(), b.Dy())
	o := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for x := 0; x < b.Dx(); x++ {
			v := clip16(uint16(row[2*x])<<8 | uint16(row[2*x+1]))
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = v, v, v
			o += 3
		}
	}
	return out
}

// nrgba64GrayClipToRGB8 handles a 16-bit grayscale PNG with a tRNS chunk,
// which image/png returns as NRGBA64 (R=G=B) and Pillow opens as mode "I".
func nrgba64GrayClipToRGB8(m *image.NRGBA64) *RGB8 {
	b := m.Bounds()
	out := NewRGB8(b.Dx(), b.Dy())
	o := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for x := 0; x < b.Dx(); x++ {
			p := row[8*x:]
			out.Pix[o] = clip16(uint16(p[0])<<8 | uint16(p[1]))
			out.Pix[o+1] = clip16(uint16(p[2])<<8 | uint16(p[3]))
			out.Pix[o+2] = clip16(uint16(p[4])<<8 | uint16(p[5]))
			o += 3
		}
	}
	return out
}

func nrgbaToRGB8(m *image.NRGBA) *RGB8 {
	b := m.Bounds()
	out := NewRGB8(b.Dx(), b.Dy())
	o := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for x := 0; x < b.Dx(); x++ {
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = row[4*x], row[4*x+1], row[4*x+2]
			o += 3
		}
	}
	return out
}

func nrgba64ToRGB8(m *image.NRGBA64) *RGB8 {
	b := m.Bounds()
	out := NewRGB8(b.Dx(), b.Dy())
	o := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for x := 0; x < b.Dx(); x++ {
			// Big-endian samples: the high byte comes first.
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = row[8*x], row[8*x+2], row[8*x+4]
			o += 3
		}
	}
	return out
}

func rgbaToRGB8(m *image.RGBA) *RGB8 {
	b := m.Bounds()
	out := NewRGB8(b.Dx(), b.Dy())
	o := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for x := 0; x < b.Dx(); x++ {
			p := row[4*x : 4*x+4]
			if p[3] == 0xff {
				out.Pix[o], out.Pix[o+1], out.Pix[o+2] = p[0], p[1], p[2]
			} else {
				c := color.NRGBAModel.Convert(color.RGBA{p[0], p[1], p[2], p[3]}).(color.NRGBA)
				out.Pix[o], out.Pix[o+1], out.Pix[o+2] = c.R, c.G, c.B
			}
			o += 3
		}
	}
	return out
}

// muldiv255 is Pillow's MULDIV255: a·b/255 rounded, in integers.
func muldiv255(a, b int) int {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}

func cmykPixel(c, m, y, k uint8) (uint8, uint8, uint8) {
	nk := 255 - int(k)
	f := func(v uint8) uint8 {
		r := nk - muldiv255(int(v), nk)
		if r < 0 {
			r = 0
		}
		return uint8(r)
	}
	return f(c), f(m), f(y)
}

func cmykToRGB8(m *image.CMYK) *RGB8 {
	b := m.Bounds()
	out := NewRGB8(b.Dx(), b.Dy())
	o := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for x := 0; x < b.Dx(); x++ {
			p := row[4*x : 4*x+4]
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = cmykPixel(p[0], p[1], p[2], p[3])
			o += 3
		}
	}
	return out
}

// colorToRGB returns the non-premultiplied 8-bit colour of c, alpha dropped.
func colorToRGB(c color.Color) (uint8, uint8, uint8) {
	switch v := c.(type) {
	case color.NRGBA:
		return v.R, v.G, v.B
	case color.RGBA:
		if v.A == 0xff {
			return v.R, v.G, v.B
		}
	case color.Gray:
		return v.Y, v.Y, v.Y
	case color.CMYK:
		return cmykPixel(v.C, v.M, v.Y, v.K)
	case color.NRGBA64:
		return uint8(v.R >> 8), uint8(v.G >> 8), uint8(v.B >> 8)
	}
	n := color.NRGBA64Model.Convert(c).(color.NRGBA64)
	return uint8(n.R >> 8), uint8(n.G >> 8), uint8(n.B >> 8)
}

func palettedToRGB8(m *image.Paletted) *RGB8 {
	var lut [256][3]uint8 // missing entries stay black, as in Pillow
	for i, c := range m.Palette {
		if i >= 256 {
			break
		}
		if c == nil {
			continue
		}
		r, g, b := colorToRGB(c)
		lut[i] = [3]uint8{r, g, b}
	}
	b := m.Bounds()
	out := NewRGB8(b.Dx(), b.Dy())
	o := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for x := 0; x < b.Dx(); x++ {
			e := &lut[row[x]]
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = e[0], e[1], e[2]
			o += 3
		}
	}
	return out
}

func genericToRGB8(img image.Image) *RGB8 {
	b := img.Bounds()
	out := NewRGB8(b.Dx(), b.Dy())
	o := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = colorToRGB(img.At(x, y))
			o += 3
		}
	}
	return out
}
