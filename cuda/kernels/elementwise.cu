// Elementwise and reduction kernels (grid-stride loops over n elements).
#include "common.cuh"

#define GRID_LOOP(i, n) \
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// dst = a + b (dst may alias a or b).
extern "C" __global__ void ew_add(float *dst, const float *a, const float *b, long long n) {
	GRID_LOOP(i, n) dst[i] = a[i] + b[i];
}

// dst = a ⊙ b.
extern "C" __global__ void ew_mul(float *dst, const float *a, const float *b, long long n) {
	GRID_LOOP(i, n) dst[i] = a[i] * b[i];
}

// dst += a ⊙ b.
extern "C" __global__ void ew_muladd(float *dst, const float *a, const float *b, long long n) {
	GRID_LOOP(i, n) dst[i] += a[i] * b[i];
}

// y += alpha·x.
extern "C" __global__ void ew_axpy(float alpha, const float *x, float *y, long long n) {
	GRID_LOOP(i, n) y[i] += alpha * x[i];
}

// x *= alpha.
extern "C" __global__ void ew_scale(float alpha, float *x, long long n) {
	GRID_LOOP(i, n) x[i] *= alpha;
}

// bias_act: x[i] = act(x[i] + bias[i mod nb]) (bias optional): AddBias with
// ACT_NONE, the GEMM epilogue of fc1 with ACT_QUICKGELU / ACT_GELU.
extern "C" __global__ void bias_act(float *x, const float *__restrict__ bias, long long n, int nb, int act) {
	GRID_LOOP(i, n) {
		float v = x[i];
		if (bias != nullptr) v += bias[i % nb];
		x[i] = apply_act(v, act);
	}
}

// act_fwd: dst = act(x) (dst may alias x).
extern "C" __global__ void act_fwd(float *dst, const float *x, long long n, int act) {
	GRID_LOOP(i, n) dst[i] = apply_act(x[i], act);
}

// act_bwd: dx (= or += by acc) dy·act'(x). dx may alias x or dy.
extern "C" __global__ void act_bwd(float *dx, const float *x, const float *dy, long long n, int act, int acc) {
	GRID_LOOP(i, n) {
		double g = act == ACT_GELU ? gelu_grad(x[i]) : quick_gelu_grad(x[i]);
		float v = (float)((double)dy[i] * g);
		dx[i] = acc ? dx[i] + v : v;
	}
}

// reduce_dot: part[block] = Σ x·y over the block's share (y null: Σ x²).
// Block 256; the host adds the partials.
extern "C" __global__ void __launch_bounds__(256)
    reduce_dot(const float *__restrict__ x, const float *__restrict__ y, long long n, double *__restrict__ part) {
	__shared__ double red[32];
	double s = 0.0;
	if (y == nullptr) {
		GRID_LOOP(i, n) s += (double)x[i] * (double)x[i];
	} else {
		GRID_LOOP(i, n) s += (double)x[i] * (double)y[i];
	}
	s = block_sum_d(s, red);
	if (threadIdx.x == 0) part[blockIdx.x] = s;
}
