//go:build cuda && cudaemu

package cuda

// The shim of the CPU-emulator build (go test -tags cuda,cudaemu ./cuda):
// the same functions as shim.go, with "device" memory in guarded host
// mappings and kernels run by emu_kernels.cpp (kernels/*.cu compiled for the
// CPU under emu/emu.h). There is no cuBLAS: GEMMs use the package's SGEMM.
// Freshly allocated device memory is filled with NaN, and every block ends
// at an inaccessible page, so reads of unwritten data and overruns past a
// buffer's end show up.

/*
#cgo CXXFLAGS: -std=c++20 -O2 -Wno-unknown-pragmas -Wno-unused-variable
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int mcemu_has_kernel(const char *name);
int mcemu_launch(const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                 unsigned shmem, const char *args, size_t size);

// A block of n bytes that ends 0-15 bytes before a PROT_NONE page.
static uint64_t emu_alloc(size_t n) {
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t used = (n + 15) & ~(size_t)15;
	size_t len = (used + page - 1) / page * page + page;
	char *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) return 0;
	mprotect(base + len - page, page, PROT_NONE);
	char *p = base + len - page - used;
	uint32_t nan = 0x7fc00000u;
	for (size_t i = 0; i + 4 <= used; i += 4) memcpy(p + i, &nan, 4);
	return (uint64_t)(uintptr_t)p;
}

static void emu_free(uint64_t p, size_t n) {
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t used = (n + 15) & ~(size_t)15;
	size_t len = (used + page - 1) / page * page + page;
	char *base = (char *)(uintptr_t)p + used + page - len;
	munmap(base, len);
}

static void emu_in(uint64_t dst, const void *src, size_t n) { memcpy((void *)(uintptr_t)dst, src, n); }
static void emu_out(void *dst, uint64_t src, size_t n) { memcpy(dst, (const void *)(uintptr_t)src, n); }
static void emu_dd(uint64_t dst, uint64_t src, size_t n) { memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n); }

static void emu_2d(uint64_t dst, size_t dpitch, uint64_t src, size_t spitch, size_t width, size_t height) {
	for (size_t r = 0; r < height; r++)
		memcpy((char *)(uintptr_t)dst + r * dpitch, (const char *)(uintptr_t)src + r * spitch, width);
}

static void emu_memset32(uint64_t p, uint32_t v, size_t n) {
	for (size_t i = 0; i < n; i++) memcpy((char *)(uintptr_t)p + 4 * i, &v, 4);
}

static double emu_now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

// emulated is true in the CPU-emulator build.
const emulated = true

func init() { exactSizes = true }

var (
	emuMu    sync.Mutex
	emuSizes = map[devPtr]int{}
)

func shimOpen(ordinal int) (int, error) {
	if ordinal != 0 {
		return 1, fmt.Errorf("cuda emulator: no device %d", ordinal)
	}
	return 1, nil
}

func shimClose() error                   { return nil }
func shimAttr(attr int) int              { return emuAttrs[attr] }
func shimName() string                   { return "CPU emulator" }
func shimTotalMem() int64                { return 1 << 30 }
func shimMemInfo() (int64, int64, error) { return 1 << 30, 1 << 30, nil }
func shimDriverVersion() int             { return 0 }
func shimSync() error                    { return nil }

// Device attributes (only what deviceInfo reads): an sm_90-like device.
const (
	attrMajor = iota
	attrMinor
	attrSMs
	attrClock
	attrMemClock
	attrBusWidth
)

var emuAttrs = map[int]int{attrMajor: 9, attrMinor: 0, attrSMs: 1}

func shimAlloc(bytes int) (devPtr, error) {
	p := devPtr(C.emu_alloc(C.size_t(bytes)))
	if p == 0 {
		return 0, errors.New("cuda emulator: out of memory")
	}
	emuMu.Lock()
	emuSizes[p] = bytes
	emuMu.Unlock()
	return p, nil
}

func shimFree(p devPtr) error {
	emuMu.Lock()
	n, ok := emuSizes[p]
	delete(emuSizes, p)
	emuMu.Unlock()
	if !ok {
		return fmt.Errorf("cuda emulator: free of %#x", uint64(p))
	}
	C.emu_free(C.uint64_t(p), C.size_t(n))
	return nil
}

// checkRange panics unless [p, p+n) lies in one allocation.
func checkRange(p devPtr, n int) {
	emuMu.Lock()
	defer emuMu.Unlock()
	for base, size := range emuSizes {
		if p >= base && p+devPtr(n) <= base+devPtr(size) {
			return
		}
	}
	panic(fmt.Sprintf("cuda emulator: copy of %d bytes at %#x outside every allocation", n, uint64(p)))
}

func shimHtoD(dst devPtr, src []float32) error {
	if len(src) == 0 {
		return nil
	}
	checkRange(dst, 4*len(src))
	C.emu_in(C.uint64_t(dst), unsafe.Pointer(&src[0]), C.size_t(4*len(src)))
	return nil
}

func shimDtoH(dst []float32, src devPtr) error {
	if len(dst) == 0 {
		return nil
	}
	checkRange(src, 4*len(dst))
	C.emu_out(unsafe.Pointer(&dst[0]), C.uint64_t(src), C.size_t(4*len(dst)))
	return nil
}

func shimHtoDBytes(dst devPtr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	checkRange(dst, len(src))
	C.emu_in(C.uint64_t(dst), unsafe.Pointer(&src[0]), C.size_t(len(src)))
	return nil
}

func shimDtoHBytes(dst []byte, src devPtr) error {
	if len(dst) == 0 {
		return nil
	}
	checkRange(src, len(dst))
	C.emu_out(unsafe.Pointer(&dst[0]), C.uint64_t(src), C.size_t(len(dst)))
	return nil
}

func shimHtoD2D(dst devPtr, dpitch int, src []float32, spitch, rows, cols int) error {
	if rows == 0 || cols == 0 {
		return nil
	}
	if len(src) < (rows-1)*spitch+cols {
		panic("cuda emulator: 2-D upload past the host slice")
	}
	checkRange(dst, 4*((rows-1)*dpitch+cols))
	C.emu_2d(C.uint64_t(dst), C.size_t(4*dpitch), C.uint64_t(uintptr(unsafe.Pointer(&src[0]))), C.size_t(4*spitch), C.size_t(4*cols), C.size_t(rows))
	return nil
}

func shimDtoH2D(dst []float32, dpitch int, src devPtr, spitch, rows, cols int) error {
	if rows == 0 || cols == 0 {
		return nil
	}
	if len(dst) < (rows-1)*dpitch+cols {
		panic("cuda emulator: 2-D download past the host slice")
	}
	checkRange(src, 4*((rows-1)*spitch+cols))
	C.emu_2d(C.uint64_t(uintptr(unsafe.Pointer(&dst[0]))), C.size_t(4*dpitch), C.uint64_t(src), C.size_t(4*spitch), C.size_t(4*cols), C.size_t(rows))
	return nil
}

type emuStream struct{}

type stream = *emuStream

func shimDtoD(dst, src devPtr, bytes int, _ stream) error {
	if bytes == 0 {
		return nil
	}
	checkRange(dst, bytes)
	checkRange(src, bytes)
	C.emu_dd(C.uint64_t(dst), C.uint64_t(src), C.size_t(bytes))
	return nil
}

func shimMemset32(p devPtr, v uint32, n int, _ stream) error {
	if n == 0 {
		return nil
	}
	checkRange(p, 4*n)
	C.emu_memset32(C.uint64_t(p), C.uint32_t(v), C.size_t(n))
	return nil
}

type module = int
type function = string

func shimLoad(string) (module, error) { return 1, nil }
func shimUnload(module) error         { return nil }

func shimFunction(_ module, name string) (function, bool) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	return name, C.mcemu_has_kernel(cs) != 0
}

func shimLaunch(f function, grid, block [3]int, shmem int, _ stream, args []byte, _ []int32) error {
	cs := C.CString(f)
	defer C.free(unsafe.Pointer(cs))
	var p *C.char
	if len(args) > 0 {
		p = (*C.char)(unsafe.Pointer(&args[0]))
	}
	if C.mcemu_launch(cs, C.uint(grid[0]), C.uint(grid[1]), C.uint(grid[2]), C.uint(block[0]), C.uint(block[1]),
		C.uint(block[2]), C.uint(shmem), p, C.size_t(len(args))) != 0 {
		return fmt.Errorf("cuda emulator: no kernel %s", f)
	}
	return nil
}

func shimStreamCreate() (stream, error) { return &emuStream{}, nil }
func shimStreamSync(stream) error       { return nil }
func shimStreamDestroy(stream) error    { return nil }

type emuEvent struct{ ms float64 }

type event = *emuEvent

func shimEventCreate() (event, error) { return &emuEvent{}, nil }

func shimEventRecord(e event, _ stream) error {
	e.ms = float64(C.emu_now_ms())
	return nil
}

func shimEventElapsed(a, b event) (float64, error) { return b.ms - a.ms, nil }
func shimEventDestroy(event)                       {}

func shimBlasOpen(string, stream) (int, error) {
	return 0, errors.New("cuda emulator: no cuBLAS")
}

func shimBlasClose() {}

func shimBlasGemm(bool, bool, int, int, int, float32, devPtr, int, int64, devPtr, int, int64, float32, devPtr, int, int64, int, int) error {
	return errors.New("cuda emulator: no cuBLAS")
}
