//go:build !noasm

#include "textflag.h"

// AVX-512 (F, DQ) vector kernels: the AVX2 kernels (vec_avx2_amd64.s, whose
// comments explain the algorithms and constants) widened to 16 lanes, with
// opmask tails instead of VMASKMOVPS and VSCALEFPS for the exp scaling
// (exact, and rounding denormal results once). Operand order is Go's (AT&T).

// Constants, replicated over 16 lanes.
#define CONST16(name, bits) \
	DATA name<>+0(SB)/4, $bits \
	DATA name<>+4(SB)/4, $bits \
	DATA name<>+8(SB)/4, $bits \
	DATA name<>+12(SB)/4, $bits \
	DATA name<>+16(SB)/4, $bits \
	DATA name<>+20(SB)/4, $bits \
	DATA name<>+24(SB)/4, $bits \
	DATA name<>+28(SB)/4, $bits \
	DATA name<>+32(SB)/4, $bits \
	DATA name<>+36(SB)/4, $bits \
	DATA name<>+40(SB)/4, $bits \
	DATA name<>+44(SB)/4, $bits \
	DATA name<>+48(SB)/4, $bits \
	DATA name<>+52(SB)/4, $bits \
	DATA name<>+56(SB)/4, $bits \
	DATA name<>+60(SB)/4, $bits \
	GLOBL name<>(SB), RODATA|NOPTR, $64

CONST16(one, 0x3f800000)
CONST16(negInf, 0xff800000)
CONST16(absMask, 0x7fffffff)
CONST16(signBit, 0x80000000)
CONST16(expHi, 0x42b20000)
CONST16(expLo, 0xc2d00000)
CONST16(log2e, 0x3fb8aa3b)
CONST16(magic, 0x4b400000)
CONST16(ln2Hi, 0x3f318000)
CONST16(ln2Lo, 0xb95e8083)
CONST16(expC0, 0x3effffff)
CONST16(expC1, 0x3e2aaa49)
CONST16(expC2, 0x3d2aab41)
CONST16(expC3, 0x3c091cff)
CONST16(expC4, 0x3ab5ec74)
CONST16(qgHi, 0x3fd9db23)
CONST16(qgLo, 0xb2bc6a7f)
CONST16(qgClamp, 0x42800000)
CONST16(qgClampNeg, 0xc2800000)
CONST16(negHalf, 0xbf000000)
CONST16(geluClamp, 0x41680000)
CONST16(geluClampNeg, 0xc1680000)
CONST16(gp0, 0x3f000000)
CONST16(gp1, 0x3ee0682a)
CONST16(gp2, 0x3e3ba1ee)
CONST16(gp3, 0x3d266eec)
CONST16(gp4, 0x3b86e1ef)
CONST16(gq1, 0x3fd6552e)
CONST16(gq2, 0x3f99eb98)
CONST16(gq3, 0x3ef05e5f)
CONST16(gq4, 0x3dd09b3d)
CONST16(gq5, 0x3c290c5a)

// LOADMASK sets K to the mask of the first CX (1..15) lanes; clobbers AX.
#define LOADMASK(K) \
	MOVL $1, AX \
	SHLL CX, AX \
	DECL AX \
	KMOVW AX, K

// EXP_CLAMP clamps X to [-104, 89], keeping NaN.
#define EXP_CLAMP(X, T) \
	VMOVUPS expHi<>(SB), T \
	VMINPS X, T, X \
	VMOVUPS expLo<>(SB), T \
	VMAXPS X, T, X

// EXP_REDUCE: n = round(X·log2e) into T (as float), X = X - n·ln2 (= r);
// N is clobbered.
#define EXP_REDUCE(X, N, T) \
	VMOVUPS magic<>(SB), N \
	VFMADD231PS log2e<>(SB), X, N \
	VSUBPS magic<>(SB), N, T \
	VFNMADD231PS ln2Hi<>(SB), T, X \
	VFNMADD231PS ln2Lo<>(SB), T, X

// EXP_POLY: P = exp(r) for X = r (S is clobbered).
#define EXP_POLY(X, S, P) \
	VMOVUPS expC4<>(SB), P \
	VFMADD213PS expC3<>(SB), X, P \
	VFMADD213PS expC2<>(SB), X, P \
	VFMADD213PS expC1<>(SB), X, P \
	VFMADD213PS expC0<>(SB), X, P \
	VMULPS X, X, S \
	VFMADD213PS X, S, P \
	VADDPS one<>(SB), P, P

// EXP_FINISH: X = exp(r)·2ⁿ.
#define EXP_FINISH(X, N, T, P) \
	EXP_POLY(X, N, P) \
	VSCALEFPS T, P, X

