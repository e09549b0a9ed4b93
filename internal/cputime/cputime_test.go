//go:build unix

package cputime

import "testing"

func TestProcessAdvances(t *testing.T) {
	t0 := Process()
	x := 1.0
	for i := 0; Process()-t0 < 20e6 && i < 1e9; i++ { // 20 ms of CPU
		x = x*1.0000001 + 1e-9
	}
	if d := Process() - t0; d < 20e6 {
		t.Fatalf("CPU time advanced %v after a busy loop (x=%g)", d, x)
	}
}
