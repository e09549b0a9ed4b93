//go:build !noasm

#include "textflag.h"

// AVX2+FMA vector kernels. Each function's meaning is the plain loop in the
// doc comment of its Go declaration (vec_amd64.go). Operand order is Go's
// (AT&T): VFMADD213PS a, b, d computes d = b*d + a; VMINPS a, b, d computes
// d = min(b, a) and returns a when either is NaN.

// Constants, replicated over 8 lanes.
#define CONST8(name, bits) \
	DATA name<>+0(SB)/4, $bits \
	DATA name<>+4(SB)/4, $bits \
	DATA name<>+8(SB)/4, $bits \
	DATA name<>+12(SB)/4, $bits \
	DATA name<>+16(SB)/4, $bits \
	DATA name<>+20(SB)/4, $bits \
	DATA name<>+24(SB)/4, $bits \
	DATA name<>+28(SB)/4, $bits \
	GLOBL name<>(SB), RODATA|NOPTR, $32

CONST8(one, 0x3f800000)     // 1.0, also 127<<23 (the exponent bias)
CONST8(negInf, 0xff800000)  // -Inf
CONST8(absMask, 0x7fffffff)
CONST8(signBit, 0x80000000)
CONST8(expHi, 0x42b20000)   // 89: exp overflows above 88.73
CONST8(expLo, 0xc2d00000)   // -104: exp rounds to 0 below -103.98
CONST8(log2e, 0x3fb8aa3b)   // log2(e)
CONST8(magic, 0x4b400000)   // 1.5·2²³: adding it rounds to an integer
CONST8(ln2Hi, 0x3f318000)   // 0.693359375 (9 bits: n·ln2Hi is exact)
CONST8(ln2Lo, 0xb95e8083)   // ln2 - ln2Hi
// exp(r) ≈ 1 + r + r²·(c0 + c1 r + c2 r² + c3 r³ + c4 r⁴) on |r| ≤ ln2/2,
// a minimax fit (relative error 3.7e-9 before float32 rounding).
CONST8(expC0, 0x3effffff)
CONST8(expC1, 0x3e2aaa49)
CONST8(expC2, 0x3d2aab41)
CONST8(expC3, 0x3c091cff)
CONST8(expC4, 0x3ab5ec74)
// QuickGELU: 1.702 = qgHi + qgLo; |x| is clamped to 64 (1.702·64 > 104).
CONST8(qgHi, 0x3fd9db23)
CONST8(qgLo, 0xb2bc6a7f)
CONST8(qgClamp, 0x42800000)
CONST8(qgClampNeg, 0xc2800000)
// GELU: Φ(-t) = exp(-t²/2)·P(t)/Q(t) for t ≥ 0, a rational minimax fit of
// the Mills ratio (relative error 6e-9 before float32 rounding, 4e-7 after),
// t clamped to 14.5 where exp(-t²/2) is already 0.
CONST8(negHalf, 0xbf000000)
CONST8(geluClamp, 0x41680000)
CONST8(geluClampNeg, 0xc1680000)
CONST8(gp0, 0x3f000000)
CONST8(gp1, 0x3ee0682a)
CONST8(gp2, 0x3e3ba1ee)
CONST8(gp3, 0x3d266eec)
CONST8(gp4, 0x3b86e1ef)
CONST8(gq1, 0x3fd6552e)
CONST8(gq2, 0x3f99eb98)
CONST8(gq3, 0x3ef05e5f)
CONST8(gq4, 0x3dd09b3d)
CONST8(gq5, 0x3c290c5a)

// tailMask+32-4k holds k all-ones lanes followed by zeros.
DATA tailMask<>+0(SB)/8, $-1
DATA tailMask<>+8(SB)/8, $-1
DATA tailMask<>+16(SB)/8, $-1
DATA tailMask<>+24(SB)/8, $-1
DATA tailMask<>+32(SB)/8, $0
DATA tailMask<>+40(SB)/8, $0
DATA tailMask<>+48(SB)/8, $0
DATA tailMask<>+56(SB)/8, $0
GLOBL tailMask<>(SB), RODATA|NOPTR, $64

// LOADMASK sets M to the mask of the first CX (1..7) lanes; clobbers AX, DX.
#define LOADMASK(M) \
	LEAQ tailMask<>+32(SB), AX \
	MOVQ CX, DX \
	SHLQ $2, DX \
	SUBQ DX, AX \
	VMOVDQU (AX), M

// EXP_CLAMP clamps X to [-104, 89], keeping NaN.
#define EXP_CLAMP(X, T) \
	VMOVUPS expHi<>(SB), T \
	VMINPS X, T, X \
	VMOVUPS expLo<>(SB), T \
	VMAXPS X, T, X

// EXP_REDUCE: N = n + magic with n = round(X·log2e), X = X - n·ln2 (= r).
#define EXP_REDUCE(X, N, T) \
	VMOVUPS magic<>(SB), N \
	VFMADD231PS log2e<>(SB), X, N \
	VSUBPS magic<>(SB), N, T \
	VFNMADD231PS ln2Hi<>(SB), T, X \
	VFNMADD231PS ln2Lo<>(SB), T, X

