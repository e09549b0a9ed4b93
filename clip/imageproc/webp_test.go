package imageproc

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWebPLossless decodes lossless WebP files written by Pillow
// (libwebp) from known pixels: the RGB must be exact, and an alpha channel
// is dropped as Pillow's convert("RGB") does.
func TestWebPLossless(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("testdata", "lossless_17x13.rgb"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"lossless_17x13.webp", "lossless_alpha_17x13.webp"} {
		img, err := Load(filepath.Join("testdata", name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if img.Width != 17 || img.Height != 13 || !bytes.Equal(img.Pix, want) {
			t.Errorf("%s: %dx%d, pixels equal: %v", name, img.Width, img.Height, bytes.Equal(img.Pix, want))
		}
	}
	data, _ := os.ReadFile(filepath.Join("testdata", "lossless_17x13.webp"))
	for _, bad := range [][]byte{data[:30], append([]byte("RIFF\x00\x00\x00\x00WEBP"), make([]byte, 8)...)} {
		if _, err := Decode(bad); err == nil || !strings.Contains(err.Error(), "webp") {
			t.Errorf("truncated WebP: %v", err)
		}
	}
	if _, err := Decode([]byte("GIF89a....")); err == nil || !strings.Contains(err.Error(), "WebP") {
		t.Errorf("unknown format: %v", err)
	}
}
