package imageproc

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodeJPEG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testPattern(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetNRGBA(x, y, color.NRGBA{uint8(x * 7), uint8(y * 11), uint8(x*y + 3), uint8(x + y)})
		}
	}
	return m
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	pngData := encodePNG(t, testPattern(40, 30))
	jpgData := encodeJPEG(t, testPattern(40, 30))
	cases := map[string][]byte{
		"trunc.png":   pngData[:len(pngData)/2],
		"header.png":  pngData[:20],
		"trunc.jpg":   jpgData[:len(jpgData)/2],
		"header.jpg":  jpgData[:4],
		"empty.png":   {},
		"garbage.jpg": []byte("GIF89a not supported here"),
		"corrupt.png": func() []byte {
			b := bytes.Clone(pngData)
			for i := 60; i < len(b)-20; i += 7 { // damage IDAT (CRC fails)
				b[i] ^= 0x5a
			}
			return b
		}(),
	}
	for name, data := range cases {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		img, err := Load(p)
		if err == nil {
			t.Errorf("%s: loaded a %dx%d image", name, img.Width, img.Height)
			continue
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error does not name the file: %v", name, err)
		}
		if strings.HasPrefix(name, "trunc") && !strings.Contains(err.Error(), "truncated") {
			t.Errorf("%s: error does not say truncated: %v", name, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "nope.png")); err == nil || !strings.Contains(err.Error(), "nope.png") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadPreprocessed(filepath.Join(dir, "nope.png"), DefaultConfig(8)); err == nil {
		t.Error("LoadPreprocessed of a missing file succeeded")
	}
}

func TestLoadPNGDropsAlpha(t *testing.T) {
	src := testPattern(9, 5) // alpha 0 at (0,0): its colour must survive
	p := filepath.Join(t.TempDir(), "a.png")
	os.WriteFile(p, encodePNG(t, src), 0o644)
	img, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	for y := range 5 {
		for x := range 9 {
			c := src.NRGBAAt(x, y)
			i := 3 * (y*9 + x)
			if img.Pix[i] != c.R || img.Pix[i+1] != c.G || img.Pix[i+2] != c.B {
				t.Fatalf("(%d,%d): %v, want %v", x, y, img.Pix[i:i+3], c)
			}
		}
	}
}

func TestLoadPNGGray16Saturates(t *testing.T) {
	g := image.NewGray16(image.Rect(0, 0, 3, 1))
	for i, v := range []uint16{7, 255, 40000} {
		g.SetGray16(i, 0, color.Gray16{v})
	}
	img, err := Decode(encodePNG(t, g))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.Pix, []uint8{7, 7, 7, 255, 255, 255, 255, 255, 255}) {
		t.Fatalf("%v", img.Pix)
	}
}

func TestLoadJPEGUsesFancyUpsampling(t *testing.T) {
	// Go's encoder writes 4:2:0; the decoded colours must come from
	// YCbCrToRGB8, not from image/jpeg's own conversion.
	data := encodeJPEG(t, testPattern(31, 17))
	img, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	y, ok := m.(*image.YCbCr)
	if !ok || y.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		t.Fatalf("unexpected %T", m)
	}
	if !bytes.Equal(img.Pix, YCbCrToRGB8(y).Pix) {
		t.Fatal("Decode does not use YCbCrToRGB8")
	}
}

func TestMaxPixels(t *testing.T) {
	old := MaxPixels
	MaxPixels = 100
	defer func() { MaxPixels = old }()
	if _, err := Decode(encodePNG(t, testPattern(11, 10))); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversized PNG: %v", err)
	}
	if _, err := Decode(encodeJPEG(t, testPattern(11, 10))); err == nil {
		t.Fatal("oversized JPEG decoded")
	}
	if _, err := Decode(encodePNG(t, testPattern(10, 10))); err != nil {
		t.Fatal(err)
	}
}
