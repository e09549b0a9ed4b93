//go:build !noasm

#include "textflag.h"

// SSE packing loops for the GEMM driver (pack.go; meanings in
// pack_amd64.go). SSE is part of amd64's baseline, so they need no CPU
// check. Operand order is Go's (AT&T).

// func gatherRows4(d, src *float32, ld, kb4, w int)
TEXT ·gatherRows4(SB), NOSPLIT, $0-40
	MOVQ d+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), BX
	MOVQ kb4+24(FP), CX
	MOVQ w+32(FP), DX
	SHLQ $2, BX // row stride of src in bytes
	SHLQ $2, DX // row stride of d in bytes
	LEAQ (SI)(BX*1), R8
	LEAQ (SI)(BX*2), R9
	LEAQ (R8)(BX*2), R10
	LEAQ (DX)(DX*2), R12 // 3 rows of d
	TESTQ CX, CX
	JEQ g4done
g4loop:
	MOVUPS (SI), X0 // a0 a1 a2 a3
	MOVUPS (R8), X1 // b0 b1 b2 b3
	MOVUPS (R9), X2 // c0 c1 c2 c3
	MOVUPS (R10), X3 // d0 d1 d2 d3
	MOVAPS X0, X4
	UNPCKLPS X1, X4 // a0 b0 a1 b1
	UNPCKHPS X1, X0 // a2 b2 a3 b3
	MOVAPS X2, X5
	UNPCKLPS X3, X5 // c0 d0 c1 d1
	UNPCKHPS X3, X2 // c2 d2 c3 d3
	MOVAPS X4, X1
	MOVLHPS X5, X1 // a0 b0 c0 d0
	MOVHLPS X4, X5 // a1 b1 c1 d1
	MOVAPS X0, X3
	MOVLHPS X2, X3 // a2 b2 c2 d2
	MOVHLPS X0, X2 // a3 b3 c3 d3
	MOVUPS X1, (DI)
	MOVUPS X5, (DI)(DX*1)
	MOVUPS X3, (DI)(DX*2)
	MOVUPS X2, (DI)(R12*1)
	LEAQ (DI)(DX*4), DI
	ADDQ $16, SI
	ADDQ $16, R8
	ADDQ $16, R9
	ADDQ $16, R10
	DECQ CX
	JNE g4loop
g4done:
	RET

// func gatherRows2(d, src *float32, ld, kb4, w int)
TEXT ·gatherRows2(SB), NOSPLIT, $0-40
	MOVQ d+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), BX
	MOVQ kb4+24(FP), CX
	MOVQ w+32(FP), DX
	SHLQ $2, BX
	SHLQ $2, DX
	LEAQ (SI)(BX*1), R8
	LEAQ (DX)(DX*2), R12
	TESTQ CX, CX
	JEQ g2done
g2loop:
	MOVUPS (SI), X0 // a0 a1 a2 a3
	MOVUPS (R8), X1 // b0 b1 b2 b3
	MOVAPS X0, X2
	UNPCKLPS X1, X2 // a0 b0 a1 b1
	UNPCKHPS X1, X0 // a2 b2 a3 b3
	MOVLPS X2, (DI)
	MOVHPS X2, (DI)(DX*1)
	MOVLPS X0, (DI)(DX*2)
	MOVHPS X0, (DI)(R12*1)
	LEAQ (DI)(DX*4), DI
	ADDQ $16, SI
	ADDQ $16, R8
	DECQ CX
	JNE g2loop
g2done:
	RET

// func copySpread6(d, s *float32, np, pstride int)
TEXT ·copySpread6(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ np+16(FP), CX
	MOVQ pstride+24(FP), BX
	SHLQ $2, BX
	TESTQ CX, CX
	JEQ c6done
c6loop:
	MOVUPS (SI), X0
	MOVSD 16(SI), X1
	MOVUPS X0, (DI)
	MOVSD X1, 16(DI)
	ADDQ $24, SI
	ADDQ BX, DI
	DECQ CX
	JNE c6loop
c6done:
	RET

// func copyRows6(d, s *float32, ld, kb int)
TEXT ·copyRows6(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ ld+16(FP), BX
	MOVQ kb+24(FP), CX
	SHLQ $2, BX
	TESTQ CX, CX
	JEQ r6done
r6loop:
	MOVUPS (SI), X0
	MOVSD 16(SI), X1
	MOVUPS X0, (DI)
	MOVSD X1, 16(DI)
	ADDQ BX, SI
	ADDQ $24, DI
	DECQ CX
	JNE r6loop
r6done:
	RET

// func copyRows16(d, s *float32, ld, kb int)
TEXT ·copyRows16(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ ld+16(FP), BX
	MOVQ kb+24(FP), CX
	SHLQ $2, BX
	TESTQ CX, CX
	JEQ r16done
r16loop:
	MOVUPS (SI), X0
	MOVUPS 16(SI), X1
	MOVUPS 32(SI), X2
	MOVUPS 48(SI), X3
	MOVUPS X0, (DI)
	MOVUPS X1, 16(DI)
	MOVUPS X2, 32(DI)
	MOVUPS X3, 48(DI)
	ADDQ BX, SI
	ADDQ $64, DI
	DECQ CX
	JNE r16loop
r16done:
	RET