// EXP_POLY: P = exp(r) for X = r, |r| ≤ ln2/2 (T is clobbered).
#define EXP_POLY(X, T, P) \
	VMOVUPS expC4<>(SB), P \
	VFMADD213PS expC3<>(SB), X, P \
	VFMADD213PS expC2<>(SB), X, P \
	VFMADD213PS expC1<>(SB), X, P \
	VFMADD213PS expC0<>(SB), X, P \
	VMULPS X, X, T \
	VFMADD213PS X, T, P \
	VADDPS one<>(SB), P, P

// EXP_SCALES: from N of EXP_REDUCE, T = 2^(n>>1) and N = 2^(n-(n>>1)), both
// normal for n in [-252, 254]: applying 2ⁿ as two products neither overflows
// the exponent field nor flushes denormal results (which are rounded once,
// by the last product).
#define EXP_SCALES(N, T) \
	VPSUBD magic<>(SB), N, N \
	VPSRAD $1, N, T \
	VPSUBD T, N, N \
	VPSLLD $23, T, T \
	VPSLLD $23, N, N \
	VPADDD one<>(SB), T, T \
	VPADDD one<>(SB), N, N

// EXP_FINISH: X = exp(r)·2ⁿ from X = r and N from EXP_REDUCE.
#define EXP_FINISH(X, N, T, P) \
	EXP_POLY(X, T, P) \
	EXP_SCALES(N, T) \
	VMULPS T, P, P \
	VMULPS N, P, X

#define EXP8(X, N, T, P) \
	EXP_CLAMP(X, T) \
	EXP_REDUCE(X, N, T) \
	EXP_FINISH(X, N, T, P)

// QGELU8: X = X·σ(1.702·X) = (X<0 ? max(X,-64)·t : X)/(1+t),
// t = exp(-1.702·|X|) (X < -64 gives -0, -Inf included).
// The product 1.702·|X| is carried as P + E (E the rounding error of P and
// the error of 1.702's float32 form), so large |X| loses no accuracy; X·t is
// formed as (X·p·2^n1)·2^n2 so that a denormal t costs no precision.
#define QGELU8(X, U, P, E, N, T, Q) \
	VANDPS absMask<>(SB), X, U \
	VMOVUPS qgClamp<>(SB), T \
	VMINPS U, T, U \
	VMULPS qgHi<>(SB), U, P \
	VMOVUPS qgHi<>(SB), E \
	VFMSUB213PS P, U, E \
	VFMADD231PS qgLo<>(SB), U, E \
	VXORPS signBit<>(SB), P, P \
	EXP_REDUCE(P, N, T) \
	VSUBPS E, P, P \
	EXP_POLY(P, T, Q) \
	EXP_SCALES(N, T) \
	VMULPS T, Q, Q \
	VMOVUPS qgClampNeg<>(SB), T \
	VMAXPS X, T, U \
	VMULPS Q, U, U \
	VMULPS N, U, U \
	VMULPS N, Q, Q \
	VADDPS one<>(SB), Q, Q \
	VBLENDVPS X, U, X, U \
	VDIVPS Q, U, X

// GELU8: X = X·Φ(X) with q = Φ(-|X|) = exp(-X²/2)·P(|X|)/Q(|X|) and
// Φ(X) = X<0 ? q : 1-q. X² is carried exactly as H + L; for X < 0 the
// product X·q is formed before the last power-of-two scaling (see QGELU8).
#define GELU8(X, U, H, L, N, T, P, R, S) \
	VANDPS absMask<>(SB), X, U \
	VMOVUPS geluClamp<>(SB), T \
	VMINPS U, T, U \
	VMULPS U, U, H \
	VMOVAPS U, L \
	VFMSUB213PS H, U, L \
	VMOVUPS negHalf<>(SB), T \
	VMULPS T, H, H \
	VMULPS T, L, L \
	EXP_REDUCE(H, N, T) \
	VADDPS L, H, H \
	EXP_POLY(H, T, P) \
	EXP_SCALES(N, T) \
	VMULPS T, P, H \
	VMOVUPS gp4<>(SB), R \
	VFMADD213PS gp3<>(SB), U, R \
	VFMADD213PS gp2<>(SB), U, R \
	VFMADD213PS gp1<>(SB), U, R \
	VFMADD213PS gp0<>(SB), U, R \
	VMOVUPS gq5<>(SB), S \
	VFMADD213PS gq4<>(SB), U, S \
	VFMADD213PS gq3<>(SB), U, S \
	VFMADD213PS gq2<>(SB), U, S \
	VFMADD213PS gq1<>(SB), U, S \
	VFMADD213PS one<>(SB), U, S \
	VDIVPS S, R, R \
	VMULPS R, H, H \
	VMOVUPS geluClampNeg<>(SB), T \
	VMAXPS X, T, R \
	VMULPS H, R, R \
	VMULPS N, R, R \
	VMULPS N, H, H \
	VMOVUPS one<>(SB), T \
	VSUBPS H, T, T \
	VMULPS T, X, X \
	VBLENDVPS X, R, X, X

// HSUM: X (the low half of Y) = the sum of Y's lanes, in a fixed order.
#define HSUM(Y, X, T) \
	VEXTRACTF128 $1, Y, T \
	VADDPS T, X, X \
	VMOVHLPS X, X, T \
	VADDPS T, X, X \
	VMOVSHDUP X, T \
	VADDSS T, X, X

// HMAX: every lane of Y = the maximum of Y's lanes.
#define HMAX(Y, X, T) \
	VEXTRACTF128 $1, Y, T \
	VMAXPS T, X, X \
	VMOVHLPS X, X, T \
	VMAXPS T, X, X \
	VMOVSHDUP X, T \
	VMAXSS T, X, X \
	VBROADCASTSS X, Y

