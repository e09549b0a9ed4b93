//go:build cuda && cudaemu

// The kernels of kernels/*.cu compiled for the CPU emulator (emu/emu.h),
// with a C entry point that unpacks a CUDA-style packed argument buffer.
#define MC_EMULATE 1
#include "emu/emu.h"

#include "kernels/attention.cu"
#include "kernels/elementwise.cu"
#include "kernels/gemm.cu"
#include "kernels/norm.cu"
#include "kernels/text.cu"
#include "kernels/train.cu"
#include "kernels/vit.cu"

#include <map>
#include <sched.h>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
thread_local mcemu::Block *mcemu::cur;

namespace {

// Reads one argument at its natural alignment, as CUDA lays out a packed
// parameter buffer.
struct AnyPtr {
	uint64_t v;
	template <class T> operator T *() const { return (T *)(uintptr_t)v; }
};

template <class T> T read_arg(const char *buf, size_t &off) {
	if constexpr (std::is_pointer_v<T>) {
		off = (off + 7) & ~size_t(7);
		uint64_t v;
		memcpy(&v, buf + off, 8);
		off += 8;
		return (T)(uintptr_t)v;
	} else {
		off = (off + alignof(T) - 1) & ~(alignof(T) - 1);
		T v;
		memcpy(&v, buf + off, sizeof(T));
		off += sizeof(T);
		return v;
	}
}

struct Call {
	void (*run)(const void *fn, const char *buf, size_t size);
	const void *fn;
};

template <class... A> void invoke(const void *fn, const char *buf, size_t size) {
	size_t off = 0;
	std::tuple<A...> t{read_arg<A>(buf, off)...};
	if (off != size) mcemu::fail("argument buffer size does not match the kernel's parameters");
	std::apply((void (*)(A...))fn, t);
}

template <class... A> Call make_call(void (*fn)(A...)) { return Call{&invoke<A...>, (const void *)fn}; }

std::map<std::string, Call> &registry() {
	static std::map<std::string, Call> r = {
#define K(name) {#name, make_call(&name)}
	    K(attn_flash_fwd_d16), K(attn_flash_fwd_d32), K(attn_flash_fwd_d64), K(attn_flash_fwd_d128),
	    K(attn_probs), K(attn_pv), K(attn_bwd_dv), K(attn_bwd_ds), K(attn_bwd_dq), K(attn_bwd_dk),
	    K(ln_fwd), K(ln_bwd_dx), K(col_partials), K(ln_param_partials), K(col_finish), K(softmax_rows),
	    K(softmax_bwd), K(ew_add), K(ew_mul), K(ew_muladd), K(ew_axpy), K(ew_scale), K(bias_act), K(act_fwd),
	    K(act_bwd), K(reduce_dot), K(patch_unfold), K(vit_embed), K(text_embed), K(gather_rows), K(sgemm_ep),
	    K(attn_flash_fwd_d128_kv1), K(attn_flash_fwd_v4_d64), K(attn_flash_fwd_save_d16), K(attn_flash_fwd_save_d32), K(attn_flash_fwd_save_d64),
	    K(attn_flash_fwd_save_d128), K(attn_flash_bwd_dq_d16), K(attn_flash_bwd_dq_d32), K(attn_flash_bwd_dq_d64),
	    K(attn_flash_bwd_dq_d128), K(attn_flash_bwd_dkdv_d16), K(attn_flash_bwd_dkdv_d32),
	    K(attn_flash_bwd_dkdv_d64), K(attn_flash_bwd_dkdv_d128), K(bias_act_bwd), K(sum_finish), K(nce_row_lse),
	    K(nce_col_lse), K(nce_rows), K(soft_ce_rows), K(mse_partials), K(mse_bwd), K(mt_sumsq), K(norm_finish),
	    K(mt_adamw),
#undef K
	};
	return r;
}

struct Launch {
	Call call;
	const char *args;
	size_t size;
	unsigned shmem;
};

const size_t kStack = 256 << 10;

#ifdef MC_FAST_SWITCH
// mc_switch pushes the callee-saved registers, stores rsp in *save_sp, loads
// load_sp and pops them in reverse; a new fiber's stack is laid out so that
// the final ret enters fiber_entry.
asm(R"(
	.text
	.globl mc_switch
	.type mc_switch, @function
mc_switch:
	pushq %rbp
	pushq %rbx
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, (%rdi)
	movq %rsi, %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
	ret
	.size mc_switch, .-mc_switch
)");
#endif

thread_local Launch *cur_launch;

[[noreturn]] void fiber_finish() {
	mcemu::Block *b = mcemu::cur;
	b->f[b->current].state = mcemu::DONE;
#ifdef MC_FAST_SWITCH
	void *dead;
	mc_switch(&dead, b->sched_sp);
#else
	setcontext(&b->sched);
#endif
	mcemu::fail("a finished fiber was resumed");
}

void fiber_entry() {
	Launch *l = cur_launch;
	l->call.run(l->call.fn, l->args, l->size);
	fiber_finish();
}

void start_fiber(mcemu::Block &b, mcemu::Fiber &f) {
	f.state = mcemu::RUN;
#ifdef MC_FAST_SWITCH
	// [top-8]: fake return address of fiber_entry; [top-16]: fiber_entry for
	// mc_switch's ret; below: the six registers it pops. rsp at entry is
	// top-8, 8 mod 16 as after a call.
	uintptr_t top = ((uintptr_t)f.stack + kStack) & ~(uintptr_t)15;
	void **sp = (void **)(top - 8);
	*sp-- = nullptr;
	*sp = (void *)&fiber_entry;
	for (int i = 0; i < 6; i++) *--sp = nullptr;
	f.sp = sp;
#else
	getcontext(&f.ctx);
	f.ctx.uc_stack.ss_sp = f.stack;
	f.ctx.uc_stack.ss_size = kStack;
	f.ctx.uc_link = &b.sched;
	makecontext(&f.ctx, (void (*)())fiber_entry, 0);
#endif
}

void resume(mcemu::Block &b, mcemu::Fiber &f) {
#ifdef MC_FAST_SWITCH
	mc_switch(&b.sched_sp, f.sp);
#else
	swapcontext(&b.sched, &f.ctx);
#endif
}

const bool reverse_schedule = [] {
	const char *e = getenv("MCEMU_SCHEDULE");
	return e != nullptr && strcmp(e, "reverse") == 0;
}();

void run_block(mcemu::Block &b, Launch *l, unsigned bid) {
	const unsigned nthreads = blockDim.x * blockDim.y * blockDim.z;
	blockIdx.x = bid % gridDim.x;
	blockIdx.y = (bid / gridDim.x) % gridDim.y;
	blockIdx.z = bid / (gridDim.x * gridDim.y);
	cur_launch = l;
	for (unsigned t = 0; t < nthreads; t++) start_fiber(b, b.f[t]);
	const unsigned nwarps = (nthreads + 31) / 32;
	for (;;) {
		for (unsigned i = 0; i < nthreads; i++) {
			// MCEMU_SCHEDULE=reverse runs the threads of a round last to first,
			// so that a missing barrier shows up whichever thread writes first.
			unsigned t = reverse_schedule ? nthreads - 1 - i : i;
			if (b.f[t].state != mcemu::RUN) continue;
			b.current = (int)t;
			threadIdx.x = t % blockDim.x;
			threadIdx.y = (t / blockDim.x) % blockDim.y;
			threadIdx.z = t / (blockDim.x * blockDim.y);
			resume(b, b.f[t]);
		}
		bool all_done = true, released = false;
		for (unsigned t = 0; t < nthreads; t++) all_done = all_done && b.f[t].state == mcemu::DONE;
		if (all_done) return;
		for (unsigned w = 0; w < nwarps; w++) {
			unsigned lo = 32 * w, hi = lo + 32 < nthreads ? lo + 32 : nthreads;
			bool ready = false, ok = true;
			for (unsigned t = lo; t < hi; t++) {
				int s = b.f[t].state;
				if (s == mcemu::AT_WARP) ready = true;
				else if (s != mcemu::DONE) ok = false;
			}
			if (ready && ok) {
				for (unsigned t = lo; t < hi; t++)
					if (b.f[t].state == mcemu::AT_WARP) b.f[t].state = mcemu::RUN;
				released = true;
			}
		}
		if (!released) {
			bool ok = true, any = false;
			for (unsigned t = 0; t < nthreads; t++) {
				int s = b.f[t].state;
				if (s == mcemu::AT_BLOCK) any = true;
				else if (s != mcemu::DONE) ok = false;
			}
			if (any && ok) {
				for (unsigned t = 0; t < nthreads; t++)
					if (b.f[t].state == mcemu::AT_BLOCK) b.f[t].state = mcemu::RUN;
				released = true;
			}
		}
		if (!released) {
			int nb = 0, nw = 0, nd = 0;
			for (unsigned t = 0; t < nthreads; t++) {
				nb += b.f[t].state == mcemu::AT_BLOCK;
				nw += b.f[t].state == mcemu::AT_WARP;
				nd += b.f[t].state == mcemu::DONE;
			}
			char msg[256];
			snprintf(msg, sizeof msg, "deadlock in block (%u,%u,%u): %d threads at __syncthreads, %d at a warp barrier, %d exited",
			         blockIdx.x, blockIdx.y, blockIdx.z, nb, nw, nd);
			mcemu::fail(msg);
		}
	}
}

std::mutex launch_mu; // one launch at a time (blockDim/gridDim are global)

// Fiber stacks are kept for the next launch (allocating and faulting them in
// again costs more than most emulated kernels).
std::mutex stack_mu;
std::vector<char *> stack_pool;

char *get_stack() {
	std::lock_guard<std::mutex> lock(stack_mu);
	if (stack_pool.empty()) return (char *)malloc(kStack);
	char *s = stack_pool.back();
	stack_pool.pop_back();
	return s;
}

void put_stack(char *s) {
	std::lock_guard<std::mutex> lock(stack_mu);
	stack_pool.push_back(s);
}

unsigned cpus() {
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0) return (unsigned)CPU_COUNT(&set);
	return 1;
}

} // namespace

