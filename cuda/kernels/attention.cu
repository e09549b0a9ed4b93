// Multi-head attention kernels.
//
// Layout (as ops.AttentionForward): q, k, v, out hold B·T rows; head h of
// row (b, i) is the D floats at column h·D of row b·T+i, rows ldq/ldk/ldv/ldo
// floats apart (H·D for ops, 3·H·D when q, k, v are slices of one fused QKV
// projection). Masks: query i of item b attends to keys j < n_i, with
// L = keyLens[b] (T when keyLens is null) and n_i = min(L, i+1) when causal,
// L otherwise. headKeep (null = all kept) drops heads: a dropped head does no
// work and its output columns are written as 0. A row with n_i = 0 outputs 0.
#include "common.cuh"

// ---------------------------------------------------------------------------
// Fused forward (flash style): one block of 128 threads per (query tile of
// BQ rows, head, batch item). K and V stream through shared memory in tiles
// of BK keys; each row keeps a running maximum m and denominator l (online
// softmax), so the T×T score matrix never exists.
//
// Thread t = 8·tr + tc owns query rows tr + 16·i (i < RI) and, per key tile,
// keys tc + 8·j (j < CJ) for the scores and output columns tc + 8·jd
// (jd < DMAX/8) for the accumulator. The 8 threads of a row are consecutive
// lanes, so row maxima and sums are 3 shuffles.
//
// SAVE (attn_flash_fwd_save_d*): also writes, for the flash backward, the
// row log-sum-exp lse[slot·T + i] = m + log(l) (+Inf for a row with no keys)
// and a copy of the row's output osave[(slot·T + i)·D + d], slot = b·Hk +
// headSlot[h] (headSlot null: all heads kept, slot = b·H + h).
//
// KV1 (attn_flash_fwd_d128_kv1, a tuning candidate): K and V of a key tile
// take turns in one shared buffer (V is loaded after the scores), which
// leaves room for BQ = 64 query rows at D = 128.
template <int DMAX, int RI, int CJ, bool SAVE, bool KV1 = false>
__device__ __forceinline__ void flash_fwd(const float *__restrict__ q, const float *__restrict__ k,
                                          const float *__restrict__ v, float *__restrict__ out, int T, int H,
                                          int D, int ldq, int ldk, int ldv, int ldo, float scale, int causal,
                                          const int *__restrict__ keyLens, const int *__restrict__ headKeep,
                                          float *__restrict__ lse, float *__restrict__ osave,
                                          const int *__restrict__ headSlot, int Hk) {
	constexpr int BQ = 16 * RI, BK = 8 * CJ, DJ = DMAX / 8, LD = DMAX + 1;
	__shared__ float Qs[BQ][LD];
	__shared__ float Ks[BK][LD];
	__shared__ float Vs[KV1 ? 1 : BK][LD];
	__shared__ float Ps[BQ][BK + 1];
	float(*Vt)[LD] = KV1 ? Ks : Vs;

	const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BQ;
	const int t = threadIdx.x, tr = t >> 3, tc = t & 7;
	const size_t row0 = (size_t)b * T;
	const int col0 = h * D;

	if (headKeep != nullptr && !headKeep[h]) {
		for (int idx = t; idx < BQ * D; idx += blockDim.x) {
			int r = idx / D, d = idx - r * D;
			if (q0 + r < T) out[(row0 + q0 + r) * ldo + col0 + d] = 0.f;
		}
		return;
	}
	const int L = keyLens != nullptr ? keyLens[b] : T;

	for (int idx = t; idx < BQ * DMAX; idx += blockDim.x) {
		int r = idx / DMAX, d = idx - r * DMAX, i = q0 + r;
		Qs[r][d] = (i < T && d < D) ? q[(row0 + i) * ldq + col0 + d] : 0.f;
	}

	float o[RI][DJ];
	float m[RI], l[RI];
#pragma unroll
	for (int i = 0; i < RI; i++) {
		m[i] = -MC_INF;
		l[i] = 0.f;
#pragma unroll
		for (int jd = 0; jd < DJ; jd++) o[i][jd] = 0.f;
	}

	const int kend = causal ? min(L, q0 + BQ) : L;
	for (int k0 = 0; k0 < kend; k0 += BK) {
		__syncthreads();
		for (int idx = t; idx < BK * DMAX; idx += blockDim.x) {
			int r = idx / DMAX, d = idx - r * DMAX, j = k0 + r;
			bool ok = j < kend && d < D;
			Ks[r][d] = ok ? k[(row0 + j) * ldk + col0 + d] : 0.f;
			if (!KV1) Vs[r][d] = ok ? v[(row0 + j) * ldv + col0 + d] : 0.f;
		}
		__syncthreads();

		float s[RI][CJ];
#pragma unroll
		for (int i = 0; i < RI; i++)
#pragma unroll
			for (int j = 0; j < CJ; j++) s[i][j] = 0.f;
#pragma unroll 8
		for (int d = 0; d < DMAX; d++) {
			float qv[RI], kv[CJ];
#pragma unroll
			for (int i = 0; i < RI; i++) qv[i] = Qs[tr + 16 * i][d];
#pragma unroll
			for (int j = 0; j < CJ; j++) kv[j] = Ks[tc + 8 * j][d];
#pragma unroll
			for (int i = 0; i < RI; i++)
#pragma unroll
				for (int j = 0; j < CJ; j++) s[i][j] = fmaf(qv[i], kv[j], s[i][j]);
		}

#pragma unroll
		for (int i = 0; i < RI; i++) {
			const int row = q0 + tr + 16 * i;
			float mt = -MC_INF;
#pragma unroll
			for (int j = 0; j < CJ; j++) {
				int key = k0 + tc + 8 * j;
				bool ok = key < L && (!causal || key <= row);
				s[i][j] = ok ? s[i][j] * scale : -MC_INF;
				mt = fmaxf(mt, s[i][j]);
			}
			mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 4));
			mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
			mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
			const float mnew = fmaxf(m[i], mt);
			float alpha = 1.f, rs = 0.f;
			if (mnew != -MC_INF) {
				alpha = expf(m[i] - mnew);
#pragma unroll
				for (int j = 0; j < CJ; j++) {
					s[i][j] = expf(s[i][j] - mnew);
					rs += s[i][j];
				}
			} else {
#pragma unroll
				for (int j = 0; j < CJ; j++) s[i][j] = 0.f;
			}
			rs += __shfl_xor_sync(0xffffffffu, rs, 4);
			rs += __shfl_xor_sync(0xffffffffu, rs, 2);
			rs += __shfl_xor_sync(0xffffffffu, rs, 1);
			l[i] = l[i] * alpha + rs;
			m[i] = mnew;
#pragma unroll
			for (int jd = 0; jd < DJ; jd++) o[i][jd] *= alpha;
#pragma unroll
			for (int j = 0; j < CJ; j++) Ps[tr + 16 * i][tc + 8 * j] = s[i][j];
		}
		// A row's probabilities are written and read by the same 8 lanes.
		__syncwarp();
		if (KV1) {
			// Every score is computed: V may replace K.
			__syncthreads();
			for (int idx = t; idx < BK * DMAX; idx += blockDim.x) {
				int r = idx / DMAX, d = idx - r * DMAX, j = k0 + r;
				Ks[r][d] = j < kend && d < D ? v[(row0 + j) * ldv + col0 + d] : 0.f;
			}
			__syncthreads();
		}