// Unary elementwise kernels: func(dst, x *float32, n int), one vector per
// step and a masked tail. BODY works in place on Y0 and may use Y1-Y8.
#define UNARY(BODY) \
	MOVQ dst+0(FP), DI \
	MOVQ x+8(FP), SI \
	MOVQ n+16(FP), CX \
loop: \
	CMPQ CX, $8 \
	JLT tail \
	VMOVUPS (SI), Y0 \
	BODY \
	VMOVUPS Y0, (DI) \
	ADDQ $32, SI \
	ADDQ $32, DI \
	SUBQ $8, CX \
	JMP loop \
tail: \
	TESTQ CX, CX \
	JEQ done \
	LOADMASK(Y15) \
	VMASKMOVPS (SI), Y15, Y0 \
	BODY \
	VMASKMOVPS Y0, Y15, (DI) \
done: \
	VZEROUPPER \
	RET

// Bias-then-activation kernels: func(x, bias *float32, n int) for one row.
#define BIASUNARY(BODY) \
	MOVQ x+0(FP), DI \
	MOVQ bias+8(FP), SI \
	MOVQ n+16(FP), CX \
loop: \
	CMPQ CX, $8 \
	JLT tail \
	VMOVUPS (DI), Y0 \
	VADDPS (SI), Y0, Y0 \
	BODY \
	VMOVUPS Y0, (DI) \
	ADDQ $32, SI \
	ADDQ $32, DI \
	SUBQ $8, CX \
	JMP loop \
tail: \
	TESTQ CX, CX \
	JEQ done \
	LOADMASK(Y15) \
	VMASKMOVPS (DI), Y15, Y0 \
	VMASKMOVPS (SI), Y15, Y1 \
	VADDPS Y1, Y0, Y0 \
	BODY \
	VMASKMOVPS Y0, Y15, (DI) \
done: \
	VZEROUPPER \
	RET

#define EXPBODY EXP8(Y0, Y1, Y2, Y3)
#define QGELUBODY QGELU8(Y0, Y1, Y2, Y3, Y4, Y5, Y6)
#define GELUBODY GELU8(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8)

// Binary elementwise kernels: func(dst, a, b *float32, n int).
#define BINARY(OP) \
	MOVQ dst+0(FP), DI \
	MOVQ a+8(FP), SI \
	MOVQ b+16(FP), R8 \
	MOVQ n+24(FP), CX \
loop32: \
	CMPQ CX, $32 \
	JLT loop8 \
	VMOVUPS (SI), Y0 \
	VMOVUPS 32(SI), Y1 \
	VMOVUPS 64(SI), Y2 \
	VMOVUPS 96(SI), Y3 \
	OP (R8), Y0, Y0 \
	OP 32(R8), Y1, Y1 \
	OP 64(R8), Y2, Y2 \
	OP 96(R8), Y3, Y3 \
	VMOVUPS Y0, (DI) \
	VMOVUPS Y1, 32(DI) \
	VMOVUPS Y2, 64(DI) \
	VMOVUPS Y3, 96(DI) \
	ADDQ $128, SI \
	ADDQ $128, R8 \
	ADDQ $128, DI \
	SUBQ $32, CX \
	JMP loop32 \
loop8: \
	CMPQ CX, $8 \
	JLT tail \
	VMOVUPS (SI), Y0 \
	OP (R8), Y0, Y0 \
	VMOVUPS Y0, (DI) \
	ADDQ $32, SI \
	ADDQ $32, R8 \
	ADDQ $32, DI \
	SUBQ $8, CX \
	JMP loop8 \
tail: \
	TESTQ CX, CX \
	JEQ done \
	LOADMASK(Y15) \
	VMASKMOVPS (SI), Y15, Y0 \
	VMASKMOVPS (R8), Y15, Y1 \
	OP Y1, Y0, Y0 \
	VMASKMOVPS Y0, Y15, (DI) \
done: \
	VZEROUPPER \
	RET

// Layer norm passes on one row of BX floats at R10 (Y0 = c broadcast, the
// shift). LN_VAR leaves m' = mean(x-c) in X1/Y1 and 1/sqrt(var+eps) in
// X9/Y9 (var by the corrected two-pass formula with d = (x-c)-m').
#define LN_VAR \
	VXORPS Y3, Y3, Y3 \
	VXORPS Y4, Y4, Y4 \
	VXORPS Y5, Y5, Y5 \
	VXORPS Y6, Y6, Y6 \
	MOVQ R10, SI \
	MOVQ BX, CX \
var16: \
	CMPQ CX, $16 \
	JLT var8 \
	VMOVUPS (SI), Y7 \
	VSUBPS Y0, Y7, Y7 \
	VSUBPS Y1, Y7, Y7 \
	VFMADD231PS Y7, Y7, Y3 \
	VADDPS Y7, Y5, Y5 \
	VMOVUPS 32(SI), Y8 \
	VSUBPS Y0, Y8, Y8 \
	VSUBPS Y1, Y8, Y8 \
	VFMADD231PS Y8, Y8, Y4 \
	VADDPS Y8, Y6, Y6 \
	ADDQ $64, SI \
	SUBQ $16, CX \
	JMP var16 \
