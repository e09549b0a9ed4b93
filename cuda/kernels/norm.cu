// Row kernels: layer norm (with fused residual / bias add), its backward,
// softmax rows and its backward. One warp per row, 4 rows per 128-thread
// block (grid = ceil(rows/4)); moments and dot products accumulate in double.
#include "common.cuh"

#define ROW_SETUP                                                         \
	const int row = blockIdx.x * 4 + (threadIdx.x >> 5), lane = threadIdx.x & 31; \
	if (row >= rows) return;

// ln_fwd normalises v = x + r + bias (r, bias optional: null) per row:
//
//	sum = v (when sum is not null), out = (v-μ)/sqrt(σ²+eps)·γ + β,
//	mean/rstd (optional) receive μ and 1/sqrt(σ²+eps).
//
// Rows are ldx/ldr/lds/ldo floats apart (ldx = T·C gathers the class tokens).
// out may alias x, sum may alias x (in-place residual stream).
extern "C" __global__ void __launch_bounds__(128)
    ln_fwd(const float *x, int ldx, const float *r, int ldr, const float *bias, float *sum, int lds, float *out,
           int ldo, const float *__restrict__ gamma, const float *__restrict__ beta, float *mean, float *rstd,
           int rows, int n, float eps) {
	ROW_SETUP
	const float *xr = x + (size_t)row * ldx;
	const float *rr = r != nullptr ? r + (size_t)row * ldr : nullptr;
	float *sr = sum != nullptr ? sum + (size_t)row * lds : nullptr;
	float *orow = out + (size_t)row * ldo;
	double s = 0.0;
	for (int j = lane; j < n; j += 32) {
		float v = xr[j];
		if (rr != nullptr) v += rr[j];
		if (bias != nullptr) v += bias[j];
		if (sr != nullptr) sr[j] = v;
		s += (double)v;
	}
	const double mu = warp_sum_d(s) / n;
	double ss = 0.0;
	for (int j = lane; j < n; j += 32) {
		float v;
		if (sr != nullptr) {
			v = sr[j];
		} else {
			v = xr[j];
			if (rr != nullptr) v += rr[j];
			if (bias != nullptr) v += bias[j];
		}
		double d = (double)v - mu;
		ss += d * d;
	}
	const double rs = 1.0 / sqrt(warp_sum_d(ss) / n + (double)eps);
	for (int j = lane; j < n; j += 32) {
		float v;
		if (sr != nullptr) {
			v = sr[j];
		} else {
			v = xr[j];
			if (rr != nullptr) v += rr[j];
			if (bias != nullptr) v += bias[j];
		}
		orow[j] = (float)(((double)v - mu) * rs * (double)gamma[j] + (double)beta[j]);
	}
	if (lane == 0) {
		if (mean != nullptr) mean[row] = (float)mu;
		if (rstd != nullptr) rstd[row] = (float)rs;
	}
}

// ln_bwd_dx: with x̂ = (x-μ)·rstd and g = dy·γ,
// dx (= or += by acc) rstd·(g − mean(g) − x̂·mean(g·x̂)). dx may alias x or dy.
extern "C" __global__ void __launch_bounds__(128)
    ln_bwd_dx(float *dx, const float *x, const float *dy, const float *__restrict__ gamma,
              const float *__restrict__ mean, const float *__restrict__ rstd, int rows, int n, int acc) {
	ROW_SETUP
	const size_t o = (size_t)row * n;
	const double mu = mean[row], rs = rstd[row];
	double sg = 0.0, sgx = 0.0;
	for (int j = lane; j < n; j += 32) {
		double xh = ((double)x[o + j] - mu) * rs;
		double g = (double)dy[o + j] * (double)gamma[j];
		sg += g;
		sgx += g * xh;
	}
	sg = warp_sum_d(sg) / n;
	sgx = warp_sum_d(sgx) / n;
	for (int j = lane; j < n; j += 32) {
		double xh = ((double)x[o + j] - mu) * rs;
		float d = (float)(rs * ((double)dy[o + j] * (double)gamma[j] - sg - xh * sgx));
		dx[o + j] = acc ? dx[o + j] + d : d;
	}
}

