//go:build cuda && !cudaemu

package cuda

// The cgo shim over the CUDA driver API and (dlopen'ed) cuBLAS. Every entry
// point makes the device's primary context current on the calling OS thread
// first (goroutines move between threads; cuCtxSetCurrent is a thread-local
// store), so no Go code has to lock threads. The driver API is linked
// (-lcuda; at build time against the toolkit's stub libcuda.so); cuBLAS is
// opened at run time so that one binary works with the libcublas of CUDA 11,
// 12 or 13, or without one.
//
// Only the primary-context API is used: cuCtxCreate changed its signature in
// CUDA 13, the primary context is what the CUDA runtime (and so cuBLAS) uses.

/*
#cgo LDFLAGS: -lcuda -ldl
#include <cuda.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static CUcontext mc_ctx;
static CUdevice mc_dev;

static CUresult mc_set(void) { return cuCtxSetCurrent(mc_ctx); }

static CUresult mc_open(int ordinal, int* count) {
	CUresult r = cuInit(0);
	if (r) return r;
	r = cuDeviceGetCount(count);
	if (r) return r;
	if (ordinal >= *count) return CUDA_ERROR_INVALID_DEVICE;
	r = cuDeviceGet(&mc_dev, ordinal);
	if (r) return r;
	r = cuDevicePrimaryCtxRetain(&mc_ctx, mc_dev);
	if (r) return r;
	return cuCtxSetCurrent(mc_ctx);
}

static CUresult mc_close(void) {
	CUresult r = mc_set();
	if (r) return r;
	cuCtxSynchronize();
	cuCtxSetCurrent(NULL);
	return cuDevicePrimaryCtxRelease(mc_dev);
}

static CUresult mc_attr(int attr, int* v) {
	return cuDeviceGetAttribute(v, (CUdevice_attribute)attr, mc_dev);
}

static CUresult mc_name(char* buf, int n) { return cuDeviceGetName(buf, n, mc_dev); }

static CUresult mc_totalmem(size_t* b) { return cuDeviceTotalMem(b, mc_dev); }

static CUresult mc_meminfo(size_t* free, size_t* total) {
	CUresult r = mc_set();
	if (r) return r;
	return cuMemGetInfo(free, total);
}

static CUresult mc_sync(void) {
	CUresult r = mc_set();
	if (r) return r;
	return cuCtxSynchronize();
}

static CUresult mc_alloc(CUdeviceptr* p, size_t n) {
	CUresult r = mc_set();
	if (r) return r;
	return cuMemAlloc(p, n);
}

static CUresult mc_free(CUdeviceptr p) {
	CUresult r = mc_set();
	if (r) return r;
	return cuMemFree(p);
}

// Host transfers are synchronous (legacy default stream, which orders itself
// with the package's blocking stream): the Go memory is only used during the
// call.
static CUresult mc_htod(CUdeviceptr dst, const void* src, size_t n) {
	CUresult r = mc_set();
	if (r) return r;
	return cuMemcpyHtoD(dst, src, n);
}

static CUresult mc_dtoh(void* dst, CUdeviceptr src, size_t n) {
	CUresult r = mc_set();
	if (r) return r;
	return cuMemcpyDtoH(dst, src, n);
}

static CUresult mc_htod2d(CUdeviceptr dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height) {
	CUresult r = mc_set();
	if (r) return r;
	CUDA_MEMCPY2D c;
	memset(&c, 0, sizeof c);
	c.srcMemoryType = CU_MEMORYTYPE_HOST;
	c.srcHost = src;
	c.srcPitch = spitch;
	c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
	c.dstDevice = dst;
	c.dstPitch = dpitch;
	c.WidthInBytes = width;
	c.Height = height;
	return cuMemcpy2D(&c);
}

static CUresult mc_dtoh2d(void* dst, size_t dpitch, CUdeviceptr src, size_t spitch, size_t width, size_t height) {
	CUresult r = mc_set();
	if (r) return r;
	CUDA_MEMCPY2D c;
	memset(&c, 0, sizeof c);
	c.srcMemoryType = CU_MEMORYTYPE_DEVICE;
	c.srcDevice = src;
	c.srcPitch = spitch;
	c.dstMemoryType = CU_MEMORYTYPE_HOST;
	c.dstHost = dst;
	c.dstPitch = dpitch;
	c.WidthInBytes = width;
	c.Height = height;
	return cuMemcpy2D(&c);
}

static CUresult mc_dtod(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) {
	CUresult r = mc_set();
	if (r) return r;
	return cuMemcpyDtoDAsync(dst, src, n, s);
}

static CUresult mc_memset32(CUdeviceptr p, unsigned int v, size_t n, CUstream s) {
	CUresult r = mc_set();
	if (r) return r;
	return cuMemsetD32Async(p, v, n, s);
}

static CUresult mc_load(CUmodule* m, const char* image, char* log, size_t logSize) {
	CUresult r = mc_set();
	if (r) return r;
	CUjit_option opts[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
	void* vals[2] = {log, (void*)logSize};
	return cuModuleLoadDataEx(m, image, 2, opts, vals);
}

static CUresult mc_unload(CUmodule m) {
	CUresult r = mc_set();
	if (r) return r;
	return cuModuleUnload(m);
}

static CUresult mc_function(CUfunction* f, CUmodule m, const char* name) {
	return cuModuleGetFunction(f, m, name);
}

// Kernel arguments travel as one packed buffer (values only: device pointers
// are integers, never Go pointers) plus the offset of each argument in it;
// the driver gets the usual array of pointers to the values, so it reads
// each parameter with the kernel's own sizes.
static CUresult mc_launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                          unsigned shmem, CUstream s, char* args, const int* offsets, int n) {
	CUresult r = mc_set();
	if (r) return r;
	void* params[64];
	if (n > 64) return CUDA_ERROR_INVALID_VALUE;
	for (int i = 0; i < n; i++) params[i] = args + offsets[i];
	return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shmem, s, params, NULL);
}

static CUresult mc_stream_create(CUstream* s) {
	CUresult r = mc_set();
	if (r) return r;
	return cuStreamCreate(s, CU_STREAM_DEFAULT);
}

static CUresult mc_stream_sync(CUstream s) {
	CUresult r = mc_set();
	if (r) return r;
	return cuStreamSynchronize(s);
}

static CUresult mc_stream_destroy(CUstream s) {
	CUresult r = mc_set();
	if (r) return r;
	return cuStreamDestroy(s);
}

static CUresult mc_event_create(CUevent* e) {
	CUresult r = mc_set();
	if (r) return r;
	return cuEventCreate(e, CU_EVENT_DEFAULT);
}

static CUresult mc_event_record(CUevent e, CUstream s) {
	CUresult r = mc_set();
	if (r) return r;
	return cuEventRecord(e, s);
}

static CUresult mc_event_elapsed(float* ms, CUevent a, CUevent b) {
	CUresult r = mc_set();
	if (r) return r;
	r = cuEventSynchronize(b);
	if (r) return r;
	return cuEventElapsedTime(ms, a, b);
}

static CUresult mc_event_destroy(CUevent e) {
	CUresult r = mc_set();
	if (r) return r;
	return cuEventDestroy(e);
}

static const char* mc_errname(CUresult r) {
	const char* s = NULL;
	if (cuGetErrorName(r, &s) != CUDA_SUCCESS || s == NULL) return "CUDA_ERROR_UNKNOWN_CODE";
	return s;
}

static const char* mc_errstring(CUresult r) {
	const char* s = NULL;
	if (cuGetErrorString(r, &s) != CUDA_SUCCESS || s == NULL) return "";
	return s;
}

static int mc_driver_version(void) {
	int v = 0;
	cuDriverGetVersion(&v);
	return v;
}

// ---- cuBLAS, resolved with dlsym (the prototypes are those of CUDA 11-13;
// enums are ints). ----
typedef int (*blas_create_t)(void**);
typedef int (*blas_destroy_t)(void*);
typedef int (*blas_stream_t)(void*, CUstream);
typedef int (*blas_version_t)(void*, int*);
typedef int (*blas_gemmex_t)(void*, int, int, int, int, int, const void*, const void*, int, int, const void*, int, int,
                             const void*, void*, int, int, int, int);
typedef int (*blas_gemmsbex_t)(void*, int, int, int, int, int, const void*, const void*, int, int, long long,
                               const void*, int, int, long long, const void*, void*, int, int, long long, int, int,
                               int);

static void* mc_blas_lib;
static void* mc_blas;
static blas_gemmex_t mc_gemmex;
static blas_gemmsbex_t mc_gemmsbex;
static blas_destroy_t mc_blas_destroy;

// mc_blas_open returns 0 on success, -1 when the library or a symbol is
// missing (err says which), or the cublasStatus of a failing call.
static int mc_blas_open(const char* path, CUstream s, int* version, char* err, size_t errSize) {
	CUresult r = mc_set();
	if (r) {
		snprintf(err, errSize, "cuCtxSetCurrent: %d", (int)r);
		return -1;
	}
	void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char* e = dlerror();
		snprintf(err, errSize, "%s", e ? e : "dlopen failed");
		return -1;
	}
	blas_create_t create = (blas_create_t)dlsym(lib, "cublasCreate_v2");
	blas_destroy_t destroy = (blas_destroy_t)dlsym(lib, "cublasDestroy_v2");
	blas_stream_t setstream = (blas_stream_t)dlsym(lib, "cublasSetStream_v2");
	blas_version_t getversion = (blas_version_t)dlsym(lib, "cublasGetVersion_v2");
	blas_gemmex_t gemmex = (blas_gemmex_t)dlsym(lib, "cublasGemmEx");
	blas_gemmsbex_t gemmsbex = (blas_gemmsbex_t)dlsym(lib, "cublasGemmStridedBatchedEx");
	if (!create || !destroy || !setstream || !getversion || !gemmex || !gemmsbex) {
		snprintf(err, errSize, "%s lacks a cuBLAS v2 symbol", path);
		dlclose(lib);
		return -1;
	}
	void* h = NULL;
	int st = create(&h);
	if (st) {
		snprintf(err, errSize, "cublasCreate: status %d", st);
		dlclose(lib);
		return st;
	}
	st = setstream(h, s);
	if (st) {
		snprintf(err, errSize, "cublasSetStream: status %d", st);
		destroy(h);
		dlclose(lib);
		return st;
	}
	getversion(h, version);
	mc_blas_lib = lib;
	mc_blas = h;
	mc_gemmex = gemmex;
	mc_gemmsbex = gemmsbex;
	mc_blas_destroy = destroy;
	return 0;
}

static void mc_blas_close(void) {
	if (mc_blas) {
		mc_set();
		mc_blas_destroy(mc_blas);
	}
	if (mc_blas_lib) dlclose(mc_blas_lib);
	mc_blas = NULL;
	mc_blas_lib = NULL;
}

// Column-major cuBLAS call (the Go side swaps operands for row-major):
// C = alpha·op(A)·op(B) + beta·C, fp32 data, computeType 68 (CUBLAS_COMPUTE_32F)
// or 77 (CUBLAS_COMPUTE_32F_FAST_TF32); algo -1 (CUBLAS_GEMM_DEFAULT).
static int mc_gemm(int ta, int tb, int m, int n, int k, float alpha, CUdeviceptr A, int lda, long long sA,
                   CUdeviceptr B, int ldb, long long sB, float beta, CUdeviceptr C, int ldc, long long sC, int batch,
                   int compute) {
	if (mc_set()) return -1;
	const int R32F = 0; // CUDA_R_32F
	if (batch <= 1)
		return mc_gemmex(mc_blas, ta, tb, m, n, k, &alpha, (const void*)A, R32F, lda, (const void*)B, R32F, ldb,
		                 &beta, (void*)C, R32F, ldc, compute, -1);
	return mc_gemmsbex(mc_blas, ta, tb, m, n, k, &alpha, (const void*)A, R32F, lda, sA, (const void*)B, R32F, ldb, sB,
	                   &beta, (void*)C, R32F, ldc, sC, batch, compute, -1);
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// cuError is a failed driver call.
type cuError struct {
	op   string
	code C.CUresult
}

func (e *cuError) Error() string {
	return fmt.Sprintf("cuda: %s: %s (%d): %s", e.op, C.GoString(C.mc_errname(e.code)), int(e.code), C.GoString(C.mc_errstring(e.code)))
}

func check(op string, r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	return &cuError{op, r}
}

func shimOpen(ordinal int) (count int, err error) {
	var n C.int
	err = check("open device", C.mc_open(C.int(ordinal), &n))
	return int(n), err
}

func shimClose() error { return check("release primary context", C.mc_close()) }

func shimAttr(attr int) int {
	var v C.int
	if C.mc_attr(C.int(attr), &v) != C.CUDA_SUCCESS {
		return 0
	}
	return int(v)
}

func shimName() string {
	buf := make([]byte, 256)
	if C.mc_name((*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf))) != C.CUDA_SUCCESS {
		return "unknown"
	}
	return C.GoString((*C.char)(unsafe.Pointer(&buf[0])))
}

func shimTotalMem() int64 {
	var b C.size_t
	if C.mc_totalmem(&b) != C.CUDA_SUCCESS {
		return 0
	}
	return int64(b)
}

func shimMemInfo() (free, total int64, err error) {
	var f, t C.size_t
	err = check("cuMemGetInfo", C.mc_meminfo(&f, &t))
	return int64(f), int64(t), err
}

func shimDriverVersion() int { return int(C.mc_driver_version()) }

func shimSync() error { return check("cuCtxSynchronize", C.mc_sync()) }

func shimAlloc(bytes int) (devPtr, error) {
	var p C.CUdeviceptr
	if err := check(fmt.Sprintf("cuMemAlloc(%d)", bytes), C.mc_alloc(&p, C.size_t(bytes))); err != nil {
		return 0, err
	}
	return devPtr(p), nil
}

func shimFree(p devPtr) error { return check("cuMemFree", C.mc_free(C.CUdeviceptr(p))) }

func shimHtoD(dst devPtr, src []float32) error {
	if len(src) == 0 {
		return nil
	}
	return check("cuMemcpyHtoD", C.mc_htod(C.CUdeviceptr(dst), unsafe.Pointer(&src[0]), C.size_t(4*len(src))))
}

func shimDtoH(dst []float32, src devPtr) error {
	if len(dst) == 0 {
		return nil
	}
	return check("cuMemcpyDtoH", C.mc_dtoh(unsafe.Pointer(&dst[0]), C.CUdeviceptr(src), C.size_t(4*len(dst))))
}

func shimHtoDBytes(dst devPtr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	return check("cuMemcpyHtoD", C.mc_htod(C.CUdeviceptr(dst), unsafe.Pointer(&src[0]), C.size_t(len(src))))
}

func shimDtoHBytes(dst []byte, src devPtr) error {
	if len(dst) == 0 {
		return nil
	}
	return check("cuMemcpyDtoH", C.mc_dtoh(unsafe.Pointer(&dst[0]), C.CUdeviceptr(src), C.size_t(len(dst))))
}

// shimHtoD2D copies rows×cols floats from host rows spitch floats apart
// (src[0] the first) to device rows dpitch floats apart.
func shimHtoD2D(dst devPtr, dpitch int, src []float32, spitch, rows, cols int) error {
	if rows == 0 || cols == 0 {
		return nil
	}
	return check("cuMemcpy2D HtoD", C.mc_htod2d(C.CUdeviceptr(dst), C.size_t(4*dpitch), unsafe.Pointer(&src[0]),
		C.size_t(4*spitch), C.size_t(4*cols), C.size_t(rows)))
}

func shimDtoH2D(dst []float32, dpitch int, src devPtr, spitch, rows, cols int) error {
	if rows == 0 || cols == 0 {
		return nil
	}
	return check("cuMemcpy2D DtoH", C.mc_dtoh2d(unsafe.Pointer(&dst[0]), C.size_t(4*dpitch), C.CUdeviceptr(src),
		C.size_t(4*spitch), C.size_t(4*cols), C.size_t(rows)))
}

type stream = C.CUstream

func shimDtoD(dst, src devPtr, bytes int, s stream) error {
	if bytes == 0 {
		return nil
	}
	return check("cuMemcpyDtoDAsync", C.mc_dtod(C.CUdeviceptr(dst), C.CUdeviceptr(src), C.size_t(bytes), s))
}

func shimMemset32(p devPtr, v uint32, n int, s stream) error {
	if n == 0 {
		return nil
	}
	return check("cuMemsetD32Async", C.mc_memset32(C.CUdeviceptr(p), C.uint(v), C.size_t(n), s))
}

type module = C.CUmodule
type function = C.CUfunction

func shimLoad(ptx string) (module, error) {
	img := C.CString(ptx)
	defer C.free(unsafe.Pointer(img))
	const logSize = 16 << 10
	log := (*C.char)(C.calloc(logSize, 1))
	defer C.free(unsafe.Pointer(log))
	var m C.CUmodule
	if err := check("cuModuleLoadDataEx", C.mc_load(&m, img, log, logSize)); err != nil {
		if s := C.GoString(log); s != "" {
			return nil, fmt.Errorf("%w\n%s", err, s)
		}
		return nil, err
	}
	return m, nil
}

func shimUnload(m module) error { return check("cuModuleUnload", C.mc_unload(m)) }

func shimFunction(m module, name string) (function, bool) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	var f C.CUfunction
	if C.mc_function(&f, m, cs) != C.CUDA_SUCCESS {
		return nil, false
	}
	return f, true
}

func shimLaunch(f function, grid, block [3]int, shmem int, s stream, args []byte, offsets []int32) error {
	var p *C.char
	var o *C.int
	if len(args) > 0 {
		p = (*C.char)(unsafe.Pointer(&args[0]))
		o = (*C.int)(unsafe.Pointer(&offsets[0]))
	}
	return check("cuLaunchKernel", C.mc_launch(f, C.uint(grid[0]), C.uint(grid[1]), C.uint(grid[2]),
		C.uint(block[0]), C.uint(block[1]), C.uint(block[2]), C.uint(shmem), s, p, o, C.int(len(offsets))))
}

func shimStreamCreate() (stream, error) {
	var s C.CUstream
	err := check("cuStreamCreate", C.mc_stream_create(&s))
	return s, err
}

func shimStreamSync(s stream) error { return check("cuStreamSynchronize", C.mc_stream_sync(s)) }

func shimStreamDestroy(s stream) error { return check("cuStreamDestroy", C.mc_stream_destroy(s)) }

type event = C.CUevent

func shimEventCreate() (event, error) {
	var e C.CUevent
	err := check("cuEventCreate", C.mc_event_create(&e))
	return e, err
}

func shimEventRecord(e event, s stream) error { return check("cuEventRecord", C.mc_event_record(e, s)) }

func shimEventElapsed(a, b event) (float64, error) {
	var ms C.float
	err := check("cuEventElapsedTime", C.mc_event_elapsed(&ms, a, b))
	return float64(ms), err
}

func shimEventDestroy(e event) { C.mc_event_destroy(e) }

// emulated is true in the CPU-emulator build (shim_emu.go).
const emulated = false

func shimBlasOpen(path string, s stream) (version int, err error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	msg := make([]byte, 512)
	var v C.int
	if st := C.mc_blas_open(cp, s, &v, (*C.char)(unsafe.Pointer(&msg[0])), C.size_t(len(msg))); st != 0 {
		return 0, fmt.Errorf("cuda: cuBLAS %s: %s", path, C.GoString((*C.char)(unsafe.Pointer(&msg[0]))))
	}
	return int(v), nil
}

func shimBlasClose() { C.mc_blas_close() }

func shimBlasGemm(ta, tb bool, m, n, k int, alpha float32, a devPtr, lda int, sa int64, b devPtr, ldb int, sb int64,
	beta float32, c devPtr, ldc int, sc int64, batch int, compute int) error {
	st := C.mc_gemm(cbool(ta), cbool(tb), C.int(m), C.int(n), C.int(k), C.float(alpha), C.CUdeviceptr(a), C.int(lda),
		C.longlong(sa), C.CUdeviceptr(b), C.int(ldb), C.longlong(sb), C.float(beta), C.CUdeviceptr(c), C.int(ldc),
		C.longlong(sc), C.int(batch), C.int(compute))
	if st != 0 {
		return fmt.Errorf("cuda: cublasGemmEx(%v,%v,m=%d,n=%d,k=%d,batch=%d): status %d", ta, tb, m, n, k, batch, int(st))
	}
	return nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Device attributes used by Info, as numbers (CUdevice_attribute values,
// stable across CUDA releases) so that the shim compiles against headers
// that deprecate or rename some of them.
const (
	attrClock    = 13 // CU_DEVICE_ATTRIBUTE_CLOCK_RATE (kHz)
	attrSMs      = 16 // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
	attrMemClock = 36 // CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE (kHz)
	attrBusWidth = 37 // CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH (bits)
	attrMajor    = 75 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
	attrMinor    = 76 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
)
