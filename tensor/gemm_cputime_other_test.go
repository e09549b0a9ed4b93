//go:build !unix

package tensor

func processCPUNanos() int64 { return 0 }
