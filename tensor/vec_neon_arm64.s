//go:build !noasm

#include "textflag.h"

// arm64 NEON vector kernels: the algorithms of the AVX2 kernels
// (vec_avx2_amd64.s explains them and their constants) on 4 lanes.
//
// Go's arm64 assembler has no floating-point vector arithmetic, so those
// instructions are WORD-encoded by the N_* macros below, which take register
// numbers in ARM order (destination first): N_FADD(d, n, m) is
// "fadd vd.4s, vn.4s, vm.4s". Each encoding was checked against llvm-mc.
// Loads, stores and moves between register files use Go's own mnemonics.
//
// Tails (n%4 lanes, 1..3) are loaded lane by lane: lane k reads element
// min(k, rem-1), so the extra lanes duplicate the last element (harmless for
// a maximum) and nothing outside the slice is read; stores go in the order lane 2, 1, 0 to the same
// positions, so the last write to each position is its own lane. Sums mask
// the extra lanes to 0.

#define N_ENC3(op, d, n, m) WORD $((op)|((m)<<16)|((n)<<5)|(d))
#define N_ENC2(op, d, n) WORD $((op)|((n)<<5)|(d))

#define N_FADD(d, n, m) N_ENC3(0x4E20D400, d, n, m)
#define N_FSUB(d, n, m) N_ENC3(0x4EA0D400, d, n, m)
#define N_FMUL(d, n, m) N_ENC3(0x6E20DC00, d, n, m)
#define N_FDIV(d, n, m) N_ENC3(0x6E20FC00, d, n, m)
#define N_FMAX(d, n, m) N_ENC3(0x4E20F400, d, n, m)
#define N_FMIN(d, n, m) N_ENC3(0x4EA0F400, d, n, m)
#define N_FMLA(d, n, m) N_ENC3(0x4E20CC00, d, n, m)
#define N_FMLS(d, n, m) N_ENC3(0x4EA0CC00, d, n, m)
#define N_FADDP(d, n, m) N_ENC3(0x6E20D400, d, n, m)
#define N_FMAXP(d, n, m) N_ENC3(0x6E20F400, d, n, m)
#define N_IADD(d, n, m) N_ENC3(0x4EA08400, d, n, m)
#define N_ISUB(d, n, m) N_ENC3(0x6EA08400, d, n, m)
#define N_AND(d, n, m) N_ENC3(0x4E201C00, d, n, m)
#define N_BSL(d, n, m) N_ENC3(0x6E601C00, d, n, m)
#define N_BIT(d, n, m) N_ENC3(0x6EA01C00, d, n, m)
#define N_MOV(d, n) N_ENC3(0x4EA01C00, d, n, n)
#define N_FABS(d, n) N_ENC2(0x4EA0F800, d, n)
#define N_FNEG(d, n) N_ENC2(0x6EA0F800, d, n)
#define N_SHL23(d, n) N_ENC2(0x4F375400, d, n)
#define N_SSHR1(d, n) N_ENC2(0x4F3F0400, d, n)
#define N_SSHR31(d, n) N_ENC2(0x4F210400, d, n)
#define N_SFADDP(d, n) N_ENC2(0x7E30D800, d, n)
#define N_SFMAXP(d, n) N_ENC2(0x7E30F800, d, n)

// VCONST broadcasts a 32-bit pattern into every lane of V (clobbers R9).
#define VCONST(bits, V) \
	MOVW $bits, R9 \
	VDUP R9, V.S4

// tailMask<>+16-4k holds k all-ones lanes followed by zeros.
DATA tailMask<>+0(SB)/8, $-1
DATA tailMask<>+8(SB)/8, $-1
DATA tailMask<>+16(SB)/8, $0
DATA tailMask<>+24(SB)/8, $0
GLOBL tailMask<>(SB), RODATA|NOPTR, $32

// TAIL_IDX: R10 = rem-1, R11 = min(1, rem-1) for rem = RREM in 1..3.
#define TAIL_IDX(RREM) \
	SUB $1, RREM, R10 \
	MOVD $1, R11 \
	CMP R11, R10 \
	CSEL LT, R10, R11, R11

// LOADTAIL loads rem (TAIL_IDX) floats at RB into V; lanes rem..3 repeat
// the last one.
#define LOADTAIL(RB, V) \
	VLD1 (RB), V.S[0] \
	ADD R11<<2, RB, R12 \
	VLD1 (R12), V.S[1] \
	ADD R10<<2, RB, R12 \
	VLD1 (R12), V.S[2] \
	VLD1 (R12), V.S[3]

// STORETAIL stores the first rem (TAIL_IDX) lanes of V at RB.
#define STORETAIL(V, RB) \
	ADD R10<<2, RB, R12 \
	VST1 V.S[2], (R12) \
	ADD R11<<2, RB, R12 \
	VST1 V.S[1], (R12) \
	VST1 V.S[0], (RB)

// TAILMASK sets V to the mask of the first RREM lanes.
#define TAILMASK(RREM, V) \
	MOVD $tailMask<>+16(SB), R12 \
	SUB RREM<<2, R12, R12 \
	VLD1 (R12), [V.S4]

