//go:build cuda

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
)

// devPtr is a device address (CUdeviceptr).
type devPtr uint64

// cuBLAS compute types.
const (
	blasCompute32F     = 68 // CUBLAS_COMPUTE_32F
	blasCompute32FTF32 = 77 // CUBLAS_COMPUTE_32F_FAST_TF32
)

// args packs kernel arguments as the CUDA ABI lays them out (each value at
// its natural alignment) and records their kinds for the signature check.
type args struct {
	buf     []byte
	kinds   []byte
	offsets []int32 // where each argument starts in buf
}

// align pads buf to a multiple of n and records the next argument's offset.
func (a *args) align(n int) {
	for len(a.buf)%n != 0 {
		a.buf = append(a.buf, 0)
	}
	a.offsets = append(a.offsets, int32(len(a.buf)))
}

// p appends a device pointer (0 is the null pointer).
func (a *args) p(v devPtr) *args {
	a.align(8)
	a.buf = binary.LittleEndian.AppendUint64(a.buf, uint64(v))
	a.kinds = append(a.kinds, 'p')
	return a
}

// q appends a 64-bit integer.
func (a *args) q(v int64) *args {
	a.align(8)
	a.buf = binary.LittleEndian.AppendUint64(a.buf, uint64(v))
	a.kinds = append(a.kinds, 'q')
	return a
}

// i appends a 32-bit int (panics when v does not fit).
func (a *args) i(v int) *args {
	if v != int(int32(v)) {
		panic(fmt.Sprintf("cuda: kernel argument %d does not fit an int", v))
	}
	a.align(4)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, uint32(int32(v)))
	a.kinds = append(a.kinds, 'i')
	return a
}

// b appends a bool as an int.
func (a *args) b(v bool) *args {
	if v {
		return a.i(1)
	}
	return a.i(0)
}

// f appends a float32.
func (a *args) f(v float32) *args {
	a.align(4)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, math.Float32bits(v))
	a.kinds = append(a.kinds, 'f')
	return a
}

// d appends a float64.
func (a *args) d(v float64) *args {
	a.align(8)
	a.buf = binary.LittleEndian.AppendUint64(a.buf, math.Float64bits(v))
	a.kinds = append(a.kinds, 'd')
	return a
}

func newArgs() *args {
	return &args{buf: make([]byte, 0, 128), kinds: make([]byte, 0, 24), offsets: make([]int32, 0, 24)}
}

type dim3 [3]int

func grid1(n, block int) dim3 { return dim3{ceilDiv(n, block), 1, 1} }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// launch queues kernel name on the context's stream after checking the
// argument kinds against kernelSigs. A grid with a zero dimension is a no-op.
func (c *Context) launch(name string, grid, block dim3, shmem int, a *args) error {
	sig, ok := kernelSigs[name]
	if !ok {
		return fmt.Errorf("cuda: unknown kernel %s", name)
	}
	if string(a.kinds) != sig {
		return fmt.Errorf("cuda: kernel %s launched with arguments %q, its signature is %q", name, a.kinds, sig)
	}
	if grid[0] <= 0 || grid[1] <= 0 || grid[2] <= 0 {
		return nil
	}
	if grid[1] > 65535 || grid[2] > 65535 {
		return fmt.Errorf("cuda: kernel %s: grid %v exceeds 65535 in y or z", name, grid)
	}
	fn, ok := c.fns[name]
	if !ok {
		return fmt.Errorf("cuda: kernel %s not loaded", name)
	}
	if err := shimLaunch(fn, grid, block, shmem, c.stream, a.buf, a.offsets); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// gridStride returns the grid of a grid-stride kernel over n elements.
func gridStride(n int64, block int) dim3 {
	g := (n + int64(block) - 1) / int64(block)
	return dim3{int(min(max(g, 1), 65535*8)), 1, 1}
}
