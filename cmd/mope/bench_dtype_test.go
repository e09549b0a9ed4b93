package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchDtype: --dtype int8 / bf16 runs the fast engine on weights of that
// dtype and says which kernels it used; each is refused for the reference
// forward.
func TestBenchDtype(t *testing.T) {
	cases := []struct {
		dtype   string
		rate    string   // a throughput key that must be positive
		kernels []string // kernel names the report must carry
	}{
		{"int8", "image_per_s", []string{"int8gemm=", "int8quant="}},
		{"bf16", "text_per_s", []string{"bf16gemm="}},
	}
	model := embedTinyModel(t)
	for _, c := range cases {
		t.Run(c.dtype, func(t *testing.T) {
			code, out, errs := runMope("bench", "--model", model, "--rounds", "1", "--json", "--dtype", c.dtype, "--batch", "2")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var rep map[string]any
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			if v, _ := rep[c.rate].(float64); !(v > 0) || rep["dtype"] != c.dtype || rep["engine"] != "fast" {
				t.Errorf("report %v", rep)
			}
			k, _ := rep["kernels"].(string)
			for _, name := range c.kernels {
				if !strings.Contains(k, name) {
					t.Errorf("kernels %q do not name the %s kernel %s", k, c.dtype, name)
				}
			}
			code, _, errs = runMope("bench", "--model", model, "--dtype", c.dtype, "--engine", "ref")
			if code != 2 || !strings.Contains(errs, "--dtype "+c.dtype) {
				t.Errorf("--engine ref --dtype %s: exit %d, stderr %q", c.dtype, code, errs)
			}
		})
	}
}