// Exp constants in V16-V27.
#define EXP_CONSTS \
	VCONST(0x42b20000, V16) \
	VCONST(0xc2d00000, V17) \
	VCONST(0x3fb8aa3b, V18) \
	VCONST(0x4b400000, V19) \
	VCONST(0x3f318000, V20) \
	VCONST(0xb95e8083, V21) \
	VCONST(0x3effffff, V22) \
	VCONST(0x3e2aaa49, V23) \
	VCONST(0x3d2aab41, V24) \
	VCONST(0x3c091cff, V25) \
	VCONST(0x3ab5ec74, V26) \
	VCONST(0x3f800000, V27)

// EXP_REDUCE: N = magic + X·log2e, T = n = N - magic, X = X - n·ln2.
#define EXP_REDUCE(X, N, T) \
	N_MOV(N, 19) \
	N_FMLA(N, X, 18) \
	N_FSUB(T, N, 19) \
	N_FMLS(X, T, 20) \
	N_FMLS(X, T, 21)

// EXP_POLY: P = exp(r) for X = r (X and A are clobbered).
#define EXP_POLY(X, A, P) \
	N_MOV(A, 25) \
	N_FMLA(A, X, 26) \
	N_MOV(P, 24) \
	N_FMLA(P, X, A) \
	N_MOV(A, 23) \
	N_FMLA(A, X, P) \
	N_MOV(P, 22) \
	N_FMLA(P, X, A) \
	N_FMUL(A, X, X) \
	N_FMLA(X, A, P) \
	N_FADD(P, X, 27)

// EXP_SCALES: T = 2^(n>>1), N = 2^(n-(n>>1)) from N of EXP_REDUCE.
#define EXP_SCALES(N, T) \
	N_ISUB(N, N, 19) \
	N_SSHR1(T, N) \
	N_ISUB(N, N, T) \
	N_SHL23(T, T) \
	N_SHL23(N, N) \
	N_IADD(T, T, 27) \
	N_IADD(N, N, 27)

#define EXP_FINISH(X, N, T, P) \
	EXP_POLY(X, T, P) \
	EXP_SCALES(N, T) \
	N_FMUL(P, P, T) \
	N_FMUL(X, P, N)

// EXP4: X = exp(X) (FMIN/FMAX keep NaN).
#define EXP4(X, N, T, P) \
	N_FMIN(X, X, 16) \
	N_FMAX(X, X, 17) \
	EXP_REDUCE(X, N, T) \
	EXP_FINISH(X, N, T, P)

// QuickGELU constants in V28-V31.
#define QGELU_CONSTS \
	VCONST(0x42800000, V28) \
	VCONST(0xc2800000, V29) \
	VCONST(0x3fd9db23, V30) \
	VCONST(0xb2bc6a7f, V31)

// QGELU4: X = X·σ(1.702·X), as QGELU8.
#define QGELU4(X, U, P, E, N, T, Q) \
	N_FABS(U, X) \
	N_FMIN(U, U, 28) \
	N_FMUL(P, U, 30) \
	N_FNEG(E, P) \
	N_FMLA(E, U, 30) \
	N_FMLA(E, U, 31) \
	N_FNEG(P, P) \
	EXP_REDUCE(P, N, T) \
	N_FSUB(P, P, E) \
	EXP_POLY(P, T, Q) \
	EXP_SCALES(N, T) \
	N_FMUL(Q, Q, T) \
	N_FMAX(U, X, 29) \
	N_FMUL(U, U, Q) \
	N_FMUL(U, U, N) \
	N_FMUL(Q, Q, N) \
	N_FADD(Q, Q, 27) \
	N_SSHR31(E, X) \
	N_BIT(X, U, E) \
	N_FDIV(X, X, Q)

// GELU constants: P(t) in V9-V13, Q(t) in V14-V17 and V28 (q1..q5), the
// clamps ±14.5 in V29/V30, -0.5 in V31. (GELU needs no exp clamp.)
#define GELU_CONSTS \
	VCONST(0x3f000000, V9) \
	VCONST(0x3ee0682a, V10) \
	VCONST(0x3e3ba1ee, V11) \
	VCONST(0x3d266eec, V12) \
	VCONST(0x3b86e1ef, V13) \
	VCONST(0x3fd6552e, V14) \
	VCONST(0x3f99eb98, V15) \
	VCONST(0x3ef05e5f, V16) \
	VCONST(0x3dd09b3d, V17) \
	VCONST(0x3c290c5a, V28) \
	VCONST(0x41680000, V29) \
	VCONST(0xc1680000, V30) \
	VCONST(0xbf000000, V31)

// GELU4: X = X·Φ(X), as GELU8; uses V0-V8.
#define GELU4 \
	N_FABS(1, 0) \
	N_FMIN(1, 1, 29) \
	N_FMUL(2, 1, 1) \
	N_FNEG(3, 2) \
	N_FMLA(3, 1, 1) \
	N_FMUL(2, 2, 31) \
	N_FMUL(3, 3, 31) \
	EXP_REDUCE(2, 4, 5) \
	N_FADD(2, 2, 3) \
	EXP_POLY(2, 5, 6) \
	EXP_SCALES(4, 5) \
	N_FMUL(6, 6, 5) \
	N_MOV(7, 12) \
	N_FMLA(7, 1, 13) \
	N_MOV(8, 11) \
	N_FMLA(8, 1, 7) \
	N_MOV(7, 10) \
	N_FMLA(7, 1, 8) \
	N_MOV(8, 9) \
	N_FMLA(8, 1, 7) \
	N_MOV(7, 17) \
	N_FMLA(7, 1, 28) \
	N_MOV(2, 16) \
	N_FMLA(2, 1, 7) \
	N_MOV(7, 15) \
	N_FMLA(7, 1, 2) \
	N_MOV(2, 14) \
	N_FMLA(2, 1, 7) \
	N_MOV(7, 27) \
	N_FMLA(7, 1, 2) \
	N_FDIV(8, 8, 7) \
	N_FMUL(6, 6, 8) \
	N_FMAX(7, 0, 30) \
	N_FMUL(7, 7, 6) \
	N_FMUL(7, 7, 4) \
	N_FMUL(6, 6, 4) \
	N_FSUB(8, 27, 6) \
	N_FMUL(8, 8, 0) \
	N_SSHR31(5, 0) \
	N_BSL(5, 7, 8) \
	N_MOV(0, 5)

