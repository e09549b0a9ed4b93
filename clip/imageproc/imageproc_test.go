package imageproc

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCropOffset(t *testing.T) {
	for _, c := range []struct{ n, size, want int }{
		{224, 224, 0},
		{225, 224, 0}, // round(0.5) = 0
		{226, 224, 1},
		{227, 224, 2}, // round(1.5) = 2
		{229, 224, 2}, // round(2.5) = 2
		{231, 224, 4}, // round(3.5) = 4
		{9600, 224, 4688},
		{13176, 224, 6476},
	} {
		if got := CropOffset(c.n, c.size); got != c.want {
			t.Errorf("CropOffset(%d, %d) = %d, want %d", c.n, c.size, got, c.want)
		}
	}
}

func TestResizedSize(t *testing.T) {
	for _, c := range []struct{ w, h, s, ww, wh int }{
		{7, 300, 224, 224, 9600},
		{1000, 17, 224, 13176, 224},
		{333, 221, 224, 337, 224}, // 337.52 truncated
		{640, 480, 224, 298, 224},
		{224, 224, 224, 224, 224},
		{1, 1, 224, 224, 224},
		{480, 640, 224, 224, 298},
	} {
		w, h := ResizedSize(c.w, c.h, c.s)
		if w != c.ww || h != c.wh {
			t.Errorf("ResizedSize(%d, %d, %d) = %d×%d, want %d×%d", c.w, c.h, c.s, w, h, c.ww, c.wh)
		}
	}
}

func TestParseMode(t *testing.T) {
	for s, want := range map[string]Mode{"resize-crop": ResizeCrop, "squash": Squash, "center-crop": ResizeCrop} {
		m, err := ParseMode(s)
		if err != nil || m != want {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseMode("stretch"); err == nil {
		t.Error("ParseMode(stretch) succeeded")
	}
	if ResizeCrop.String() != "resize-crop" || Squash.String() != "squash" {
		t.Error("Mode.String")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig(224).Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Config{
		{Size: 0, Std: [3]float32{1, 1, 1}},
		{Size: 4, Std: [3]float32{1, 0, 1}},
		{Size: 4, Resize: 3, Std: [3]float32{1, 1, 1}},
		{Size: 4, Mode: Mode(7), Std: [3]float32{1, 1, 1}},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%+v validated", c)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Preprocess with an invalid config did not panic")
		}
	}()
	Preprocess(NewRGB8(2, 2), Config{Size: 0})
}

func TestDefaultConfigConstants(t *testing.T) {
	c := DefaultConfig(224)
	// float64 → float32 at run time, as torch.as_tensor(mean, dtype=float32).
	if c.Mean[0] != float32(0.48145466) || c.Std[2] != float32(0.27577711) || c.Size != 224 || c.Mode != ResizeCrop {
		t.Fatalf("%+v", c)
	}
}

func randRGB8(r *rand.Rand, w, h int) *RGB8 {
	m := NewRGB8(w, h)
	for i := range m.Pix {
		m.Pix[i] = uint8(r.IntN(256))
	}
	return m
}

// The windowed resize (only the crop is computed) must equal a crop of the
// full resize.
func TestResizeWindowMatchesFullResize(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		src := randRGB8(r, 1+r.IntN(60), 1+r.IntN(60))
		ow, oh := 1+r.IntN(80), 1+r.IntN(80)
		full := ResizeBicubic(src, ow, oh)
		x0, y0 := r.IntN(ow), r.IntN(oh)
		cw, ch := 1+r.IntN(ow-x0), 1+r.IntN(oh-y0)
		win := resizeWindow(src, ow, oh, x0, y0, cw, ch)
		for y := range ch {
			a := win.Pix[3*y*cw : 3*(y+1)*cw]
			b := full.Pix[3*((y0+y)*ow+x0) : 3*((y0+y)*ow+x0+cw)]
			if !bytes.Equal(a, b) {
				t.Fatalf("%dx%d→%dx%d window (%d,%d,%d,%d) row %d differs", src.Width, src.Height, ow, oh, x0, y0, cw, ch, y)
			}
		}
	}
}