var8: \
	CMPQ CX, $8 \
	JLT vartail \
	VMOVUPS (SI), Y7 \
	VSUBPS Y0, Y7, Y7 \
	VSUBPS Y1, Y7, Y7 \
	VFMADD231PS Y7, Y7, Y3 \
	VADDPS Y7, Y5, Y5 \
	ADDQ $32, SI \
	SUBQ $8, CX \
vartail: \
	TESTQ CX, CX \
	JEQ vardone \
	VMASKMOVPS (SI), Y15, Y8 \
	VSUBPS Y0, Y8, Y8 \
	VSUBPS Y1, Y8, Y8 \
	VANDPS Y15, Y8, Y8 \
	VFMADD231PS Y8, Y8, Y4 \
	VADDPS Y8, Y6, Y6 \
vardone: \
	VADDPS Y4, Y3, Y3 \
	VADDPS Y6, Y5, Y5 \
	HSUM(Y3, X3, X4) \
	HSUM(Y5, X5, X6) \
	VCVTSS2SD X3, X3, X3 \
	VCVTSS2SD X5, X5, X5 \
	VCVTSI2SDQ BX, X7, X7 \
	VMULSD X5, X5, X5 \
	VDIVSD X7, X5, X5 \
	VSUBSD X5, X3, X3 \
	VDIVSD X7, X3, X3 \
	VXORPD X5, X5, X5 \
	VMAXSD X5, X3, X3 \
	VCVTSS2SD X9, X9, X9 \
	VADDSD X9, X3, X3 \
	VSQRTSD X3, X3, X3 \
	MOVQ $0x3ff0000000000000, AX \
	VMOVQ AX, X9 \
	VDIVSD X3, X9, X9 \
	VCVTSD2SS X9, X9, X9 \
	VBROADCASTSS X9, Y9

// LN_OUT: out (R13) = ((x-c)-m')·rs·gamma (R11) + beta (R12).
#define LN_OUT \
	MOVQ R10, SI \
	MOVQ BX, CX \
out8: \
	CMPQ CX, $8 \
	JLT outtail \
	VMOVUPS (SI), Y3 \
	VSUBPS Y0, Y3, Y3 \
	VSUBPS Y1, Y3, Y3 \
	VMULPS Y9, Y3, Y3 \
	VMOVUPS (R12), Y4 \
	VFMADD231PS (R11), Y3, Y4 \
	VMOVUPS Y4, (R13) \
	ADDQ $32, SI \
	ADDQ $32, R11 \
	ADDQ $32, R12 \
	ADDQ $32, R13 \
	SUBQ $8, CX \
	JMP out8 \
outtail: \
	TESTQ CX, CX \
	JEQ outdone \
	VMASKMOVPS (SI), Y15, Y3 \
	VMASKMOVPS (R11), Y15, Y5 \
	VMASKMOVPS (R12), Y15, Y4 \
	VSUBPS Y0, Y3, Y3 \
	VSUBPS Y1, Y3, Y3 \
	VMULPS Y9, Y3, Y3 \
	VFMADD231PS Y5, Y3, Y4 \
	VMASKMOVPS Y4, Y15, (R13) \
outdone:

// LN_MEAN: X1/Y1 = m' = Σ(x-c)/n over the row at R10; also sets the tail
// mask Y15 (when n%8 != 0).
#define LN_MEAN \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	MOVQ R10, SI \
	MOVQ BX, CX \
mean16: \
	CMPQ CX, $16 \
	JLT mean8 \
	VMOVUPS (SI), Y3 \
	VSUBPS Y0, Y3, Y3 \
	VADDPS Y3, Y1, Y1 \
	VMOVUPS 32(SI), Y4 \
	VSUBPS Y0, Y4, Y4 \
	VADDPS Y4, Y2, Y2 \
	ADDQ $64, SI \
	SUBQ $16, CX \
	JMP mean16 \
mean8: \
	CMPQ CX, $8 \
	JLT meantail \
	VMOVUPS (SI), Y3 \
	VSUBPS Y0, Y3, Y3 \
	VADDPS Y3, Y1, Y1 \
	ADDQ $32, SI \
	SUBQ $8, CX \
meantail: \
	TESTQ CX, CX \
	JEQ meandone \
	LOADMASK(Y15) \
	VMASKMOVPS (SI), Y15, Y4 \
	VSUBPS Y0, Y4, Y4 \
	VANDPS Y15, Y4, Y4 \
	VADDPS Y4, Y2, Y2 \
meandone: \
	VADDPS Y2, Y1, Y1 \
	HSUM(Y1, X1, X2) \
	VCVTSI2SSQ BX, X2, X2 \
	VDIVSS X2, X1, X1 \
	VBROADCASTSS X1, Y1

// Reductions: four 8-lane accumulators over 32-float blocks, then one 8-float
// block at a time into the first, the masked tail into the second; then
// ((a0+a1)+(a2+a3)) and HSUM. The order depends only on n.
#define REDUCE_FINISH \
	VADDPS Y1, Y0, Y0 \
	VADDPS Y3, Y2, Y2 \
	VADDPS Y2, Y0, Y0 \
	HSUM(Y0, X0, X1)

// func expAVX2(dst, x *float32, n int)
TEXT ·expAVX2(SB), NOSPLIT, $0-24
	UNARY(EXPBODY)

// func quickGeluAVX2(dst, x *float32, n int)
TEXT ·quickGeluAVX2(SB), NOSPLIT, $0-24
	UNARY(QGELUBODY)