#define EXPBODY EXP4(0, 1, 2, 3)
#define QGELUBODY QGELU4(0, 1, 2, 3, 4, 5, 6)

// Unary kernels: func(dst, x *float32, n int); BODY maps V0 to V0.
#define UNARY(CONSTS, BODY) \
	MOVD dst+0(FP), R0 \
	MOVD x+8(FP), R1 \
	MOVD n+16(FP), R2 \
	CONSTS \
loop: \
	CMP $4, R2 \
	BLT tail \
	VLD1.P 16(R1), [V0.S4] \
	BODY \
	VST1.P [V0.S4], 16(R0) \
	SUB $4, R2 \
	B loop \
tail: \
	CBZ R2, done \
	TAIL_IDX(R2) \
	LOADTAIL(R1, V0) \
	BODY \
	STORETAIL(V0, R0) \
done: \
	RET

// Bias kernels: func(x, bias *float32, n int): x = f(x + bias).
#define BIASUNARY(CONSTS, BODY) \
	MOVD x+0(FP), R0 \
	MOVD bias+8(FP), R1 \
	MOVD n+16(FP), R2 \
	CONSTS \
loop: \
	CMP $4, R2 \
	BLT tail \
	VLD1 (R0), [V0.S4] \
	VLD1.P 16(R1), [V1.S4] \
	N_FADD(0, 0, 1) \
	BODY \
	VST1.P [V0.S4], 16(R0) \
	SUB $4, R2 \
	B loop \
tail: \
	CBZ R2, done \
	TAIL_IDX(R2) \
	LOADTAIL(R0, V0) \
	LOADTAIL(R1, V1) \
	N_FADD(0, 0, 1) \
	BODY \
	STORETAIL(V0, R0) \
done: \
	RET

#define QGELU_ALL_CONSTS \
	EXP_CONSTS \
	QGELU_CONSTS

#define GELU_ALL_CONSTS \
	EXP_CONSTS \
	GELU_CONSTS

// Layer norm passes over the row of R4 floats at R5 (V0 = shift c, V15 =
// tail mask, R10/R11 tail indices when R4%4 != 0).
// LN_MEAN: V1 = m' = Σ(x-c)/n in every lane.
#define LN_MEAN \
	VEOR V1.B16, V1.B16, V1.B16 \
	VEOR V2.B16, V2.B16, V2.B16 \
	MOVD R5, R6 \
	MOVD R4, R7 \
mean8: \
	CMP $8, R7 \
	BLT mean4 \
	VLD1.P 32(R6), [V3.S4, V4.S4] \
	N_FSUB(3, 3, 0) \
	N_FSUB(4, 4, 0) \
	N_FADD(1, 1, 3) \
	N_FADD(2, 2, 4) \
	SUB $8, R7 \
	B mean8 \
mean4: \
	CMP $4, R7 \
	BLT meantail \
	VLD1.P 16(R6), [V3.S4] \
	N_FSUB(3, 3, 0) \
	N_FADD(1, 1, 3) \
	SUB $4, R7 \
meantail: \
	CBZ R7, meandone \
	TAIL_IDX(R7) \
	TAILMASK(R7, V15) \
	LOADTAIL(R6, V3) \
	N_FSUB(3, 3, 0) \
	N_AND(3, 3, 15) \
	N_FADD(2, 2, 3) \
meandone: \
	N_FADD(1, 1, 2) \
	N_FADDP(1, 1, 1) \
	N_SFADDP(1, 1) \
	SCVTFS R4, F2 \
	FDIVS F2, F1, F1 \
	VDUP V1.S[0], V1.S4

// LN_VAR: V9 = 1/sqrt(var+eps) in every lane, eps in F9 on entry.
#define LN_VAR \
	VEOR V3.B16, V3.B16, V3.B16 \
	VEOR V4.B16, V4.B16, V4.B16 \
	VEOR V5.B16, V5.B16, V5.B16 \
	VEOR V6.B16, V6.B16, V6.B16 \
	MOVD R5, R6 \
	MOVD R4, R7 \
var8: \
	CMP $8, R7 \
	BLT var4 \
	VLD1.P 32(R6), [V7.S4, V8.S4] \
	N_FSUB(7, 7, 0) \
	N_FSUB(8, 8, 0) \
	N_FSUB(7, 7, 1) \
	N_FSUB(8, 8, 1) \
	N_FMLA(3, 7, 7) \
	N_FMLA(4, 8, 8) \
	N_FADD(5, 5, 7) \
	N_FADD(6, 6, 8) \
	SUB $8, R7 \
	B var8 \
