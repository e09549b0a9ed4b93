//go:build !amd64 || noasm

package tensor

// Without the SSE packing loops (pack_amd64.s) gatherPanel and copyPanel
// use their Go loops; these stand-ins are never called.

const packAsm = false

func gatherRows4(d, src *float32, ld, kb4, w int) { panic("tensor: no gatherRows4") }
func gatherRows2(d, src *float32, ld, kb4, w int) { panic("tensor: no gatherRows2") }
func copySpread6(d, s *float32, np, pstride int)  { panic("tensor: no copySpread6") }
func copyRows6(d, s *float32, ld, kb int)         { panic("tensor: no copyRows6") }
func copyRows16(d, s *float32, ld, kb int)        { panic("tensor: no copyRows16") }
