//go:build unix

package tensor

import "syscall"

// processCPUNanos returns the CPU time (user + system) used by this process,
// for benchmark figures that do not depend on how much of the machine other
// processes take.
func processCPUNanos() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