var4: \
	CMP $4, R7 \
	BLT vartail \
	VLD1.P 16(R6), [V7.S4] \
	N_FSUB(7, 7, 0) \
	N_FSUB(7, 7, 1) \
	N_FMLA(3, 7, 7) \
	N_FADD(5, 5, 7) \
	SUB $4, R7 \
vartail: \
	CBZ R7, vardone \
	LOADTAIL(R6, V8) \
	N_FSUB(8, 8, 0) \
	N_FSUB(8, 8, 1) \
	N_AND(8, 8, 15) \
	N_FMLA(4, 8, 8) \
	N_FADD(6, 6, 8) \
vardone: \
	N_FADD(3, 3, 4) \
	N_FADD(5, 5, 6) \
	N_FADDP(3, 3, 3) \
	N_SFADDP(3, 3) \
	N_FADDP(5, 5, 5) \
	N_SFADDP(5, 5) \
	FCVTSD F3, F3 \
	FCVTSD F5, F5 \
	SCVTFD R4, F7 \
	FMULD F5, F5, F5 \
	FDIVD F7, F5, F5 \
	FSUBD F5, F3, F3 \
	FDIVD F7, F3, F3 \
	FMOVD ZR, F6 \
	FMAXD F6, F3, F3 \
	FCVTSD F9, F9 \
	FADDD F9, F3, F3 \
	FSQRTD F3, F3 \
	FMOVD $1.0, F9 \
	FDIVD F3, F9, F9 \
	FCVTDS F9, F9 \
	VDUP V9.S[0], V9.S4

// LN_OUT: out (R0) = ((x-c)-m')·rs·gamma (R2) + beta (R3).
#define LN_OUT \
	MOVD R5, R6 \
	MOVD R4, R7 \
out4: \
	CMP $4, R7 \
	BLT outtail \
	VLD1.P 16(R6), [V3.S4] \
	VLD1.P 16(R2), [V5.S4] \
	VLD1.P 16(R3), [V4.S4] \
	N_FSUB(3, 3, 0) \
	N_FSUB(3, 3, 1) \
	N_FMUL(3, 3, 9) \
	N_FMLA(4, 3, 5) \
	VST1.P [V4.S4], 16(R0) \
	SUB $4, R7 \
	B out4 \
outtail: \
	CBZ R7, outdone \
	LOADTAIL(R6, V3) \
	LOADTAIL(R2, V5) \
	LOADTAIL(R3, V4) \
	N_FSUB(3, 3, 0) \
	N_FSUB(3, 3, 1) \
	N_FMUL(3, 3, 9) \
	N_FMLA(4, 3, 5) \
	STORETAIL(V4, R0) \
outdone:

// Reductions: four accumulators over 16-float blocks, then 4-float blocks
// into the first, the masked tail into the second; ((a0+a1)+(a2+a3)), then
// pairwise lanes.
#define REDUCE_SETUP \
	VEOR V0.B16, V0.B16, V0.B16 \
	VEOR V1.B16, V1.B16, V1.B16 \
	VEOR V2.B16, V2.B16, V2.B16 \
	VEOR V3.B16, V3.B16, V3.B16

#define REDUCE_FINISH \
	N_FADD(0, 0, 1) \
	N_FADD(2, 2, 3) \
	N_FADD(0, 0, 2) \
	N_FADDP(0, 0, 0) \
	N_SFADDP(0, 0)

// Binary kernels: func(dst, a, b *float32, n int). OP(d, n, m) is N_FADD or
// N_FMUL.
#define BINARY(OP) \
	MOVD dst+0(FP), R0 \
	MOVD a+8(FP), R1 \
	MOVD b+16(FP), R2 \
	MOVD n+24(FP), R3 \
loop16: \
	CMP $16, R3 \
	BLT loop4 \
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4] \
	VLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4] \
	OP(0, 0, 4) \
	OP(1, 1, 5) \
	OP(2, 2, 6) \
	OP(3, 3, 7) \
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0) \
	SUB $16, R3 \
	B loop16 \
loop4: \
	CMP $4, R3 \
	BLT tail \
	VLD1.P 16(R1), [V0.S4] \
	VLD1.P 16(R2), [V4.S4] \
	OP(0, 0, 4) \
	VST1.P [V0.S4], 16(R0) \
	SUB $4, R3 \
	B loop4 \
tail: \
	CBZ R3, done \
	TAIL_IDX(R3) \
	LOADTAIL(R1, V0) \
	LOADTAIL(R2, V4) \
	OP(0, 0, 4) \
	STORETAIL(V0, R0) \
done: \
	RET

// func expNEON(dst, x *float32, n int)
TEXT ·expNEON(SB), NOSPLIT, $0-24
	UNARY(EXP_CONSTS, EXPBODY)

// func quickGeluNEON(dst, x *float32, n int)
TEXT ·quickGeluNEON(SB), NOSPLIT, $0-24
	UNARY(QGELU_ALL_CONSTS, QGELUBODY)

// func geluNEON(dst, x *float32, n int)
TEXT ·geluNEON(SB), NOSPLIT, $0-24
	UNARY(GELU_ALL_CONSTS, GELU4)

// func biasQuickGeluNEON(x, bias *float32, n int)
TEXT ·biasQuickGeluNEON(SB), NOSPLIT, $0-24
	BIASUNARY(QGELU_ALL_CONSTS, QGELUBODY)

