//go:build !noasm

package tensor

// vecExpectedVariants lists the variants the assembly ops must have here.
func vecExpectedVariants() []string { return []string{Generic, NEON} }