#pragma unroll 4
		for (int c = 0; c < BK; c++) {
			float pv[RI];
#pragma unroll
			for (int i = 0; i < RI; i++) pv[i] = Ps[tr + 16 * i][c];
#pragma unroll
			for (int jd = 0; jd < DJ; jd++) {
				float vv = Vt[c][tc + 8 * jd];
#pragma unroll
				for (int i = 0; i < RI; i++) o[i][jd] = fmaf(pv[i], vv, o[i][jd]);
			}
		}
	}

	size_t srow0 = 0;
	if (SAVE) srow0 = (size_t)(b * Hk + (headSlot != nullptr ? headSlot[h] : h)) * T;
#pragma unroll
	for (int i = 0; i < RI; i++) {
		const int row = q0 + tr + 16 * i;
		if (row >= T) continue;
		const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
#pragma unroll
		for (int jd = 0; jd < DJ; jd++) {
			int d = tc + 8 * jd;
			if (d < D) {
				const float val = l[i] > 0.f ? o[i][jd] * inv : 0.f;
				out[(row0 + row) * ldo + col0 + d] = val;
				if (SAVE) osave[(srow0 + row) * D + d] = val;
			}
		}
		if (SAVE && tc == 0) lse[srow0 + row] = l[i] > 0.f ? m[i] + logf(l[i]) : MC_INF;
	}
}

#define FLASH_ARGS                                                                                              \
	const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v,                  \
	    float *__restrict__ out, int T, int H, int D, int ldq, int ldk, int ldv, int ldo, float scale,     \
	    int causal, const int *__restrict__ keyLens, const int *__restrict__ headKeep
#define FLASH_PASS q, k, v, out, T, H, D, ldq, ldk, ldv, ldo, scale, causal, keyLens, headKeep

