package tensor

// Packing for the GEMM driver. A block of op(A) (mb rows × kb columns) is
// stored as ceil(mb/mr) panels of kb×mr floats, panel p at p*kb*mr, element
// (i, l) of the panel at l*mr+i; a block of op(B) (kb rows × nb columns) as
// ceil(nb/nr) panels of kb×nr floats, element (l, j) at l*nr+j. Rows (or
// columns) past the edge of the matrix are zero, so the micro-kernel always
// computes whole tiles. All four transpose combinations reduce to two loops:
// gatherPanel (the panel's short side runs across rows of the source: A
// untransposed, B transposed) and copyPanel (it runs along a row: A
// transposed, B untransposed). On amd64 their inner loops are SSE assembly
// (pack_amd64.s: 4×4 transposes for gatherPanel, whole 6- and 16-float
// rows for copyPanel, and copySpread for transposed A); elsewhere, and with
// -tags noasm, plain Go. Packing only moves floats, so GEMM results do not
// depend on which loops ran.

// packA packs rows [i0, i0+mb) and columns [l0, l0+kb) of op(A) into dst.
func packA(trans bool, a []float32, lda, i0, mb, l0, kb, mr int, dst []float32) {
	if trans && copySpread(dst, a, lda, i0, mb, l0, kb, mr) {
		return
	}
	for p := 0; p*mr < mb; p++ {
		rows := min(mr, mb-p*mr)
		d := dst[p*kb*mr : (p+1)*kb*mr]
		if trans {
			copyPanel(d, a, lda, i0+p*mr, rows, l0, kb, mr)
		} else {
			gatherPanel(d, a, lda, i0+p*mr, rows, l0, kb, mr)
		}
	}
}

// packB packs rows [l0, l0+kb) and columns [j0, j0+nb) of op(B) into dst.
func packB(trans bool, b []float32, ldb, l0, kb, j0, nb, nr int, dst []float32) {
	for p := 0; p*nr < nb; p++ {
		cols := min(nr, nb-p*nr)
		d := dst[p*kb*nr : (p+1)*kb*nr]
		if trans {
			gatherPanel(d, b, ldb, j0+p*nr, cols, l0, kb, nr)
		} else {
			copyPanel(d, b, ldb, j0+p*nr, cols, l0, kb, nr)
		}
	}
}

// gatherPanel sets d[l*w+r] = src[(p0+r)*ld+q0+l] for r < rows, l < kb, and
// zero for rows ≤ r < w.
func gatherPanel(d, src []float32, ld, p0, rows, q0, kb, w int) {
	d = d[:kb*w]
	r := 0
	if packAsm && kb >= 4 {
		// SSE 4×4 (and 2×4) transposes over the first 4·kb4 columns of
		// rows in groups of 4 (then 2); the slices bound what they touch.
		kb4 := kb / 4
		for ; r+4 <= rows; r += 4 {
			s := src[(p0+r)*ld+q0 : (p0+r+3)*ld+q0+kb]
			_ = d[(kb-1)*w+r+3]
			gatherRows4(&d[r], &s[0], ld, kb4, w)
		}
		if r+2 <= rows {
			s := src[(p0+r)*ld+q0 : (p0+r+1)*ld+q0+kb]
			_ = d[(kb-1)*w+r+1]
			gatherRows2(&d[r], &s[0], ld, kb4, w)
			r += 2
		}
		for i := 0; i < r; i++ {
			s := src[(p0+i)*ld+q0:][:kb]
			for l := kb4 * 4; l < kb; l++ {
				d[l*w+i] = s[l]
			}
		}
	}
	for ; r+4 <= rows; r += 4 {
		s0 := src[(p0+r)*ld+q0:][:kb]
		s1 := src[(p0+r+1)*ld+q0:][:kb]
		s2 := src[(p0+r+2)*ld+q0:][:kb]
		s3 := src[(p0+r+3)*ld+q0:][:kb]
		o := r
		for l := range s0 {
			q := d[o : o+4 : o+4]
			q[0], q[1], q[2], q[3] = s0[l], s1[l], s2[l], s3[l]
			o += w
		}
	}
	for ; r < rows; r++ {
		s := src[(p0+r)*ld+q0:][:kb]
		o := r
		for _, v := range s {
			d[o] = v
			o += w
		}
	}
	if rows < w {
		for l := 0; l < kb; l++ {
			clear(d[l*w+rows : (l+1)*w])
		}
	}
}

// copyPanel sets d[l*w+r] = src[(q0+l)*ld+p0+r] for r < rows, l < kb, and
// zero for rows ≤ r < w.
func copyPanel(d, src []float32, ld, p0, rows, q0, kb, w int) {
	d = d[:kb*w]
	if rows == w {
		if packAsm && (w == 6 || w == 16) {
			// Whole panels of the AVX2 kernel's widths: SSE moves
			// instead of a memmove call per row of w floats.
			s := src[q0*ld+p0 : (q0+kb-1)*ld+p0+w]
			if w == 6 {
				copyRows6(&d[0], &s[0], ld, kb)
			} else {
				copyRows16(&d[0], &s[0], ld, kb)
			}
			return
		}
		for l := 0; l < kb; l++ {
			copy(d[l*w:(l+1)*w], src[(q0+l)*ld+p0:][:w])
		}
		return
	}
	for l := 0; l < kb; l++ {
		row := d[l*w : (l+1)*w]
		copy(row, src[(q0+l)*ld+p0:][:rows])
		clear(row[rows:])
	}
}

// packSpread enables copySpread (a variable so benchmarks can compare).
var packSpread = true

// copySpread is copyPanel for all ceil(rows/w) panels at once, for
// transposed A with the AVX2 kernel's mr = 6: it walks the source one row
// (l) at a time, spreading each row's run of whole panels with one call, so
// the source is read in long runs (a page at a time rather than kb pages
// per panel: BenchmarkPack/A/mr=6/trans=true 3-4× faster on Zen 1, where
// the AVX2 kernel runs; on an Emerald Rapids Xeon, whose default avx512
// kernel (mr = 14) does not use it, it measured 3× slower than panel by
// panel, 5.5 against 17 GB/s). It reports false, doing nothing, otherwise.
// (For B's 16-float panels it measured no better than copyPanel.)
func copySpread(dst, src []float32, ld, p0, rows, q0, kb, w int) bool {
	if !packAsm || !packSpread || w != 6 || kb <= 0 {
		return false
	}
	np := rows / w // whole panels
	if np > 0 {
		_ = dst[(np-1)*kb*w+kb*w-1]
		for l := 0; l < kb; l++ {
			s := src[(q0+l)*ld+p0:][:np*6]
			copySpread6(&dst[l*6], &s[0], np, kb*6)
		}
	}
	if rows > np*w {
		copyPanel(dst[np*kb*w:(np+1)*kb*w], src, ld, p0+np*w, rows-np*w, q0, kb, w)
	}
	return true
}
