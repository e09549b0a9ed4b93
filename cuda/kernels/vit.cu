// Vision-transformer input kernels.
#include "common.cuh"

// patch_unfold (im2col for stride = kernel = P):
// cols[(b·N + py·gw + px)·K + (c·P + ky)·P + kx] = pix[b, c, py·P+ky, px·P+kx]
// with pixels [B, Cin, H, W], gw = W/P, N = (H/P)·gw, K = Cin·P².
extern "C" __global__ void patch_unfold(float *__restrict__ cols, const float *__restrict__ pix, int B, int Cin,
                                        int H, int W, int P) {
	const int gw = W / P, gh = H / P, N = gh * gw, K = Cin * P * P;
	const long long total = (long long)B * N * K;
	for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
	     idx += (long long)gridDim.x * blockDim.x) {
		long long rowi = idx / K;
		int col = (int)(idx - rowi * K);
		int b = (int)(rowi / N), pn = (int)(rowi - (long long)b * N);
		int py = pn / gw, px = pn - py * gw;
		int c = col / (P * P), rem = col - c * P * P, ky = rem / P, kx = rem - ky * P;
		cols[idx] = pix[(((size_t)b * Cin + c) * H + py * P + ky) * W + px * P + kx];
	}
}

// vit_embed: x[b, t] = (t == 0 ? cls : patches[b, t-1]) + pos[t], rows of C,
// x [B·T, C], patches [B·(T-1), C], pos [T, C].
extern "C" __global__ void vit_embed(float *__restrict__ x, const float *__restrict__ patches,
                                     const float *__restrict__ cls, const float *__restrict__ pos, int B, int T,
                                     int C) {
	const long long total = (long long)B * T * C;
	for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
	     idx += (long long)gridDim.x * blockDim.x) {
		long long rowi = idx / C;
		int c = (int)(idx - rowi * C);
		int b = (int)(rowi / T), t = (int)(rowi - (long long)b * T);
		float v = t == 0 ? cls[c] : patches[((size_t)b * (T - 1) + t - 1) * C + c];
		x[idx] = v + pos[(size_t)t * C + c];
	}
}