func TestResizeIdentityAndConstant(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	src := randRGB8(r, 13, 7)
	if got := ResizeBicubic(src, 13, 7); !bytes.Equal(got.Pix, src.Pix) {
		t.Fatal("same-size resize is not the identity")
	}
	// A constant image stays constant at any scale (coefficients sum to 1).
	c := NewRGB8(9, 5)
	for i := range c.Pix {
		c.Pix[i] = 200
	}
	for _, sz := range [][2]int{{1, 1}, {3, 17}, {40, 2}, {224, 224}} {
		got := ResizeBicubic(c, sz[0], sz[1])
		for i, v := range got.Pix {
			if v != 200 {
				t.Fatalf("%v: pixel %d = %d", sz, i, v)
			}
		}
	}
}

func TestPreprocessShapeAndNormalisation(t *testing.T) {
	img := NewRGB8(40, 30)
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	cfg := DefaultConfig(8)
	out := Preprocess(img, cfg)
	if len(out) != 3*8*8 {
		t.Fatalf("len %d", len(out))
	}
	for c := range 3 {
		want := (float32(255)/255 - cfg.Mean[c]) / cfg.Std[c]
		for _, v := range out[c*64 : (c+1)*64] {
			if v != want {
				t.Fatalf("channel %d: %v, want %v", c, v, want)
			}
		}
	}
	cfg.Mode = Squash
	if got := Prepare(img, cfg); got.Width != 8 || got.Height != 8 {
		t.Fatalf("squash gave %dx%d", got.Width, got.Height)
	}
	cfg.Mode = ResizeCrop
	cfg.Resize = 10
	if got := Prepare(img, cfg); got.Width != 8 || got.Height != 8 {
		t.Fatalf("resize 10 / crop 8 gave %dx%d", got.Width, got.Height)
	}
}