#define EXP16(X, N, T, P) \
	EXP_CLAMP(X, T) \
	EXP_REDUCE(X, N, T) \
	EXP_FINISH(X, N, T, P)

// QGELU16: X = X·σ(1.702·X), as QGELU8 (uses K2).
#define QGELU16(X, U, P, E, N, T, Q) \
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
	EXP_POLY(P, N, Q) \
	VMOVUPS qgClampNeg<>(SB), N \
	VMAXPS X, N, U \
	VMULPS Q, U, U \
	VSCALEFPS T, U, U \
	VSCALEFPS T, Q, Q \
	VADDPS one<>(SB), Q, Q \
	VPMOVD2M X, K2 \
	VMOVAPS U, K2, X \
	VDIVPS Q, X, X

// GELU16: X = X·Φ(X), as GELU8 (uses K2).
#define GELU16(X, U, H, L, N, T, P, R, S) \
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
	EXP_POLY(H, N, P) \
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
	VMULPS R, P, H \
	VMOVUPS geluClampNeg<>(SB), N \
	VMAXPS X, N, R \
	VMULPS H, R, R \
	VSCALEFPS T, R, R \
	VSCALEFPS T, H, H \
	VMOVUPS one<>(SB), S \
	VSUBPS H, S, S \
	VPMOVD2M X, K2 \
	VMULPS S, X, X \
	VMOVAPS R, K2, X

// HSUM: X = the sum of Z's lanes in a fixed order (Y, X: Z's lower halves;
// TY, TX: a scratch register's).
#define HSUM(Z, Y, X, TY, TX) \
	VEXTRACTF64X4 $1, Z, TY \
	VADDPS TY, Y, Y \
	VEXTRACTF128 $1, Y, TX \
	VADDPS TX, X, X \
	VMOVHLPS X, X, TX \
	VADDPS TX, X, X \
	VMOVSHDUP X, TX \
	VADDSS TX, X, X

// HMAX: every lane of Z = the maximum of Z's lanes.
#define HMAX(Z, Y, X, TY, TX) \
	VEXTRACTF64X4 $1, Z, TY \
	VMAXPS TY, Y, Y \
	VEXTRACTF128 $1, Y, TX \
	VMAXPS TX, X, X \
	VMOVHLPS X, X, TX \
	VMAXPS TX, X, X \
	VMOVSHDUP X, TX \
	VMAXSS TX, X, X \
	VBROADCASTSS X, Z

#define UNARY(BODY) \
	MOVQ dst+0(FP), DI \
	MOVQ x+8(FP), SI \
	MOVQ n+16(FP), CX \
loop: \
	CMPQ CX, $16 \
	JLT tail \
	VMOVUPS (SI), Z0 \
	BODY \
	VMOVUPS Z0, (DI) \
	ADDQ $64, SI \
	ADDQ $64, DI \
	SUBQ $16, CX \
	JMP loop \
tail: \
	TESTQ CX, CX \
	JEQ done \
	LOADMASK(K1) \
	VMOVUPS.Z (SI), K1, Z0 \
	BODY \
	VMOVUPS Z0, K1, (DI) \
done: \
	VZEROUPPER \
	RET

#define BIASUNARY(BODY) \
	MOVQ x+0(FP), DI \
	MOVQ bias+8(FP), SI \
	MOVQ n+16(FP), CX \
loop: \
	CMPQ CX, $16 \
	JLT tail \
	VMOVUPS (DI), Z0 \
	VADDPS (SI), Z0, Z0 \
	BODY \
	VMOVUPS Z0, (DI) \
	ADDQ $64, SI \
	ADDQ $64, DI \
	SUBQ $16, CX \
	JMP loop \
tail: \
	TESTQ CX, CX \
	JEQ done \
	LOADMASK(K1) \
	VMOVUPS.Z (DI), K1, Z0 \
	VMOVUPS.Z (SI), K1, Z1 \
	VADDPS Z1, Z0, Z0 \
	BODY \
	VMOVUPS Z0, K1, (DI) \
done: \
	VZEROUPPER \
	RET

#define BINARY(OP) \
	MOVQ dst+0(FP), DI \
	MOVQ a+8(FP), SI \
	MOVQ b+16(FP), R8 \
	MOVQ n+24(FP), CX \
loop64: \
	CMPQ CX, $64 \
	JLT loop16 \
	VMOVUPS (SI), Z0 \
	VMOVUPS 64(SI), Z1 \
	VMOVUPS 128(SI), Z2 \
	VMOVUPS 192(SI), Z3 \
	OP (R8), Z0, Z0 \
	OP 64(R8), Z1, Z1 \
	OP 128(R8), Z2, Z2 \
	OP 192(R8), Z3, Z3 \
	VMOVUPS Z0, (DI) \
	VMOVUPS Z1, 64(DI) \
	VMOVUPS Z2, 128(DI) \
	VMOVUPS Z3, 192(DI) \
	ADDQ $256, SI \
	ADDQ $256, R8 \
	ADDQ $256, DI \
	SUBQ $64, CX \
	JMP loop64 \
