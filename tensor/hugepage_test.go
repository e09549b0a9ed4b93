package tensor

import (
	"testing"
	"unsafe"
)

// TestWeightBuf checks weightBuf's length, capacity, zeroing and alignment
// (64 bytes; 2 MiB from hugeMin bytes on), for each element type the
// packers use, on sizes around the threshold.
func TestWeightBuf(t *testing.T) {
	check := func(t *testing.T, n, size int, p unsafe.Pointer, ln, cp int, zero bool) {
		t.Helper()
		if ln != n || cp != n {
			t.Fatalf("n=%d: len %d cap %d", n, ln, cp)
		}
		want := 64
		if n*size >= hugeMin {
			want = hugePage
		}
		if n > 0 && uintptr(p)%uintptr(want) != 0 {
			t.Fatalf("n=%d (%d bytes): start %#x not %d-aligned", n, n*size, uintptr(p), want)
		}
		if !zero {
			t.Fatalf("n=%d: not zeroed", n)
		}
	}
	for _, n := range []int{1, 7, 33, 1000, hugeMin/4 - 1, hugeMin / 4, hugeMin/4 + 7, 3 * hugeMin / 4} {
		f := weightBuf[float32](n)
		check(t, n, 4, unsafe.Pointer(&f[0]), len(f), cap(f), allZero(f))
		f[n-1] = 1 // writable to the end
		u := weightBuf[uint32](n)
		check(t, n, 4, unsafe.Pointer(&u[0]), len(u), cap(u), allZero(u))
		b := weightBuf[byte](n)
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
