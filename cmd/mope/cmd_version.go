package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/mopeclip/mopeclip/tensor"
)

func init() {
	register(&command{
		name:    "version",
		summary: "print the version, Go runtime and the CPU kernels in use",
		run: func(args []string, stdout, stderr io.Writer) error {
			c := commands["version"]
			fs := newFlags(c, stderr)
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "mope %s (%s %s/%s, GOMAXPROCS=%d)\nkernels: %s\n", version,
				runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), tensor.KernelReport())
			return nil
		},
	})
}

const version = "0.1.0-dev"
