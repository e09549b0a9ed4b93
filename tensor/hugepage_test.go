package tensor

import (
	"testing"
	"unsafe"
)

// TestAligned checks aligned's length, capacity, zeroing and 64-byte
// alignment, for each element type the packers use, on sizes around the
// huge-page threshold, and that collapseHuge leaves the contents as they
// were.
func TestAligned(t *testing.T) {
	check := func(t *testing.T, n, size int, p unsafe.Pointer, ln, cp int, zero bool) {
		t.Helper()
		if ln != n || cp != n {
			t.Fatalf("n=%d: len %d cap %d", n, ln, cp)
		}
		if uintptr(p)%64 != 0 {
			t.Fatalf("n=%d (%d bytes): start %#x not 64-byte aligned", n, n*size, uintptr(p))
		}
		if !zero {
			t.Fatalf("n=%d: not zeroed", n)
		}
	}
	for _, n := range []int{1, 7, 33, 1000, hugeMin/4 - 1, hugeMin / 4, hugeMin/4 + 7, 3 * hugeMin / 4} {
		f := aligned[float32](n)
		check(t, n, 4, unsafe.Pointer(&f[0]), len(f), cap(f), allZero(f))
		for i := range f {
			f[i] = float32(i % 1013)
		}
		collapseHuge(f)
		for i := range f {
			if f[i] != float32(i%1013) {
				t.Fatalf("n=%d: collapseHuge changed element %d", n, i)
			}
		}
		u := aligned[uint32](n)
		check(t, n, 4, unsafe.Pointer(&u[0]), len(u), cap(u), allZero(u))
		b := aligned[byte](n)
		check(t, n, 1, unsafe.Pointer(&b[0]), len(b), cap(b), allZero(b))
	}
}

func allZero[T comparable](s []T) bool {
	var z T
	for _, v := range s {
		if v != z {
			return false
		}
	}
	return true
}

func TestSetHugePages(t *testing.T) {
	if !SetHugePages(false) {
		t.Fatal("huge pages were off by default")
	}
	if SetHugePages(true) {
		t.Fatal("SetHugePages(false) did not turn them off")
	}
	if !SetHugePages(true) {
		t.Fatal("SetHugePages(true) did not turn them on")
	}
}
