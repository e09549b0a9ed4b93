//go:build !noasm

#include "textflag.h"

// func int8MaxAbsAVX512(src *float32, n int) float32
// returns max|src[i]| over n (a positive multiple of 16) elements, NaNs
// ignored (VMAXPS keeps the running maximum when the element is NaN), as
// maxAbs does.
TEXT ·int8MaxAbsAVX512(SB), NOSPLIT, $0-20
	MOVQ src+0(FP), SI
	MOVQ n+8(FP), CX
	SHRQ $4, CX
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z31
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	TESTQ $1, CX
	JZ pairs
	VPANDD (SI), Z31, Z2
	VMAXPS Z0, Z2, Z0 // Intel: vmaxps z0, z2, z0: z2 > z0 ? z2 : z0
	ADDQ $64, SI
pairs:
	SHRQ $1, CX
	JZ done
loop:
	VPANDD (SI), Z31, Z2
	VPANDD 64(SI), Z31, Z3
	VMAXPS Z0, Z2, Z0
	VMAXPS Z1, Z3, Z1
	ADDQ $128, SI
	DECQ CX
	JNZ loop
done:
	VMAXPS Z0, Z1, Z0
	VEXTRACTF32X8 $1, Z0, Y1
	VMAXPS Y0, Y1, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X0, X1, X0
	VPSHUFD $0x4e, X0, X1
	VMAXPS X0, X1, X0
	VPSHUFD $0xb1, X0, X1
	VMAXPS X0, X1, X0
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func int8QuantAVX512(dst *int8, src *float32, n int, inv float32) int32
// sets dst[i] = RoundToEven(clamp(src[i]·inv)) for n (a positive multiple
// of 16) elements, exactly as quantize does (VMINPS/VMAXPS against ±127
// with the product as first source: a NaN product becomes 127; VCVTPS2DQ
// rounds to nearest even under Go's MXCSR), and returns Σ dst[i].
TEXT ·int8QuantAVX512(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	VBROADCASTSS inv+24(FP), Z31
	MOVL $0x42fe0000, AX // 127.0
	VPBROADCASTD AX, Z30
	MOVL $0xc2fe0000, AX // -127.0
	VPBROADCASTD AX, Z29
	VPXORD Z28, Z28, Z28
qloop:
	VMULPS (SI), Z31, Z0
	VMINPS Z30, Z0, Z0 // Intel: vminps z0, z0, z30: z0 < 127 ? z0 : 127
	VMAXPS Z29, Z0, Z0 // z0 > -127 ? z0 : -127
	VCVTPS2DQ Z0, Z0
	VPADDD Z0, Z28, Z28
	VPMOVDB Z0, (DI)
	ADDQ $64, SI
	ADDQ $16, DI
	DECQ CX
	JNZ qloop
	VEXTRACTI32X8 $1, Z28, Y1
	VPADDD Y28, Y1, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD X0, X1, X0
	VPSHUFD $0x4e, X0, X1
	VPADDD X0, X1, X0
	VPSHUFD $0xb1, X0, X1
	VPADDD X0, X1, X0
	VMOVD X0, AX
	MOVL AX, ret+32(FP)
	VZEROUPPER
	RET