// ---------------------------------------------------------------------------
// flash_fwd_v4: a tuning candidate of the forward (attn_flash_fwd_v4_d64,
// unused by the Backend until a GPU run says so). The same online softmax,
// with the shared-memory reads of the inner loops vectorised: each thread
// owns RI consecutive query rows, CJ consecutive keys and DJ consecutive
// output columns, and Q and K tiles are stored transposed (d-major), so a
// step of the score loop is one float4 read of Q and one of K for RI·CJ
// FMAs (the default kernel: RI + CJ scalar reads), and the P·V loop reads
// four probabilities and DJ values per float4. RI and CJ are multiples of 4.
template <int DMAX, int RI, int CJ>
__device__ __forceinline__ void flash_fwd_v4(const float *__restrict__ q, const float *__restrict__ k,
                                             const float *__restrict__ v, float *__restrict__ out, int T, int H,
                                             int D, int ldq, int ldk, int ldv, int ldo, float scale, int causal,
                                             const int *__restrict__ keyLens, const int *__restrict__ headKeep) {
	constexpr int BQ = 16 * RI, BK = 8 * CJ, DJ = DMAX / 8;
	constexpr int LQ = BQ + 4, LK = BK + 4, LV = DMAX + 4; // multiples of 4: float4-aligned rows
	__shared__ __align__(16) float QsT[DMAX][LQ];
	__shared__ __align__(16) float KsT[DMAX][LK];
	__shared__ __align__(16) float Vs[BK][LV];
	__shared__ __align__(16) float Ps[BQ][LK];

	const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BQ;
	const int t = threadIdx.x, tr = t >> 3, tc = t & 7;
	const int r0 = RI * tr, c0 = CJ * tc, d0 = DJ * tc;
	const size_t row0 = (size_t)b * T;
	const int col0 = h * D;

	if (headKeep != nullptr && !headKeep[h]) {
		for (int idx = t; idx < BQ * D; idx += blockDim.x) {
			int r = idx / D, d = idx - r * D;
			if (q0 + r < T) out[(row0 + q0 + r) * ldo + col0 + d] = 0.f;
		}
		return;
	}
	const int L = keyLens != nullptr ? keyLens[b] : T;

	for (int idx = t; idx < BQ * DMAX; idx += blockDim.x) {
		int r = idx / DMAX, d = idx - r * DMAX, i = q0 + r;
		QsT[d][r] = (i < T && d < D) ? q[(row0 + i) * ldq + col0 + d] : 0.f;
	}

	float o[RI][DJ];
	float m[RI], l[RI];
#pragma unroll
	for (int i = 0; i < RI; i++) {
		m[i] = -MC_INF;
		l[i] = 0.f;
#pragma unroll
		for (int jd = 0; jd < DJ; jd++) o[i][jd] = 0.f;
	}

	const int kend = causal ? min(L, q0 + BQ) : L;
	for (int k0 = 0; k0 < kend; k0 += BK) {
		__syncthreads();
		for (int idx = t; idx < BK * DMAX; idx += blockDim.x) {
			int r = idx / DMAX, d = idx - r * DMAX, j = k0 + r;
			bool ok = j < kend && d < D;
			KsT[d][r] = ok ? k[(row0 + j) * ldk + col0 + d] : 0.f;
			Vs[r][d] = ok ? v[(row0 + j) * ldv + col0 + d] : 0.f;
		}
		__syncthreads();

		float s[RI][CJ];
#pragma unroll
		for (int i = 0; i < RI; i++)
#pragma unroll
			for (int j = 0; j < CJ; j++) s[i][j] = 0.f;
#pragma unroll 4
		for (int d = 0; d < DMAX; d++) {
			float qv[RI], kv[CJ];
#pragma unroll
			for (int u = 0; u < RI; u += 4) {
				const float4 x = *reinterpret_cast<const float4 *>(&QsT[d][r0 + u]);
				qv[u] = x.x, qv[u + 1] = x.y, qv[u + 2] = x.z, qv[u + 3] = x.w;
			}
#pragma unroll
			for (int u = 0; u < CJ; u += 4) {
				const float4 x = *reinterpret_cast<const float4 *>(&KsT[d][c0 + u]);
				kv[u] = x.x, kv[u + 1] = x.y, kv[u + 2] = x.z, kv[u + 3] = x.w;
			}
#pragma unroll
			for (int i = 0; i < RI; i++)
#pragma unroll
				for (int j = 0; j < CJ; j++) s[i][j] = fmaf(qv[i], kv[j], s[i][j]);
		}

#pragma unroll
		for (int i = 0; i < RI; i++) {
			const int row = q0 + r0 + i;
			float mt = -MC_INF;
#pragma unroll
			for (int j = 0; j < CJ; j++) {
				int key = k0 + c0 + j;
				bool ok = key < L && (!causal || key <= row);
				s[i][j] = ok ? s[i][j] * scale : -MC_INF;
				mt = fmaxf(mt, s[i][j]);
			}
			mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 4));
			mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
			mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
			const float mnew = fmaxf(m[i], mt);
			float alpha = 1.f, rs = 0.f;
			if (mnew != -MC_INF) {
				alpha = expf(m[i] - mnew);
#pragma unroll
				for (int j = 0; j < CJ; j++) {
					s[i][j] = expf(s[i][j] - mnew);
					rs += s[i][j];
				}
			} else {
#pragma unroll
				for (int j = 0; j < CJ; j++) s[i][j] = 0.f;
			}
			rs += __shfl_xor_sync(0xffffffffu, rs, 4);
			rs += __shfl_xor_sync(0xffffffffu, rs, 2);
			rs += __shfl_xor_sync(0xffffffffu, rs, 1);
			l[i] = l[i] * alpha + rs;
			m[i] = mnew;
#pragma unroll
			for (int jd = 0; jd < DJ; jd++) o[i][jd] *= alpha;
#pragma unroll
			for (int u = 0; u < CJ; u += 4)
				*reinterpret_cast<float4 *>(&Ps[r0 + i][c0 + u]) = float4{s[i][u], s[i][u + 1], s[i][u + 2], s[i][u + 3]};
		}
		// A row's probabilities are written and read by the same 8 lanes.
		__syncwarp();

#pragma unroll 2
		for (int c = 0; c < BK; c += 4) {
			float pv[RI][4];
#pragma unroll
			for (int i = 0; i < RI; i++) {
				const float4 x = *reinterpret_cast<const float4 *>(&Ps[r0 + i][c]);
				pv[i][0] = x.x, pv[i][1] = x.y, pv[i][2] = x.z, pv[i][3] = x.w;
			}
#pragma unroll
			for (int cc = 0; cc < 4; cc++)
#pragma unroll
				for (int u = 0; u < DJ; u += 4) {
					const float4 x = *reinterpret_cast<const float4 *>(&Vs[c + cc][d0 + u]);
#pragma unroll
					for (int i = 0; i < RI; i++) {
						o[i][u] = fmaf(pv[i][cc], x.x, o[i][u]);
						o[i][u + 1] = fmaf(pv[i][cc], x.y, o[i][u + 1]);
						o[i][u + 2] = fmaf(pv[i][cc], x.z, o[i][u + 2]);
						o[i][u + 3] = fmaf(pv[i][cc], x.w, o[i][u + 3]);
					}
				}
		}
	}

#pragma unroll
	for (int i = 0; i < RI; i++) {
		const int row = q0 + r0 + i;
		if (row >= T) continue;
		const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
#pragma unroll
		for (int jd = 0; jd < DJ; jd++) {
			int d = d0 + jd;
			if (d < D) out[(row0 + row) * ldo + col0 + d] = l[i] > 0.f ? o[i][jd] * inv : 0.f;
		}
	}
}

#define FLASH_NOSAVE nullptr, nullptr, nullptr, 0
#define FLASH_SAVE_ARGS FLASH_ARGS, float *__restrict__ lse, float *__restrict__ osave, const int *__restrict__ headSlot, int Hk
#define FLASH_SAVE_PASS FLASH_PASS, lse, osave, headSlot, Hk

