// Kernels of the device training step: the fused bias + activation
// backward, the distillation losses and the multi-tensor AdamW with global
// gradient-norm clipping (ops/fused.go states the math of each).
// Reductions are in double and summed in a fixed order (no atomics), so
// every result is the same on every run.
#include "common.cuh"

// ---------------------------------------------------------------------------
// Fused bias + activation backward.

// act_grad is d act/dx at x (ACT_NONE: 1), in double as act_bwd.
__device__ __forceinline__ double act_grad(float x, int act) {
	if (act == ACT_GELU) return gelu_grad(x);
	if (act == ACT_QUICKGELU) return quick_gelu_grad(x);
	return 1.0;
}

// bias_act_bwd: per element of x [rows, n], g = (float)(dy·act'(x)); dx (=
// or += by acc) g; part[c][j] = Σ_{rows of chunk c} g (double), added into
// dbias by col_finish. Block (32, 8), grid (ceil(n/32), chunks) as
// col_partials. dx may alias x or dy when acc is 0 (each element is read
// before it is written, by the same thread).
extern "C" __global__ void __launch_bounds__(256)
    bias_act_bwd(float *dx, const float *x, const float *dy, int rows, int n, int chunkRows, int act, int acc,
                 double *__restrict__ part) {
	__shared__ double red[8][33];
	const int j = blockIdx.x * 32 + threadIdx.x, c = blockIdx.y;
	const int r0 = c * chunkRows, r1 = min(rows, r0 + chunkRows);
	double s = 0.0;
	if (j < n)
		for (int r = r0 + threadIdx.y; r < r1; r += 8) {
			const size_t i = (size_t)r * n + j;
			const float g = act == ACT_NONE ? dy[i] : (float)((double)dy[i] * act_grad(x[i], act));
			dx[i] = acc ? dx[i] + g : g;
			s += (double)g;
		}
	red[threadIdx.y][threadIdx.x] = s;
	__syncthreads();
	if (part != nullptr && threadIdx.y == 0 && j < n) {
		for (int y = 1; y < 8; y++) s += red[y][threadIdx.x];
		part[(size_t)c * n + j] = s;
	}
}

// ---------------------------------------------------------------------------
// Loss reductions: row kernels write one double per row (or per block) into
// part; sum_finish adds them in a fixed order and writes float(Σ/div).

// sum_finish: out[0] = (float)(Σ_{i<n} part[i] / div). One block of 256.
extern "C" __global__ void __launch_bounds__(256)
    sum_finish(const double *__restrict__ part, int n, double div, float *__restrict__ out) {
	__shared__ double red[32];
	double s = 0.0;
	for (int i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
	s = block_sum_d(s, red);
	if (threadIdx.x == 0) out[0] = (float)(s / div);
}

#define ROW_WARP                                                  \
	const int lane = threadIdx.x & 31;                            \
	const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); \
	if (row >= rows) return;

// nce_row_lse: rowLSE[i] = log Σ_j exp(l_ij) (double, max first) over the
// rows of the [n, n] logits. One warp per row, 4 rows per block.
extern "C" __global__ void __launch_bounds__(128)
    nce_row_lse(const float *__restrict__ l, int rows, double *__restrict__ rowLSE) {
	ROW_WARP
	const float *lr = l + (size_t)row * rows;
	float m = -MC_INF;
	for (int j = lane; j < rows; j += 32) m = fmaxf(m, lr[j]);
	m = warp_max(m);
	double e = 0.0;
	for (int j = lane; j < rows; j += 32) e += exp((double)lr[j] - (double)m);
	e = warp_sum_d(e);
	if (lane == 0) rowLSE[row] = (double)m + log(e);
}

// nce_col_lse: colLSE[j] = log Σ_i exp(l_ij): one thread per column
// (consecutive threads read consecutive columns of a row).
extern "C" __global__ void __launch_bounds__(128)
    nce_col_lse(const float *__restrict__ l, int n, double *__restrict__ colLSE) {
	const int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= n) return;
	float m = -MC_INF;
	for (int i = 0; i < n; i++) m = fmaxf(m, l[(size_t)i * n + j]);
	double e = 0.0;
	for (int i = 0; i < n; i++) e += exp((double)l[(size_t)i * n + j] - (double)m);
	colLSE[j] = (double)m + log(e);
}

