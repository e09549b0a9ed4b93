package tensor

import (
	"fmt"
	"math"
	"testing"
)

// packRef is the plain meaning of packA/packB: panels of w along the short
// side p, element (q, r) of panel k at k*kb*w + q*w + r, from op(S)(p0+k*w+r,
// q0+q) where op(S)(p, q) = s[p*ld+q] (gather) or s[q*ld+p] (copy); zero
// past rows.
func packRef(gather bool, s []float32, ld, p0, rows, q0, kb, w int) []float32 {
	out := make([]float32, ceilDiv(rows, w)*kb*w)
	for k := 0; k*w < rows; k++ {
		for q := 0; q < kb; q++ {
			for r := 0; r < w; r++ {
				p := k*w + r
				if p >= rows {
					continue
				}
				if gather {
					out[k*kb*w+q*w+r] = s[(p0+p)*ld+q0+q]
				} else {
					out[k*kb*w+q*w+r] = s[(q0+q)*ld+p0+p]
				}
			}
		}
	}
	return out
}

// TestPack checks packA and packB, both transpositions, against packRef for
// every panel width the kernels use and awkward sizes, with guard values
// after the packed block and stale data in it (the zero padding must be
// written).
func TestPack(t *testing.T) {
	const ld = 1031
	src := make([]float32, ld*140)
	for i := range src {
		src[i] = float32(i%4099) + 0.5
	}
	for _, w := range []int{2, 4, 6, 8, 14, 16, 32} {
		for _, rows := range []int{1, 2, 3, 5, 7, w, w + 1, 2*w + 3, 65} {
			for _, kb := range []int{1, 3, 4, 7, 9, 33, 65, 130} {
				for _, trans := range []bool{false, true} {
					// packA gathers when A is not transposed; packB when B is.
					for _, isA := range []bool{true, false} {
						gather := trans != isA
						p0, q0 := 3, 5
						want := packRef(gather, src, ld, p0, rows, q0, kb, w)
						buf := make([]float32, len(want)+vecGuardLen)
						for i := range buf {
							buf[i] = vecGuard
						}
						if isA {
							packA(trans, src, ld, p0, rows, q0, kb, w, buf)
						} else {
							packB(trans, src, ld, q0, kb, p0, rows, w, buf)
						}
						for i, v := range want {
							if math.Float32bits(buf[i]) != math.Float32bits(v) {
								t.Fatalf("w=%d rows=%d kb=%d trans=%v A=%v: [%d] = %v, want %v", w, rows, kb, trans, isA, i, buf[i], v)
							}
						}
						for i := len(want); i < len(buf); i++ {
							if math.Float32bits(buf[i]) != math.Float32bits(vecGuard) {
								t.Fatalf("w=%d rows=%d kb=%d trans=%v A=%v: guard %d overwritten", w, rows, kb, trans, isA, i-len(want))
							}
						}
					}
				}
			}
		}
	}
}

// BenchmarkPack packs one A block (mb×kb, mr = 6) and one B block (kb×nb,
// nr = 16), the AVX2 kernel's panels, from a 2048×1024 matrix, both
// transpositions: the four packing loops of a training step's GEMMs.
// Transposed A runs with copySpread and without (panel by panel).
func BenchmarkPack(b *testing.B) {
	const ld, mb, kb, nb = 1024, 280, 256, 256
	src := New(2048, ld).Data
	for i := range src {
		src[i] = float32(i)
	}
	dst := aligned[float32](roundUp(max(mb, nb), 32) * kb)
	// The panel widths of the AVX2 (6×16) and AVX-512 (14×32) kernels.
	for _, w := range []struct{ mr, nr int }{{6, 16}, {14, 32}} {
		packAs := func(trans, spread bool) func(b *testing.B) {
			return func(b *testing.B) {
				defer func(old bool) { packSpread = old }(packSpread)
				packSpread = spread
				b.SetBytes(4 * mb * kb)
				for i := 0; i < b.N; i++ {
					packA(trans, src, ld, (i%4)*mb, mb, 0, kb, w.mr, dst)
				}
			}
		}
		b.Run(fmt.Sprintf("A/mr=%d/trans=false", w.mr), packAs(false, true))
		b.Run(fmt.Sprintf("A/mr=%d/trans=true", w.mr), packAs(true, true))
		b.Run(fmt.Sprintf("A/mr=%d/trans=true/panelwise", w.mr), packAs(true, false))
		for _, trans := range []bool{false, true} {
			b.Run(fmt.Sprintf("B/nr=%d/trans=%v", w.nr, trans), func(b *testing.B) {
				b.SetBytes(4 * nb * kb)
				for i := 0; i < b.N; i++ {
					packB(trans, src, ld, (i%4)*kb, kb, 0, nb, w.nr, dst)
				}
			})
		}
	}
}