// Instantiations: pick the smallest DMAX >= D (BQ = 16·RI query rows per block).
extern "C" __global__ void __launch_bounds__(128) attn_flash_fwd_d16(FLASH_ARGS) { flash_fwd<16, 4, 4, false>(FLASH_PASS, FLASH_NOSAVE); }
extern "C" __global__ void __launch_bounds__(128) attn_flash_fwd_d32(FLASH_ARGS) { flash_fwd<32, 4, 4, false>(FLASH_PASS, FLASH_NOSAVE); }
extern "C" __global__ void __launch_bounds__(128) attn_flash_fwd_d64(FLASH_ARGS) { flash_fwd<64, 4, 4, false>(FLASH_PASS, FLASH_NOSAVE); }
extern "C" __global__ void __launch_bounds__(128) attn_flash_fwd_d128(FLASH_ARGS) { flash_fwd<128, 2, 2, false>(FLASH_PASS, FLASH_NOSAVE); }
// Tuning candidate for D <= 64 (64×32 tiles, vectorised shared-memory reads).
extern "C" __global__ void __launch_bounds__(128) attn_flash_fwd_v4_d64(FLASH_ARGS) { flash_fwd_v4<64, 4, 4>(FLASH_PASS); }
// Tuning candidate for D = 128 (64×16 tiles, K and V sharing a buffer);
// benchmarked next to attn_flash_fwd_d128, not used by the Backend.
extern "C" __global__ void __launch_bounds__(128) attn_flash_fwd_d128_kv1(FLASH_ARGS) { flash_fwd<128, 4, 2, false, true>(FLASH_PASS, FLASH_NOSAVE); }
// The training forward: the same, plus the statistics of the flash backward.
extern "C" __global__ void __launch_bounds__(128) attn_flash_fwd_save_d16(FLASH_SAVE_ARGS) { flash_fwd<16, 4, 4, true>(FLASH_SAVE_PASS); }
extern "C" __global__ void __launch_bounds__(128) attn_flash_fwd_save_d32(FLASH_SAVE_ARGS) { flash_fwd<32, 4, 4, true>(FLASH_SAVE_PASS); }
extern "C" __global__ void __launch_bounds__(128) attn_flash_fwd_save_d64(FLASH_SAVE_ARGS) { flash_fwd<64, 4, 4, true>(FLASH_SAVE_PASS); }
extern "C" __global__ void __launch_bounds__(128) attn_flash_fwd_save_d128(FLASH_SAVE_ARGS) { flash_fwd<128, 2, 2, true>(FLASH_SAVE_PASS); }

// ---------------------------------------------------------------------------
// Materialising path: the probabilities P (one T×T block per (item, kept
// head), slot = b·Hk + kh, kh the rank of the head among the kept ones, row
// stride T, zeros beyond n_i) exist in memory, as the CPU backend keeps them
// for the backward pass. Also the naive baseline of the benchmarks.

// attn_probs: grid (T, B·Hk), block 128, dynamic shared memory D floats.
// keptHeads lists the Hk kept heads.
extern "C" __global__ void __launch_bounds__(128)
    attn_probs(const float *__restrict__ q, const float *__restrict__ k, float *__restrict__ P, int T, int D,
               int ldq, int ldk, float scale, int causal, const int *__restrict__ keyLens,
               const int *__restrict__ keptHeads, int Hk) {
	MC_DYN_SHARED(float, qs);
	__shared__ float red[32];
	__shared__ double redd[32];
	const int i = blockIdx.x, slot = blockIdx.y, b = slot / Hk, h = keptHeads[slot - b * Hk];
	const int L = keyLens != nullptr ? keyLens[b] : T;
	const int n = causal ? min(L, i + 1) : L;
	const size_t row0 = (size_t)b * T;
	float *p = P + ((size_t)slot * T + i) * T;
	for (int d = threadIdx.x; d < D; d += blockDim.x) qs[d] = q[(row0 + i) * ldq + h * D + d];
	__syncthreads();
	float mx = -MC_INF;
	for (int j = threadIdx.x; j < n; j += blockDim.x) {
		const float *kr = k + (row0 + j) * ldk + h * D;
		float s = 0.f;
		for (int d = 0; d < D; d++) s = fmaf(qs[d], kr[d], s);
		s *= scale;
		p[j] = s;
		mx = fmaxf(mx, s);
	}
	mx = block_max(mx, red);
	double sum = 0.0;
	for (int j = threadIdx.x; j < n; j += blockDim.x) {
		float e = expf(p[j] - mx);
		p[j] = e;
		sum += e;
	}
	sum = block_sum_d(sum, redd);
	const float inv = (float)(1.0 / sum);
	for (int j = threadIdx.x; j < T; j += blockDim.x) p[j] = j < n ? p[j] * inv : 0.f;
}

// attn_pv: out = P·V per kept head, 0 for dropped heads and empty rows.
// grid (ceil(T·D/128), B·H), block 128; headSlot[h] is kh or -1 (null: all
// kept, kh = h, Hk = H).
extern "C" __global__ void __launch_bounds__(128)
    attn_pv(const float *__restrict__ P, const float *__restrict__ v, float *__restrict__ out, int T, int H,
            int D, int ldv, int ldo, const int *__restrict__ headSlot, int Hk) {
	const int bh = blockIdx.y, b = bh / H, h = bh - b * H;
	const int idx = blockIdx.x * blockDim.x + threadIdx.x;
	if (idx >= T * D) return;
	const int i = idx / D, d = idx - i * D;
	const size_t row0 = (size_t)b * T;
	const int kh = headSlot != nullptr ? headSlot[h] : h;
	float acc = 0.f;
	if (kh >= 0) {
		const float *p = P + ((size_t)(b * Hk + kh) * T + i) * T;
		const float *vc = v + row0 * ldv + h * D + d;
		for (int j = 0; j < T; j++) acc = fmaf(p[j], vc[(size_t)j * ldv], acc);
	}
	out[(row0 + i) * ldo + h * D + d] = acc;
}