// func geluAVX2(dst, x *float32, n int)
TEXT ·geluAVX2(SB), NOSPLIT, $0-24
	UNARY(GELUBODY)

// func biasQuickGeluAVX2(x, bias *float32, n int)
TEXT ·biasQuickGeluAVX2(SB), NOSPLIT, $0-24
	BIASUNARY(QGELUBODY)

// func biasGeluAVX2(x, bias *float32, n int)
TEXT ·biasGeluAVX2(SB), NOSPLIT, $0-24
	BIASUNARY(GELUBODY)

// func softmaxRowAVX2(x *float32, n int)
TEXT ·softmaxRowAVX2(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), BX
	VMOVUPS negInf<>(SB), Y0
	VMOVAPS Y0, Y1
	VMOVAPS Y0, Y13
	VMOVUPS expLo<>(SB), Y14
	// Pass 1: the row maximum into every lane of Y0.
	MOVQ DI, SI
	MOVQ BX, CX
max16:
	CMPQ CX, $16
	JLT max8
	VMAXPS (SI), Y0, Y0
	VMAXPS 32(SI), Y1, Y1
	ADDQ $64, SI
	SUBQ $16, CX
	JMP max16
max8:
	CMPQ CX, $8
	JLT maxtail
	VMAXPS (SI), Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
maxtail:
	TESTQ CX, CX
	JEQ maxdone
	LOADMASK(Y15)
	VMASKMOVPS (SI), Y15, Y2
	VBLENDVPS Y15, Y2, Y13, Y2
	VMAXPS Y2, Y1, Y1
maxdone:
	VMAXPS Y1, Y0, Y0
	HMAX(Y0, X0, X1)
	// Pass 2: e = exp(x-max), stored, summed into Y1 (masked lanes: 0).
	VXORPS Y1, Y1, Y1
	MOVQ DI, SI
	MOVQ BX, CX
exp8:
	CMPQ CX, $8
	JLT exptail
	VMOVUPS (SI), Y2
	VSUBPS Y0, Y2, Y2
	VMAXPS Y2, Y14, Y2
	EXP_REDUCE(Y2, Y3, Y4)
	EXP_FINISH(Y2, Y3, Y4, Y5)
	VMOVUPS Y2, (SI)
	VADDPS Y2, Y1, Y1
	ADDQ $32, SI
	SUBQ $8, CX
	JMP exp8
exptail:
	TESTQ CX, CX
	JEQ expdone
	LOADMASK(Y15)
	VMASKMOVPS (SI), Y15, Y2
	VSUBPS Y0, Y2, Y2
	VMAXPS Y2, Y14, Y2
	EXP_REDUCE(Y2, Y3, Y4)
	EXP_FINISH(Y2, Y3, Y4, Y5)
	VANDPS Y15, Y2, Y2
	VMASKMOVPS Y2, Y15, (SI)
	VADDPS Y2, Y1, Y1
expdone:
	HSUM(Y1, X1, X2)
	VMOVSS one<>(SB), X2
	VDIVSS X1, X2, X2
	VBROADCASTSS X2, Y2
	// Pass 3: scale by 1/sum.
	MOVQ DI, SI
	MOVQ BX, CX
scale8:
	CMPQ CX, $8
	JLT scaletail
	VMULPS (SI), Y2, Y3
	VMOVUPS Y3, (SI)
	ADDQ $32, SI
	SUBQ $8, CX
	JMP scale8
scaletail:
	TESTQ CX, CX
	JEQ done
	VMASKMOVPS (SI), Y15, Y3
	VMULPS Y3, Y2, Y3
	VMASKMOVPS Y3, Y15, (SI)
done:
	VZEROUPPER
	RET

// func layerNormRowAVX2(out, x, gamma, beta *float32, n int, eps float32) (mean, rstd float32)
TEXT ·layerNormRowAVX2(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), R13
	MOVQ x+8(FP), R10
	MOVQ gamma+16(FP), R11
	MOVQ beta+24(FP), R12
	MOVQ n+32(FP), BX
	VBROADCASTSS (R10), Y0
	LN_MEAN
	VADDSS X1, X0, X2
	VMOVSS X2, mean+48(FP)
	VMOVSS eps+40(FP), X9
	LN_VAR
	VMOVSS X9, rstd+52(FP)
	LN_OUT
	VZEROUPPER
	RET

// func addLayerNormRowAVX2(sum, out, x, r, gamma, beta *float32, n int, eps float32)
TEXT ·addLayerNormRowAVX2(SB), NOSPLIT, $0-60
	MOVQ sum+0(FP), R10
	MOVQ out+8(FP), R13
	MOVQ x+16(FP), SI
	MOVQ r+24(FP), R8
	MOVQ gamma+32(FP), R11
	MOVQ beta+40(FP), R12
	MOVQ n+48(FP), BX
	// Pass 0: sum = x + r, and Σ(sum-c) with c = sum[0].
	VMOVSS (SI), X0
	VADDSS (R8), X0, X0
	VBROADCASTSS X0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	MOVQ R10, DI
	MOVQ BX, CX