// func biasGeluNEON(x, bias *float32, n int)
TEXT ·biasGeluNEON(SB), NOSPLIT, $0-24
	BIASUNARY(GELU_ALL_CONSTS, GELU4)

// func softmaxRowNEON(x *float32, n int)
TEXT ·softmaxRowNEON(SB), NOSPLIT, $0-16
	MOVD x+0(FP), R0
	MOVD n+8(FP), R1
	EXP_CONSTS
	// Pass 1: the maximum into every lane of V0.
	VCONST(0xff800000, V0)
	N_MOV(1, 0)
	N_MOV(2, 0)
	N_MOV(3, 0)
	MOVD R0, R2
	MOVD R1, R3
max16:
	CMP $16, R3
	BLT max4
	VLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4]
	N_FMAX(0, 0, 4)
	N_FMAX(1, 1, 5)
	N_FMAX(2, 2, 6)
	N_FMAX(3, 3, 7)
	SUB $16, R3
	B max16
max4:
	CMP $4, R3
	BLT maxtail
	VLD1.P 16(R2), [V4.S4]
	N_FMAX(0, 0, 4)
	SUB $4, R3
	B max4
maxtail:
	CBZ R3, maxdone
	TAIL_IDX(R3)
	LOADTAIL(R2, V4)
	N_FMAX(1, 1, 4)
maxdone:
	N_FMAX(0, 0, 1)
	N_FMAX(2, 2, 3)
	N_FMAX(0, 0, 2)
	N_FMAXP(0, 0, 0)
	N_SFMAXP(0, 0)
	VDUP V0.S[0], V0.S4
	// Pass 2: e = exp(x-max), stored and summed into V1.
	VEOR V1.B16, V1.B16, V1.B16
	MOVD R0, R2
	MOVD R1, R3
exp4:
	CMP $4, R3
	BLT exptail
	VLD1 (R2), [V4.S4]
	N_FSUB(4, 4, 0)
	N_FMAX(4, 4, 17)
	EXP_REDUCE(4, 5, 6)
	EXP_FINISH(4, 5, 6, 7)
	VST1.P [V4.S4], 16(R2)
	N_FADD(1, 1, 4)
	SUB $4, R3
	B exp4
exptail:
	CBZ R3, expdone
	TAIL_IDX(R3)
	LOADTAIL(R2, V4)
	N_FSUB(4, 4, 0)
	N_FMAX(4, 4, 17)
	EXP_REDUCE(4, 5, 6)
	EXP_FINISH(4, 5, 6, 7)
	STORETAIL(V4, R2)
	TAILMASK(R3, V8)
	N_AND(4, 4, 8)
	N_FADD(1, 1, 4)
expdone:
	N_FADDP(1, 1, 1)
	N_SFADDP(1, 1)
	FMOVS $1.0, F2
	FDIVS F1, F2, F2
	VDUP V2.S[0], V2.S4
	// Pass 3: scale by 1/sum.
	MOVD R0, R2
	MOVD R1, R3
scale4:
	CMP $4, R3
	BLT scaletail
	VLD1 (R2), [V4.S4]
	N_FMUL(4, 4, 2)
	VST1.P [V4.S4], 16(R2)
	SUB $4, R3
	B scale4
scaletail:
	CBZ R3, done
	LOADTAIL(R2, V4)
	N_FMUL(4, 4, 2)
	STORETAIL(V4, R2)
done:
	RET

// func layerNormRowNEON(out, x, gamma, beta *float32, n int, eps float32) (mean, rstd float32)
TEXT ·layerNormRowNEON(SB), NOSPLIT, $0-56
	MOVD out+0(FP), R0
	MOVD x+8(FP), R5
	MOVD gamma+16(FP), R2
	MOVD beta+24(FP), R3
	MOVD n+32(FP), R4
	FMOVS (R5), F0
	VDUP V0.S[0], V0.S4
	LN_MEAN
	FADDS F1, F0, F2
	FMOVS F2, mean+48(FP)
	FMOVS eps+40(FP), F9
	LN_VAR
	FMOVS F9, rstd+52(FP)
	LN_OUT
	RET

// func addLayerNormRowNEON(sum, out, x, r, gamma, beta *float32, n int, eps float32)
TEXT ·addLayerNormRowNEON(SB), NOSPLIT, $0-60
	MOVD sum+0(FP), R5
	MOVD out+8(FP), R0
	MOVD x+16(FP), R13
	MOVD r+24(FP), R14
	MOVD gamma+32(FP), R2
	MOVD beta+40(FP), R3
	MOVD n+48(FP), R4
	// Pass 0: sum = x + r, V1 = m' = Σ(sum-c)/n with c = sum[0].
	FMOVS (R13), F0
	FMOVS (R14), F1
	FADDS F1, F0, F0
	VDUP V0.S[0], V0.S4
	VEOR V1.B16, V1.B16, V1.B16
	VEOR V2.B16, V2.B16, V2.B16
	MOVD R5, R6
	MOVD R4, R7
add4:
	CMP $4, R7
	BLT addtail
	VLD1.P 16(R13), [V3.S4]
	VLD1.P 16(R14), [V4.S4]
	N_FADD(3, 3, 4)
	VST1.P [V3.S4], 16(R6)
	N_FSUB(3, 3, 0)
	N_FADD(1, 1, 3)
	SUB $4, R7
	B add4