// ---------------------------------------------------------------------------
// Backward from the saved P (ops.AttentionBackward semantics). A gradient
// with beta 0 is written (its old contents ignored), with beta 1 added to.
// Rows of dK and dV at masked key positions (>= L) and every row of a dropped
// head get no gradient: written as 0 when beta is 0, left alone otherwise.

__device__ __forceinline__ void store_grad(float *g, float beta, float val) {
	*g = beta == 0.f ? val : fmaf(beta, *g, val);
}

// attn_bwd_dv: dV[j] = Σ_i P_ij dO_i for j < L. grid (ceil(T·D/128), B·H).
extern "C" __global__ void __launch_bounds__(128)
    attn_bwd_dv(const float *__restrict__ P, const float *__restrict__ dO, float *dv, int T, int H, int D,
                int ldo, int ldv, const int *__restrict__ keyLens, const int *__restrict__ headSlot, int Hk,
                float beta) {
	const int bh = blockIdx.y, b = bh / H, h = bh - b * H;
	const int idx = blockIdx.x * blockDim.x + threadIdx.x;
	if (idx >= T * D) return;
	const int j = idx / D, d = idx - j * D;
	const size_t row0 = (size_t)b * T;
	const int kh = headSlot != nullptr ? headSlot[h] : h;
	const int L = kh < 0 ? 0 : (keyLens != nullptr ? keyLens[b] : T);
	float *g = dv + (row0 + j) * ldv + h * D + d;
	if (j >= L) {
		if (beta == 0.f) *g = 0.f;
		return;
	}
	const float *p = P + (size_t)(b * Hk + kh) * T * T + j;
	const float *go = dO + row0 * ldo + h * D + d;
	float acc = 0.f;
	for (int i = 0; i < T; i++) acc = fmaf(p[(size_t)i * T], go[(size_t)i * ldo], acc);
	store_grad(g, beta, acc);
}

// attn_bwd_ds: dS_ij = P_ij·(dP_ij − Σ_j' P_ij'·dP_ij'), dP_ij = dO_i·V_j,
// for j < n_i, 0 for n_i <= j < T. grid (T, B·Hk), block 128, dynamic
// shared memory D floats.
extern "C" __global__ void __launch_bounds__(128)
    attn_bwd_ds(const float *__restrict__ P, const float *__restrict__ dO, const float *__restrict__ v,
                float *__restrict__ dS, int T, int D, int ldo, int ldv, int causal,
                const int *__restrict__ keyLens, const int *__restrict__ keptHeads, int Hk) {
	MC_DYN_SHARED(float, gs);
	__shared__ double redd[32];
	const int i = blockIdx.x, slot = blockIdx.y, b = slot / Hk, h = keptHeads[slot - b * Hk];
	const int L = keyLens != nullptr ? keyLens[b] : T;
	const int n = causal ? min(L, i + 1) : L;
	const size_t row0 = (size_t)b * T;
	const float *p = P + ((size_t)slot * T + i) * T;
	float *ds = dS + ((size_t)slot * T + i) * T;
	for (int d = threadIdx.x; d < D; d += blockDim.x) gs[d] = dO[(row0 + i) * ldo + h * D + d];
	__syncthreads();
	double dot = 0.0;
	for (int j = threadIdx.x; j < n; j += blockDim.x) {
		const float *vr = v + (row0 + j) * ldv + h * D;
		float s = 0.f;
		for (int d = 0; d < D; d++) s = fmaf(gs[d], vr[d], s);
		ds[j] = s;
		dot += (double)p[j] * (double)s;
	}
	dot = block_sum_d(dot, redd);
	for (int j = threadIdx.x; j < T; j += blockDim.x)
		ds[j] = j < n ? (float)((double)p[j] * ((double)ds[j] - dot)) : 0.f;
}

// attn_bwd_dq: dQ_i = scale·Σ_{j<L} dS_ij K_j. grid (ceil(T·D/128), B·H).
extern "C" __global__ void __launch_bounds__(128)
    attn_bwd_dq(const float *__restrict__ dS, const float *__restrict__ k, float *dq, int T, int H, int D,
                int ldk, int ldq, float scale, const int *__restrict__ keyLens, const int *__restrict__ headSlot,
                int Hk, float beta) {
	const int bh = blockIdx.y, b = bh / H, h = bh - b * H;
	const int idx = blockIdx.x * blockDim.x + threadIdx.x;
	if (idx >= T * D) return;
	const int i = idx / D, d = idx - i * D;
	const size_t row0 = (size_t)b * T;
	const int kh = headSlot != nullptr ? headSlot[h] : h;
	const int L = kh < 0 ? 0 : (keyLens != nullptr ? keyLens[b] : T);
	float *g = dq + (row0 + i) * ldq + h * D + d;
	if (L == 0) {
		if (beta == 0.f) *g = 0.f;
		return;
	}
	const float *s = dS + ((size_t)(b * Hk + kh) * T + i) * T;
	const float *kc = k + row0 * ldk + h * D + d;
	float acc = 0.f;
	for (int j = 0; j < L; j++) acc = fmaf(s[j], kc[(size_t)j * ldk], acc);
	store_grad(g, beta, scale * acc);
}

// attn_bwd_dk: dK_j = scale·Σ_i dS_ij Q_i for j < L. grid (ceil(T·D/128), B·H).
extern "C" __global__ void __launch_bounds__(128)
    attn_bwd_dk(const float *__restrict__ dS, const float *__restrict__ q, float *dk, int T, int H, int D,
                int ldq, int ldk, float scale, const int *__restrict__ keyLens, const int *__restrict__ headSlot,
                int Hk, float beta) {
	const int bh = blockIdx.y, b = bh / H, h = bh - b * H;
	const int idx = blockIdx.x * blockDim.x + threadIdx.x;
	if (idx >= T * D) return;
	const int j = idx / D, d = idx - j * D;
	const size_t row0 = (size_t)b * T;
	const int kh = headSlot != nullptr ? headSlot[h] : h;
	const int L = kh < 0 ? 0 : (keyLens != nullptr ? keyLens[b] : T);
	float *g = dk + (row0 + j) * ldk + h * D + d;
	if (j >= L) {
		if (beta == 0.f) *g = 0.f;
		return;
	}
	const float *s = dS + (size_t)(b * Hk + kh) * T * T + j;
	const float *qc = q + row0 * ldq + h * D + d;
	float acc = 0.f;
	for (int i = 0; i < T; i++) acc = fmaf(s[(size_t)i * T], qc[(size_t)i * ldq], acc);
	store_grad(g, beta, scale * acc);
}

