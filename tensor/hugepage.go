package tensor

import "unsafe"

// Packed weight matrices are read once per forward pass, in order, from
// buffers larger than the caches: at batch 1 a ViT-B/32 tower streams
// 350 MB of float32 weights per image. With 4 KiB pages the hardware
// prefetchers stop at every page boundary and every page costs a TLB
// entry; with 2 MiB pages they run on. weightBuf gives such buffers a
// 2 MiB-aligned start and, on Linux, asks the kernel for transparent huge
// pages over them (madvise MADV_HUGEPAGE, which works under the common
// "madvise" THP setting; the pages are faulted in when packing writes
// them). Smaller buffers, and other systems, get 64-byte alignment only.

// hugePage is the size of an x86-64 / arm64 transparent huge page.
const hugePage = 2 << 20

// hugeMin is the buffer size from which weightBuf aligns to hugePage: the
// head skipped to align (never touched, so never resident) is then at most
// half the buffer's size in address space.
const hugeMin = 2 * hugePage

// weightBuf returns n zeroed elements of T (a plain-data type) for a packed
// weight matrix, 64-byte aligned, and 2 MiB aligned with huge pages asked
// for when the buffer spans at least hugeMin bytes.
func weightBuf[T any](n int) []T {
	var zero T
	size := int(unsafe.Sizeof(zero))
	align := 64
	if n*size >= hugeMin {
		align = hugePage
	}
	s := make([]T, n+align/size)
	addr := int(uintptr(unsafe.Pointer(&s[0])))
	off := 0
	if r := addr % align; r != 0 {
		off = (align - r) / size
	}
	s = s[off : off+n : off+n]
	if align == hugePage {
		adviseHuge(unsafe.Pointer(&s[0]), n*size/hugePage*hugePage)
	}
	return s
}
