package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchEngines(t *testing.T) {
	model := embedTinyModel(t)
	for _, args := range [][]string{
		{"--engine", "ref"},
		{"--engine", "fast", "--split", "items", "--threads", "2", "--batch", "4"},
		{"--split", "gemm", "--chunk", "1", "--batch", "3"},
	} {
		code, out, errs := runMope(append([]string{"bench", "--model", model, "--rounds", "1", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		var rep map[string]any
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v: not JSON: %v\n%s", args, err, out)
		}
		if v, _ := rep["image_per_s"].(float64); !(v > 0) || rep["dtype"] != "f32" || rep["engine"] != args[1] && args[0] == "--engine" {
			t.Errorf("%v: report %v", args, rep)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--engine", "onnx"}, "--engine"},
		{[]string{"--dtype", "f16"}, "--dtype"},
		{[]string{"--split", "rows"}, "--split is deprecated, use --parallel"},
		{[]string{"--parallel", "rows"}, "--parallel"},
	} {
		code, _, errs := runMope(append([]string{"bench", "--model", model}, c.args...)...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, errs)
		}
	}
}
