package tensor

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// refQuant is the quantisation of int8.go by definition, in float64 where
// that is exact: scale = m/127 and inv = 127/m rounded to float32, q the
// nearest integer (ties to even) of the float32 product x·inv, clamped.
func refQuant(x []float32) ([]int64, float32) {
	var m float64
	for _, v := range x {
		if !math.IsNaN(float64(v)) {
			m = math.Max(m, math.Abs(float64(v)))
		}
	}
	q := make([]int64, len(x))
	if m == 0 {
		return q, 0
	}
	inv := float32(127 / m) // correctly rounded: m is a float32
	if math.IsInf(float64(inv), 1) {
		return q, 0
	}
	for i, v := range x {
		y := float64(v * inv)
		switch {
		case math.IsNaN(y) || y >= 127:
			q[i] = 127
		case y <= -127:
			q[i] = -127
		default:
			q[i] = int64(math.RoundToEven(y))
		}
	}
	return q, float32(m / 127)
}

// int8Ref is SgemmPackedInt8(Epilogue) by definition: op(A) (m×k, stride
// lda, transposed when tA) times op(B) (k×n from b, stride ldb, transposed
// when tB), quantised per row and per column, summed in int64, dequantised
// with the float32 roundings of int8.go, then the epilogue.
func int8Ref(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int, ep *Epilogue) {
	opA := func(i, l int) float32 {
		if tA {
			return a[l*lda+i]
		}
		return a[i*lda+l]
	}
	opB := func(l, j int) float32 {
		if tB {
			return b[j*ldb+l]
		}
		return b[l*ldb+j]
	}
	qa := make([][]int64, m)
	sa := make([]float32, m)
	for i := range qa {
		row := make([]float32, k)
		for l := range row {
			row[l] = opA(i, l)
		}
		qa[i], sa[i] = refQuant(row)
	}
	qb := make([][]int64, n)
	sb := make([]float32, n)
	for j := range qb {
		col := make([]float32, k)
		for l := range col {
			col[l] = opB(l, j)
		}
		qb[j], sb[j] = refQuant(col)
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s int64
			for l := 0; l < k; l++ {
				s += qa[i][l] * qb[j][l]
			}
			v := float32(float32(float32(s)*float32(alpha*sa[i])) * sb[j])
			if beta != 0 {
				v += float32(beta * c[i*ldc+j])
			}
			c[i*ldc+j] = v
		}
		if ep != nil {
			row := c[i*ldc : i*ldc+n]
			if ep.Bias != nil {
				AddBias(row, ep.Bias[:n])
			}
			switch ep.Act {
			case ActQuickGELU:
				QuickGELU(row, row)
			case ActGELU:
				GELU(row, row)
			}
		}
	}
}

func TestQuantizeInt8(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 1))
	for _, n := range []int{1, 7, 33, 65, 1000} {
		for trial := 0; trial < 20; trial++ {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64()) * float32(math.Ldexp(1, r.IntN(40)-20))
				if trial%5 == 1 {
					x[i] = float32(r.IntN(255) - 127) // exact multiples: ties and ±127
				}
				if trial%5 == 2 && i%3 == 0 {
					x[i] = 0
				}
			}
			if trial%5 == 3 {
				clear(x)
			}
			got := make([]int8, n+2)
			got[n], got[n+1] = 99, 99 // guards
			scale := QuantizeInt8(got[:n], x)
			want, wscale := refQuant(x)
			if math.Float32bits(scale) != math.Float32bits(wscale) {
				t.Fatalf("n=%d trial %d: scale %g, want %g", n, trial, scale, wscale)
			}
			for i := range want {
				if int64(got[i]) != want[i] {
					t.Fatalf("n=%d trial %d: q[%d] = %d, want %d (x %g)", n, trial, i, got[i], want[i], x[i])
				}
			}
			if got[n] != 99 || got[n+1] != 99 {
				t.Fatalf("n=%d: wrote past the end", n)
			}
		}
	}
	// NaN is ignored by the maximum and quantised as 127; a row whose
	// maximum is so small that 127/m overflows quantises to 0.
	for _, v := range int8Q.Variants() {
		for _, n := range []int{3, 19, 35} {
			x := make([]float32, n)
			x[0], x[1], x[2] = float32(math.NaN()), 2, -1
			q := make([]int8, n)
			s, sum := v.Fn(q, x)
			if s != 2.0/127 || q[0] != 127 || q[1] != 127 || q[2] != -64 || sum != 127+127-64 {
				t.Fatalf("%s: NaN row: scale %g q %v sum %d", v.Name, s, q, sum)
			}
			x[0], x[1], x[2] = 1e-38, -3e-39, 0
			if s, sum := v.Fn(q, x); s != 0 || sum != 0 || q[0] != 0 {
				t.Fatalf("%s: tiny row: scale %g q %v", v.Name, s, q)
			}
		}
	}
}

