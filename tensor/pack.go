package tensor

// Packing for the GEMM driver. A block of op(A) (mb rows × kb columns) is
// stored as ceil(mb/mr) panels of kb×mr floats, panel p at p*kb*mr, element
// (i, l) of the panel at l*mr+i; a block of op(B) (kb rows × nb columns) as
// ceil(nb/nr) panels of kb×nr floats, element (l, j) at l*nr+j. Rows (or
// columns) past the edge of the matrix are zero, so the micro-kernel always
// computes whole tiles. All four transpose combinations reduce to two loops:
// gatherPanel (the panel's short side runs across rows of the source: A
// untransposed, B transposed) and copyPanel (it runs along a row: A
// transposed, B untransposed).

// packA packs rows [i0, i0+mb) and columns [l0, l0+kb) of op(A) into dst.
func packA(trans bool, a []float32, lda, i0, mb, l0, kb, mr int, dst []float32) {
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