loop16: \
	CMPQ CX, $16 \
	JLT tail \
	VMOVUPS (SI), Z0 \
	OP (R8), Z0, Z0 \
	VMOVUPS Z0, (DI) \
	ADDQ $64, SI \
	ADDQ $64, R8 \
	ADDQ $64, DI \
	SUBQ $16, CX \
	JMP loop16 \
tail: \
	TESTQ CX, CX \
	JEQ done \
	LOADMASK(K1) \
	VMOVUPS.Z (SI), K1, Z0 \
	VMOVUPS.Z (R8), K1, Z1 \
	OP Z1, Z0, Z0 \
	VMOVUPS Z0, K1, (DI) \
done: \
	VZEROUPPER \
	RET

// Layer norm passes, as in the AVX2 file: the row is BX floats at R10, Z0 =
// the shift c, K1 the tail mask.
#define LN_MEAN \
	VXORPS Z1, Z1, Z1 \
	VXORPS Z2, Z2, Z2 \
	MOVQ R10, SI \
	MOVQ BX, CX \
mean32: \
	CMPQ CX, $32 \
	JLT mean16 \
	VMOVUPS (SI), Z3 \
	VSUBPS Z0, Z3, Z3 \
	VADDPS Z3, Z1, Z1 \
	VMOVUPS 64(SI), Z4 \
	VSUBPS Z0, Z4, Z4 \
	VADDPS Z4, Z2, Z2 \
	ADDQ $128, SI \
	SUBQ $32, CX \
	JMP mean32 \
mean16: \
	CMPQ CX, $16 \
	JLT meantail \
	VMOVUPS (SI), Z3 \
	VSUBPS Z0, Z3, Z3 \
	VADDPS Z3, Z1, Z1 \
	ADDQ $64, SI \
	SUBQ $16, CX \
meantail: \
	TESTQ CX, CX \
	JEQ meandone \
	LOADMASK(K1) \
	VMOVUPS.Z (SI), K1, Z4 \
	VSUBPS.Z Z0, Z4, K1, Z4 \
	VADDPS Z4, Z2, Z2 \
meandone: \
	VADDPS Z2, Z1, Z1 \
	HSUM(Z1, Y1, X1, Y2, X2) \
	VCVTSI2SSQ BX, X2, X2 \
	VDIVSS X2, X1, X1 \
	VBROADCASTSS X1, Z1

#define LN_VAR \
	VXORPS Z3, Z3, Z3 \
	VXORPS Z4, Z4, Z4 \
	VXORPS Z5, Z5, Z5 \
	VXORPS Z6, Z6, Z6 \
	MOVQ R10, SI \
	MOVQ BX, CX \
var32: \
	CMPQ CX, $32 \
	JLT var16 \
	VMOVUPS (SI), Z7 \
	VSUBPS Z0, Z7, Z7 \
	VSUBPS Z1, Z7, Z7 \
	VFMADD231PS Z7, Z7, Z3 \
	VADDPS Z7, Z5, Z5 \
	VMOVUPS 64(SI), Z8 \
	VSUBPS Z0, Z8, Z8 \
	VSUBPS Z1, Z8, Z8 \
	VFMADD231PS Z8, Z8, Z4 \
	VADDPS Z8, Z6, Z6 \
	ADDQ $128, SI \
	SUBQ $32, CX \
	JMP var32 \
var16: \
	CMPQ CX, $16 \
	JLT vartail \
	VMOVUPS (SI), Z7 \
	VSUBPS Z0, Z7, Z7 \
	VSUBPS Z1, Z7, Z7 \
	VFMADD231PS Z7, Z7, Z3 \
	VADDPS Z7, Z5, Z5 \
	ADDQ $64, SI \
	SUBQ $16, CX \
vartail: \
	TESTQ CX, CX \
	JEQ vardone \
	VMOVUPS.Z (SI), K1, Z8 \
	VSUBPS Z0, Z8, Z8 \
	VSUBPS.Z Z1, Z8, K1, Z8 \
	VFMADD231PS Z8, Z8, Z4 \
	VADDPS Z8, Z6, Z6 \
vardone: \
	VADDPS Z4, Z3, Z3 \
	VADDPS Z6, Z5, Z5 \
	HSUM(Z3, Y3, X3, Y4, X4) \
	HSUM(Z5, Y5, X5, Y6, X6) \
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
	VBROADCASTSS X9, Z9

