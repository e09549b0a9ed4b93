//go:build cuda

package cuda

import (
	"embed"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
)

//go:embed ptx/*.ptx
var ptxFS embed.FS

// Context is the open device: its primary context, one stream on which all
// of the package's work is queued, the loaded kernels, cuBLAS (optional) and
// a caching allocator. The driver context is process-wide, so Open returns
// the same Context to every caller (reference counted by Close).
type Context struct {
	mu     sync.Mutex // guards pool and refs
	refs   int
	info   DeviceInfo
	stream stream
	mods   []module
	fns    map[string]function
	blas   bool
	pool   map[int][]devPtr // free device blocks by size class (bytes)
	sizes  map[devPtr]int   // size class of every block handed out
}

var (
	openMu  sync.Mutex
	current *Context
)

// Open opens device opt.Device (its primary context), loads the embedded
// PTX for its architecture and, unless opt.NoCublas, cuBLAS.
func Open(opt Options) (*Context, error) {
	openMu.Lock()
	defer openMu.Unlock()
	if current != nil {
		current.mu.Lock()
		current.refs++
		current.mu.Unlock()
		return current, nil
	}
	n, err := shimOpen(opt.Device)
	if err != nil {
		return nil, fmt.Errorf("%w (devices: %d)", err, n)
	}
	c := &Context{refs: 1, fns: map[string]function{}, pool: map[int][]devPtr{}, sizes: map[devPtr]int{}}
	c.info = deviceInfo()
	if c.stream, err = shimStreamCreate(); err != nil {
		shimClose()
		return nil, err
	}
	if err := c.loadModules(); err != nil {
		c.release()
		return nil, err
	}
	if !opt.NoCublas {
		c.openCublas(opt.Cublas)
	}
	current = c
	return c, nil
}

// ptxArch picks the embedded PTX for compute capability major.minor: sm_90
// PTX for 9.0 and newer (JIT-compiled by the driver for later GPUs), sm_80
// PTX for 8.x.
func ptxArch(major, minor int) (string, error) {
	switch {
	case major >= 9:
		return "sm_90", nil
	case major == 8:
		return "sm_80", nil
	}
	return "", fmt.Errorf("cuda: compute capability %d.%d is below 8.0; the embedded PTX targets sm_80 and sm_90", major, minor)
}

func (c *Context) loadModules() error {
	arch, err := ptxArch(c.info.Major, c.info.Minor)
	if err != nil {
		return err
	}
	c.info.PTXArch = arch
	files, err := ptxFS.ReadDir("ptx")
	if err != nil {
		return err
	}
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), "."+arch+".ptx") {
			continue
		}
		src, err := ptxFS.ReadFile("ptx/" + f.Name())
		if err != nil {
			return err
		}
		m, err := shimLoad(string(src))
		if err != nil {
			return fmt.Errorf("loading %s: %w", f.Name(), err)
		}
		c.mods = append(c.mods, m)
		for name := range ptxEntries(string(src)) {
			fn, ok := shimFunction(m, name)
			if !ok {
				return fmt.Errorf("cuda: %s: kernel %s not found after loading", f.Name(), name)
			}
			c.fns[name] = fn
		}
	}
	for name := range kernelSigs {
		if _, ok := c.fns[name]; !ok {
			return fmt.Errorf("cuda: kernel %s missing from the embedded %s PTX", name, arch)
		}
	}
	return nil
}

// cublasCandidates lists the libraries openCublas tries, in order.
func cublasCandidates(path string) []string {
	if path != "" {
		return []string{path}
	}
	var c []string
	if p := os.Getenv("MOPECLIP_CUBLAS"); p != "" {
		c = append(c, p)
	}
	return append(c, "libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so")
}

// cublasErr records why cuBLAS is not in use (for the test log).
var cublasErr error

func (c *Context) openCublas(path string) {
	var errs []string
	for _, p := range cublasCandidates(path) {
		v, err := shimBlasOpen(p, c.stream)
		if err == nil {
			c.blas = true
			c.info.CublasPath, c.info.CublasVersion = p, v
			return
		}
		errs = append(errs, err.Error())
	}
	cublasErr = fmt.Errorf("cuBLAS not loaded: %s", strings.Join(errs, "; "))
}