addtail:
	CBZ R7, adddone
	TAIL_IDX(R7)
	TAILMASK(R7, V15)
	LOADTAIL(R13, V3)
	LOADTAIL(R14, V4)
	N_FADD(3, 3, 4)
	STORETAIL(V3, R6)
	N_FSUB(3, 3, 0)
	N_AND(3, 3, 15)
	N_FADD(2, 2, 3)
adddone:
	N_FADD(1, 1, 2)
	N_FADDP(1, 1, 1)
	N_SFADDP(1, 1)
	SCVTFS R4, F2
	FDIVS F2, F1, F1
	VDUP V1.S[0], V1.S4
	FMOVS eps+56(FP), F9
	LN_VAR
	LN_OUT
	RET

// func sumNEON(x *float32, n int) float32
TEXT ·sumNEON(SB), NOSPLIT, $0-20
	MOVD x+0(FP), R0
	MOVD n+8(FP), R1
	REDUCE_SETUP
loop16:
	CMP $16, R1
	BLT loop4
	VLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]
	N_FADD(0, 0, 4)
	N_FADD(1, 1, 5)
	N_FADD(2, 2, 6)
	N_FADD(3, 3, 7)
	SUB $16, R1
	B loop16
loop4:
	CMP $4, R1
	BLT tail
	VLD1.P 16(R0), [V4.S4]
	N_FADD(0, 0, 4)
	SUB $4, R1
	B loop4
tail:
	CBZ R1, done
	TAIL_IDX(R1)
	TAILMASK(R1, V8)
	LOADTAIL(R0, V4)
	N_AND(4, 4, 8)
	N_FADD(1, 1, 4)
done:
	REDUCE_FINISH
	FMOVS F0, ret+16(FP)
	RET

// func sumSqNEON(x *float32, n int) float32
TEXT ·sumSqNEON(SB), NOSPLIT, $0-20
	MOVD x+0(FP), R0
	MOVD n+8(FP), R1
	REDUCE_SETUP
loop16:
	CMP $16, R1
	BLT loop4
	VLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]
	N_FMLA(0, 4, 4)
	N_FMLA(1, 5, 5)
	N_FMLA(2, 6, 6)
	N_FMLA(3, 7, 7)
	SUB $16, R1
	B loop16
loop4:
	CMP $4, R1
	BLT tail
	VLD1.P 16(R0), [V4.S4]
	N_FMLA(0, 4, 4)
	SUB $4, R1
	B loop4
tail:
	CBZ R1, done
	TAIL_IDX(R1)
	TAILMASK(R1, V8)
	LOADTAIL(R0, V4)
	N_AND(4, 4, 8)
	N_FMLA(1, 4, 4)
done:
	REDUCE_FINISH
	FMOVS F0, ret+16(FP)
	RET

// func dotNEON(x, y *float32, n int) float32
TEXT ·dotNEON(SB), NOSPLIT, $0-28
	MOVD x+0(FP), R0
	MOVD y+8(FP), R2
	MOVD n+16(FP), R1
	REDUCE_SETUP
loop16:
	CMP $16, R1
	BLT loop4
	VLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1.P 64(R2), [V16.S4, V17.S4, V18.S4, V19.S4]
	N_FMLA(0, 4, 16)
	N_FMLA(1, 5, 17)
	N_FMLA(2, 6, 18)
	N_FMLA(3, 7, 19)
	SUB $16, R1
	B loop16
loop4:
	CMP $4, R1
	BLT tail
	VLD1.P 16(R0), [V4.S4]
	VLD1.P 16(R2), [V16.S4]
	N_FMLA(0, 4, 16)
	SUB $4, R1
	B loop4
tail:
	CBZ R1, done
	TAIL_IDX(R1)
	TAILMASK(R1, V8)
	LOADTAIL(R0, V4)
	LOADTAIL(R2, V16)
	N_AND(4, 4, 8)
	N_FMLA(1, 4, 16)
done:
	REDUCE_FINISH
	FMOVS F0, ret+24(FP)
	RET

// func maxNEON(x *float32, n int) float32
// FMAX propagates NaN, so no separate NaN tracking is needed; the duplicated
// tail lanes do not change a maximum.
TEXT ·maxNEON(SB), NOSPLIT, $0-20
	MOVD x+0(FP), R0
	MOVD n+8(FP), R1
	VCONST(0xff800000, V0)
	N_MOV(1, 0)
	N_MOV(2, 0)
	N_MOV(3, 0)
loop16:
	CMP $16, R1
	BLT loop4
	VLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]
	N_FMAX(0, 0, 4)
	N_FMAX(1, 1, 5)
	N_FMAX(2, 2, 6)
	N_FMAX(3, 3, 7)
	SUB $16, R1
	B loop16
loop4:
	CMP $4, R1
	BLT tail
	VLD1.P 16(R0), [V4.S4]
	N_FMAX(0, 0, 4)
	SUB $4, R1
	B loop4
tail:
	CBZ R1, done
	TAIL_IDX(R1)
	LOADTAIL(R0, V4)
	N_FMAX(1, 1, 4)
done:
	N_FMAX(0, 0, 1)
	N_FMAX(2, 2, 3)
	N_FMAX(0, 0, 2)
	N_FMAXP(0, 0, 0)
	N_SFMAXP(0, 0)
	FMOVS F0, ret+16(FP)
	RET