// ---------------------------------------------------------------------------
// Flash backward: from the forward's row log-sum-exps (lse) and saved output
// rows (osave, see flash_fwd's SAVE), never materialising P. Per (item, kept
// head), with P_ij = exp(scale·q_i·k_j − lse_i) on the unmasked pairs:
//
//	Δ_i  = Σ_d dO_id·O_id                        (attn_flash_bwd_dq, into delta)
//	dS_ij = P_ij·(dO_i·v_j − Δ_i)
//	dQ_i = scale·Σ_j dS_ij·k_j                   (attn_flash_bwd_dq: one block per query tile)
//	dV_j = Σ_i P_ij·dO_i, dK_j = scale·Σ_i dS_ij·q_i   (attn_flash_bwd_dkdv: one block per key tile)
//
// Every output element is summed by one thread in a fixed order: no
// atomics, the same result on every run. attn_flash_bwd_dq runs first (dq
// may be null: it then only writes delta), attn_flash_bwd_dkdv second. Both
// grids are (ceil(T / (16·RI)), H, B), block 128. Gradients have the row
// strides of their inputs (dq: ldq, dk: ldk, dv: ldv); dO has lddo. The
// beta and masking rules are those of the materialising backward above: a
// dropped head, an item with L = 0 and key rows j >= L get no gradient
// (0 when beta is 0, untouched otherwise).

#define FLASH_BWD_ARGS                                                                                           \
	const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v,                   \
	    const float *__restrict__ dO, const float *__restrict__ lse, const float *__restrict__ osave,       \
	    float *__restrict__ delta, float *dq, float *dk, float *dv, int T, int H, int D, int ldq, int ldk, \
	    int ldv, int lddo, float scale, int causal, const int *__restrict__ keyLens,                        \
	    const int *__restrict__ headSlot, int Hk, float betaQ, float betaK, float betaV
#define FLASH_BWD_PASS                                                                                         \
	q, k, v, dO, lse, osave, delta, dq, dk, dv, T, H, D, ldq, ldk, ldv, lddo, scale, causal, keyLens, headSlot, \
	    Hk, betaQ, betaK, betaV

// zero_rows writes 0 to rows [r0, r1) ∩ [0, T) × D columns at col0 of g
// (rows ld apart) when beta is 0.
__device__ __forceinline__ void zero_rows(float *g, float beta, size_t row0, int r0, int r1, int T, int D, int ld,
                                          int col0) {
	if (g == nullptr || beta != 0.f) return;
	r1 = min(r1, T);
	for (int idx = threadIdx.x; idx < (r1 - r0) * D; idx += blockDim.x) {
		int r = idx / D, d = idx - r * D;
		g[(row0 + r0 + r) * ld + col0 + d] = 0.f;
	}
}

