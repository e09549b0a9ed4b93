package tensor

import (
	"syscall"
	"unsafe"
)

// adviseHuge asks for transparent huge pages over the n bytes at p (p and n
// multiples of hugePage). Failure (THP compiled out or set to "never") is
// not an error: the buffer is then an ordinary one.
func adviseHuge(p unsafe.Pointer, n int) {
	if n > 0 {
		_ = syscall.Madvise(unsafe.Slice((*byte)(p), n), syscall.MADV_HUGEPAGE)
	}
}
