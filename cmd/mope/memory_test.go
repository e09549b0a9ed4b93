package main

import (
	"runtime/debug"
	"testing"
)

// gcPercent reads the collector's current target.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestTightenGC(t *testing.T) {
	before := gcPercent()
	for _, c := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"default", nil, evalGCPercent},
		{"GOGC set", map[string]string{"GOGC": "200"}, before},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, before},
	} {
		t.Run(c.name, func(t *testing.T) {
			restore := tightenGC(func(k string) string { return c.env[k] })
			if got := gcPercent(); got != c.want {
				t.Errorf("GC percent %d during eval, want %d", got, c.want)
			}
			restore()
			if got := gcPercent(); got != before {
				t.Errorf("GC percent %d after restore, want %d", got, before)
			}
		})
	}
}
