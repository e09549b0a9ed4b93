package infer

import (
	"runtime"
	"testing"
)

// BenchmarkViTB32 measures the image and text towers of a random ViT-B/32 at
// batch 1, per weight type, on GOMAXPROCS threads (go test -bench ViTB32
// -run X -cpu 1,2 ./infer/; -bench ViTB32/f32 for the float32 engine only).
func BenchmarkViTB32(b *testing.B) {
	m := randomModel(b, preset(b, "ViT-B/32"), 7)
	in := makeInputs(m, 1, 77, 1)
	for _, dt := range []DType{F32, BF16, INT8} {
		e, err := New(m, Options{Threads: runtime.GOMAXPROCS(0), DType: dt})
		if err != nil {
			b.Fatal(err)
		}
		img := make([]float32, e.EmbedDim())
		txt := make([]float32, e.EmbedDim())
		b.Run(dt.String()+"/image", func(b *testing.B) {
			for b.Loop() {
				e.EncodeImages(in.pixels, 1, img)
			}
		})
		b.Run(dt.String()+"/text", func(b *testing.B) {
			for b.Loop() {
				e.EncodeTexts(in.ids, in.eot, 1, 77, txt)
			}
		})
		e.Close()
	}
}
