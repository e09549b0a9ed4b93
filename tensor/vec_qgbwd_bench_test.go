package tensor

import (
	"fmt"
	"testing"
)

// BenchmarkQuickGELUBackward compares the QuickGELU backward variants on an
// MLP-sized activation (batch of 64 tokens × 1024 units), and "via-exp":
// quickGeluBackwardVia over the active Exp, the reference the fused kernels
// replaced.
func BenchmarkQuickGELUBackward(b *testing.B) {
	const n = 64 * 1024
	r := NewRNG(1)
	x := New(n).Uniform(r, -6, 6).Data
	dy := New(n).Uniform(r, -1, 1).Data
	dx := make([]float32, n)
	b.Run("via-exp", func(b *testing.B) {
		f := quickGeluBackwardVia(Exp)
		b.SetBytes(3 * 4 * n)
		for i := 0; i < b.N; i++ {
			f(dx, x, dy)
		}
	})
	for _, v := range quickGeluBwdK.Variants() {
		b.Run(fmt.Sprint(v.Name), func(b *testing.B) {
			b.SetBytes(3 * 4 * n)
			for i := 0; i < b.N; i++ {
				v.Fn(dx, x, dy)
			}
		})
	}
}
