package mope

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckRunKey(t *testing.T) {
	dir := t.TempDir()
	if err := checkRunKey(dir, "a"); err != nil {
		t.Fatalf("fresh dir: %v", err)
	}
	if err := checkRunKey(dir, "a"); err != nil {
		t.Fatalf("same key: %v", err)
	}
	if err := checkRunKey(dir, "b"); !errors.Is(err, ErrStaleRun) {
		t.Fatalf("other key: got %v, want ErrStaleRun", err)
	}
	// An older run: finished steps but no key.
	old := t.TempDir()
	if err := os.MkdirAll(filepath.Join(old, "01-scores"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "01-scores", "step.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkRunKey(old, "a"); !errors.Is(err, ErrStaleRun) {
		t.Fatalf("steps without key: got %v, want ErrStaleRun", err)
	}
}
