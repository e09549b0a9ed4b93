//go:build !cuda

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeviceWithoutCUDA: in a build without the cuda tag, --device cuda is
// a clean error (ErrNoCUDA, exit 1) on every command that takes it, before
// any work and with nothing written, and an unknown device a usage error
// (exit 2).
func TestDeviceWithoutCUDA(t *testing.T) {
	model := embedTinyModel(t)
	out := filepath.Join(t.TempDir(), "out")
	train := []string{"--steps", "1", "--batch", "2", "--train-n", "2", "--val-n", "0", "--out", out}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bench", "--model", model, "--device", "cuda", "--rounds", "1"}, 1, "without CUDA"},
		{[]string{"bench", "--model", model, "--device", "cuda:tf32", "--rounds", "1"}, 1, "without CUDA"},
		{[]string{"embed", "--model", model, "--device", "cuda", "--text", "cat"}, 1, "without CUDA"},
		{[]string{"eval", "--model", model, "--device", "cuda", "--data", "shapes", "--limit", "2"}, 1, "without CUDA"},
		{append([]string{"pretrain", "--preset", "tiny", "--data", "shapes", "--device", "cuda"}, train...), 1, "without CUDA"},
		{append([]string{"distill", "--teacher", model, "--student", model, "--data", "shapes", "--device", "cuda:tf32"}, train...), 1, "without CUDA"},
		{append([]string{"pipeline", "--stage", "finetune", "--tower", "vision", "--teacher", model, "--data", "shapes",
			"--target-flops", "0.5", "--device", "cuda"}, train...), 1, "without CUDA"},
		{[]string{"score", "--model", model, "--data", "shapes", "--limit", "2", "--out", out + ".json", "--device", "cuda"}, 1, "without CUDA"},
		{[]string{"demo", "--quick", "--out", out, "--device", "cuda"}, 1, "without CUDA"},
		{[]string{"bench", "--model", model, "--device", "tpu"}, 2, "--device"},
		{[]string{"score", "--model", model, "--out", out + ".json", "--device", "cuda:bf16"}, 2, "--device"},
		{[]string{"distill", "--teacher", model, "--device", "gpu"}, 2, "--device"},
		{[]string{"embed", "--model", model, "--device", "cuda:fp16", "--text", "cat"}, 2, "--device"},
		{[]string{"eval", "--model", model, "--device", "gpu", "--data", "shapes"}, 2, "--device"},
	} {
		code, out, errs := runMope(c.args...)
		if code != c.code || !strings.Contains(errs, c.want) || out != "" {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q", c.args, code, c.code, out, errs)
		}
	}
	for _, f := range []string{out, out + ".json"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s written by a command that could not open its device", f)
		}
	}
}