// func axpyNEON(alpha float32, x, y *float32, n int)
TEXT ·axpyNEON(SB), NOSPLIT, $0-32
	FMOVS alpha+0(FP), F8
	VDUP V8.S[0], V8.S4
	MOVD x+8(FP), R0
	MOVD y+16(FP), R2
	MOVD n+24(FP), R1
loop16:
	CMP $16, R1
	BLT loop4
	VLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1 (R2), [V0.S4, V1.S4, V2.S4, V3.S4]
	N_FMLA(0, 4, 8)
	N_FMLA(1, 5, 8)
	N_FMLA(2, 6, 8)
	N_FMLA(3, 7, 8)
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R2)
	SUB $16, R1
	B loop16
loop4:
	CMP $4, R1
	BLT tail
	VLD1.P 16(R0), [V4.S4]
	VLD1 (R2), [V0.S4]
	N_FMLA(0, 4, 8)
	VST1.P [V0.S4], 16(R2)
	SUB $4, R1
	B loop4
tail:
	CBZ R1, done
	TAIL_IDX(R1)
	LOADTAIL(R0, V4)
	LOADTAIL(R2, V0)
	N_FMLA(0, 4, 8)
	STORETAIL(V0, R2)
done:
	RET

// func scaleNEON(alpha float32, x *float32, n int)
TEXT ·scaleNEON(SB), NOSPLIT, $0-24
	FMOVS alpha+0(FP), F8
	VDUP V8.S[0], V8.S4
	MOVD x+8(FP), R0
	MOVD n+16(FP), R1
loop16:
	CMP $16, R1
	BLT loop4
	VLD1 (R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	N_FMUL(0, 0, 8)
	N_FMUL(1, 1, 8)
	N_FMUL(2, 2, 8)
	N_FMUL(3, 3, 8)
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	SUB $16, R1
	B loop16
loop4:
	CMP $4, R1
	BLT tail
	VLD1 (R0), [V0.S4]
	N_FMUL(0, 0, 8)
	VST1.P [V0.S4], 16(R0)
	SUB $4, R1
	B loop4
tail:
	CBZ R1, done
	TAIL_IDX(R1)
	LOADTAIL(R0, V0)
	N_FMUL(0, 0, 8)
	STORETAIL(V0, R0)
done:
	RET

// func addNEON(dst, a, b *float32, n int)
TEXT ·addNEON(SB), NOSPLIT, $0-32
	BINARY(N_FADD)

// func mulNEON(dst, a, b *float32, n int)
TEXT ·mulNEON(SB), NOSPLIT, $0-32
	BINARY(N_FMUL)

// QGBWD4: V0 = V6·QuickGELU'(V0), the steps of QGBWD8 (vec_avx2_amd64.s)
// in the same order without fused multiply-adds, so it equals the AVX2
// kernel lane for lane. Constants: exp in V16-V27, 64 / -64 / 1.702 in
// V28-V30; uses V1-V5.
#define QGBWD4 \
	N_FABS(1, 0) \
	N_FMUL(1, 1, 30) \
	N_FNEG(1, 1) \
	EXP4(1, 2, 3, 4) \
	N_FADD(3, 1, 27) \
	N_FDIV(5, 27, 3) \
	N_FMUL(1, 1, 5) \
	N_SSHR31(2, 0) \
	N_MOV(3, 2) \
	N_BSL(2, 1, 5) \
	N_BSL(3, 5, 1) \
	N_FMIN(4, 0, 28) \
	N_FMAX(4, 4, 29) \
	N_FMUL(4, 4, 30) \
	N_FMUL(4, 4, 2) \
	N_FMUL(4, 4, 3) \
	N_FADD(0, 2, 4) \
	N_FMUL(0, 0, 6)

// func quickGeluBwdNEON(dx, x, dy *float32, n int)
TEXT ·quickGeluBwdNEON(SB), NOSPLIT, $0-32
	MOVD dx+0(FP), R0
	MOVD x+8(FP), R1
	MOVD dy+16(FP), R3
	MOVD n+24(FP), R2
	EXP_CONSTS
	VCONST(0x42800000, V28)
	VCONST(0xc2800000, V29)
	VCONST(0x3fd9db23, V30)
loop:
	CMP $4, R2
	BLT tail
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R3), [V6.S4]
	QGBWD4
	VST1.P [V0.S4], 16(R0)
	SUB $4, R2
	B loop
tail:
	CBZ R2, done
	TAIL_IDX(R2)
	LOADTAIL(R1, V0)
	LOADTAIL(R3, V6)
	QGBWD4
	STORETAIL(V0, R0)
done:
	RET

