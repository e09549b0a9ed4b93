// A CPU emulator of the CUDA execution model, enough to run the kernels of
// ../kernels/*.cu unchanged for functional tests on machines without a GPU
// (go test -tags cuda,cudaemu ./cuda). Not a performance model.
//
// Each thread of a block is a fiber (ucontext) with its own stack; a block
// runs its fibers round-robin on one OS thread, switching only at
// __syncthreads, __syncwarp and warp shuffles, which are real barriers: a
// block barrier releases when every live thread of the block has reached
// it, a warp barrier when every live lane of the warp has. A divergent
// barrier (some threads wait for ones that never come) or a shuffle with an
// exited lane aborts with a message instead of hanging. Blocks run on a few
// OS threads in parallel; __shared__ variables are thread_local statics, so
// each OS thread (one block at a time) has its own copy.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <math.h>
#include <thread>
#include <ucontext.h>
#include <vector>

struct dim3 {
	unsigned x = 1, y = 1, z = 1;
};

// Context switching: a minimal callee-saved-register switch on x86-64 (no
// signal-mask system calls, unlike swapcontext), ucontext elsewhere.
#if defined(__x86_64__)
#define MC_FAST_SWITCH 1
extern "C" void mc_switch(void **save_sp, void *load_sp);
#endif

namespace mcemu {

enum State { RUN, AT_BLOCK, AT_WARP, DONE };

struct Fiber {
#ifdef MC_FAST_SWITCH
	void *sp = nullptr;
#else
	ucontext_t ctx;
#endif
	int state = RUN;
	char *stack = nullptr;
};

struct Block;
extern thread_local Block *cur;

struct Block {
#ifdef MC_FAST_SWITCH
	void *sched_sp = nullptr;
#else
	ucontext_t sched;
#endif
	std::vector<Fiber> f;
	int current = 0;
	void (*body)(void *) = nullptr;
	void *arg = nullptr;
	std::vector<uint64_t> xbuf; // shuffle exchange, one slot per thread
	std::vector<char> dyn;      // dynamic shared memory
};

[[noreturn]] inline void fail(const char *what) {
	fprintf(stderr, "cuda emulator: %s\n", what);
	abort();
}

} // namespace mcemu

extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

inline int mc_tid() { return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)); }

inline void mc_wait(int state) {
	mcemu::Block *b = mcemu::cur;
	mcemu::Fiber &f = b->f[b->current];
	f.state = state;
#ifdef MC_FAST_SWITCH
	mc_switch(&f.sp, b->sched_sp);
#else
	swapcontext(&f.ctx, &b->sched);
#endif
}

inline void __syncthreads() { mc_wait(mcemu::AT_BLOCK); }
inline void __syncwarp(unsigned = 0xffffffffu) { mc_wait(mcemu::AT_WARP); }

template <class T> inline T __shfl_xor_sync(unsigned, T v, int o) {
	static_assert(sizeof(T) <= 8, "shuffle of a large type");
	mcemu::Block *b = mcemu::cur;
	int me = b->current, partner = (me & ~31) | ((me & 31) ^ o);
	if (partner >= (int)b->f.size()) mcemu::fail("shuffle partner outside the block");
	uint64_t bits = 0;
	memcpy(&bits, &v, sizeof(T));
	b->xbuf[me] = bits;
	mc_wait(mcemu::AT_WARP);
	if (b->f[partner].state == mcemu::DONE) mcemu::fail("shuffle with an exited lane");
	T r;
	bits = b->xbuf[partner];
	memcpy(&r, &bits, sizeof(T));
	mc_wait(mcemu::AT_WARP); // the slot may be reused only after every lane read
	return r;
}

inline void *mc_dynamic_shared() { return mcemu::cur->dyn.data(); }

inline float __int_as_float(int i) {
	float f;
	memcpy(&f, &i, 4);
	return f;
}

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

// Vector types and alignment, as in CUDA's vector_types.h.
struct alignas(16) float4 {
	float x, y, z, w;
};
#define __align__(n) __attribute__((aligned(n)))

// Round-to-nearest float32 operations that are never contracted into a
// fused multiply-add (the volatile store forces the rounding), as on the
// device.
inline float __fmul_rn(float a, float b) {
	volatile float r = a * b;
	return r;
}
inline float __fadd_rn(float a, float b) {
	volatile float r = a + b;
	return r;
}
inline float __fsub_rn(float a, float b) {
	volatile float r = a - b;
	return r;
}
inline float __fdiv_rn(float a, float b) {
	volatile float r = a / b;
	return r;
}

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __shared__ static thread_local
