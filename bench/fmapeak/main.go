// Command fmapeak measures the register-only multiply-add peak of one core
// (and of every core, one goroutine each): 512- and 256-bit FMA in GFLOP/s,
// 512-bit VPDPBUSD (int8) in GOP/s and, where the CPU has AVX-512 BF16,
// 512-bit VDPBF16PS in GFLOP/s (2 per bf16 product): the yardstick of the GEMM tables in
// bench/README.md, per wall second and per CPU second of the process (the
// steadier figure on a shared machine, comparable with the benchmarks'
// cpuGFLOP/s). It needs an amd64 CPU with AVX-512 F and VNNI.
//
//	go run ./bench/fmapeak [-secs 0.5] [-rounds 7]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/cpuid/v2"
)

// cpuSeconds is the CPU time this process has used (user + system).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func main() {
	secs := flag.Float64("secs", 0.3, "seconds per round")
	rounds := flag.Int("rounds", 7, "rounds per measurement (the median is printed)")
	flag.Parse()
	if flag.NArg() > 0 || !(*secs > 0 && *secs <= 60) || *rounds < 1 || *rounds > 1000 {
		fmt.Fprintln(os.Stderr, "fmapeak: usage: fmapeak [-secs S, 0 < S <= 60] [-rounds N, 1 <= N <= 1000]")
		os.Exit(2)
	}
	kinds := []struct {
		name string
		fn   func(int)
		ops  float64 // per iteration
		unit string
	}{
		{"512-bit FMA", fmaZ, 12 * 16 * 2, "GFLOP/s"},
		{"256-bit FMA", fmaY, 12 * 8 * 2, "GFLOP/s"},
		{"512-bit VPDPBUSD", dpbusdZ, 12 * 64 * 2, "GOP/s (int8 mul+add)"},
	}
	if cpuid.CPU.Supports(cpuid.AVX512BF16) {
		kinds = append(kinds, struct {
			name string
			fn   func(int)
			ops  float64
			unit string
		}{"512-bit VDPBF16PS", dpbf16Z, 12 * 32 * 2, "GFLOP/s (bf16 pairs: 2 per product)"})
	}
	for _, threads := range []int{1, runtime.NumCPU()} {
		for _, k := range kinds {
			// Calibrate the iteration count to about secs.
			n := 1 << 20
			for {
				t0 := time.Now()
				k.fn(n)
				if d := time.Since(t0).Seconds(); d > 0.05 {
					n = int(float64(n) * *secs / d)
					break
				}
				n *= 4
			}
			rates := make([]float64, *rounds)
			cpuRates := make([]float64, *rounds)
			for r := range rates {
				var wg sync.WaitGroup
				t0, c0 := time.Now(), cpuSeconds()
				for range threads {
					wg.Add(1)
					go func() { defer wg.Done(); k.fn(n) }()
				}
				wg.Wait()
				ops := k.ops * float64(n) * float64(threads)
				rates[r] = ops / time.Since(t0).Seconds() / 1e9
				cpuRates[r] = ops / (cpuSeconds() - c0) / 1e9
			}
			slices.Sort(rates)
			slices.Sort(cpuRates)
			fmt.Printf("%d thread(s) %-17s wall: median %7.1f max %7.1f; per CPU second: median %7.1f max %7.1f %s (%d rounds)\n",
				threads, k.name, rates[len(rates)/2], rates[len(rates)-1], cpuRates[len(rates)/2], cpuRates[len(rates)-1], k.unit, len(rates))
		}
	}
}
