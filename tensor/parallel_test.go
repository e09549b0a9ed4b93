package tensor

import (
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
)

// TestParallel checks that Parallel calls fn once per index with a worker
// number below W, for awkward sizes and worker counts, back to back (the
// workers spinning) and after the workers have parked, from nested and
// concurrent callers.
func TestParallel(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	check := func(t *testing.T, n, W int) {
		t.Helper()
		hits := make([]atomic.Int32, n)
		var bad atomic.Int32
		maxW := W
		if maxW <= 0 {
			maxW = runtime.GOMAXPROCS(0)
		}
		Parallel(n, W, func(w, i int) {
			if w < 0 || w >= maxW {
				bad.Add(1)
			}
			hits[i].Add(1)
		})
		if bad.Load() != 0 {
			t.Fatalf("n=%d W=%d: %d calls with a worker number outside [0,%d)", n, W, bad.Load(), maxW)
		}
		for i := range hits {
			if h := hits[i].Load(); h != 1 {
				t.Fatalf("n=%d W=%d: index %d called %d times", n, W, i, h)
			}
		}
	}
	for _, n := range []int{0, 1, 2, 3, 7, 33, 1000} {
		for _, W := range []int{0, 1, 2, 3, 4, 9} {
			check(t, n, W)
		}
	}
	time.Sleep(3 * defaultSpin) // the workers park
	check(t, 65, 4)
	check(t, 7, 2)
	time.Sleep(3 * defaultSpin)
	check(t, 7, 3)

	// Nested: the inner regions run on their callers.
	var inner atomic.Int32
	Parallel(8, 4, func(_, _ int) {
		Parallel(5, 4, func(w, _ int) {
			if w != 0 {
				t.Errorf("nested region ran on worker %d", w)
			}
			inner.Add(1)
		})
	})
	if inner.Load() != 40 {
		t.Fatalf("nested: %d inner calls, want 40", inner.Load())
	}

	// Concurrent callers: each gets all of its indices.
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 200; r++ {
				check(t, 1+r%17, 1+r%4)
			}
		}()
	}
	wg.Wait()
}

// TestParallelGEMMThreads checks that a GEMM split over more parts than
// GOMAXPROCS (forced thread grids) still computes every tile, against the
// one-thread result bit for bit.
func TestParallelGEMMThreads(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	kr := sgemmK.Fn()
	m, n, k := 65, 1000, 33
	r := rand.New(rand.NewPCG(3, 3))
	a, b := randSlice(r, m*k), randSlice(r, k*n)
	want := make([]float32, m*n)
	g := gemmArgs{m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n, c: want, ldc: n, forceThreads: 1}
	g.run(kr, nil)
	for _, threads := range []int{2, 3, 5, 8} {
		got := make([]float32, m*n)
		g := gemmArgs{m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n, c: got, ldc: n, forceThreads: threads}
		g.run(kr, nil)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("threads=%d: C[%d] = %v, one thread %v", threads, i, got[i], want[i])
			}
		}
	}
}

func TestParseSpin(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", defaultSpin, true},
		{"0", 0, true},
		{"0s", 0, true},
		{"50us", 50 * time.Microsecond, true},
		{"1ms", time.Millisecond, true},
		{"1s", time.Second, true},
		{"2s", defaultSpin, false},
		{"-1ms", defaultSpin, false},
		{"fast", defaultSpin, false},
		{"200", defaultSpin, false},
	} {
		got, err := parseSpin(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("parseSpin(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), EnvSpin) {
			t.Errorf("parseSpin(%q): error %q does not name %s", tc.in, err, EnvSpin)
		}
	}
}

// TestParallelNoSpin runs regions with the workers parking at once.
func TestParallelNoSpin(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	defer spinFor.Store(spinFor.Load())
	spinFor.Store(0)
	for r := 0; r < 300; r++ {
		var sum atomic.Int64
		Parallel(5+r%9, 3, func(_, i int) { sum.Add(int64(i)) })
		n := int64(5 + r%9)
		if sum.Load() != n*(n-1)/2 {
			t.Fatalf("round %d: sum %d", r, sum.Load())
		}
	}
}

// TestPackedSharedA checks the pre-packed path split over columns, where
// op(A) is packed once for all parts (packAllA), against one thread bit for
// bit, with A plain and transposed, an epilogue, and awkward sizes.
func TestPackedSharedA(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	kr := sgemmK.Fn()
	r := rand.New(rand.NewPCG(5, 5))
	for _, sh := range [][3]int{{1, 300, 1000}, {7, 33, 65}, {50, 768, 768}, {65, 1000, 333}, {77, 512, 2048}} {
		m, k, n := sh[0], sh[1], sh[2]
		w := randSlice(r, n*k)
		pb := PackB(blas.Trans, k, n, w, k)
		bias := randSlice(r, n)
		for _, tA := range []bool{false, true} {
			a := randSlice(r, m*k)
			lda := k
			if tA {
				lda = m
			}
			run := func(threads int) []float32 {
				c := make([]float32, m*n)
				g := gemmArgs{tA: tA, m: m, k: k, n: n, alpha: 1, a: a, lda: lda, c: c, ldc: n, hasEp: true,
					ep: Epilogue{Bias: bias, Act: ActQuickGELU}, ldr: n, forceThreads: threads}
				g.run(kr, pb.layoutFor(kr))
				return c
			}
			want := run(1)
			for _, threads := range []int{2, 3, 7} {
				got := run(threads)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%v tA=%v threads=%d: C[%d] = %v, one thread %v", sh, tA, threads, i, got[i], want[i])
					}
				}
			}
		}
	}
}