// CublasError says why cuBLAS was not loaded (nil when it was).
func CublasError() error { return cublasErr }

// coresPerSM is the number of fp32 lanes per SM; tf32PerSM the dense TF32
// tensor-core FLOPs per SM and clock.
func coresPerSM(major, minor int) (fp32, tf32 int) {
	switch {
	case major == 8 && minor == 0:
		return 64, 1024
	case major == 8:
		return 128, 256
	case major == 9:
		return 128, 2048
	case major >= 10:
		return 128, 2048
	}
	return 64, 0
}

func deviceInfo() DeviceInfo {
	d := DeviceInfo{
		Name:          shimName(),
		Major:         shimAttr(attrMajor),
		Minor:         shimAttr(attrMinor),
		SMs:           shimAttr(attrSMs),
		ClockKHz:      shimAttr(attrClock),
		MemClockKHz:   shimAttr(attrMemClock),
		BusWidthBits:  shimAttr(attrBusWidth),
		TotalMemBytes: shimTotalMem(),
		DriverVersion: shimDriverVersion(),
	}
	clock := float64(d.ClockKHz) * 1e3
	if clock == 0 { // attribute retired by a newer driver: nominal boost clocks
		clock = map[bool]float64{true: 1.98e9, false: 1.41e9}[d.Major >= 9]
	}
	fp32, tf32 := coresPerSM(d.Major, d.Minor)
	d.PeakFP32TFLOPS = float64(d.SMs) * clock * float64(2*fp32) / 1e12
	d.PeakTF32TFLOPS = float64(d.SMs) * clock * float64(tf32) / 1e12
	// DDR: two transfers per memory clock.
	d.PeakBandwidthGBPerS = float64(d.MemClockKHz) * 1e3 * 2 * float64(d.BusWidthBits) / 8 / 1e9
	return d
}

// Info describes the device.
func (c *Context) Info() DeviceInfo { return c.info }

// HasCublas reports whether cuBLAS was loaded.
func (c *Context) HasCublas() bool { return c.blas }

// Synchronize waits for all work queued on the context's stream.
func (c *Context) Synchronize() error { return shimStreamSync(c.stream) }

// Close drops one reference; the last one frees the cached device memory,
// the modules, cuBLAS, the stream, and releases the primary context.
func (c *Context) Close() error {
	openMu.Lock()
	defer openMu.Unlock()
	c.mu.Lock()
	c.refs--
	last := c.refs == 0
	c.mu.Unlock()
	if !last {
		return nil
	}
	current = nil
	return c.release()
}

func (c *Context) release() error {
	shimStreamSync(c.stream)
	if c.blas {
		shimBlasClose()
		c.blas = false
	}
	c.mu.Lock()
	for _, list := range c.pool {
		for _, p := range list {
			shimFree(p)
		}
	}
	c.pool = map[int][]devPtr{}
	c.mu.Unlock()
	for _, m := range c.mods {
		shimUnload(m)
	}
	c.mods = nil
	if c.stream != nil {
		shimStreamDestroy(c.stream)
		c.stream = nil
	}
	return shimClose()
}

// ---- caching allocator ----

// exactSizes (set by the emulator build) makes every block exactly the size
// asked for (rounded to 16 bytes), so that overruns reach a guard page.
var exactSizes bool

// sizeClass rounds a request up to a power of two of at least 256 bytes, or
// to a multiple of 2 MiB above 64 MiB (bounding the waste of large blocks).
func sizeClass(bytes int) int {
	if exactSizes {
		return (bytes + 15) &^ 15
	}
	if bytes <= 256 {
		return 256
	}
	if bytes > 64<<20 {
		const g = 2 << 20
		return (bytes + g - 1) / g * g
	}
	return 1 << int(math.Ceil(math.Log2(float64(bytes))))
}