#define LN_OUT \
	MOVQ R10, SI \
	MOVQ BX, CX \
out16: \
	CMPQ CX, $16 \
	JLT outtail \
	VMOVUPS (SI), Z3 \
	VSUBPS Z0, Z3, Z3 \
	VSUBPS Z1, Z3, Z3 \
	VMULPS Z9, Z3, Z3 \
	VMOVUPS (R12), Z4 \
	VFMADD231PS (R11), Z3, Z4 \
	VMOVUPS Z4, (R13) \
	ADDQ $64, SI \
	ADDQ $64, R11 \
	ADDQ $64, R12 \
	ADDQ $64, R13 \
	SUBQ $16, CX \
	JMP out16 \
outtail: \
	TESTQ CX, CX \
	JEQ outdone \
	VMOVUPS.Z (SI), K1, Z3 \
	VMOVUPS.Z (R11), K1, Z5 \
	VMOVUPS.Z (R12), K1, Z4 \
	VSUBPS Z0, Z3, Z3 \
	VSUBPS Z1, Z3, Z3 \
	VMULPS Z9, Z3, Z3 \
	VFMADD231PS Z5, Z3, Z4 \
	VMOVUPS Z4, K1, (R13) \
outdone:

#define REDUCE_FINISH \
	VADDPS Z1, Z0, Z0 \
	VADDPS Z3, Z2, Z2 \
	VADDPS Z2, Z0, Z0 \
	HSUM(Z0, Y0, X0, Y1, X1)

#define EXPBODY EXP16(Z0, Z1, Z2, Z3)
#define QGELUBODY QGELU16(Z0, Z1, Z2, Z3, Z4, Z5, Z6)
#define GELUBODY GELU16(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8)

// func expAVX512(dst, x *float32, n int)
TEXT ·expAVX512(SB), NOSPLIT, $0-24
	UNARY(EXPBODY)

// func quickGeluAVX512(dst, x *float32, n int)
TEXT ·quickGeluAVX512(SB), NOSPLIT, $0-24
	UNARY(QGELUBODY)

// func geluAVX512(dst, x *float32, n int)
TEXT ·geluAVX512(SB), NOSPLIT, $0-24
	UNARY(GELUBODY)

// func biasQuickGeluAVX512(x, bias *float32, n int)
TEXT ·biasQuickGeluAVX512(SB), NOSPLIT, $0-24
	BIASUNARY(QGELUBODY)

// func biasGeluAVX512(x, bias *float32, n int)
TEXT ·biasGeluAVX512(SB), NOSPLIT, $0-24
	BIASUNARY(GELUBODY)

// func softmaxRowAVX512(x *float32, n int)
TEXT ·softmaxRowAVX512(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), BX
	VMOVUPS negInf<>(SB), Z0
	VMOVAPS Z0, Z1
	VMOVAPS Z0, Z13
	VMOVUPS expLo<>(SB), Z14
	MOVQ DI, SI
	MOVQ BX, CX
max32:
	CMPQ CX, $32
	JLT max16
	VMAXPS (SI), Z0, Z0
	VMAXPS 64(SI), Z1, Z1
	ADDQ $128, SI
	SUBQ $32, CX
	JMP max32
max16:
	CMPQ CX, $16
	JLT maxtail
	VMAXPS (SI), Z0, Z0
	ADDQ $64, SI
	SUBQ $16, CX
maxtail:
	TESTQ CX, CX
	JEQ maxdone
	LOADMASK(K1)
	VMOVAPS Z13, Z2
	VMOVUPS (SI), K1, Z2
	VMAXPS Z2, Z1, Z1
maxdone:
	VMAXPS Z1, Z0, Z0
	HMAX(Z0, Y0, X0, Y1, X1)
	VXORPS Z1, Z1, Z1
	MOVQ DI, SI
	MOVQ BX, CX
exp16:
	CMPQ CX, $16
	JLT exptail
	VMOVUPS (SI), Z2
	VSUBPS Z0, Z2, Z2
	VMAXPS Z2, Z14, Z2
	EXP_REDUCE(Z2, Z3, Z4)
	EXP_FINISH(Z2, Z3, Z4, Z5)
	VMOVUPS Z2, (SI)
	VADDPS Z2, Z1, Z1
	ADDQ $64, SI
	SUBQ $16, CX
	JMP exp16
exptail:
	TESTQ CX, CX
	JEQ expdone
	VMOVUPS.Z (SI), K1, Z2
	VSUBPS Z0, Z2, Z2
	VMAXPS Z2, Z14, Z2
	EXP_REDUCE(Z2, Z3, Z4)
	EXP_FINISH(Z2, Z3, Z4, Z5)
	VMOVAPS.Z Z2, K1, Z2
	VMOVUPS Z2, K1, (SI)
	VADDPS Z2, Z1, Z1
