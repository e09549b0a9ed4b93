// sgemm_bench times OpenBLAS's cblas_sgemm on the GEMM shapes of
// bench/README.md, as tensor's BenchmarkSgemm does: GFLOP/s of wall time and
// cpuGFLOP/s of process CPU time (2·m·n·k per call), median of ROUNDS rounds
// of at least 0.2 s each.
//
//   gcc -O2 -o /tmp/sgemm_bench bench/openblas/sgemm_bench.c -lopenblas
//   OPENBLAS_CORETYPE=SkylakeX /tmp/sgemm_bench [THREADS=1] [ROUNDS=5]
//
// Needs Debian's libopenblas-pthread-dev (not built by the Go module).
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);

static double now(clockid_t c) {
	struct timespec t;
	clock_gettime(c, &t);
	return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv) {
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	openblas_set_num_threads(threads);
	// name, M, K, N, B transposed (A·Bᵀ with B stored [N,K], like Linear weights)
	struct { const char *name; int m, k, n, tb; } sh[] = {
		{"sq_m512k512n512", 512, 512, 512, 0},
		{"sq_m1024k1024n1024", 1024, 1024, 1024, 0},
		{"fwd_m400k768n768", 400, 768, 768, 1},
		{"fwd_m400k768n3072", 400, 768, 3072, 1},
		{"fwd_m400k3072n768", 400, 3072, 768, 1},
		{"fwd_m50k768n3072", 50, 768, 3072, 1},
		{"fwd_m50k3072n768", 50, 3072, 768, 1},
		{"fwd_m77k512n2048", 77, 512, 2048, 1},
	};
	printf("# OpenBLAS core %s, %d thread(s), median of %d rounds\n", openblas_get_corename(), threads, rounds);
	for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
		int m = sh[s].m, k = sh[s].k, n = sh[s].n;
		float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *c = malloc(sizeof(float) * m * n);
		for (int i = 0; i < m * k; i++) a[i] = (float)rand() / RAND_MAX - 0.5f;
		for (int i = 0; i < k * n; i++) b[i] = (float)rand() / RAND_MAX - 0.5f;
		double flop = 2.0 * m * n * k, wall[64], cpu[64];
		cblas_sgemm(CblasRowMajor, CblasNoTrans, sh[s].tb ? CblasTrans : CblasNoTrans, m, n, k, 1, a, k, b, sh[s].tb ? k : n, 0, c, n);
		for (int r = 0; r < rounds && r < 64; r++) {
			double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
			long it = 0;
			do {
				cblas_sgemm(CblasRowMajor, CblasNoTrans, sh[s].tb ? CblasTrans : CblasNoTrans, m, n, k, 1, a, k, b, sh[s].tb ? k : n, 0, c, n);
				it++;
			} while (now(CLOCK_MONOTONIC) - w0 < 0.2);
			wall[r] = flop * it / (now(CLOCK_MONOTONIC) - w0) / 1e9;
			cpu[r] = flop * it / (now(CLOCK_PROCESS_CPUTIME_ID) - c0) / 1e9;
		}
		qsort(wall, rounds, sizeof(double), cmp);
		qsort(cpu, rounds, sizeof(double), cmp);
		printf("%-20s %8.1f GFLOP/s %8.1f cpuGFLOP/s (max %.1f / %.1f)\n", sh[s].name, wall[rounds / 2], cpu[rounds / 2], wall[rounds - 1], cpu[rounds - 1]);
		free(a); free(b); free(c);
	}
	return 0;
}
