package tensor

import (
	"sync/atomic"
	"unsafe"
)

// Packed weight matrices are read once per forward pass, in order, from
// buffers larger than the caches: at batch 1 a ViT-B/32 tower streams
// 350 MB of float32 weights per image. With 4 KiB pages the hardware
// prefetchers stop at every page boundary and every page costs a TLB
// entry; with 2 MiB pages they run on. So once a large weight buffer is
// packed, collapseHuge asks the kernel (Linux 6.1 and later: madvise
// MADV_COLLAPSE) to move the buffer's whole 2 MiB pages into transparent
// huge pages, there and then. This does not mark the address range for
// huge pages (MADV_HUGEPAGE would): when the buffer is freed and the Go heap
// reuses the range for small objects, their pages stay 4 KiB. The
// head and tail of a buffer, under 2 MiB each, keep 4 KiB pages; a kernel
// without MADV_COLLAPSE, or THP set to "never", leaves all of it so.

// hugeOff turns collapseHuge off (SetHugePages).
var hugeOff atomic.Bool

// SetHugePages turns the huge-page collapse of packed weights on or off for
// the process (on by default) and returns the previous setting. It pays at
// small batches, where the weights stream from memory. Long runs of large
// batches (MoPE scoring, evaluation) are compute-bound, gain nothing from it,
// and peak higher with it: the Go heap keeps freed huge pages resident for
// longer (12 ViT-B/32 modules scored on 1,000 pairs peaked at 1.91–1.96 GiB
// with them, 1.76–1.87 GiB without, in three runs each).
func SetHugePages(on bool) (was bool) { return !hugeOff.Swap(!on) }

// hugePage is the size of an x86-64 / arm64 transparent huge page.
const hugePage = 2 << 20

// hugeMin is the buffer size from which collapseHuge acts: at least one
// whole huge page then lies inside the buffer.
const hugeMin = 2 * hugePage

// collapseHuge moves the whole 2 MiB pages of a packed buffer s into huge
// pages when s spans at least hugeMin bytes (see above); the contents are
// unchanged.
func collapseHuge[T any](s []T) {
	var zero T
	n := len(s) * int(unsafe.Sizeof(zero))
	if n < hugeMin || hugeOff.Load() {
		return
	}
	start := int(uintptr(unsafe.Pointer(&s[0])))
	lo := (start + hugePage - 1) / hugePage * hugePage
	hi := (start + n) / hugePage * hugePage
	if hi > lo {
		collapse(unsafe.Add(unsafe.Pointer(&s[0]), lo-start), hi-lo)
	}
}