expdone:
	HSUM(Z1, Y1, X1, Y2, X2)
	VMOVSS one<>(SB), X2
	VDIVSS X1, X2, X2
	VBROADCASTSS X2, Z2
	MOVQ DI, SI
	MOVQ BX, CX
scale16:
	CMPQ CX, $16
	JLT scaletail
	VMULPS (SI), Z2, Z3
	VMOVUPS Z3, (SI)
	ADDQ $64, SI
	SUBQ $16, CX
	JMP scale16
scaletail:
	TESTQ CX, CX
	JEQ done
	VMOVUPS.Z (SI), K1, Z3
	VMULPS Z3, Z2, Z3
	VMOVUPS Z3, K1, (SI)
done:
	VZEROUPPER
	RET

// func layerNormRowAVX512(out, x, gamma, beta *float32, n int, eps float32) (mean, rstd float32)
TEXT ·layerNormRowAVX512(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), R13
	MOVQ x+8(FP), R10
	MOVQ gamma+16(FP), R11
	MOVQ beta+24(FP), R12
	MOVQ n+32(FP), BX
	VBROADCASTSS (R10), Z0
	LN_MEAN
	VADDSS X1, X0, X2
	VMOVSS X2, mean+48(FP)
	VMOVSS eps+40(FP), X9
	LN_VAR
	VMOVSS X9, rstd+52(FP)
	LN_OUT
	VZEROUPPER
	RET

// func addLayerNormRowAVX512(sum, out, x, r, gamma, beta *float32, n int, eps float32)
TEXT ·addLayerNormRowAVX512(SB), NOSPLIT, $0-60
	MOVQ sum+0(FP), R10
	MOVQ out+8(FP), R13
	MOVQ x+16(FP), SI
	MOVQ r+24(FP), R8
	MOVQ gamma+32(FP), R11
	MOVQ beta+40(FP), R12
	MOVQ n+48(FP), BX
	VMOVSS (SI), X0
	VADDSS (R8), X0, X0
	VBROADCASTSS X0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	MOVQ R10, DI
	MOVQ BX, CX
add32:
	CMPQ CX, $32
	JLT add16
	VMOVUPS (SI), Z3
	VADDPS (R8), Z3, Z3
	VMOVUPS Z3, (DI)
	VSUBPS Z0, Z3, Z3
	VADDPS Z3, Z1, Z1
	VMOVUPS 64(SI), Z4
	VADDPS 64(R8), Z4, Z4
	VMOVUPS Z4, 64(DI)
	VSUBPS Z0, Z4, Z4
	VADDPS Z4, Z2, Z2
	ADDQ $128, SI
	ADDQ $128, R8
	ADDQ $128, DI
	SUBQ $32, CX
	JMP add32
add16:
	CMPQ CX, $16
	JLT addtail
	VMOVUPS (SI), Z3
	VADDPS (R8), Z3, Z3
	VMOVUPS Z3, (DI)
	VSUBPS Z0, Z3, Z3
	VADDPS Z3, Z1, Z1
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, DI
	SUBQ $16, CX
addtail:
	TESTQ CX, CX
	JEQ adddone
	LOADMASK(K1)
	VMOVUPS.Z (SI), K1, Z3
	VMOVUPS.Z (R8), K1, Z4
	VADDPS Z4, Z3, Z3
	VMOVUPS Z3, K1, (DI)
	VSUBPS.Z Z0, Z3, K1, Z3
	VADDPS Z3, Z2, Z2
adddone:
	VADDPS Z2, Z1, Z1
	HSUM(Z1, Y1, X1, Y2, X2)
	VCVTSI2SSQ BX, X2, X2
	VDIVSS X2, X1, X1
	VBROADCASTSS X1, Z1
	VMOVSS eps+56(FP), X9
	LN_VAR
	LN_OUT
	VZEROUPPER
	RET

// func sumAVX512(x *float32, n int) float32
TEXT ·sumAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
loop64:
	CMPQ CX, $64
	JLT loop16
	VADDPS (SI), Z0, Z0
	VADDPS 64(SI), Z1, Z1
	VADDPS 128(SI), Z2, Z2
	VADDPS 192(SI), Z3, Z3
	ADDQ $256, SI
	SUBQ $64, CX
	JMP loop64
loop16:
	CMPQ CX, $16
	JLT tail
	VADDPS (SI), Z0, Z0
	ADDQ $64, SI
	SUBQ $16, CX
	JMP loop16
tail:
	TESTQ CX, CX
	JEQ done
	LOADMASK(K1)
	VMOVUPS.Z (SI), K1, Z4
	VADDPS Z4, Z1, Z1
