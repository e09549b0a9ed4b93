//go:build cuda

package cuda

// scatterAddRows launches scatter_add_rows (kernels/rows.cu): rows of n,
// U distinct targets with their source rows in the CSR table (offsets
// [U+1], rows ascending per target).
func (c *Context) scatterAddRows(dst, src devPtr, n int, targets, offsets, rows devPtr, U int) error {
	if U == 0 || n == 0 {
		return nil
	}
	return c.launch("scatter_add_rows", gridStride(int64(U)*int64(n), 256), dim3{256, 1, 1}, 0,
		newArgs().p(dst).p(src).i(n).p(targets).p(offsets).p(rows).i(U))
}

// scatterTable groups the source rows of a scatter by target: the distinct
// targets in order of first appearance, and for each its source rows in
// ascending order (CSR: offsets has one entry per target plus one).
func scatterTable(idx []int) (targets, offsets, rows []int32) {
	slot := map[int]int{}
	var count []int32
	for _, i := range idx {
		s, ok := slot[i]
		if !ok {
			s = len(targets)
			slot[i] = s
			targets = append(targets, int32(i))
			count = append(count, 0)
		}
		count[s]++
	}
	offsets = make([]int32, len(targets)+1)
	for s, c := range count {
		offsets[s+1] = offsets[s] + c
	}
	next := append([]int32(nil), offsets[:len(targets)]...)
	rows = make([]int32, len(idx))
	for r, i := range idx {
		s := slot[i]
		rows[next[s]] = int32(r)
		next[s]++
	}
	return targets, offsets, rows
}
