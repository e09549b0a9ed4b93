package cuda

import (
	"fmt"
	"strings"
)

// Device is where a command runs (--device): the CPU, or the GPU with its
// matrix products in fp32 or TF32. The zero value is the CPU. It is
// compiled in every build, so a command parses --device cuda the same way
// with or without the cuda tag; a build without it then fails to Open.
type Device struct {
	// GPU is false for the CPU.
	GPU bool
	// Precision of the matrix products on the GPU (FP32 on the CPU).
	Precision Precision
}

// The devices --device names.
var (
	CPU     = Device{}
	GPU     = Device{GPU: true, Precision: FP32}
	GPUTF32 = Device{GPU: true, Precision: TF32}
)

// ParseDevice parses "cpu", "cuda" (or "cuda:fp32") and "cuda:tf32".
func ParseDevice(s string) (Device, error) {
	dev, prec, hasPrec := strings.Cut(s, ":")
	switch {
	case dev == "cpu" && !hasPrec:
		return CPU, nil
	case dev == "cuda" && (!hasPrec || prec == "fp32"):
		return GPU, nil
	case dev == "cuda" && prec == "tf32":
		return GPUTF32, nil
	}
	return CPU, fmt.Errorf("unknown device %q (want cpu, cuda or cuda:tf32)", s)
}

// String returns the device's name as ParseDevice reads it: "cpu",
// "cuda" or "cuda:tf32".
func (d Device) String() string {
	switch {
	case !d.GPU:
		return "cpu"
	case d.Precision == TF32:
		return "cuda:tf32"
	}
	return "cuda"
}

// Set parses s into d (flag.Value).
func (d *Device) Set(s string) error {
	v, err := ParseDevice(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText writes the device's name (JSON, settings files).
func (d Device) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a device's name.
func (d *Device) UnmarshalText(b []byte) error { return d.Set(string(b)) }
