//go:build amd64 && !noasm

package tensor

import "testing"

func TestAVX512MC(t *testing.T) {
	for _, c := range []struct{ l2, want int }{{-1, 336}, {0, 336}, {512 << 10, 336}, {1 << 20, 336}, {2 << 20, 672}, {4 << 20, 1008}, {32 << 20, 1008}} {
		if got := avx512MC(c.l2); got != c.want || got%14 != 0 {
			t.Errorf("avx512MC(%d) = %d, want %d", c.l2, got, c.want)
		}
	}
}