// nce_rows: per row i, lossPart[i] = rowLSE_i + colLSE_i − 2·l_ii and, when
// grad, l_ij ← G_ij = (exp(l_ij − rowLSE_i) + exp(l_ij − colLSE_j) − 2[i=j])
// / (2n) with dsPart[i] = Σ_j G_ij·l_ij (double, before rounding G). One
// warp per row.
extern "C" __global__ void __launch_bounds__(128)
    nce_rows(float *l, int rows, const double *__restrict__ rowLSE, const double *__restrict__ colLSE, int grad,
             double *__restrict__ lossPart, double *__restrict__ dsPart) {
	ROW_WARP
	float *lr = l + (size_t)row * rows;
	const double rl = rowLSE[row], inv = 1.0 / (2.0 * rows);
	if (lane == 0) lossPart[row] = rl + colLSE[row] - 2.0 * (double)lr[row];
	if (!grad) return;
	__syncwarp(); // the diagonal is read above before it is overwritten below
	double ds = 0.0;
	for (int j = lane; j < rows; j += 32) {
		const double v = (double)lr[j];
		double g = exp(v - rl) + exp(v - colLSE[j]);
		if (j == row) g -= 2.0;
		g *= inv;
		ds += g * v;
		lr[j] = (float)g;
	}
	ds = warp_sum_d(ds);
	if (lane == 0) dsPart[row] = ds;
}

// soft_ce_rows: per row r of m, with it = 1/temp (double), p = softmax(t·it)
// and lse = logsumexp(s·it): part[r] = lse − Σ_j p_j·s_j·it and, when grad
// is non-null, grad[r,j] = (exp(s_j·it − lse) − p_j)·it/rows. One warp per
// row.
extern "C" __global__ void __launch_bounds__(128)
    soft_ce_rows(const float *__restrict__ s, const float *__restrict__ tch, float *__restrict__ grad, int rows,
                 int m, float temp, double *__restrict__ part) {
	ROW_WARP
	const float *sr = s + (size_t)row * m, *tr = tch + (size_t)row * m;
	const double it = 1.0 / (double)temp;
	double tm = -HUGE_VAL, sm = -HUGE_VAL;
	for (int j = lane; j < m; j += 32) {
		tm = fmax(tm, (double)tr[j] * it);
		sm = fmax(sm, (double)sr[j] * it);
	}
	for (int o = 16; o > 0; o >>= 1) {
		tm = fmax(tm, __shfl_xor_sync(0xffffffffu, tm, o));
		sm = fmax(sm, __shfl_xor_sync(0xffffffffu, sm, o));
	}
	double ts = 0.0, ss = 0.0, dot = 0.0;
	for (int j = lane; j < m; j += 32) {
		const double pt = exp((double)tr[j] * it - tm);
		ts += pt;
		ss += exp((double)sr[j] * it - sm);
		dot += pt * (double)sr[j] * it;
	}
	ts = warp_sum_d(ts);
	ss = warp_sum_d(ss);
	dot = warp_sum_d(dot) / ts;
	const double lse = sm + log(ss);
	if (lane == 0) part[row] = lse - dot;
	if (grad == nullptr) return;
	const double c = it / (double)rows;
	float *gr = grad + (size_t)row * m;
	for (int j = lane; j < m; j += 32) {
		const double pt = exp((double)tr[j] * it - tm) / ts;
		gr[j] = (float)((exp((double)sr[j] * it - lse) - pt) * c);
	}
}

// mse_partials: part[block] = Σ (a − b)² (double) over the block's share of
// a grid-stride loop. Block 256.
extern "C" __global__ void __launch_bounds__(256)
    mse_partials(const float *__restrict__ a, const float *__restrict__ b, long long n, double *__restrict__ part) {
	__shared__ double red[32];
	double s = 0.0;
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
		const double d = (double)a[i] - (double)b[i];
		s += d * d;
	}
	s = block_sum_d(s, red);
	if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// mse_bwd: c = 2·dy[0]/n (float32), da (= or += by accA) c·(a − b), db (=
