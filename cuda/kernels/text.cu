// Text-transformer input and pooling kernels.
#include "common.cuh"

// text_embed: x[b·T + t] = tok[ids[b·T + t]] + pos[t], rows of C, with
// x [B·T, C], ids int32 [B·T] (checked to lie in the vocabulary on the host),
// tok [V, C], pos [>= T, C].
extern "C" __global__ void text_embed(float *__restrict__ x, const int *__restrict__ ids,
                                      const float *__restrict__ tok, const float *__restrict__ pos, int B, int T,
                                      int C) {
	const long long total = (long long)B * T * C;
	for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
	     idx += (long long)gridDim.x * blockDim.x) {
		long long rowi = idx / C;
		int c = (int)(idx - rowi * C);
		int t = (int)(rowi % T);
		x[idx] = tok[(size_t)ids[rowi] * C + c] + pos[(size_t)t * C + c];
	}
}

// gather_rows: dst[r·ldd + j] = src[idx[r]·lds + j] for r < rows, j < n
// (the EOT pooling: idx[b] = b·T + eot[b]).
extern "C" __global__ void gather_rows(float *__restrict__ dst, int ldd, const float *__restrict__ src, int lds,
                                       const int *__restrict__ idx, int rows, int n) {
	const long long total = (long long)rows * n;
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
	     i += (long long)gridDim.x * blockDim.x) {
		int r = (int)(i / n), j = (int)(i - (long long)r * n);
		dst[(size_t)r * ldd + j] = src[(size_t)idx[r] * lds + j];
	}
}