add16:
	CMPQ CX, $16
	JLT add8
	VMOVUPS (SI), Y3
	VADDPS (R8), Y3, Y3
	VMOVUPS Y3, (DI)
	VSUBPS Y0, Y3, Y3
	VADDPS Y3, Y1, Y1
	VMOVUPS 32(SI), Y4
	VADDPS 32(R8), Y4, Y4
	VMOVUPS Y4, 32(DI)
	VSUBPS Y0, Y4, Y4
	VADDPS Y4, Y2, Y2
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, DI
	SUBQ $16, CX
	JMP add16
add8:
	CMPQ CX, $8
	JLT addtail
	VMOVUPS (SI), Y3
	VADDPS (R8), Y3, Y3
	VMOVUPS Y3, (DI)
	VSUBPS Y0, Y3, Y3
	VADDPS Y3, Y1, Y1
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, DI
	SUBQ $8, CX
addtail:
	TESTQ CX, CX
	JEQ adddone
	LOADMASK(Y15)
	VMASKMOVPS (SI), Y15, Y3
	VMASKMOVPS (R8), Y15, Y4
	VADDPS Y4, Y3, Y3
	VMASKMOVPS Y3, Y15, (DI)
	VSUBPS Y0, Y3, Y3
	VANDPS Y15, Y3, Y3
	VADDPS Y3, Y2, Y2
adddone:
	VADDPS Y2, Y1, Y1
	HSUM(Y1, X1, X2)
	VCVTSI2SSQ BX, X2, X2
	VDIVSS X2, X1, X1
	VBROADCASTSS X1, Y1
	VMOVSS eps+56(FP), X9
	LN_VAR
	LN_OUT
	VZEROUPPER
	RET

// func sumAVX2(x *float32, n int) float32
TEXT ·sumAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
loop32:
	CMPQ CX, $32
	JLT loop8
	VADDPS (SI), Y0, Y0
	VADDPS 32(SI), Y1, Y1
	VADDPS 64(SI), Y2, Y2
	VADDPS 96(SI), Y3, Y3
	ADDQ $128, SI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT tail
	VADDPS (SI), Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JMP loop8
tail:
	TESTQ CX, CX
	JEQ done
	LOADMASK(Y15)
	VMASKMOVPS (SI), Y15, Y4
	VADDPS Y4, Y1, Y1
done:
	REDUCE_FINISH
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func sumSqAVX2(x *float32, n int) float32
TEXT ·sumSqAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
loop32:
	CMPQ CX, $32
	JLT loop8
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS Y4, Y4, Y0
	VFMADD231PS Y5, Y5, Y1
	VFMADD231PS Y6, Y6, Y2
	VFMADD231PS Y7, Y7, Y3
	ADDQ $128, SI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT tail
	VMOVUPS (SI), Y4
	VFMADD231PS Y4, Y4, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JMP loop8
tail:
	TESTQ CX, CX
	JEQ done
	LOADMASK(Y15)
	VMASKMOVPS (SI), Y15, Y4
	VFMADD231PS Y4, Y4, Y1
done:
	REDUCE_FINISH
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func dotAVX2(x, y *float32, n int) float32
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
loop32:
	CMPQ CX, $32
	JLT loop8
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT tail
	VMOVUPS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop8
tail:
	TESTQ CX, CX
	JEQ done
	LOADMASK(Y15)
	VMASKMOVPS (SI), Y15, Y4
	VMASKMOVPS (DI), Y15, Y5
	VFMADD231PS Y5, Y4, Y1
done:
	REDUCE_FINISH
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int) float32
// NaN lanes are tracked in Y4/Y5 (unordered compares), since VMAXPS does not
// propagate NaN.
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS negInf<>(SB), Y0
	VMOVAPS Y0, Y1
	VMOVAPS Y0, Y2
	VMOVAPS Y0, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
loop32:
	CMPQ CX, $32
	JLT loop8
	VMOVUPS (SI), Y6
	VMOVUPS 32(SI), Y7
	VMOVUPS 64(SI), Y8
	VMOVUPS 96(SI), Y9
	VMAXPS Y6, Y0, Y0
	VMAXPS Y7, Y1, Y1
	VMAXPS Y8, Y2, Y2
	VMAXPS Y9, Y3, Y3
	VCMPPS $3, Y7, Y6, Y6
	VCMPPS $3, Y9, Y8, Y8
	VORPS Y6, Y4, Y4
	VORPS Y8, Y5, Y5
	ADDQ $128, SI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT tail
	VMOVUPS (SI), Y6
	VMAXPS Y6, Y0, Y0
	VCMPPS $3, Y6, Y6, Y6
	VORPS Y6, Y4, Y4
	ADDQ $32, SI
	SUBQ $8, CX
	JMP loop8
tail:
	TESTQ CX, CX
	JEQ done
	LOADMASK(Y15)
	VMASKMOVPS (SI), Y15, Y6
	VCMPPS $3, Y6, Y6, Y7
	VORPS Y7, Y5, Y5
	VMOVUPS negInf<>(SB), Y7
	VBLENDVPS Y15, Y6, Y7, Y6
	VMAXPS Y6, Y1, Y1
done:
	VMAXPS Y1, Y0, Y0
	VMAXPS Y3, Y2, Y2
	VMAXPS Y2, Y0, Y0
	HMAX(Y0, X0, X1)
	VORPS Y5, Y4, Y4
	VPTEST Y4, Y4
	JEQ nonan
	MOVL $0x7fc00000, AX
	MOVL AX, ret+16(FP)
	VZEROUPPER
	RET
