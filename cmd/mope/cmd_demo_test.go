package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoNoStoryFullDeprecated: demo --no-story evaluates the committed
// teacher only and writes results.json; the old --full is accepted with a
// deprecation warning on stderr.
func TestDemoNoStoryFullDeprecated(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"--full", "--no-story", "--limit", "16", "--out", out, "--teacher", filepath.Join("..", "..", DefaultTeacherDir)}
	if err := runDemo(args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "--full is deprecated") {
		t.Errorf("no deprecation warning: %q", stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Name string  `json:"name"`
		R1   float64 `json:"r1"`
	}
	if err := json.Unmarshal(b, &rows); err != nil || len(rows) != 1 || rows[0].Name != "teacher" || rows[0].R1 <= 0 {
		t.Errorf("results.json: %v %+v", err, rows)
	}
	if !strings.Contains(stdout.String(), "mean R@1") {
		t.Errorf("no results table:\n%s", stdout.String())
	}
}
