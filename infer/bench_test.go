package infer

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkViTB32 measures the image and text towers of a random ViT-B/32 at
// batch 1, per weight type, on 1 and 2 threads (the engine's Threads, and
// GOMAXPROCS while the sub-benchmark runs: go test -bench ViTB32 -run X
// ./infer/; -bench ViTB32/f32 for the float32 engine only, -bench
// ViTB32/f32/threads=2 for two threads). The thread count is set here, not
// with -cpu, which does not reach the engines built outside the leaves.
func BenchmarkViTB32(b *testing.B) {
	m := randomModel(b, preset(b, "ViT-B/32"), 7)
	in := makeInputs(m, 1, 77, 1)
	for _, dt := range []DType{F32, BF16, INT8} {
		b.Run(dt.String(), func(b *testing.B) {
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("threads=%d", th), func(b *testing.B) {
					e, err := New(m, Options{Threads: th, DType: dt})
					if err != nil {
						b.Fatal(err)
					}
					defer e.Close()
					img := make([]float32, e.EmbedDim())
					txt := make([]float32, e.EmbedDim())
					b.Run("image", func(b *testing.B) {
						defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(th))
						for b.Loop() {
							e.EncodeImages(in.pixels, 1, img)
						}
					})
					b.Run("text", func(b *testing.B) {
						defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(th))
						for b.Loop() {
							e.EncodeTexts(in.ids, in.eot, 1, 77, txt)
						}
					})
				})
			}
		})
	}
}
