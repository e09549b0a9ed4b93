//go:build !cuda

package main

import (
	"strings"
	"testing"
)

// TestDeviceWithoutCUDA: in a build without the cuda tag, --device cuda is
// a clean error (ErrNoCUDA) on every command that takes it, and an unknown
// device a usage error.
func TestDeviceWithoutCUDA(t *testing.T) {
	model := embedTinyModel(t)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bench", "--model", model, "--device", "cuda", "--rounds", "1"}, 1, "without CUDA"},
		{[]string{"bench", "--model", model, "--device", "cuda:tf32", "--rounds", "1"}, 1, "without CUDA"},
		{[]string{"embed", "--model", model, "--device", "cuda", "--text", "cat"}, 1, "without CUDA"},
		{[]string{"eval", "--model", model, "--device", "cuda", "--data", "shapes", "--limit", "2"}, 1, "without CUDA"},
		{[]string{"bench", "--model", model, "--device", "tpu"}, 2, "--device"},
		{[]string{"embed", "--model", model, "--device", "cuda:fp16", "--text", "cat"}, 2, "--device"},
		{[]string{"eval", "--model", model, "--device", "gpu", "--data", "shapes"}, 2, "--device"},
	} {
		code, out, errs := runMope(c.args...)
		if code != c.code || !strings.Contains(errs, c.want) || out != "" {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q", c.args, code, c.code, out, errs)
		}
	}
}