// Squash and ResizeCrop agree on square inputs; Resize > Size crops the
// middle of a larger resize.
func TestModesOnSquareImage(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	img := randRGB8(r, 50, 50)
	a := Prepare(img, Config{Size: 16, Std: [3]float32{1, 1, 1}, Mode: ResizeCrop})
	b := Prepare(img, Config{Size: 16, Std: [3]float32{1, 1, 1}, Mode: Squash})
	if !bytes.Equal(a.Pix, b.Pix) {
		t.Fatal("modes differ on a square image")
	}
	c := Prepare(img, Config{Size: 16, Resize: 20, Std: [3]float32{1, 1, 1}})
	full := ResizeBicubic(img, 20, 20)
	for y := range 16 {
		if !bytes.Equal(c.Pix[3*16*y:3*16*(y+1)], full.Pix[3*(20*(y+2)+2):3*(20*(y+2)+18)]) {
			t.Fatalf("row %d of the 20→16 crop differs", y)
		}
	}
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBatchDeterministicAndErrors(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(7, 8))
	var paths []string
	for i := range 7 {
		w, h := 5+r.IntN(70), 5+r.IntN(70)
		m := image.NewNRGBA(image.Rect(0, 0, w, h))
		for j := range m.Pix {
			m.Pix[j] = uint8(r.IntN(256))
		}
		p := filepath.Join(dir, "img"+string(rune('a'+i))+".png")
		writePNG(t, p, m)
		paths = append(paths, p)
	}
	cfg := DefaultConfig(12)
	got, err := Batch(paths, cfg)
	if err != nil {
		t.Fatal(err)
	}
	per := 3 * 12 * 12
	for i, p := range paths {
		one, err := LoadPreprocessed(p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(one, got[i*per:(i+1)*per]) {
			t.Fatalf("batch item %d differs from LoadPreprocessed", i)
		}
	}
	again, err := Batch(paths, cfg)
	if err != nil || !slices.Equal(again, got) {
		t.Fatal("Batch is not deterministic")
	}

	bad1 := filepath.Join(dir, "missing.png")
	bad2 := filepath.Join(dir, "garbage.png")
	os.WriteFile(bad2, []byte("definitely not an image"), 0o644)
	_, err = Batch([]string{paths[0], bad1, paths[1], bad2}, cfg)
	if err == nil || !strings.Contains(err.Error(), "missing.png") || !strings.Contains(err.Error(), "1 more") {
		t.Fatalf("Batch error = %v; want the first failing file and a count", err)
	}
	if _, err := Batch(paths, Config{Size: 0}); err == nil {
		t.Fatal("Batch with an invalid config succeeded")
	}
	if out, err := Batch(nil, cfg); err != nil || len(out) != 0 {
		t.Fatalf("empty batch: %v, %d values", err, len(out))
	}
}

func TestToRGB8Conversions(t *testing.T) {
	// NRGBA: alpha dropped, colour kept even where alpha is 0.
	n := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	copy(n.Pix, []uint8{10, 20, 30, 0, 200, 100, 50, 128})
	if got := ToRGB8(n).Pix; !bytes.Equal(got, []uint8{10, 20, 30, 200, 100, 50}) {
		t.Errorf("NRGBA: %v", got)
	}
	// RGBA is premultiplied: un-premultiply before dropping alpha.
	p := image.NewRGBA(image.Rect(0, 0, 1, 1))
	p.SetRGBA(0, 0, color.RGBA{50, 25, 0, 128})
	want := color.NRGBAModel.Convert(color.RGBA{50, 25, 0, 128}).(color.NRGBA)
	if got := ToRGB8(p).Pix; !bytes.Equal(got, []uint8{want.R, want.G, want.B}) {
		t.Errorf("RGBA: %v, want %v", got, want)
	}
	// 16-bit gray saturates (Pillow mode I → RGB); NRGBA64 keeps the high byte.
	g := image.NewGray16(image.Rect(0, 0, 3, 1))
	g.SetGray16(0, 0, color.Gray16{100})
	g.SetGray16(1, 0, color.Gray16{255})
	g.SetGray16(2, 0, color.Gray16{256})
	if got := ToRGB8(g).Pix; !bytes.Equal(got, []uint8{100, 100, 100, 255, 255, 255, 255, 255, 255}) {
		t.Errorf("Gray16: %v", got)
	}
	n64 := image.NewNRGBA64(image.Rect(0, 0, 1, 1))
	n64.SetNRGBA64(0, 0, color.NRGBA64{0x1234, 0xff00, 0x00ff, 0})
	if got := ToRGB8(n64).Pix; !bytes.Equal(got, []uint8{0x12, 0xff, 0x00}) {
		t.Errorf("NRGBA64: %v", got)
	}
	// CMYK with Pillow's cmyk2rgb rounding (values checked against Pillow 9.4).
	c := image.NewCMYK(image.Rect(0, 0, 4, 1))
	copy(c.Pix, []uint8{10, 200, 30, 40, 255, 0, 128, 255, 0, 0, 0, 0, 100, 100, 100, 100})
	if got := ToRGB8(c).Pix; !bytes.Equal(got, []uint8{207, 46, 190, 0, 0, 0, 255, 255, 255, 94, 94, 94}) {
		t.Errorf("CMYK: %v", got)
	}
	// Paletted with a translucent entry: the entry's colour, alpha dropped.
	pal := image.NewPaletted(image.Rect(0, 0, 2, 1), color.Palette{color.NRGBA{1, 2, 3, 0}, color.RGBA{4, 5, 6, 255}})
	pal.Pix[0], pal.Pix[1] = 0, 1
	if got := ToRGB8(pal).Pix; !bytes.Equal(got, []uint8{1, 2, 3, 4, 5, 6}) {
		t.Errorf("Paletted: %v", got)
	}
	// Sub-images start at their own origin.
	big := image.NewGray(image.Rect(0, 0, 4, 4))
	big.Pix[1*4+2] = 77
	sub := big.SubImage(image.Rect(2, 1, 4, 3))
	if got := ToRGB8(sub); got.Width != 2 || got.Height != 2 || got.Pix[0] != 77 {
		t.Errorf("Gray sub-image: %+v", got)
	}
}

// refFancy is an independent, plane-at-a-time transcription of libjpeg's
// fancy upsampling with explicit edge replication, to check YCbCrToRGB8's
// pixel-wise formulation.
func refFancy(plane []uint8, cw, chh, stride, hs, vs, w, h int) []uint8 {
	at := func(x, y int) int32 {
		x = min(max(x, 0), cw-1)
		y = min(max(y, 0), chh-1)
		return int32(plane[y*stride+x])
	}
	out := make([]uint8, w*h)
	for y := range h {
		for x := range w {
			cx, cy := x/hs, y/vs
			var v int32
			switch {
			case hs == 2 && vs == 2:
				ny := cy - 1
				if y%2 == 1 {
					ny = cy + 1
				}
				col := func(c int) int32 { return 3*at(c, cy) + at(c, ny) }
				if x%2 == 0 {
					v = (3*col(cx) + col(cx-1) + 8) >> 4
				} else {
					v = (3*col(cx) + col(cx+1) + 7) >> 4
				}
			case hs == 2:
				if x%2 == 0 {
					v = (3*at(cx, cy) + at(cx-1, cy) + 1) >> 2
				} else {
					v = (3*at(cx, cy) + at(cx+1, cy) + 2) >> 2
				}
			case vs == 2:
				if y%2 == 0 {
					v = (3*at(cx, cy) + at(cx, cy-1) + 1) >> 2
				} else {
					v = (3*at(cx, cy) + at(cx, cy+1) + 2) >> 2
				}
			default:
				v = at(cx, cy)
			}
			out[y*w+x] = uint8(v)
		}
	}
	return out
}

func TestFancyUpsamplingMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	ratios := []struct {
		r      image.YCbCrSubsampleRatio
		hs, vs int
	}{
		{image.YCbCrSubsampleRatio420, 2, 2},
		{image.YCbCrSubsampleRatio422, 2, 1},
		{image.YCbCrSubsampleRatio440, 1, 2},
		{image.YCbCrSubsampleRatio444, 1, 1},
	}
	for _, rt := range ratios {
		for _, sz := range [][2]int{{1, 1}, {5, 5}, {6, 4}, {7, 9}, {16, 16}, {33, 17}} {
			w, h := sz[0], sz[1]
			m := image.NewYCbCr(image.Rect(0, 0, w, h), rt.r)
			for i := range m.Y {
				m.Y[i] = uint8(r.IntN(256))
			}
			for i := range m.Cb {
				m.Cb[i] = uint8(r.IntN(256))
				m.Cr[i] = uint8(r.IntN(256))
			}
			got := YCbCrToRGB8(m)
			cw, chh := (w+rt.hs-1)/rt.hs, (h+rt.vs-1)/rt.vs
			hs := rt.hs
			if hs == 2 && cw <= 2 { // libjpeg's plain replication
				cb := make([]uint8, w*h)
				cr := make([]uint8, w*h)
				for y := range h {
					for x := range w {
						cb[y*w+x] = m.Cb[m.COffset(x, y)]
						cr[y*w+x] = m.Cr[m.COffset(x, y)]
					}
				}
				checkYCC(t, rt.r, w, h, m, cb, cr, got)
				continue
			}
			cb := refFancy(m.Cb, cw, chh, m.CStride, hs, rt.vs, w, h)
			cr := refFancy(m.Cr, cw, chh, m.CStride, hs, rt.vs, w, h)
			checkYCC(t, rt.r, w, h, m, cb, cr, got)
		}
	}
}

