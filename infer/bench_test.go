package infer

import (
	"runtime"
	"testing"
)

// BenchmarkViTB32 measures the image and text towers of a random ViT-B/32 at
// batch 1 on one thread (go test -bench ViTB32 -run X ./infer/).
func BenchmarkViTB32(b *testing.B) {
	m := randomModel(b, preset(b, "ViT-B/32"), 7)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	e, err := New(m, Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	in := makeInputs(m, 1, 77, 1)
	img := make([]float32, e.EmbedDim())
	txt := make([]float32, e.EmbedDim())
	b.Run("image", func(b *testing.B) {
		for b.Loop() {
			e.EncodeImages(in.pixels, 1, img)
		}
	})
	b.Run("text", func(b *testing.B) {
		for b.Loop() {
			e.EncodeTexts(in.ids, in.eot, 1, 77, txt)
		}
	})
}
