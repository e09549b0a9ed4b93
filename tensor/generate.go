package tensor

// The assembly kernels are generated (and committed); `go generate
// ./tensor/` rewrites them, and `make generate-check` (part of make test)
// fails when the committed files differ from what the generators write.

//go:generate go run gemm_asmgen.go x86_asmgen.go
//go:generate go run bf16_asmgen.go x86_asmgen.go
//go:generate go run int8_asmgen.go x86_asmgen.go
