// Shared helpers of the mopeclip CUDA kernels. Every kernel is extern "C"
// (unmangled names, looked up by the Go package) and float32 in memory;
// reductions that decide accuracy (layer-norm moments, softmax-backward dots,
// GELU's erfc) run in double, which is cheap on sm_80/sm_90 for these
// memory-bound kernels.
#pragma once

#include <math.h>
#include <stdint.h>

#define MC_INF __int_as_float(0x7f800000)

// Dynamic shared memory (the CPU emulator of emu/ maps it to a per-block
// buffer; nvcc sees the usual extern array).
#ifdef MC_EMULATE
#define MC_DYN_SHARED(T, name) T *name = (T *)mc_dynamic_shared()
#else
#define MC_DYN_SHARED(T, name) extern __shared__ T name[]
#endif

// Activation codes shared with the Go side (cuda/kernels.go).
#define ACT_NONE 0
#define ACT_QUICKGELU 1
#define ACT_GELU 2

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
	for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

// Block-wide reductions for blockDim.x a multiple of 32 (at most 1024).
// scratch holds 32 elements; the result is returned to every thread.
__device__ __forceinline__ float block_max(float v, float *scratch) {
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = warp_max(v);
	__syncthreads();
	if (lane == 0) scratch[w] = v;
	__syncthreads();
	v = lane < nw ? scratch[lane] : -MC_INF;
	return warp_max(v);
}

__device__ __forceinline__ double block_sum_d(double v, double *scratch) {
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = warp_sum_d(v);
	__syncthreads();
	if (lane == 0) scratch[w] = v;
	__syncthreads();
	v = lane < nw ? scratch[lane] : 0.0;
	return warp_sum_d(v);
}

// x·σ(1.702x), evaluated in double as the CPU reference does.
__device__ __forceinline__ float quick_gelu(float x) {
	double v = (double)x;
	return (float)(v / (1.0 + exp(-1.702 * v)));
}

// x·Φ(x) = 0.5·x·erfc(-x/√2) (the erfc form keeps relative accuracy for x < 0).
__device__ __forceinline__ float gelu(float x) {
	double v = (double)x;
	return (float)(0.5 * v * erfc(-v * 0.70710678118654752440));
}

__device__ __forceinline__ float apply_act(float x, int act) {
	if (act == ACT_QUICKGELU) return quick_gelu(x);
	if (act == ACT_GELU) return gelu(x);
	return x;
}

// d/dx QuickGELU: s + 1.702·x·s·(1-s), s = σ(1.702x), both s and 1-s formed
// without cancellation; at ±Inf the x·s·(1-s) term tends to 0.
__device__ __forceinline__ double quick_gelu_grad(float xf) {
	double x = (double)xf;
	double e = exp(-1.702 * fabs(x));
	double s = 1.0 / (1.0 + e), t = e / (1.0 + e);
	if (x < 0) {
		double u = s;
		s = t;
		t = u;
	}
	if (isinf(x)) return s;
	return s + 1.702 * x * s * t;
}

// d/dx GELU: Φ(x) + x·φ(x); at ±Inf the x·φ(x) term tends to 0.
__device__ __forceinline__ double gelu_grad(float xf) {
	double x = (double)xf;
	double cdf = 0.5 * erfc(-x * 0.70710678118654752440);
	if (isinf(x)) return cdf;
	return cdf + x * 0.39894228040143267794 * exp(-0.5 * x * x);
}
