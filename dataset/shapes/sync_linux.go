package shapes

import "syscall"

// syncFiles makes the written files durable. On Linux one sync(2) flushes
// them all, far faster than an fsync per file for tens of thousands of
// small files.
func syncFiles(paths []string) error {
	syscall.Sync()
	return nil
}
