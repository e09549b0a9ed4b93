package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mopeclip/mopeclip/cuda"
	"github.com/mopeclip/mopeclip/ops"
)

// deviceFlag adds --device to fs. The value is "cpu" (default), "cuda"
// (fp32 on the GPU) or "cuda:tf32" (matrix products on tensor cores).
func deviceFlag(fs *flag.FlagSet) *string {
	return fs.String("device", "cpu", "where the ops run: cpu, cuda (fp32) or cuda:tf32; cuda needs a binary built with -tags cuda (make mope-cuda)")
}

// useDevice makes name the backend of every op (ops.SetBackend) for the rest
// of the process and returns the function that releases it. "cpu" changes
// nothing. The CUDA backend copies each op's operands to the GPU and back
// (package cuda), so it pays off where the matrix products are large.
func useDevice(name string, log io.Writer) (release func(), err error) {
	dev, prec, _ := strings.Cut(name, ":")
	switch {
	case dev == "cpu" && prec == "":
		return func() {}, nil
	case dev == "cuda" && (prec == "" || prec == "fp32" || prec == "tf32"):
	default:
		return nil, fmt.Errorf("%w: --device %q (want cpu, cuda or cuda:tf32)", errUsage, name)
	}
	c, err := cuda.Open(cuda.Options{})
	if err != nil {
		return nil, fmt.Errorf("--device %s: %w", name, err)
	}
	opt := cuda.BackendOptions{Precision: cuda.FP32}
	if prec == "tf32" {
		opt.Precision = cuda.TF32
	}
	b, err := cuda.NewBackend(c, opt)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("--device %s: %w", name, err)
	}
	in := c.Info()
	fmt.Fprintf(log, "device: %s (cc %d.%d, %d SMs, PTX %s), matrix products %s via %s\n",
		in.Name, in.Major, in.Minor, in.SMs, in.PTXArch, opt.Precision, gemmName(in.CublasPath))
	prev := ops.CurrentBackend()
	ops.SetBackend(b)
	return func() {
		ops.SetBackend(prev)
		b.Close()
		c.Close()
	}, nil
}

func gemmName(cublas string) string {
	if cublas == "" {
		return "the package's own SGEMM"
	}
	return "cuBLAS (" + cublas + ")"
}