// Column reductions in two deterministic stages: the partial kernels write
// one double per (chunk of chunkRows rows, column); col_finish adds the
// chunks in order into dst. Block (32, 8), grid (ceil(n/32), chunks).
extern "C" __global__ void __launch_bounds__(256)
    col_partials(const float *__restrict__ x, int rows, int n, int chunkRows, double *__restrict__ part) {
	__shared__ double red[8][33];
	const int j = blockIdx.x * 32 + threadIdx.x, c = blockIdx.y;
	const int r0 = c * chunkRows, r1 = min(rows, r0 + chunkRows);
	double s = 0.0;
	if (j < n)
		for (int r = r0 + threadIdx.y; r < r1; r += 8) s += (double)x[(size_t)r * n + j];
	red[threadIdx.y][threadIdx.x] = s;
	__syncthreads();
	if (threadIdx.y == 0 && j < n) {
		for (int y = 1; y < 8; y++) s += red[y][threadIdx.x];
		part[(size_t)c * n + j] = s;
	}
}

// ln_param_partials: pg = Σ dy·x̂ (dgamma), pb = Σ dy (dbeta); either may be null.
extern "C" __global__ void __launch_bounds__(256)
    ln_param_partials(const float *__restrict__ x, const float *__restrict__ dy, const float *__restrict__ mean,
                      const float *__restrict__ rstd, int rows, int n, int chunkRows, double *__restrict__ pg,
                      double *__restrict__ pb) {
	__shared__ double rg[8][33], rb[8][33];
	const int j = blockIdx.x * 32 + threadIdx.x, c = blockIdx.y;
	const int r0 = c * chunkRows, r1 = min(rows, r0 + chunkRows);
	double sg = 0.0, sb = 0.0;
	if (j < n)
		for (int r = r0 + threadIdx.y; r < r1; r += 8) {
			double g = dy[(size_t)r * n + j];
			sg += g * (((double)x[(size_t)r * n + j] - (double)mean[r]) * (double)rstd[r]);
			sb += g;
		}
	rg[threadIdx.y][threadIdx.x] = sg;
	rb[threadIdx.y][threadIdx.x] = sb;
	__syncthreads();
	if (threadIdx.y == 0 && j < n) {
		for (int y = 1; y < 8; y++) {
			sg += rg[y][threadIdx.x];
			sb += rb[y][threadIdx.x];
		}
		if (pg != nullptr) pg[(size_t)c * n + j] = sg;
		if (pb != nullptr) pb[(size_t)c * n + j] = sb;
	}
}

// col_finish: dst[j] += Σ_c part[c][j]. grid ceil(n/128), block 128.
extern "C" __global__ void __launch_bounds__(128)
    col_finish(float *__restrict__ dst, const double *__restrict__ part, int chunks, int n) {
	const int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= n) return;
	double s = 0.0;
	for (int c = 0; c < chunks; c++) s += part[(size_t)c * n + j];
	dst[j] = (float)((double)dst[j] + s);
}

// softmax_rows: x = softmax(x) per row of n (max subtracted first; an
// all -Inf row, or one holding +Inf or NaN, becomes NaN as on the CPU).
extern "C" __global__ void __launch_bounds__(128) softmax_rows(float *x, int rows, int n) {
	ROW_SETUP
	float *xr = x + (size_t)row * n;
	float m = -MC_INF;
	for (int j = lane; j < n; j += 32) m = fmaxf(m, xr[j]);
	m = warp_max(m);
	// fmaxf skips a NaN, but exp(NaN) then makes the sum, and so the row,
	// NaN, as on the CPU.
	double s = 0.0;
	for (int j = lane; j < n; j += 32) {
		float e = expf(xr[j] - m);
		xr[j] = e;
		s += (double)e;
	}
	const float inv = (float)(1.0 / warp_sum_d(s));
	for (int j = lane; j < n; j += 32) xr[j] *= inv;
}

// softmax_bwd: dx (= or += by acc) y·(dy − Σ y·dy). dx may alias y or dy.
extern "C" __global__ void __launch_bounds__(128)
    softmax_bwd(float *dx, const float *y, const float *dy, int rows, int n, int acc) {
	ROW_SETUP
	const size_t o = (size_t)row * n;
	double d = 0.0;
	for (int j = lane; j < n; j += 32) d += (double)y[o + j] * (double)dy[o + j];
	d = warp_sum_d(d);
	for (int j = lane; j < n; j += 32) {
		float v = (float)((double)y[o + j] * ((double)dy[o + j] - d));
		dx[o + j] = acc ? dx[o + j] + v : v;
	}
}