// alloc returns a device block of at least bytes bytes, reusing a freed one
// of the same size class when there is one. Its contents are undefined.
func (c *Context) alloc(bytes int) (devPtr, error) {
	cls := sizeClass(bytes)
	c.mu.Lock()
	if l := c.pool[cls]; len(l) > 0 {
		p := l[len(l)-1]
		c.pool[cls] = l[:len(l)-1]
		c.sizes[p] = cls
		c.mu.Unlock()
		return p, nil
	}
	c.mu.Unlock()
	p, err := shimAlloc(cls)
	if err != nil {
		// Out of memory: return the cached blocks to the driver and retry.
		c.trim()
		if p, err = shimAlloc(cls); err != nil {
			return 0, err
		}
	}
	c.mu.Lock()
	c.sizes[p] = cls
	c.mu.Unlock()
	return p, nil
}

// free returns a block to the cache. Work queued on the stream may still use
// it: blocks are only handed out again for work queued after this point on
// the same stream, which the stream orders.
func (c *Context) free(p devPtr) {
	if p == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cls, ok := c.sizes[p]
	if !ok {
		panic(fmt.Sprintf("cuda: free of unknown device block %#x", uint64(p)))
	}
	delete(c.sizes, p)
	c.pool[cls] = append(c.pool[cls], p)
}

// deviceBytes returns the bytes taken from the driver: blocks handed out
// plus blocks cached for reuse.
func (c *Context) deviceBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, cls := range c.sizes {
		n += int64(cls)
	}
	for cls, l := range c.pool {
		n += int64(cls) * int64(len(l))
	}
	return n
}

// trim frees every cached block.
func (c *Context) trim() {
	shimStreamSync(c.stream)
	c.mu.Lock()
	defer c.mu.Unlock()
	classes := make([]int, 0, len(c.pool))
	for cls := range c.pool {
		classes = append(classes, cls)
	}
	sort.Ints(classes)
	for _, cls := range classes {
		for _, p := range c.pool[cls] {
			shimFree(p)
		}
	}
	c.pool = map[int][]devPtr{}
}

// ---- public buffers and timers ----

// DeviceBuffer is n float32 in device memory.
type DeviceBuffer struct {
	c   *Context
	ptr devPtr
	n   int
}

// Alloc allocates n float32 on the device (contents undefined).
func (c *Context) Alloc(n int) (*DeviceBuffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("cuda: Alloc(%d)", n)
	}
	p, err := c.alloc(4 * max(n, 1))
	if err != nil {
		return nil, err
	}
	return &DeviceBuffer{c: c, ptr: p, n: n}, nil
}

// Len returns the number of float32.
func (b *DeviceBuffer) Len() int { return b.n }

// Upload copies x to the start of the buffer (after the queued work).
func (b *DeviceBuffer) Upload(x []float32) error {
	if len(x) > b.n {
		return fmt.Errorf("cuda: Upload of %d floats into a buffer of %d", len(x), b.n)
	}
	return shimHtoD(b.ptr, x)
}

// Download copies the start of the buffer to dst (after the queued work).
func (b *DeviceBuffer) Download(dst []float32) error {
	if len(dst) > b.n {
		return fmt.Errorf("cuda: Download of %d floats from a buffer of %d", len(dst), b.n)
	}
	return shimDtoH(dst, b.ptr)
}

// Free returns the buffer to the context's cache.
func (b *DeviceBuffer) Free() {
	if b.ptr != 0 {
		b.c.free(b.ptr)
		b.ptr = 0
	}
}

// Timer measures device time on the context's stream with two events.
type Timer struct {
	start, stop event
	c           *Context
}

// NewTimer returns a Timer.
func (c *Context) NewTimer() (*Timer, error) {
	a, err := shimEventCreate()
	if err != nil {
		return nil, err
	}
	b, err := shimEventCreate()
	if err != nil {
		shimEventDestroy(a)
		return nil, err
	}
	return &Timer{start: a, stop: b, c: c}, nil
}

// Start records the start event on the stream.
func (t *Timer) Start() error { return shimEventRecord(t.start, t.c.stream) }

// Stop records the stop event, waits for it and returns the milliseconds
// between the two events.
func (t *Timer) Stop() (float64, error) {
	if err := shimEventRecord(t.stop, t.c.stream); err != nil {
		return 0, err
	}
	return shimEventElapsed(t.start, t.stop)
}

// Free releases the events.
func (t *Timer) Free() {
	if t.start != nil {
		shimEventDestroy(t.start)
		shimEventDestroy(t.stop)
		t.start, t.stop = nil, nil
	}
}
