package imageproc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"strings"

	"golang.org/x/image/webp"
)

// MaxPixels bounds the pixel count of a decoded image; larger images are
// rejected before decoding. The default is the size at which Pillow raises
// DecompressionBombError (2 × 89,478,485).
var MaxPixels = 178956970

var (
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
	jpegMagic = []byte{0xff, 0xd8}
)

// Load reads a PNG, JPEG or WebP file and returns its pixels as 8-bit RGB, as
// Pillow's Image.open(path).convert("RGB") does (see ToRGB8 and
// YCbCrToRGB8). Errors name the file.
func Load(path string) (*RGB8, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("imageproc: %w", err)
	}
	img, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("imageproc: %s: %w", path, err)
	}
	return img, nil
}

// Decode decodes PNG, JPEG or WebP data to 8-bit RGB like Load. WebP goes
// through golang.org/x/image/webp: lossless files are exact, lossy ones
// differ from Pillow's libwebp by its chroma upsampling and YUV rounding
// (a few levels), and an alpha channel is dropped as convert("RGB") does.
func Decode(data []byte) (*RGB8, error) {
	switch {
	case len(data) == 0:
		return nil, errors.New("empty file")
	case bytes.HasPrefix(data, pngMagic):
		return decodePNG(data)
	case bytes.HasPrefix(data, jpegMagic):
		return decodeJPEG(data)
	case isWebP(data):
		return decodeWebP(data)
	}
	return nil, errors.New("not a PNG, JPEG or WebP file")
}

func checkSize(cfg image.Config) error {
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return fmt.Errorf("invalid image size %d×%d", cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(MaxPixels) {
		return fmt.Errorf("image of %d×%d pixels exceeds the limit of %d pixels", cfg.Width, cfg.Height, MaxPixels)
	}
	return nil
}

func decodePNG(data []byte) (*RGB8, error) {
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, decodeErr("png", err)
	}
	if err := checkSize(cfg); err != nil {
		return nil, err
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, decodeErr("png", err)
	}
	// 16-bit grayscale (IHDR bit depth 16, colour type 0) is mode "I" in
	// Pillow, whose conversion to RGB saturates at 255; with a tRNS chunk
	// image/png returns it as NRGBA64.
	if len(data) >= 26 && data[24] == 16 && data[25] == 0 {
		if m, ok := img.(*image.NRGBA64); ok {
			return nrgba64GrayClipToRGB8(m), nil
		}
	}
	return ToRGB8(img), nil
}

func decodeJPEG(data []byte) (*RGB8, error) {
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, decodeErr("jpeg", err)
	}
	if err := checkSize(cfg); err != nil {
		return nil, err
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, decodeErr("jpeg", err)
	}
	return ToRGB8(img), nil
}

// decodeErr prefixes err with the format (unless image/png or image/jpeg
// already did) and makes a truncation say so.
func decodeErr(format string, err error) error {
	msg := err.Error()
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		strings.Contains(msg, "not enough pixel data") || strings.Contains(msg, "short Huffman data") {
		return fmt.Errorf("%s: truncated or corrupt file (%w)", format, err)
	}
	if strings.HasPrefix(msg, format+":") {
		return err
	}
	return fmt.Errorf("%s: %w", format, err)
}

// isWebP reports a RIFF container of type WEBP.
func isWebP(data []byte) bool {
	return len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP"
}

func decodeWebP(data []byte) (*RGB8, error) {
	cfg, err := webp.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, decodeErr("webp", err)
	}
	if err := checkSize(cfg); err != nil {
		return nil, err
	}
	img, err := webp.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, decodeErr("webp", err)
	}
	return ToRGB8(img), nil
}
