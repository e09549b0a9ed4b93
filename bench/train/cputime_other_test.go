//go:build !unix

package train

// cpuSeconds is unavailable here; the tokens/cpu-s metric is then omitted.
func cpuSeconds() float64 { return 0 }