nonan:
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func axpyAVX2(alpha float32, x, y *float32, n int)
TEXT ·axpyAVX2(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Y8
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
loop32:
	CMPQ CX, $32
	JLT loop8
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VFMADD231PS (SI), Y8, Y0
	VFMADD231PS 32(SI), Y8, Y1
	VFMADD231PS 64(SI), Y8, Y2
	VFMADD231PS 96(SI), Y8, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT tail
	VMOVUPS (DI), Y0
	VFMADD231PS (SI), Y8, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop8
tail:
	TESTQ CX, CX
	JEQ done
	LOADMASK(Y15)
	VMASKMOVPS (SI), Y15, Y1
	VMASKMOVPS (DI), Y15, Y0
	VFMADD231PS Y1, Y8, Y0
	VMASKMOVPS Y0, Y15, (DI)
done:
	VZEROUPPER
	RET

// func scaleAVX2(alpha float32, x *float32, n int)
TEXT ·scaleAVX2(SB), NOSPLIT, $0-24
	VBROADCASTSS alpha+0(FP), Y8
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
loop32:
	CMPQ CX, $32
	JLT loop8
	VMULPS (DI), Y8, Y0
	VMULPS 32(DI), Y8, Y1
	VMULPS 64(DI), Y8, Y2
	VMULPS 96(DI), Y8, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	SUBQ $32, CX
	JMP loop32
loop8:
	CMPQ CX, $8
	JLT tail
	VMULPS (DI), Y8, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop8
tail:
	TESTQ CX, CX
	JEQ done
	LOADMASK(Y15)
	VMASKMOVPS (DI), Y15, Y0
	VMULPS Y0, Y8, Y0
	VMASKMOVPS Y0, Y15, (DI)
done:
	VZEROUPPER
	RET

// func addAVX2(dst, a, b *float32, n int)
TEXT ·addAVX2(SB), NOSPLIT, $0-32
	BINARY(VADDPS)

// func mulAVX2(dst, a, b *float32, n int)
TEXT ·mulAVX2(SB), NOSPLIT, $0-32
	BINARY(VMULPS)

// QuickGELU backward (quickGeluBwdAVX2, meaning in vec_amd64.go): the float32
// steps of quickGeluBackwardVia with exp by EXP8, in the same order and
// without fused multiply-adds, so the result equals it bit for bit:
//
//	e := exp(-1.702·|x|); s := 1/(1+e); t := e·s; swap s, t when x < 0
//	dx = dy·(s + ((1.702·x)·s)·t)
//
// Where e is 0 the last product is ±0 anyway; x is clamped to [-64, 64] in
// it (e is 0 from |x| > 61.2) so that x = ±Inf gives s, not NaN.
CONST8(negQg, 0xbfd9db23)   // float32(-1.702)

#define QGBWD8(X, U, N, T, P, S) \
	VANDPS absMask<>(SB), X, U \
	VMULPS negQg<>(SB), U, U \
	EXP8(U, N, T, P) \
	VADDPS one<>(SB), U, T \
	VMOVUPS one<>(SB), S \
	VDIVPS T, S, S \
	VMULPS S, U, U \
	VBLENDVPS X, U, S, T \
	VBLENDVPS X, S, U, U \
	VMOVUPS qgClamp<>(SB), P \
	VMINPS X, P, P \
	VMOVUPS qgClampNeg<>(SB), N \
	VMAXPS P, N, P \
	VMULPS qgHi<>(SB), P, P \
	VMULPS T, P, P \
	VMULPS U, P, P \
	VADDPS P, T, X

// func quickGeluBwdAVX2(dx, x, dy *float32, n int)
TEXT ·quickGeluBwdAVX2(SB), NOSPLIT, $0-32
	MOVQ dx+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ dy+16(FP), R8
	MOVQ n+24(FP), CX
qgbloop:
	CMPQ CX, $8
	JLT qgbtail
	VMOVUPS (SI), Y0
	QGBWD8(Y0, Y1, Y2, Y3, Y4, Y5)
	VMULPS (R8), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, DI
	SUBQ $8, CX
	JMP qgbloop
qgbtail:
	TESTQ CX, CX
	JEQ qgbdone
	LOADMASK(Y15)
	VMASKMOVPS (SI), Y15, Y0
	VMASKMOVPS (R8), Y15, Y6
	QGBWD8(Y0, Y1, Y2, Y3, Y4, Y5)
	VMULPS Y6, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)
qgbdone:
	VZEROUPPER
	RET

// func layerNormBwdRowAVX2(dx, dgamma, dbeta, x, dy, gamma *float32, n int, mean, rstd float32)
//
// Pass 1, per 8 lanes: xh = (x-mean)·rstd, g = dy·gamma; sg += g,
// sgx += g·xh (8-lane sums, then HSUM), dgamma += dy·xh, dbeta += dy.
// Pass 2: dx = ((g - sg/n) - xh·(sgx/n))·rstd. The tail (n%8 lanes) runs
// masked; its xh lanes past n are zeroed so that they add nothing.
TEXT ·layerNormBwdRowAVX2(SB), NOSPLIT, $0-64
	MOVQ dx+0(FP), DI
	MOVQ dgamma+8(FP), R11
	MOVQ dbeta+16(FP), R12
	MOVQ x+24(FP), SI
	MOVQ dy+32(FP), R8
	MOVQ gamma+40(FP), R9
	MOVQ n+48(FP), BX
	VMOVSS mean+56(FP), X13
	VBROADCASTSS X13, Y13
	VMOVSS rstd+60(FP), X14
	VBROADCASTSS X14, Y14
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	MOVQ BX, CX
lb1loop:
	CMPQ CX, $8
	JLT lb1tail
	VMOVUPS (SI), Y2
	VSUBPS Y13, Y2, Y2
	VMULPS Y14, Y2, Y2
	VMOVUPS (R8), Y3
	VMULPS (R9), Y3, Y4
	VADDPS Y4, Y0, Y0
	VFMADD231PS Y2, Y4, Y1
	VMOVUPS (R11), Y5
	VFMADD231PS Y2, Y3, Y5
	VMOVUPS Y5, (R11)
	VADDPS (R12), Y3, Y6
	VMOVUPS Y6, (R12)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R11
	ADDQ $32, R12
	SUBQ $8, CX
	JMP lb1loop
