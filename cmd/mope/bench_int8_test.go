package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchInt8: --dtype int8 runs the fast engine on int8 weights and says
// which int8 kernel it used; it is refused for the reference forward.
func TestBenchInt8(t *testing.T) {
	model := embedTinyModel(t)
	code, out, errs := runMope("bench", "--model", model, "--rounds", "1", "--json", "--dtype", "int8", "--batch", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if v, _ := rep["image_per_s"].(float64); !(v > 0) || rep["dtype"] != "int8" || rep["engine"] != "fast" {
		t.Errorf("report %v", rep)
	}
	if k, _ := rep["kernels"].(string); !strings.Contains(k, "int8gemm=") || !strings.Contains(k, "int8quant=") {
		t.Errorf("kernels %q do not name the int8 kernels", k)
	}
	code, _, errs = runMope("bench", "--model", model, "--dtype", "int8", "--engine", "ref")
	if code != 2 || !strings.Contains(errs, "--dtype int8") {
		t.Errorf("--engine ref --dtype int8: exit %d, stderr %q", code, errs)
	}
}