// Thread t = 8·tr + tc owns query rows tr + 16·i (i < RI) of the block's
// tile and, per key tile, keys tc + 8·j (j < CJ); dQ columns tc + 8·jd.
template <int DMAX, int RI, int CJ>
__device__ __forceinline__ void flash_bwd_dq(FLASH_BWD_ARGS) {
	constexpr int BQ = 16 * RI, BK = 8 * CJ, DJ = DMAX / 8, LD = DMAX + 1;
	__shared__ float Qs[BQ][LD];
	__shared__ float Gs[BQ][LD]; // dO
	__shared__ float Ks[BK][LD];
	__shared__ float Vs[BK][LD];
	__shared__ float Ss[BQ][BK + 1]; // dS
	__shared__ float lses[BQ], dels[BQ];

	const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BQ;
	const int t = threadIdx.x, tr = t >> 3, tc = t & 7;
	const size_t row0 = (size_t)b * T;
	const int col0 = h * D;
	const int kh = headSlot != nullptr ? headSlot[h] : h;
	const int L = kh < 0 ? 0 : (keyLens != nullptr ? keyLens[b] : T);
	if (L == 0) {
		zero_rows(dq, betaQ, row0, q0, q0 + BQ, T, D, ldq, col0);
		return;
	}
	const size_t srow0 = (size_t)(b * Hk + kh) * T;

	for (int idx = t; idx < BQ * DMAX; idx += blockDim.x) {
		int r = idx / DMAX, d = idx - r * DMAX, i = q0 + r;
		bool ok = i < T && d < D;
		Qs[r][d] = ok ? q[(row0 + i) * ldq + col0 + d] : 0.f;
		Gs[r][d] = ok ? dO[(row0 + i) * lddo + col0 + d] : 0.f;
	}
	__syncthreads();
	// Δ for the tile's rows: the 8 lanes of a row split the columns.
#pragma unroll
	for (int i = 0; i < RI; i++) {
		const int r = tr + 16 * i, row = q0 + r;
		double s = 0.0;
		if (row < T)
#pragma unroll
			for (int jd = 0; jd < DJ; jd++) {
				int d = tc + 8 * jd;
				if (d < D) s += (double)Gs[r][d] * (double)osave[(srow0 + row) * D + d];
			}
		s += __shfl_xor_sync(0xffffffffu, s, 4);
		s += __shfl_xor_sync(0xffffffffu, s, 2);
		s += __shfl_xor_sync(0xffffffffu, s, 1);
		if (tc == 0) {
			dels[r] = (float)s;
			lses[r] = row < T ? lse[srow0 + row] : 0.f;
			if (row < T) delta[srow0 + row] = (float)s;
		}
	}
	if (dq == nullptr) return;
	__syncthreads();

	float acc[RI][DJ];
#pragma unroll
	for (int i = 0; i < RI; i++)
#pragma unroll
		for (int jd = 0; jd < DJ; jd++) acc[i][jd] = 0.f;

	const int kend = causal ? min(L, q0 + BQ) : L;
	for (int k0 = 0; k0 < kend; k0 += BK) {
		__syncthreads();
		for (int idx = t; idx < BK * DMAX; idx += blockDim.x) {
			int r = idx / DMAX, d = idx - r * DMAX, j = k0 + r;
			bool ok = j < kend && d < D;
			Ks[r][d] = ok ? k[(row0 + j) * ldk + col0 + d] : 0.f;
			Vs[r][d] = ok ? v[(row0 + j) * ldv + col0 + d] : 0.f;
		}
		__syncthreads();

		float s[RI][CJ], dp[RI][CJ];
#pragma unroll
		for (int i = 0; i < RI; i++)
#pragma unroll
			for (int j = 0; j < CJ; j++) s[i][j] = dp[i][j] = 0.f;
#pragma unroll 4
		for (int d = 0; d < DMAX; d++) {
			float qv[RI], gv[RI], kv[CJ], vv[CJ];
#pragma unroll
			for (int i = 0; i < RI; i++) {
				qv[i] = Qs[tr + 16 * i][d];
				gv[i] = Gs[tr + 16 * i][d];
			}
#pragma unroll
			for (int j = 0; j < CJ; j++) {
				kv[j] = Ks[tc + 8 * j][d];
				vv[j] = Vs[tc + 8 * j][d];
			}
#pragma unroll
			for (int i = 0; i < RI; i++)
#pragma unroll
				for (int j = 0; j < CJ; j++) {
					s[i][j] = fmaf(qv[i], kv[j], s[i][j]);
					dp[i][j] = fmaf(gv[i], vv[j], dp[i][j]);
				}
		}
#pragma unroll
		for (int i = 0; i < RI; i++) {
			const int r = tr + 16 * i, row = q0 + r;
#pragma unroll
			for (int j = 0; j < CJ; j++) {
				const int key = k0 + tc + 8 * j;
				const bool ok = row < T && key < L && (!causal || key <= row);
				const float p = ok ? expf(s[i][j] * scale - lses[r]) : 0.f;
				Ss[r][tc + 8 * j] = p * (dp[i][j] - dels[r]);
			}
		}
		// A row's dS is written and read by the same 8 lanes.
		__syncwarp();
#pragma unroll 4
		for (int c = 0; c < BK; c++) {
			float sv[RI];
#pragma unroll
			for (int i = 0; i < RI; i++) sv[i] = Ss[tr + 16 * i][c];
#pragma unroll
			for (int jd = 0; jd < DJ; jd++) {
				float kk = Ks[c][tc + 8 * jd];
#pragma unroll
				for (int i = 0; i < RI; i++) acc[i][jd] = fmaf(sv[i], kk, acc[i][jd]);
			}
		}
	}

#pragma unroll
	for (int i = 0; i < RI; i++) {
		const int row = q0 + tr + 16 * i;
		if (row >= T) continue;
#pragma unroll
		for (int jd = 0; jd < DJ; jd++) {
			int d = tc + 8 * jd;
			if (d < D) store_grad(dq + (row0 + row) * ldq + col0 + d, betaQ, scale * acc[i][jd]);
		}
	}
}

