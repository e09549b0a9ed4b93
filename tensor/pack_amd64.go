//go:build amd64 && !noasm

package tensor

// SSE packing loops (pack_amd64.s), used by gatherPanel and copyPanel once
// they have checked the bounds of every element these read and write.

const packAsm = true

// gatherRows4: for r < 4, l < 4·kb4: d[l*w+r] = src[r*ld+l].
//
//go:noescape
func gatherRows4(d, src *float32, ld, kb4, w int)

// gatherRows2: for r < 2, l < 4·kb4: d[l*w+r] = src[r*ld+l].
//
//go:noescape
func gatherRows2(d, src *float32, ld, kb4, w int)

// copySpread6: for p < np, r < 6: d[p*pstride+r] = s[p*6+r].
//
//go:noescape
func copySpread6(d, s *float32, np, pstride int)

// copyRows6: for l < kb, r < 6: d[l*6+r] = s[l*ld+r].
//
//go:noescape
func copyRows6(d, s *float32, ld, kb int)

// copyRows16: for l < kb, r < 16: d[l*16+r] = s[l*ld+r].
//
//go:noescape
func copyRows16(d, s *float32, ld, kb int)