func checkYCC(t *testing.T, r image.YCbCrSubsampleRatio, w, h int, m *image.YCbCr, cb, cr []uint8, got *RGB8) {
	t.Helper()
	for y := range h {
		for x := range w {
			R, G, B := yccToRGB(m.Y[m.YOffset(x, y)], cb[y*w+x], cr[y*w+x])
			i := 3 * (y*w + x)
			if got.Pix[i] != R || got.Pix[i+1] != G || got.Pix[i+2] != B {
				t.Fatalf("%v %dx%d pixel (%d,%d): got %v, want %v", r, w, h, x, y, got.Pix[i:i+3], []uint8{R, G, B})
			}
		}
	}
}

// libjpeg's fixed-point conversion: spot values and agreement with the
// floating-point JFIF formula to within rounding.
func TestYCCToRGB(t *testing.T) {
	if r, g, b := yccToRGB(128, 128, 128); r != 128 || g != 128 || b != 128 {
		t.Fatalf("grey: %d %d %d", r, g, b)
	}
	for y := 0; y < 256; y += 5 {
		for cb := 0; cb < 256; cb += 7 {
			for cr := 0; cr < 256; cr += 11 {
				r, g, b := yccToRGB(uint8(y), uint8(cb), uint8(cr))
				fr := float64(y) + 1.402*float64(cr-128)
				fg := float64(y) - 0.34414*float64(cb-128) - 0.71414*float64(cr-128)
				fb := float64(y) + 1.772*float64(cb-128)
				for _, p := range [][2]float64{{float64(r), fr}, {float64(g), fg}, {float64(b), fb}} {
					want := min(max(p[1], 0), 255)
					if d := p[0] - want; d > 1 || d < -1 {
						t.Fatalf("ycc(%d,%d,%d) = %d,%d,%d; float %v,%v,%v", y, cb, cr, r, g, b, fr, fg, fb)
					}
				}
			}
		}
	}
}

