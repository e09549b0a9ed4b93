// Fallback SGEMM with a fused epilogue (exact fp32, FMA accumulation), used
// when cuBLAS is not loaded and for the fused bias/activation epilogue.
//
// Row-major semantics (as ops.Backend.Gemm): C = act(alpha·op(A)·op(B) +
// beta·C + bias) with op(A) M×K, op(B) K×N, C M×N, rows lda/ldb/ldc floats
// apart; beta == 0 ignores the old C (NaN included); bias (length N, added to
// every row) optional; batches via grid.z with element strides sA, sB, sC.
//
// Tiles: 64×64 of C per block of 256 threads, K in steps of 16 through
// shared memory; thread (ty, tx) of 16×16 computes rows ty + 16i and columns
// tx + 16j (i, j < 4), so shared reads are broadcasts or consecutive.
#include "common.cuh"

// The activation is out of line: inlined into the 16 unrolled stores its
// double-precision exp/erfc would multiply the code size by ten.
__device__ __noinline__ float ep_act(float v, int act) { return apply_act(v, act); }

#define BM 64
#define BN 64
#define BKK 16

extern "C" __global__ void __launch_bounds__(256)
    sgemm_ep(int transA, int transB, int M, int N, int K, float alpha, const float *__restrict__ A, int lda,
             long long sA, const float *__restrict__ B, int ldb, long long sB, float beta, float *C, int ldc,
             long long sC, const float *__restrict__ bias, int act) {
	__shared__ float As[BKK][BM + 1];
	__shared__ float Bs[BKK][BN + 1];
	const int t = threadIdx.x, tx = t & 15, ty = t >> 4;
	const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
	A += (size_t)blockIdx.z * sA;
	B += (size_t)blockIdx.z * sB;
	C += (size_t)blockIdx.z * sC;

	float acc[4][4];
#pragma unroll
	for (int i = 0; i < 4; i++)
#pragma unroll
		for (int j = 0; j < 4; j++) acc[i][j] = 0.f;

	for (int k0 = 0; k0 < K; k0 += BKK) {
#pragma unroll
		for (int e = 0; e < 4; e++) {
			int idx = t + 256 * e, r, kk;
			if (!transA) {
				r = idx >> 4;
				kk = idx & 15;
			} else {
				kk = idx >> 6;
				r = idx & 63;
			}
			int gm = m0 + r, gk = k0 + kk;
			float a = 0.f;
			if (gm < M && gk < K) a = transA ? A[(size_t)gk * lda + gm] : A[(size_t)gm * lda + gk];
			As[kk][r] = a;
		}
#pragma unroll
		for (int e = 0; e < 4; e++) {
			int idx = t + 256 * e, c, kk;
			if (!transB) {
				kk = idx >> 6;
				c = idx & 63;
			} else {
				c = idx >> 4;
				kk = idx & 15;
			}
			int gn = n0 + c, gk = k0 + kk;
			float b = 0.f;
			if (gn < N && gk < K) b = transB ? B[(size_t)gn * ldb + gk] : B[(size_t)gk * ldb + gn];
			Bs[kk][c] = b;
		}
		__syncthreads();
#pragma unroll
		for (int kk = 0; kk < BKK; kk++) {
			float a[4], b[4];
#pragma unroll
			for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i];
#pragma unroll
			for (int j = 0; j < 4; j++) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
			for (int i = 0; i < 4; i++)
#pragma unroll
				for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
		}
		__syncthreads();
	}

#pragma unroll
	for (int i = 0; i < 4; i++) {
		int gm = m0 + ty + 16 * i;
		if (gm >= M) continue;
#pragma unroll
		for (int j = 0; j < 4; j++) {
			int gn = n0 + tx + 16 * j;
			if (gn >= N) continue;
			float *c = C + (size_t)gm * ldc + gn;
			float v = alpha * acc[i][j];
			if (beta != 0.f) v = fmaf(beta, *c, v);
			if (bias != nullptr) v += bias[gn];
			*c = act != ACT_NONE ? ep_act(v, act) : v;
		}
	}
}
