//go:build !noasm

package tensor

// vecExpectedVariants lists the variants the assembly ops must have here.
func vecExpectedVariants() []string {
	v := []string{Generic}
	if cpuAVX2 {
		v = append(v, AVX2)
	}
	return v
}
