package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func TestBench(t *testing.T) {
	model := embedTinyModel(t)
	before := runtime.GOMAXPROCS(0)
	code, out, errs := runMope("bench", "--model", model, "--batch", "2", "--threads", "1", "--rounds", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if runtime.GOMAXPROCS(0) != before {
		t.Fatalf("GOMAXPROCS left at %d, was %d", runtime.GOMAXPROCS(0), before)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"image_per_s", "text_per_s", "image_gflops", "text_gflops"} {
		if v, ok := rep[k].(float64); !ok || !(v > 0) {
			t.Errorf("%s = %v", k, rep[k])
		}
	}
	if rep["threads"] != 1.0 || rep["batch"] != 2.0 || rep["text_len"] != 77.0 {
		t.Errorf("report: %v", rep)
	}
	if k, _ := rep["kernels"].(string); !strings.Contains(k, "sgemm=") {
		t.Errorf("kernels: %q", rep["kernels"])
	}
	// GFLOP/s is items/s times the config's FLOPs per item.
	if g := rep["image_per_s"].(float64) * rep["image_gflop_per_item"].(float64); g != rep["image_gflops"].(float64) {
		t.Errorf("image GFLOP/s %v, want %v", rep["image_gflops"], g)
	}

	code, out, errs = runMope("bench", "--model", model, "--tower", "image", "--rounds", "1", "--warmup", "0")
	if code != 0 || !strings.Contains(out, "images/s") || strings.Contains(out, "texts/s") || !strings.Contains(out, "kernels: ") {
		t.Fatalf("exit %d: %s\n%s", code, out, errs)
	}
}

func TestBenchErrors(t *testing.T) {
	model := embedTinyModel(t)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "--model"},
		{[]string{"--model", model, "--batch", "0"}, 2, "--batch"},
		{[]string{"--model", model, "--threads", "-1"}, 2, "--threads"},
		{[]string{"--model", model, "--tower", "audio"}, 2, "--tower"},
		{[]string{"--model", model, "--text-len", "100"}, 2, "--text-len"},
		{[]string{"--model", model + "x"}, 1, "does not exist"},
	} {
		code, _, errs := runMope(append([]string{"bench"}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q", c.args, code, c.code, errs)
		}
	}
}
