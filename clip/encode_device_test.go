package clip

import (
	"errors"
	"image"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// fakeDevice is a BatchEncoder that runs the model's own forward pass and
// counts what it was given; fail makes every call return an error, short
// drops the last value of each result.
type fakeDevice struct {
	m            *Model
	images, txts atomic.Int64
	fail, short  bool
}

func (f *fakeDevice) EncodeImages(pixels []float32, b int) ([]float32, error) {
	f.images.Add(int64(b))
	if f.fail {
		return nil, errors.New("device on fire")
	}
	S := f.m.Config.Vision.ImageSize
	x, err := tensor.FromData(append([]float32(nil), pixels...), b, 3, S, S)
	if err != nil {
		return nil, err
	}
	y := f.m.EncodeImage(nil, ops.Const(x)).Value.Data
	if f.short {
		y = y[:len(y)-1]
	}
	return y, nil
}

func (f *fakeDevice) EncodeTexts(tb *TextBatch) ([]float32, error) {
	f.txts.Add(int64(tb.B))
	if f.fail {
		return nil, errors.New("device on fire")
	}
	if err := f.m.Text.Check(tb); err != nil {
		return nil, err
	}
	y := f.m.EncodeText(nil, tb).Value.Data
	if f.short {
		y = y[:len(y)-1]
	}
	return y, nil
}

// TestEncoderDevice checks that Encoder.Device receives every batch (images
// from pixels and decoded images, texts) and that its results come back
// unchanged and in order; device errors and malformed results are errors.
func TestEncoderDevice(t *testing.T) {
	m, tok := evalSetup(t)
	S := m.Config.Vision.ImageSize
	const n = 7
	pix := tensor.New(n, 3, S, S).Normal(tensor.NewRNG(5), 0, 1)
	caps, _ := randomCaptions(n, 6)
	imgs := randomImages(n, 7)
	get := func(i int) image.Image { return imgs[i] }
	pre := imageproc.DefaultConfig(S)

	host := &Encoder{Model: m, Tok: tok, Batch: 3}
	wantPix := host.Images(pix.Data, n)
	wantDec, err := host.DecodedImages(n, get, pre)
	if err != nil {
		t.Fatal(err)
	}
	wantTxt, err := host.Texts(caps)
	if err != nil {
		t.Fatal(err)
	}

	dev := &fakeDevice{m: m}
	enc := &Encoder{Model: m, Tok: tok, Batch: 3, Workers: 2, Device: dev}
	gotPix := enc.Images(pix.Data, n)
	gotDec, err := enc.DecodedImages(n, get, pre)
	if err != nil {
		t.Fatal(err)
	}
	gotTxt, err := enc.Texts(caps)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBitsF32(gotPix.Data, wantPix.Data) || !sameBitsF32(gotDec.Data, wantDec.Data) || !sameBitsF32(gotTxt.Data, wantTxt.Data) {
		t.Fatal("embeddings through Encoder.Device differ from the model's")
	}
	if dev.images.Load() != 2*n || dev.txts.Load() != int64(len(caps)) {
		t.Fatalf("device saw %d images and %d texts, want %d and %d", dev.images.Load(), dev.txts.Load(), 2*n, len(caps))
	}

	for _, d := range []*fakeDevice{{m: m, fail: true}, {m: m, short: true}} {
		enc := &Encoder{Model: m, Tok: tok, Batch: 3, Device: d}
		if _, err := enc.DecodedImages(n, get, pre); err == nil {
			t.Errorf("fail=%v short=%v: images: no error", d.fail, d.short)
		}
		if _, err := enc.Texts(caps); err == nil || (d.fail && !strings.Contains(err.Error(), "on fire")) {
			t.Errorf("fail=%v short=%v: texts: error %v", d.fail, d.short, err)
		}
	}
}
