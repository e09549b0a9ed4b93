//go:build !linux

package shapes

import (
	"fmt"
	"os"
	"runtime"
	"sync"
)

// syncFiles makes the written files durable with an fsync per file, many at
// a time so that the file system can group them.
func syncFiles(paths []string) error {
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 4*runtime.GOMAXPROCS(0)+16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				f, err := os.Open(paths[i])
				if err == nil {
					err = f.Sync()
					f.Close()
				}
				errs[i] = err
			}
		}()
	}
	for i := range paths {
		work <- i
	}
	close(work)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("shapes: export: sync %s: %w", paths[i], err)
		}
	}
	return nil
}