lb1tail:
	TESTQ CX, CX
	JEQ lb1done
	LOADMASK(Y15)
	VMASKMOVPS (SI), Y15, Y2
	VSUBPS Y13, Y2, Y2
	VMULPS Y14, Y2, Y2
	VANDPS Y15, Y2, Y2
	VMASKMOVPS (R8), Y15, Y3
	VMASKMOVPS (R9), Y15, Y4
	VMULPS Y4, Y3, Y4
	VADDPS Y4, Y0, Y0
	VFMADD231PS Y2, Y4, Y1
	VMASKMOVPS (R11), Y15, Y5
	VFMADD231PS Y2, Y3, Y5
	VMASKMOVPS Y5, Y15, (R11)
	VMASKMOVPS (R12), Y15, Y6
	VADDPS Y3, Y6, Y6
	VMASKMOVPS Y6, Y15, (R12)
lb1done:
	HSUM(Y0, X0, X2)
	HSUM(Y1, X1, X3)
	VCVTSI2SSQ BX, X2, X2
	VDIVSS X2, X0, X0
	VDIVSS X2, X1, X1
	VBROADCASTSS X0, Y0
	VBROADCASTSS X1, Y1
	MOVQ x+24(FP), SI
	MOVQ dy+32(FP), R8
	MOVQ gamma+40(FP), R9
	MOVQ BX, CX
lb2loop:
	CMPQ CX, $8
	JLT lb2tail
	VMOVUPS (SI), Y2
	VSUBPS Y13, Y2, Y2
	VMULPS Y14, Y2, Y2
	VMOVUPS (R8), Y3
	VMULPS (R9), Y3, Y3
	VSUBPS Y0, Y3, Y3
	VFNMADD231PS Y2, Y1, Y3
	VMULPS Y14, Y3, Y3
	VMOVUPS Y3, (DI)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, DI
	SUBQ $8, CX
	JMP lb2loop
lb2tail:
	TESTQ CX, CX
	JEQ lb2done
	VMASKMOVPS (SI), Y15, Y2
	VSUBPS Y13, Y2, Y2
	VMULPS Y14, Y2, Y2
	VMASKMOVPS (R8), Y15, Y3
	VMASKMOVPS (R9), Y15, Y4
	VMULPS Y4, Y3, Y3
	VSUBPS Y0, Y3, Y3
	VFNMADD231PS Y2, Y1, Y3
	VMULPS Y14, Y3, Y3
	VMASKMOVPS Y3, Y15, (DI)
lb2done:
	VZEROUPPER
	RET

// func softmaxBwdRowAVX2(dx, y, dy *float32, n int)
//
// d = Σ y·dy (8 lanes, then HSUM; the masked tail's lanes past n load as
// 0), then dx = y·(dy - d).
TEXT ·softmaxBwdRowAVX2(SB), NOSPLIT, $0-32
	MOVQ dx+0(FP), DI
	MOVQ y+8(FP), SI
	MOVQ dy+16(FP), R8
	MOVQ n+24(FP), BX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	MOVQ BX, CX
sb1loop:
	CMPQ CX, $8
	JLT sb1tail
	VMOVUPS (SI), Y2
	VFMADD231PS (R8), Y2, Y0
	ADDQ $32, SI
	ADDQ $32, R8
	SUBQ $8, CX
	JMP sb1loop
sb1tail:
	TESTQ CX, CX
	JEQ sb1done
	LOADMASK(Y15)
	VMASKMOVPS (SI), Y15, Y2
	VMASKMOVPS (R8), Y15, Y3
	VFMADD231PS Y3, Y2, Y1
sb1done:
	VADDPS Y1, Y0, Y0
	HSUM(Y0, X0, X2)
	VBROADCASTSS X0, Y0
	MOVQ y+8(FP), SI
	MOVQ dy+16(FP), R8
	MOVQ BX, CX
sb2loop:
	CMPQ CX, $8
	JLT sb2tail
	VMOVUPS (R8), Y3
	VSUBPS Y0, Y3, Y3
	VMULPS (SI), Y3, Y3
	VMOVUPS Y3, (DI)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, DI
	SUBQ $8, CX
	JMP sb2loop
sb2tail:
	TESTQ CX, CX
	JEQ sb2done
	VMASKMOVPS (SI), Y15, Y2
	VMASKMOVPS (R8), Y15, Y3
	VSUBPS Y0, Y3, Y3
	VMULPS Y2, Y3, Y3
	VMASKMOVPS Y3, Y15, (DI)
sb2done:
	VZEROUPPER
	RET