// TestInt8Quantizers: every quantiser variant gives the generic one's bits
// on awkward lengths, with guards past the end.
func TestInt8Quantizers(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 2))
	for _, v := range int8Q.Variants() {
		for _, n := range []int{1, 7, 15, 16, 17, 33, 65, 1000, 3072} {
			for trial := 0; trial < 10; trial++ {
				x := make([]float32, n)
				for i := range x {
					x[i] = float32(r.NormFloat64()) * float32(math.Ldexp(1, r.IntN(20)-10))
					if trial%3 == 1 {
						x[i] = float32(r.IntN(255)-127) / 2 // ties
					}
				}
				if trial == 2 {
					x[r.IntN(n)] = float32(math.NaN())
				}
				want := make([]int8, n)
				ws, wsum := quantizeGeneric(want, x)
				got := make([]int8, n+1)
				got[n] = 55
				gs, gsum := v.Fn(got[:n], x)
				if math.Float32bits(gs) != math.Float32bits(ws) || gsum != wsum || got[n] != 55 {
					t.Fatalf("%s n=%d: scale %g sum %d, want %g %d (guard %d)", v.Name, n, gs, gsum, ws, wsum, got[n])
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%s n=%d: q[%d] = %d, want %d", v.Name, n, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestSgemmPackedInt8 compares every variant, on awkward sizes and 1–3
// threads, with int8Ref bit for bit, with guard values around C.
func TestSgemmPackedInt8(t *testing.T) {
	const guard = float32(-7.25e30)
	forEachVariant(t, int8K, func(t *testing.T, kr *int8Kernel) {
		r := rand.New(rand.NewPCG(18, uint64(kr.mr)))
		sizes := []int{1, 7, 33, 65}
		type tc struct{ m, n, k int }
		var cases []tc
		for _, m := range sizes {
			for _, n := range sizes {
				for _, k := range []int{1, 3, 4, 7, 65} {
					cases = append(cases, tc{m, n, k})
				}
			}
		}
		cases = append(cases, tc{1000, 33, 7}, tc{50, 1000, 65}, tc{17, 40, 1000}, tc{77, 96, 512})
		for ci, cs := range cases {
			m, n, k := cs.m, cs.n, cs.k
			tA, tB := ci%2 == 1, ci%3 != 1
			lda, ldb, ldc := k+ci%3, n+1, n+2
			if tA {
				lda = m + ci%3
			}
			if tB {
				ldb = k + 2
			}
			rowsA, rowsB := m, k
			if tA {
				rowsA = k
			}
			if tB {
				rowsB = n
			}
			a := randSlice(r, rowsA*lda)
			b := randSlice(r, rowsB*ldb)
			for i := range a {
				if i%11 == 0 {
					a[i] *= 30 // outliers
				}
			}
			beta := []float32{0, 1, -0.6}[ci%3]
			alpha := []float32{1, 0.5, -1.25}[ci%3]
			var ep *Epilogue
			if ci%4 == 2 {
				ep = &Epilogue{Bias: randSlice(r, n), Act: []Activation{ActNone, ActQuickGELU, ActGELU}[ci%3]}
			}
			c0 := make([]float32, m*ldc+3)
			for i := range c0 {
				c0[i] = guard
			}
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					c0[i*ldc+j] = float32(r.NormFloat64())
				}
			}
			want := append([]float32(nil), c0...)
			int8Ref(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, want, ldc, ep)
			tbt := blas.NoTrans
			if tB {
				tbt = blas.Trans
			}
			tat := blas.NoTrans
			if tA {
				tat = blas.Trans
			}
			pb := PackBInt8(tbt, k, n, b, ldb)
			for threads := 1; threads <= 3; threads++ {
				got := append([]float32(nil), c0...)
				epv, hasEp := Epilogue{}, ep != nil
				if hasEp {
					epv = *ep
				}
				sgemmPackedInt8("test", tat, m, alpha, a, lda, pb, beta, got, ldc, hasEp, epv, threads)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("m=%d n=%d k=%d tA=%v tB=%v beta=%g threads=%d: c[%d] = %g, want %g", m, n, k, tA, tB, beta, threads, i, got[i], want[i])
					}
				}
			}
		}
	})
}