func TestYCbCrSubImage(t *testing.T) {
	m := image.NewYCbCr(image.Rect(0, 0, 9, 7), image.YCbCrSubsampleRatio420)
	for i := range m.Cb {
		m.Cb[i], m.Cr[i] = uint8(i*13), uint8(i*29)
	}
	sub := m.SubImage(image.Rect(1, 1, 8, 6)).(*image.YCbCr)
	got := YCbCrToRGB8(sub)
	if got.Width != 7 || got.Height != 5 {
		t.Fatalf("%dx%d", got.Width, got.Height)
	}
}

// BenchmarkPreprocess1080p times the CPU path for a decoded 1920×1080 4:2:0
// JPEG: libjpeg-style colour conversion, bicubic resize-crop to 224 and
// normalisation.
func BenchmarkPreprocess1080p(b *testing.B) {
	r := rand.New(rand.NewPCG(11, 12))
	m := image.NewYCbCr(image.Rect(0, 0, 1920, 1080), image.YCbCrSubsampleRatio420)
	for i := range m.Y {
		m.Y[i] = uint8(r.IntN(256))
	}
	for i := range m.Cb {
		m.Cb[i], m.Cr[i] = uint8(r.IntN(256)), uint8(r.IntN(256))
	}
	cfg := DefaultConfig(224)
	b.ReportAllocs()
	for b.Loop() {
		Preprocess(m, cfg)
	}
}

// TestYCCToRGBTableIsExact checks the range-limit table lookup of yccToRGB
// against plain clamping of libjpeg's fixed-point sums, for every (Y, Cb,
// Cr): the masked index never wraps.
func TestYCCToRGBTableIsExact(t *testing.T) {
	for y := 0; y < 256; y++ {
		for cb := 0; cb < 256; cb++ {
			for cr := 0; cr < 256; cr++ {
				r, g, b := yccToRGB(uint8(y), uint8(cb), uint8(cr))
				Y := int32(y)
				wr := clamp255(Y + crRTab[cr])
				wg := clamp255(Y + ((cbGTab[cb] + crGTab[cr]) >> yccScaleBits))
				wb := clamp255(Y + cbBTab[cb])
				if r != wr || g != wg || b != wb {
					t.Fatalf("ycc(%d,%d,%d) = %d,%d,%d, want %d,%d,%d", y, cb, cr, r, g, b, wr, wg, wb)
				}
			}
		}
	}
}
