package shapes

import (
	"image"
	"image/color"
	"strconv"
)

// ContactSheet lays images out on a grid, cols wide (0: a near-square
// grid), each scaled up by an integer factor with nearest-neighbour
// sampling and labelled with its position in the slice (0, 1, ...) in a
// small built-in digit font, so the sheet can be matched with printed
// captions.
func ContactSheet(images []*image.RGBA, cols, scale int) *image.RGBA {
	if scale < 1 {
		scale = 1
	}
	n := len(images)
	if cols <= 0 {
		cols = 1
		for cols*cols < n {
			cols++
		}
	}
	rows := (n + cols - 1) / cols
	tile := 0
	for _, im := range images {
		tile = max(tile, im.Rect.Dx()*scale, im.Rect.Dy()*scale)
	}
	const pad, label = 4, 9
	cw, ch := tile+pad, tile+pad+label
	sheet := image.NewRGBA(image.Rect(0, 0, max(1, cols*cw+pad), max(1, rows*ch+pad)))
	for i := range sheet.Pix {
		sheet.Pix[i] = 255
	}
	for i, im := range images {
		x0, y0 := pad+(i%cols)*cw, pad+(i/cols)*ch
		drawDigits(sheet, x0, y0, strconv.Itoa(i))
		b := im.Rect
		for y := 0; y < b.Dy()*scale; y++ {
			for x := 0; x < b.Dx()*scale; x++ {
				sheet.SetRGBA(x0+x, y0+label+y, im.RGBAAt(b.Min.X+x/scale, b.Min.Y+y/scale))
			}
		}
	}
	return sheet
}

// digitFont is a 3×5 bitmap per digit, one row per 3 bits.
var digitFont = [10][5]uint8{
	{7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
	{7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7},
}

// drawDigits writes s (digits only) at x, y in black.
func drawDigits(img *image.RGBA, x, y int, s string) {
	black := color.RGBA{0, 0, 0, 255}
	for k, ch := range s {
		d := int(ch - '0')
		if d < 0 || d > 9 {
			continue
		}
		for row := 0; row < 5; row++ {
			for col := 0; col < 3; col++ {
				if digitFont[d][row]>>(2-col)&1 == 1 {
					img.SetRGBA(x+k*4+col, y+row+2, black)
				}
			}
		}
	}
}