// TestPackedInt8Repack: a PackedInt8 made under one variant serves the
// others (repacked from its bytes), with the same results.
func TestPackedInt8Repack(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	m, n, k := 9, 70, 37
	a, b := randSlice(r, m*k), randSlice(r, n*k)
	pb := PackBInt8(blas.Trans, k, n, b, k)
	want := make([]float32, m*n)
	int8Ref(false, true, m, n, k, 1, a, k, b, k, 0, want, n, nil)
	forEachVariant(t, int8K, func(t *testing.T, kr *int8Kernel) {
		got := make([]float32, m*n)
		SgemmPackedInt8(blas.NoTrans, m, 1, a, k, pb, 0, got, n)
		if !bitsEqual(got, want) {
			t.Fatal("results differ from the reference")
		}
	})
	if pb.K() != k || pb.N() != n || len(pb.Scales()) != n || pb.Bytes() < k*n {
		t.Fatalf("K %d N %d scales %d bytes %d", pb.K(), pb.N(), len(pb.Scales()), pb.Bytes())
	}
}

// TestSgemmPackedInt8Accuracy: the int8 product is close to the float32
// one (relative Frobenius error well under 2% on Gaussian data).
func TestSgemmPackedInt8Accuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	m, n, k := 50, 96, 768
	a, b := randSlice(r, m*k), randSlice(r, n*k)
	pb := PackBInt8(blas.Trans, k, n, b, k)
	got := make([]float32, m*n)
	SgemmPackedInt8(blas.NoTrans, m, 1, a, k, pb, 0, got, n)
	want := make([]float32, m*n)
	sgemmRef(blas.NoTrans, blas.Trans, m, n, k, 1, a, k, b, k, 0, want, n)
	var num, den float64
	for i := range got {
		d := float64(got[i] - want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if e := math.Sqrt(num / den); e > 0.02 || e == 0 {
		t.Fatalf("relative error %g", e)
	}
}

func TestSgemmPackedInt8Panics(t *testing.T) {
	pb := PackBInt8(blas.NoTrans, 2, 2, []float32{1, 2, 3, 4}, 2)
	for name, f := range map[string]func(){
		"nil":       func() { SgemmPackedInt8(blas.NoTrans, 1, 1, []float32{1, 2}, 2, nil, 0, make([]float32, 2), 2) },
		"short A":   func() { SgemmPackedInt8(blas.NoTrans, 2, 1, []float32{1, 2}, 2, pb, 0, make([]float32, 4), 2) },
		"short C":   func() { SgemmPackedInt8(blas.NoTrans, 1, 1, []float32{1, 2}, 2, pb, 0, make([]float32, 1), 2) },
		"big K":     func() { PackBInt8(blas.NoTrans, Int8MaxK+1, 1, make([]float32, Int8MaxK+1), 1) },
		"bad trans": func() { PackBInt8('x', 1, 1, []float32{1}, 1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
