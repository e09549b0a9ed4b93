//go:build !unix

package imageproc

import "time"

func processCPU() time.Duration { return 0 }
