//go:build !noasm

#include "textflag.h"

// func bf16CvtAVX2(dst *uint32, src *float32, n int)
// converts src[0:n] (n a positive multiple of 16) to bfloat16 pairs
// dst[0:n/2], dst[q] = ToBF16(src[2q]) | ToBF16(src[2q+1])<<16, exactly as
// ToBF16: round to nearest even by integer addition, NaN → (x>>16)|0x40,
// denormal or zero → the signed zero.
TEXT ·bf16CvtAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	JZ   done
	MOVL $0x7fff, AX
	MOVQ AX, X15
	VPBROADCASTD X15, Y15
	MOVL $1, AX
	MOVQ AX, X14
	VPBROADCASTD X14, Y14
	MOVL $0x7fffffff, AX
	MOVQ AX, X13
	VPBROADCASTD X13, Y13
	MOVL $0x7f800000, AX
	MOVQ AX, X12
	VPBROADCASTD X12, Y12
	MOVL $0x40, AX
	MOVQ AX, X11
	VPBROADCASTD X11, Y11
	MOVL $0x8000, AX
	MOVQ AX, X10
	VPBROADCASTD X10, Y10
	VPXOR Y9, Y9, Y9

loop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1

	// Y2 = ToBF16 of the 8 floats in Y0 (in the low half of each dword).
	VPSRLD    $16, Y0, Y4      // x>>16
	VPAND     Y14, Y4, Y5      // its lowest bit: ties to even
	VPADDD    Y15, Y0, Y2
	VPADDD    Y5, Y2, Y2
	VPSRLD    $16, Y2, Y2      // rounded
	VPAND     Y13, Y0, Y7
	VPCMPGTD  Y12, Y7, Y7      // NaN: |x| > +Inf
	VPOR      Y11, Y4, Y8      // quieted NaN
	VPBLENDVB Y7, Y8, Y2, Y2
	VPAND     Y12, Y0, Y7
	VPCMPEQD  Y9, Y7, Y7       // exponent 0: zero or denormal
	VPAND     Y10, Y4, Y8      // signed zero
	VPBLENDVB Y7, Y8, Y2, Y2

	// Y3 = the same for Y1.
	VPSRLD    $16, Y1, Y4
	VPAND     Y14, Y4, Y5
	VPADDD    Y15, Y1, Y3
	VPADDD    Y5, Y3, Y3
	VPSRLD    $16, Y3, Y3
	VPAND     Y13, Y1, Y7
	VPCMPGTD  Y12, Y7, Y7
	VPOR      Y11, Y4, Y8
	VPBLENDVB Y7, Y8, Y3, Y3
	VPAND     Y12, Y1, Y7
	VPCMPEQD  Y9, Y7, Y7
	VPAND     Y10, Y4, Y8
	VPBLENDVB Y7, Y8, Y3, Y3

	// Dwords to words: per 128-bit lane [Y2 lane, Y3 lane]; VPERMQ puts
	// the four quadwords back in order.
	VPACKUSDW Y3, Y2, Y4
	VPERMQ    $0xd8, Y4, Y4
	VMOVDQU   Y4, (DI)
	ADDQ      $64, SI
	ADDQ      $32, DI
	DECQ      CX
	JNZ       loop
	VZEROUPPER

done:
	RET
