// Row scatter kernels (the backward pass of row gathers: embeddings).
#include "common.cuh"

// scatter_add_rows: for every target t < U, row targets[t] of dst (rows of n)
// gets the rows rows[offsets[t]], ..., rows[offsets[t+1]-1] of src added in
// that order: dst[targets[t]·n + j] += src[rows[k]·n + j]. The host builds
// the table from the gather indices (rows ascending per target, targets
// distinct), so every output element is owned by one thread and summed in
// the order of the CPU backend's row-by-row Adds: bit-identical, no atomics.
extern "C" __global__ void scatter_add_rows(float *__restrict__ dst, const float *__restrict__ src, int n,
                                            const int *__restrict__ targets, const int *__restrict__ offsets,
                                            const int *__restrict__ rows, int U) {
	const long long total = (long long)U * n;
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
	     i += (long long)gridDim.x * blockDim.x) {
		int t = (int)(i / n), j = (int)(i - (long long)t * n);
		float *d = dst + (size_t)targets[t] * n + j;
		float acc = *d;
		for (int k = offsets[t]; k < offsets[t + 1]; k++) {
			acc = acc + src[(size_t)rows[k] * n + j];
		}
		*d = acc;
	}
}
