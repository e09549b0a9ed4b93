//go:build !noasm

package tensor

import (
	"math"
	"testing"
)

// vecExpectedVariants lists the variants the assembly ops must have here
// (AVX512 also requires avx512SelfCheck to pass).
func vecExpectedVariants() []string {
	v := []string{Generic}
	if cpuAVX2 {
		v = append(v, AVX2)
	}
	if cpuAVX512 {
		v = append(v, AVX512)
	}
	return v
}

// TestQuickGeluBwdAVX2MatchesVia checks the fused AVX2 QuickGELU backward
// against quickGeluBackwardVia over the AVX2 exp, which it replaced: equal
// bit for bit (any NaN matching any NaN), specials and every tail length
// included, with guards around the output.
func TestQuickGeluBwdAVX2MatchesVia(t *testing.T) {
	if !cpuAVX2 {
		t.Skip("no AVX2")
	}
	via := quickGeluBackwardVia(unaryVariant(expAVX2))
	for c, n := range []int{1, 3, 7, 8, 9, 15, 16, 17, 33, 65, 255, 256, 257, 1000} {
		r := vecRNG(t, c)
		x, dy := vecRand(r, n, -70, 70), vecRand(r, n, -3, 3)
		for i := range x {
			switch i % 4 {
			case 0:
				x[i] = actSpecials[r.IntN(len(actSpecials))]
			case 1:
				x[i] /= 10
			}
		}
		want := make([]float32, n)
		via(want, x, dy)
		xb, dyb, got := vecBufOf(x), vecBufOf(dy), newVecBuf(n)
		binaryVariant(quickGeluBwdAVX2)(got.s, xb.s, dyb.s)
		for _, g := range []*vecBuf{xb, dyb, got} {
			g.check(t, "quickGeluBwdAVX2")
		}
		for i, w := range want {
			g := got.s[i]
			if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
				t.Fatalf("n=%d x[%d]=%v: got %v (%#x), via %v (%#x)", n, i, x[i], g, math.Float32bits(g), w, math.Float32bits(w))
			}
		}
	}
}
