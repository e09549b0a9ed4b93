//go:build !amd64

package main

import (
	"fmt"
	"os"
	"runtime"
)

// fmapeak measures amd64 instructions (AVX-512 FMA and VNNI) only; on
// other architectures it builds, so that the module does, and says so.
func init() {
	fmt.Fprintf(os.Stderr, "fmapeak: measures amd64 AVX-512 FMA and VNNI; this is %s/%s\n", runtime.GOOS, runtime.GOARCH)
	os.Exit(1)
}

func fmaZ(int)    {}
func fmaY(int)    {}
func dpbusdZ(int) {}
func dpbf16Z(int) {}