// or +=) (−c)·(a − b), float32 as ops.MSE's backward; da or db may be null.
extern "C" __global__ void mse_bwd(float *da, float *db, const float *a, const float *b, const float *dy, long long n,
                                   int accA, int accB) {
	const float c = __fdiv_rn(__fmul_rn(2.f, dy[0]), (float)n);
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
		const float d = __fsub_rn(a[i], b[i]);
		if (da != nullptr) {
			const float g = __fmul_rn(c, d);
			da[i] = accA ? __fadd_rn(da[i], g) : g;
		}
		if (db != nullptr) {
			const float g = __fmul_rn(-c, d);
			db[i] = accB ? __fadd_rn(db[i], g) : g;
		}
	}
}

// ---------------------------------------------------------------------------
// Multi-tensor AdamW. The tensors are a table in device memory, one
// MtTensor each; the work is a list of chunks (tensor index, chunk index)
// of MT_CHUNK elements, one block per chunk, so one launch covers every
// parameter whatever their sizes.

#define MT_CHUNK 4096

struct MtTensor {
	float *p, *g, *m, *v;
	long long n;
	float decay;
	int pad;
};

// mt_sumsq: part[c] = Σ g² (double) over chunk c. Block 256.
extern "C" __global__ void __launch_bounds__(256)
    mt_sumsq(const MtTensor *__restrict__ ts, const int *__restrict__ chunks, double *__restrict__ part) {
	__shared__ double red[32];
	const int c = blockIdx.x, ti = chunks[2 * c];
	const MtTensor tt = ts[ti];
	const long long lo = (long long)chunks[2 * c + 1] * MT_CHUNK, hi = tt.n < lo + MT_CHUNK ? tt.n : lo + MT_CHUNK;
	double s = 0.0;
	for (long long i = lo + threadIdx.x; i < hi; i += blockDim.x) {
		const double g = (double)tt.g[i];
		s += g * g;
	}
	s = block_sum_d(s, red);
	if (threadIdx.x == 0) part[c] = s;
}

// norm_finish: Σ_{i<n} part[i] in a fixed order, written as the float32
// pair out[0] = (float)s, out[1] = (float)(s − out[0]). One block of 256.
extern "C" __global__ void __launch_bounds__(256)
    norm_finish(const double *__restrict__ part, int n, float *__restrict__ out) {
	__shared__ double red[32];
	double s = 0.0;
	for (int i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
	s = block_sum_d(s, red);
	if (threadIdx.x == 0) {
		const float hi = (float)s;
		out[0] = hi;
		out[1] = (float)(s - (double)hi);
	}
}

// mt_adamw: nn.AdamW.Step's element loop after nn.ClipGradNorm, one
// rounded float32 operation at a time (no contraction into FMAs), so that
// the result is bit-identical to the Go loop. normSq (null: no clipping) is
// GradNormSq's pair; a non-finite norm leaves everything untouched.
extern "C" __global__ void __launch_bounds__(256)
    mt_adamw(const MtTensor *__restrict__ ts, const int *__restrict__ chunks, float b1, float b1c, float b2,
             float b2c, float stepSize, float invBC2, float eps, const float *__restrict__ normSq, double maxNorm) {
	bool clip = false;
	float sc = 1.f;
	if (normSq != nullptr) {
		const double norm = sqrt((double)normSq[0] + (double)normSq[1]);
		if (isnan(norm) || isinf(norm)) return;
		if (maxNorm > 0 && norm > maxNorm) {
			clip = true;
			sc = (float)(maxNorm / (norm + 1e-6));
		}
	}
	const int c = blockIdx.x, ti = chunks[2 * c];
	const MtTensor tt = ts[ti];
	const long long lo = (long long)chunks[2 * c + 1] * MT_CHUNK, hi = tt.n < lo + MT_CHUNK ? tt.n : lo + MT_CHUNK;
	for (long long i = lo + threadIdx.x; i < hi; i += blockDim.x) {
		float g = tt.g[i];
		if (clip) {
			g = __fmul_rn(g, sc);
			tt.g[i] = g;
		}
		const float m = __fadd_rn(__fmul_rn(b1, tt.m[i]), __fmul_rn(b1c, g));
		const float v = __fadd_rn(__fmul_rn(b2, tt.v[i]), __fmul_rn(b2c, __fmul_rn(g, g)));
		tt.m[i] = m;
		tt.v[i] = v;
		const float denom = __fadd_rn(__fmul_rn((float)sqrt((double)v), invBC2), eps);
		tt.p[i] = __fsub_rn(__fmul_rn(tt.p[i], tt.decay), __fmul_rn(stepSize, __fdiv_rn(m, denom)));
	}
}
