//go:build unix

package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrLocked is returned by Lock when another process holds the lock.
var ErrLocked = errors.New("locked by another process")

// Lock takes an exclusive advisory lock (flock) on path+".lock", which it
// creates, so that two runs writing the same output do not interleave. It
// does not wait: when another process holds the lock it returns an error
// wrapping ErrLocked. The returned function releases the lock and removes
// the lock file. The lock dies with the process (kill -9 included).
func Lock(path string) (release func(), err error) {
	name := path + ".lock"
	for {
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s: another mope is writing it (%s held): %w", path, name, ErrLocked)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The holder before us may have removed the file between our open
		// and our flock: then we locked a file nobody else will see. Retry.
		fi, err1 := f.Stat()
		pi, err2 := os.Stat(name)
		if err1 == nil && err2 == nil && os.SameFile(fi, pi) {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			return func() {
				os.Remove(name)
				f.Close()
			}, nil
		}
		f.Close()
	}
}
