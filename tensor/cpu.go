package tensor

import (
	"runtime"

	"github.com/klauspost/cpuid/v2"
)

// CPU features the assembly variants need, read once at start-up. The
// registration files (build-tagged per architecture and !noasm) consult these
// before registering a variant.
var (
	// cpuAVX512 is AVX-512 F+BW+VL+DQ: 512-bit FMA, masked loads/stores.
	cpuAVX512 = cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512BW, cpuid.AVX512VL, cpuid.AVX512DQ)
	// cpuAVX2 is AVX2 with FMA3.
	cpuAVX2 = cpuid.CPU.Supports(cpuid.AVX2, cpuid.FMA3)
	// cpuAVX512BF16 is the VDPBF16PS dot-product instruction.
	cpuAVX512BF16 = cpuAVX512 && cpuid.CPU.Supports(cpuid.AVX512BF16)
	// cpuBF16DotFast says that VDPBF16PS beats widening bfloat16 to float32
	// for FMAs: on AMD, where one VDPBF16PS does twice an FMA's
	// multiply-adds (a Zen 5 ran bf16 encoders 1.8× float32). On Intel, where
	// measured, it issues every other cycle: an Emerald Rapids Xeon ran it at
	// 86 GFLOP/s against 174 for the FMA (bench/fmapeak), and the widening
	// kernel ran the bf16 GEMMs 1.57–1.75× faster (bench/README.md).
	cpuBF16DotFast = cpuAVX512BF16 && cpuid.CPU.VendorID == cpuid.AMD
	// cpuAVX512VNNI is AVX-512 with VPDPBUSD (int8 dot products).
	cpuAVX512VNNI = cpuAVX512 && cpuid.CPU.Supports(cpuid.AVX512VNNI)
	// cpuAVXVNNI is AVX2 with the VEX-encoded VPDPBUSD (AVX-VNNI).
	cpuAVXVNNI = cpuAVX2 && cpuid.CPU.Supports(cpuid.AVXVNNI)
	// cpuNEON is Advanced SIMD, present on every arm64 CPU.
	cpuNEON = runtime.GOARCH == "arm64"
)
