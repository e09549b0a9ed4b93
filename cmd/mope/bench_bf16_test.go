package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchBF16: --dtype bf16 runs the fast engine on bfloat16 weights and
// says which bf16 kernel it used; it is refused for the reference forward.
func TestBenchBF16(t *testing.T) {
	model := embedTinyModel(t)
	code, out, errs := runMope("bench", "--model", model, "--rounds", "1", "--json", "--dtype", "bf16", "--batch", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if v, _ := rep["text_per_s"].(float64); !(v > 0) || rep["dtype"] != "bf16" || rep["engine"] != "fast" {
		t.Errorf("report %v", rep)
	}
	if k, _ := rep["kernels"].(string); !strings.Contains(k, "bf16gemm=") {
		t.Errorf("kernels %q do not name the bf16 kernel", k)
	}
	code, _, errs = runMope("bench", "--model", model, "--dtype", "bf16", "--engine", "ref")
	if code != 2 || !strings.Contains(errs, "--dtype bf16") {
		t.Errorf("--engine ref --dtype bf16: exit %d, stderr %q", code, errs)
	}
}
