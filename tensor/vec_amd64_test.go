//go:build !noasm

package tensor

// vecExpectedVariants lists the variants the assembly ops must have here
// (AVX512 also requires avx512SelfCheck to pass).
func vecExpectedVariants() []string {
	v := []string{Generic}
	if cpuAVX2 {
		v = append(v, AVX2)
	}
	if cpuAVX512 {
		v = append(v, AVX512)
	}
	return v
}