done:
	REDUCE_FINISH
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func sumSqAVX512(x *float32, n int) float32
TEXT ·sumSqAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
loop64:
	CMPQ CX, $64
	JLT loop16
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z6
	VMOVUPS 192(SI), Z7
	VFMADD231PS Z4, Z4, Z0
	VFMADD231PS Z5, Z5, Z1
	VFMADD231PS Z6, Z6, Z2
	VFMADD231PS Z7, Z7, Z3
	ADDQ $256, SI
	SUBQ $64, CX
	JMP loop64
loop16:
	CMPQ CX, $16
	JLT tail
	VMOVUPS (SI), Z4
	VFMADD231PS Z4, Z4, Z0
	ADDQ $64, SI
	SUBQ $16, CX
	JMP loop16
tail:
	TESTQ CX, CX
	JEQ done
	LOADMASK(K1)
	VMOVUPS.Z (SI), K1, Z4
	VFMADD231PS Z4, Z4, Z1
done:
	REDUCE_FINISH
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func dotAVX512(x, y *float32, n int) float32
TEXT ·dotAVX512(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
loop64:
	CMPQ CX, $64
	JLT loop16
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z6
	VMOVUPS 192(SI), Z7
	VFMADD231PS (DI), Z4, Z0
	VFMADD231PS 64(DI), Z5, Z1
	VFMADD231PS 128(DI), Z6, Z2
	VFMADD231PS 192(DI), Z7, Z3
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $64, CX
	JMP loop64
loop16:
	CMPQ CX, $16
	JLT tail
	VMOVUPS (SI), Z4
	VFMADD231PS (DI), Z4, Z0
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP loop16
tail:
	TESTQ CX, CX
	JEQ done
	LOADMASK(K1)
	VMOVUPS.Z (SI), K1, Z4
	VMOVUPS.Z (DI), K1, Z5
	VFMADD231PS Z5, Z4, Z1
done:
	REDUCE_FINISH
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func maxAVX512(x *float32, n int) float32
TEXT ·maxAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS negInf<>(SB), Z0
	VMOVAPS Z0, Z1
	VMOVAPS Z0, Z2
	VMOVAPS Z0, Z3
	KXORW K3, K3, K3
loop64:
	CMPQ CX, $64
	JLT loop16
	VMOVUPS (SI), Z6
	VMOVUPS 64(SI), Z7
	VMOVUPS 128(SI), Z8
	VMOVUPS 192(SI), Z9
	VMAXPS Z6, Z0, Z0
	VMAXPS Z7, Z1, Z1
	VMAXPS Z8, Z2, Z2
	VMAXPS Z9, Z3, Z3
	VCMPPS $3, Z7, Z6, K2
	KORW K2, K3, K3
	VCMPPS $3, Z9, Z8, K2
	KORW K2, K3, K3
	ADDQ $256, SI
	SUBQ $64, CX
	JMP loop64
loop16:
	CMPQ CX, $16
	JLT tail
	VMOVUPS (SI), Z6
	VMAXPS Z6, Z0, Z0
	VCMPPS $3, Z6, Z6, K2
	KORW K2, K3, K3
	ADDQ $64, SI
	SUBQ $16, CX
	JMP loop16
tail:
	TESTQ CX, CX
	JEQ done
	LOADMASK(K1)
	VMOVUPS negInf<>(SB), Z6
	VMOVUPS (SI), K1, Z6
	VCMPPS $3, Z6, Z6, K2
	KORW K2, K3, K3
	VMAXPS Z6, Z1, Z1
done:
	VMAXPS Z1, Z0, Z0
	VMAXPS Z3, Z2, Z2
	VMAXPS Z2, Z0, Z0
	HMAX(Z0, Y0, X0, Y1, X1)
	KORTESTW K3, K3
	JEQ nonan
	MOVL $0x7fc00000, AX
	MOVL AX, ret+16(FP)
	VZEROUPPER
	RET
nonan:
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func axpyAVX512(alpha float32, x, y *float32, n int)
TEXT ·axpyAVX512(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Z8
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
loop64:
	CMPQ CX, $64
	JLT loop16
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	VFMADD231PS (SI), Z8, Z0
	VFMADD231PS 64(SI), Z8, Z1
	VFMADD231PS 128(SI), Z8, Z2
	VFMADD231PS 192(SI), Z8, Z3
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $64, CX
	JMP loop64
loop16:
	CMPQ CX, $16
	JLT tail
	VMOVUPS (DI), Z0
	VFMADD231PS (SI), Z8, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP loop16
tail:
	TESTQ CX, CX
	JEQ done
	LOADMASK(K1)
	VMOVUPS.Z (SI), K1, Z1
	VMOVUPS.Z (DI), K1, Z0
	VFMADD231PS Z1, Z8, Z0
	VMOVUPS Z0, K1, (DI)
done:
	VZEROUPPER
	RET

// func scaleAVX512(alpha float32, x *float32, n int)
TEXT ·scaleAVX512(SB), NOSPLIT, $0-24
	VBROADCASTSS alpha+0(FP), Z8
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
loop64:
	CMPQ CX, $64
	JLT loop16
	VMULPS (DI), Z8, Z0
	VMULPS 64(DI), Z8, Z1
	VMULPS 128(DI), Z8, Z2
	VMULPS 192(DI), Z8, Z3
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ $256, DI
	SUBQ $64, CX
	JMP loop64
loop16:
	CMPQ CX, $16
	JLT tail
	VMULPS (DI), Z8, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	SUBQ $16, CX
	JMP loop16
tail:
	TESTQ CX, CX
	JEQ done
	LOADMASK(K1)
	VMOVUPS.Z (DI), K1, Z0
	VMULPS Z0, Z8, Z0
	VMOVUPS Z0, K1, (DI)
done:
	VZEROUPPER
	RET

// func addAVX512(dst, a, b *float32, n int)
TEXT ·addAVX512(SB), NOSPLIT, $0-32
	BINARY(VADDPS)

// func mulAVX512(dst, a, b *float32, n int)
TEXT ·mulAVX512(SB), NOSPLIT, $0-32
	BINARY(VMULPS)

// QuickGELU backward: QGBWD8 of the AVX2 file on 16 lanes (uses K2), equal
// bit for bit to quickGeluBackwardVia over expAVX512.
CONST16(negQg, 0xbfd9db23)

#define QGBWD16(X, U, N, T, P, S) \
	VANDPS absMask<>(SB), X, U \
	VMULPS negQg<>(SB), U, U \
	EXP16(U, N, T, P) \
	VADDPS one<>(SB), U, T \
	VMOVUPS one<>(SB), S \
	VDIVPS T, S, S \
	VMULPS S, U, U \
	VPMOVD2M X, K2 \
	VMOVAPS S, T \
	VMOVAPS U, K2, T \
	VMOVAPS S, K2, U \
	VMOVUPS qgClamp<>(SB), P \
	VMINPS X, P, P \
	VMOVUPS qgClampNeg<>(SB), N \
	VMAXPS P, N, P \
	VMULPS qgHi<>(SB), P, P \
	VMULPS T, P, P \
	VMULPS U, P, P \
	VADDPS P, T, X

// func quickGeluBwdAVX512(dx, x, dy *float32, n int)
TEXT ·quickGeluBwdAVX512(SB), NOSPLIT, $0-32
	MOVQ dx+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ dy+16(FP), R8
	MOVQ n+24(FP), CX
qgbloop:
	CMPQ CX, $16
	JLT qgbtail
	VMOVUPS (SI), Z0
	QGBWD16(Z0, Z1, Z2, Z3, Z4, Z5)
	VMULPS (R8), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, DI
	SUBQ $16, CX
	JMP qgbloop
qgbtail:
	TESTQ CX, CX
	JEQ qgbdone
	LOADMASK(K1)
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z (R8), K1, Z6
	QGBWD16(Z0, Z1, Z2, Z3, Z4, Z5)
	VMULPS Z6, Z0, Z0
	VMOVUPS Z0, K1, (DI)
qgbdone:
	VZEROUPPER
	RET

// func layerNormBwdRowAVX512(dx, dgamma, dbeta, x, dy, gamma *float32, n int, mean, rstd float32)
//
// layerNormBwdRowAVX2 on 16 lanes, with an opmask tail (whose zeroed dy and
// gamma lanes add nothing to the sums).
TEXT ·layerNormBwdRowAVX512(SB), NOSPLIT, $0-64
	MOVQ dx+0(FP), DI
	MOVQ dgamma+8(FP), R11
	MOVQ dbeta+16(FP), R12
	MOVQ x+24(FP), SI
	MOVQ dy+32(FP), R8
	MOVQ gamma+40(FP), R9
	MOVQ n+48(FP), BX
	VMOVSS mean+56(FP), X13
	VBROADCASTSS X13, Z13
	VMOVSS rstd+60(FP), X14
	VBROADCASTSS X14, Z14
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	MOVQ BX, CX
lb1loop:
	CMPQ CX, $16
	JLT lb1tail
	VMOVUPS (SI), Z2
	VSUBPS Z13, Z2, Z2
	VMULPS Z14, Z2, Z2
	VMOVUPS (R8), Z3
	VMULPS (R9), Z3, Z4
	VADDPS Z4, Z0, Z0
	VFMADD231PS Z2, Z4, Z1
	VMOVUPS (R11), Z5
	VFMADD231PS Z2, Z3, Z5
	VMOVUPS Z5, (R11)
	VADDPS (R12), Z3, Z6
	VMOVUPS Z6, (R12)
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ $64, R11
	ADDQ $64, R12
	SUBQ $16, CX
	JMP lb1loop
lb1tail:
	TESTQ CX, CX
	JEQ lb1done
	LOADMASK(K1)
	VMOVUPS.Z (SI), K1, Z2
	VSUBPS Z13, Z2, Z2
	VMULPS Z14, Z2, Z2
	VMOVUPS.Z (R8), K1, Z3
	VMOVUPS.Z (R9), K1, Z4
	VMULPS Z4, Z3, Z4
	VADDPS Z4, Z0, Z0
	VFMADD231PS Z2, Z4, Z1
	VMOVUPS.Z (R11), K1, Z5
	VFMADD231PS Z2, Z3, Z5
	VMOVUPS Z5, K1, (R11)
	VMOVUPS.Z (R12), K1, Z6
	VADDPS Z3, Z6, Z6
	VMOVUPS Z6, K1, (R12)
lb1done:
	HSUM(Z0, Y0, X0, Y2, X2)
	HSUM(Z1, Y1, X1, Y3, X3)
	VCVTSI2SSQ BX, X2, X2
	VDIVSS X2, X0, X0
	VDIVSS X2, X1, X1
	VBROADCASTSS X0, Z0
	VBROADCASTSS X1, Z1
	MOVQ x+24(FP), SI
	MOVQ dy+32(FP), R8
	MOVQ gamma+40(FP), R9
	MOVQ BX, CX
lb2loop:
	CMPQ CX, $16
	JLT lb2tail
	VMOVUPS (SI), Z2
	VSUBPS Z13, Z2, Z2
	VMULPS Z14, Z2, Z2
	VMOVUPS (R8), Z3
	VMULPS (R9), Z3, Z3
	VSUBPS Z0, Z3, Z3
	VFNMADD231PS Z2, Z1, Z3
	VMULPS Z14, Z3, Z3
	VMOVUPS Z3, (DI)
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ $64, DI
	SUBQ $16, CX
	JMP lb2loop
lb2tail:
	TESTQ CX, CX
	JEQ lb2done
	VMOVUPS.Z (SI), K1, Z2
	VSUBPS Z13, Z2, Z2
	VMULPS Z14, Z2, Z2
	VMOVUPS.Z (R8), K1, Z3
	VMOVUPS.Z (R9), K1, Z4
	VMULPS Z4, Z3, Z3
	VSUBPS Z0, Z3, Z3
	VFNMADD231PS Z2, Z1, Z3
	VMULPS Z14, Z3, Z3
	VMOVUPS Z3, K1, (DI)
lb2done:
	VZEROUPPER
	RET

// func softmaxBwdRowAVX512(dx, y, dy *float32, n int): softmaxBwdRowAVX2 on
// 16 lanes with an opmask tail.
TEXT ·softmaxBwdRowAVX512(SB), NOSPLIT, $0-32
	MOVQ dx+0(FP), DI
	MOVQ y+8(FP), SI
	MOVQ dy+16(FP), R8
	MOVQ n+24(FP), BX
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	MOVQ BX, CX
sb1loop:
	CMPQ CX, $16
	JLT sb1tail
	VMOVUPS (SI), Z2
	VFMADD231PS (R8), Z2, Z0
	ADDQ $64, SI
	ADDQ $64, R8
	SUBQ $16, CX
	JMP sb1loop
sb1tail:
	TESTQ CX, CX
	JEQ sb1done
	LOADMASK(K1)
	VMOVUPS.Z (SI), K1, Z2
	VMOVUPS.Z (R8), K1, Z3
	VFMADD231PS Z3, Z2, Z1
sb1done:
	VADDPS Z1, Z0, Z0
	HSUM(Z0, Y0, X0, Y2, X2)
	VBROADCASTSS X0, Z0
	MOVQ y+8(FP), SI
	MOVQ dy+16(FP), R8
	MOVQ BX, CX
sb2loop:
	CMPQ CX, $16
	JLT sb2tail
	VMOVUPS (R8), Z3
	VSUBPS Z0, Z3, Z3
	VMULPS (SI), Z3, Z3
	VMOVUPS Z3, (DI)
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, DI
	SUBQ $16, CX
	JMP sb2loop
sb2tail:
	TESTQ CX, CX
	JEQ sb2done
	VMOVUPS.Z (SI), K1, Z2
	VMOVUPS.Z (R8), K1, Z3
	VSUBPS Z0, Z3, Z3
	VMULPS Z2, Z3, Z3
	VMOVUPS Z3, K1, (DI)
sb2done:
	VZEROUPPER
	RET