extern "C" int mcemu_has_kernel(const char *name) { return registry().count(name) != 0; }

// mcemu_launch runs kernel name over the grid; returns 0, or -1 for an
// unknown kernel.
extern "C" int mcemu_launch(const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                            unsigned bz, unsigned shmem, const char *args, size_t size) {
	auto it = registry().find(name);
	if (it == registry().end()) return -1;
	std::lock_guard<std::mutex> lock(launch_mu);
	std::vector<char> argcopy(args, args + size);
	Launch l{it->second, argcopy.data(), size, shmem};
	blockDim = dim3{bx, by, bz};
	gridDim = dim3{gx, gy, gz};
	const unsigned nblocks = gx * gy * gz, nthreads = bx * by * bz;
	unsigned workers = cpus();
	if (workers < 1) workers = 1;
	if (workers > nblocks) workers = nblocks;
	std::atomic<unsigned> next{0};
	auto work = [&]() {
		mcemu::Block b;
		b.f.resize(nthreads);
		b.xbuf.assign(nthreads, 0);
		b.dyn.assign(shmem + 16, 0);
		for (auto &f : b.f) f.stack = get_stack();
		mcemu::cur = &b;
		for (unsigned bid; (bid = next.fetch_add(1)) < nblocks;) run_block(b, &l, bid);
		mcemu::cur = nullptr;
		for (auto &f : b.f) put_stack(f.stack);
	};
	// Blocks run on threads of their own, never on the caller's (a Go thread).
	std::vector<std::thread> ts;
	for (unsigned w = 0; w < workers; w++) ts.emplace_back(work);
	for (auto &t : ts) t.join();
	return 0;
}
