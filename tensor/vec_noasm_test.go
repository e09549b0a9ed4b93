//go:build noasm || !(amd64 || arm64)

package tensor

func vecExpectedVariants() []string { return []string{Generic} }