// Thread t = 8·tr + tc owns key rows tr + 16·i (i < RI) of the block's tile
// (dK, dV columns tc + 8·jd) and, per query tile, queries tc + 8·j.
template <int DMAX, int RI, int CJ>
__device__ __forceinline__ void flash_bwd_dkdv(FLASH_BWD_ARGS) {
	constexpr int BK = 16 * RI, BQ = 8 * CJ, DJ = DMAX / 8, LD = DMAX + 1;
	__shared__ float Ks[BK][LD];
	__shared__ float Vs[BK][LD];
	__shared__ float Qs[BQ][LD];
	__shared__ float Gs[BQ][LD]; // dO
	__shared__ float Ps[BK][BQ + 1];
	__shared__ float Ss[BK][BQ + 1]; // dS
	__shared__ float lses[BQ], dels[BQ];

	const int b = blockIdx.z, h = blockIdx.y, k0 = blockIdx.x * BK;
	const int t = threadIdx.x, tr = t >> 3, tc = t & 7;
	const size_t row0 = (size_t)b * T;
	const int col0 = h * D;
	const int kh = headSlot != nullptr ? headSlot[h] : h;
	const int L = kh < 0 ? 0 : (keyLens != nullptr ? keyLens[b] : T);
	// Key rows at or past L get no gradient.
	zero_rows(dk, betaK, row0, max(k0, L), k0 + BK, T, D, ldk, col0);
	zero_rows(dv, betaV, row0, max(k0, L), k0 + BK, T, D, ldv, col0);
	if (k0 >= L) return;
	const size_t srow0 = (size_t)(b * Hk + kh) * T;

	for (int idx = t; idx < BK * DMAX; idx += blockDim.x) {
		int r = idx / DMAX, d = idx - r * DMAX, j = k0 + r;
		bool ok = j < L && d < D;
		Ks[r][d] = ok ? k[(row0 + j) * ldk + col0 + d] : 0.f;
		Vs[r][d] = ok ? v[(row0 + j) * ldv + col0 + d] : 0.f;
	}

	float ak[RI][DJ], av[RI][DJ];
#pragma unroll
	for (int i = 0; i < RI; i++)
#pragma unroll
		for (int jd = 0; jd < DJ; jd++) ak[i][jd] = av[i][jd] = 0.f;

	// Under the causal mask only queries i >= k0 see the tile's keys.
	for (int i0 = causal ? k0 / BQ * BQ : 0; i0 < T; i0 += BQ) {
		__syncthreads();
		for (int idx = t; idx < BQ * DMAX; idx += blockDim.x) {
			int r = idx / DMAX, d = idx - r * DMAX, i = i0 + r;
			bool ok = i < T && d < D;
			Qs[r][d] = ok ? q[(row0 + i) * ldq + col0 + d] : 0.f;
			Gs[r][d] = ok ? dO[(row0 + i) * lddo + col0 + d] : 0.f;
		}
		for (int r = t; r < BQ; r += blockDim.x) {
			bool ok = i0 + r < T;
			lses[r] = ok ? lse[srow0 + i0 + r] : 0.f;
			dels[r] = ok ? delta[srow0 + i0 + r] : 0.f;
		}
		__syncthreads();

		float s[RI][CJ], dp[RI][CJ];
#pragma unroll
		for (int i = 0; i < RI; i++)
#pragma unroll
			for (int j = 0; j < CJ; j++) s[i][j] = dp[i][j] = 0.f;
#pragma unroll 4
		for (int d = 0; d < DMAX; d++) {
			float kv[RI], vv[RI], qv[CJ], gv[CJ];
#pragma unroll
			for (int i = 0; i < RI; i++) {
				kv[i] = Ks[tr + 16 * i][d];
				vv[i] = Vs[tr + 16 * i][d];
			}
#pragma unroll
			for (int j = 0; j < CJ; j++) {
				qv[j] = Qs[tc + 8 * j][d];
				gv[j] = Gs[tc + 8 * j][d];
			}
#pragma unroll
			for (int i = 0; i < RI; i++)
#pragma unroll
				for (int j = 0; j < CJ; j++) {
					s[i][j] = fmaf(kv[i], qv[j], s[i][j]);
					dp[i][j] = fmaf(vv[i], gv[j], dp[i][j]);
				}
		}
#pragma unroll
		for (int i = 0; i < RI; i++) {
			const int r = tr + 16 * i, key = k0 + r;
#pragma unroll
			for (int j = 0; j < CJ; j++) {
				const int c = tc + 8 * j, qi = i0 + c;
				const bool ok = qi < T && key < L && (!causal || key <= qi);
				const float p = ok ? expf(s[i][j] * scale - lses[c]) : 0.f;
				Ps[r][c] = p;
				Ss[r][c] = p * (dp[i][j] - dels[c]);
			}
		}
		// A key row's P and dS are written and read by the same 8 lanes.
		__syncwarp();
#pragma unroll 4
		for (int c = 0; c < BQ; c++) {
			float pv[RI], sv[RI];
#pragma unroll
			for (int i = 0; i < RI; i++) {
				pv[i] = Ps[tr + 16 * i][c];
				sv[i] = Ss[tr + 16 * i][c];
			}
#pragma unroll
			for (int jd = 0; jd < DJ; jd++) {
				const float gg = Gs[c][tc + 8 * jd], qq = Qs[c][tc + 8 * jd];
#pragma unroll
				for (int i = 0; i < RI; i++) {
					av[i][jd] = fmaf(pv[i], gg, av[i][jd]);
					ak[i][jd] = fmaf(sv[i], qq, ak[i][jd]);
				}
			}
		}
	}

#pragma unroll
	for (int i = 0; i < RI; i++) {
		const int key = k0 + tr + 16 * i;
		if (key >= L) continue;
#pragma unroll
		for (int jd = 0; jd < DJ; jd++) {
			int d = tc + 8 * jd;
			if (d >= D) continue;
			if (dv != nullptr) store_grad(dv + (row0 + key) * ldv + col0 + d, betaV, av[i][jd]);
			if (dk != nullptr) store_grad(dk + (row0 + key) * ldk + col0 + d, betaK, scale * ak[i][jd]);
		}
	}
}

// Instantiations (tiles of 16·RI rows: 64 for D <= 32, 32 for D = 64, 16 for
// D = 128, keeping the static shared memory under 48 KB).
extern "C" __global__ void __launch_bounds__(128) attn_flash_bwd_dq_d16(FLASH_BWD_ARGS) { flash_bwd_dq<16, 4, 4>(FLASH_BWD_PASS); }
extern "C" __global__ void __launch_bounds__(128) attn_flash_bwd_dq_d32(FLASH_BWD_ARGS) { flash_bwd_dq<32, 4, 4>(FLASH_BWD_PASS); }
extern "C" __global__ void __launch_bounds__(128) attn_flash_bwd_dq_d64(FLASH_BWD_ARGS) { flash_bwd_dq<64, 2, 4>(FLASH_BWD_PASS); }
extern "C" __global__ void __launch_bounds__(128) attn_flash_bwd_dq_d128(FLASH_BWD_ARGS) { flash_bwd_dq<128, 1, 2>(FLASH_BWD_PASS); }
extern "C" __global__ void __launch_bounds__(128) attn_flash_bwd_dkdv_d16(FLASH_BWD_ARGS) { flash_bwd_dkdv<16, 4, 4>(FLASH_BWD_PASS); }
extern "C" __global__ void __launch_bounds__(128) attn_flash_bwd_dkdv_d32(FLASH_BWD_ARGS) { flash_bwd_dkdv<32, 4, 4>(FLASH_BWD_PASS); }
extern "C" __global__ void __launch_bounds__(128) attn_flash_bwd_dkdv_d64(FLASH_BWD_ARGS) { flash_bwd_dkdv<64, 2, 4>(FLASH_BWD_PASS); }
extern "C" __global__ void __launch_bounds__(128) attn_flash_bwd_dkdv_d128(FLASH_BWD_ARGS) { flash_bwd_dkdv<128, 1, 2>(FLASH_BWD_PASS); }
