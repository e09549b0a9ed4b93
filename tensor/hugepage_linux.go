package tensor

import (
	"syscall"
	"unsafe"
)

// madvCollapse is MADV_COLLAPSE (Linux 6.1), which package syscall lacks.
const madvCollapse = 25

// collapse asks the kernel to back the n bytes at p (p and n multiples of
// hugePage, already written) with transparent huge pages now. Failure (an
// older kernel, THP disabled, no free huge page) is not an error: the
// buffer keeps its pages.
func collapse(p unsafe.Pointer, n int) {
	_ = syscall.Madvise(unsafe.Slice((*byte)(p), n), madvCollapse)
}
