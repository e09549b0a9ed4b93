//go:build ignore

// Helpers shared by the x86 assembly generators (gemm_asmgen.go,
// bf16_asmgen.go, int8_asmgen.go): each runs as `go run GEN.go
// x86_asmgen.go` (see generate.go).

package main

import (
	"fmt"
	"math/bits"
	"os"
)

// write writes the file name: the generator's header, then body.
func write(name, body string) {
	if err := os.WriteFile(name, []byte(header+body), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// loopX86 emits the K loop of an x86 micro-kernel: CX steps, unroll (4) at
// a time with the A panel prefetched 16 steps ahead, then one at a time;
// step(u) emits step u of A (aStep bytes a step) and B (bStep), and the
// loop ends at the label store. With bAhead (a register, which the caller
// sets to the panel's size in bytes, k·bStep), the unrolled steps also
// prefetch into L2 the B lines one panel further on: the same rows of the next
// column panel, which the driver's loop over panels runs next. At batch
// sizes where the weights stream from memory (one image, one prompt) this
// overlaps the next panel's fetch with this panel's FMAs.
func loopX86(p func(string, ...any), step func(u int), unroll, aStep, bStep int, bAhead string) {
	p("\tMOVQ CX, DX")
	p("\tSHRQ $2, DX")
	p("\tJZ tail")
	p("loop4:")
	for off := 0; off < unroll*aStep; off += 64 {
		p("\tPREFETCHT0 %d(AX)", 16*aStep+off)
	}
	if bAhead != "" {
		for off := 0; off < unroll*bStep; off += 64 {
			p("\tPREFETCHT1 %d(BX)(%s*1)", off, bAhead)
		}
	}
	for u := 0; u < unroll; u++ {
		step(u)
	}
	p("\tADDQ $%d, AX", unroll*aStep)
	p("\tADDQ $%d, BX", unroll*bStep)
	p("\tDECQ DX")
	p("\tJNZ loop4")
	p("tail:")
	p("\tANDQ $3, CX")
	p("\tJZ store")
	p("loop1:")
	step(0)
	p("\tADDQ $%d, AX", aStep)
	p("\tADDQ $%d, BX", bStep)
	p("\tDECQ CX")
	p("\tJNZ loop1")
	p("store:")
}

// panelAhead, when on, emits the setting of reg to the B panel's size in
// bytes (CX steps of bStep bytes, bStep a power of two) for loopX86's
// prefetch of the next panel, and returns reg; otherwise it returns "".
func panelAhead(p func(string, ...any), on bool, reg string, bStep int) string {
	if !on {
		return ""
	}
	p("\t// %s: the B panel's size in bytes (steps·%d), the distance to the next panel.", reg, bStep)
	p("\tMOVQ CX, %s", reg)
	p("\tSHLQ $%d, %s", bits.TrailingZeros(uint(bStep)), reg)
	return reg
}

// storeX86 writes C = alpha·acc, or float32(alpha·acc) + float32(beta·C)
// unless beta is 0 (either sign). Registers alpha, beta and tmp are free.
func storeX86(p func(string, ...any), reg string, vw, rows, nv int, acc func(i, v int) int, alpha, beta, tmp int) {
	p("\tVBROADCASTSS alpha+40(FP), %s%d", reg, alpha)
	for i := 0; i < rows; i++ {
		for v := 0; v < nv; v++ {
			p("\tVMULPS %s%d, %s%d, %s%d", reg, alpha, reg, acc(i, v), reg, acc(i, v))
		}
	}
	storeBetaX86(p, reg, vw, rows, nv, acc, "beta+44(FP)", beta, tmp)
}

// storeBetaX86 writes C = acc, or acc + float32(beta·C) unless beta (the
// float32 argument at betaArg) is 0 (either sign). Registers beta and tmp
// are free.
func storeBetaX86(p func(string, ...any), reg string, vw, rows, nv int, acc func(i, v int) int, betaArg string, beta, tmp int) {
	p("\t// beta == 0 (either sign): C is write-only.")
	p("\tMOVL %s, DX", betaArg)
	p("\tANDL $0x7fffffff, DX")
	p("\tJZ nobeta")
	p("\tVBROADCASTSS %s, %s%d", betaArg, reg, beta)
	for i := 0; i < rows; i++ {
		for v := 0; v < nv; v++ {
			p("\tVMULPS %d(DI), %s%d, %s%d", v*vw, reg, beta, reg, tmp)
			p("\tVADDPS %s%d, %s%d, %s%d", reg, tmp, reg, acc(i, v), reg, acc(i, v))
			p("\tVMOVUPS %s%d, %d(DI)", reg, acc(i, v), v*vw)
		}
		if i < rows-1 {
			p("\tADDQ R8, DI")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("nobeta:")
	for i := 0; i < rows; i++ {
		for v := 0; v < nv; v++ {
			p("\tVMOVUPS %s%d, %d(DI)", reg, acc(i, v), v*vw)
		}
		if i < rows-1 {
			p("\tADDQ R8, DI")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
}