// func layerNormBwdRowNEON(dx, dgamma, dbeta, x, dy, gamma *float32, n int, mean, rstd float32)
//
// layerNormBwdRowAVX2 (vec_avx2_amd64.s) on 4 lanes; the tail's extra lanes
// of xh and g are masked to 0 before the sums.
TEXT ·layerNormBwdRowNEON(SB), NOSPLIT, $0-64
	MOVD dx+0(FP), R0
	MOVD dgamma+8(FP), R1
	MOVD dbeta+16(FP), R2
	MOVD x+24(FP), R3
	MOVD dy+32(FP), R4
	MOVD gamma+40(FP), R5
	MOVD n+48(FP), R6
	FMOVS mean+56(FP), F13
	VDUP V13.S[0], V13.S4
	FMOVS rstd+60(FP), F14
	VDUP V14.S[0], V14.S4
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	MOVD R6, R7
lb1loop:
	CMP $4, R7
	BLT lb1tail
	VLD1.P 16(R3), [V2.S4]
	N_FSUB(2, 2, 13)
	N_FMUL(2, 2, 14)
	VLD1.P 16(R4), [V3.S4]
	VLD1.P 16(R5), [V4.S4]
	N_FMUL(4, 3, 4)
	N_FADD(0, 0, 4)
	N_FMLA(1, 4, 2)
	VLD1 (R1), [V5.S4]
	N_FMLA(5, 3, 2)
	VST1.P [V5.S4], 16(R1)
	VLD1 (R2), [V6.S4]
	N_FADD(6, 6, 3)
	VST1.P [V6.S4], 16(R2)
	SUB $4, R7
	B lb1loop
lb1tail:
	CBZ R7, lb1done
	TAIL_IDX(R7)
	TAILMASK(R7, V15)
	LOADTAIL(R3, V2)
	N_FSUB(2, 2, 13)
	N_FMUL(2, 2, 14)
	N_AND(2, 2, 15)
	LOADTAIL(R4, V3)
	LOADTAIL(R5, V4)
	N_FMUL(4, 3, 4)
	N_AND(4, 4, 15)
	N_FADD(0, 0, 4)
	N_FMLA(1, 4, 2)
	LOADTAIL(R1, V5)
	N_FMLA(5, 3, 2)
	STORETAIL(V5, R1)
	LOADTAIL(R2, V6)
	N_FADD(6, 6, 3)
	STORETAIL(V6, R2)
lb1done:
	N_FADDP(0, 0, 0)
	N_SFADDP(0, 0)
	N_FADDP(1, 1, 1)
	N_SFADDP(1, 1)
	SCVTFS R6, F2
	FDIVS F2, F0, F0
	FDIVS F2, F1, F1
	VDUP V0.S[0], V0.S4
	VDUP V1.S[0], V1.S4
	MOVD x+24(FP), R3
	MOVD dy+32(FP), R4
	MOVD gamma+40(FP), R5
	MOVD R6, R7
lb2loop:
	CMP $4, R7
	BLT lb2tail
	VLD1.P 16(R3), [V2.S4]
	N_FSUB(2, 2, 13)
	N_FMUL(2, 2, 14)
	VLD1.P 16(R4), [V3.S4]
	VLD1.P 16(R5), [V4.S4]
	N_FMUL(3, 3, 4)
	N_FSUB(3, 3, 0)
	N_FMLS(3, 2, 1)
	N_FMUL(3, 3, 14)
	VST1.P [V3.S4], 16(R0)
	SUB $4, R7
	B lb2loop
lb2tail:
	CBZ R7, lb2done
	TAIL_IDX(R7)
	LOADTAIL(R3, V2)
	N_FSUB(2, 2, 13)
	N_FMUL(2, 2, 14)
	LOADTAIL(R4, V3)
	LOADTAIL(R5, V4)
	N_FMUL(3, 3, 4)
	N_FSUB(3, 3, 0)
	N_FMLS(3, 2, 1)
	N_FMUL(3, 3, 14)
	STORETAIL(V3, R0)
lb2done:
	RET

// func softmaxBwdRowNEON(dx, y, dy *float32, n int): softmaxBwdRowAVX2 on 4
// lanes; the tail's extra lanes of y·dy are masked to 0.
TEXT ·softmaxBwdRowNEON(SB), NOSPLIT, $0-32
	MOVD dx+0(FP), R0
	MOVD y+8(FP), R1
	MOVD dy+16(FP), R2
	MOVD n+24(FP), R3
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	MOVD R3, R7
sb1loop:
	CMP $4, R7
	BLT sb1tail
	VLD1.P 16(R1), [V2.S4]
	VLD1.P 16(R2), [V3.S4]
	N_FMLA(0, 2, 3)
	SUB $4, R7
	B sb1loop
sb1tail:
	CBZ R7, sb1done
	TAIL_IDX(R7)
	TAILMASK(R7, V15)
	LOADTAIL(R1, V2)
	LOADTAIL(R2, V3)
	N_FMUL(2, 2, 3)
	N_AND(2, 2, 15)
	N_FADD(1, 1, 2)
sb1done:
	N_FADD(0, 0, 1)
	N_FADDP(0, 0, 0)
	N_SFADDP(0, 0)
	VDUP V0.S[0], V0.S4
	MOVD y+8(FP), R1
	MOVD dy+16(FP), R2
	MOVD R3, R7
sb2loop:
	CMP $4, R7
	BLT sb2tail
	VLD1.P 16(R1), [V2.S4]
	VLD1.P 16(R2), [V3.S4]
	N_FSUB(3, 3, 0)
	N_FMUL(3, 3, 2)
	VST1.P [V3.S4], 16(R0)
	SUB $4, R7
	B sb2loop
sb2tail:
	CBZ R7, sb2done
	TAIL_IDX(R7)
	LOADTAIL(R1, V2)
	LOADTAIL(R2, V3)
	N_FSUB(3, 3, 0)
	N_FMUL(3, 3, 2)
	STORETAIL(V3, R0)
sb2done:
	RET
