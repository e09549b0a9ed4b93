package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/internal/atomicfile"
)

// listDir lists dir's entries (names only), sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// writeNote writes dir/notes.txt, a user's file beside an export.
func writeNote(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDataExportRefusesToOverwrite: a second export into a directory that
// holds one (or anything else) fails with one line that names --force and
// leaves the first untouched; --force replaces the export as a whole and
// keeps unrelated files; a run while another holds the directory fails at
// once.
func TestDataExportRefusesToOverwrite(t *testing.T) {
	export := func(dir string, extra ...string) (int, string) {
		code, _, errs := dataRun(t, append([]string{"data", "export", "shapes", "--limit", "2", "--out", dir}, extra...)...)
		return code, errs
	}
	type setup func(t *testing.T, dir string)
	exported := func(t *testing.T, dir string) {
		if code, errs := export(dir, "--split", "test"); code != 0 {
			t.Fatalf("first export: exit %d: %s", code, errs)
		}
	}
	cases := []struct {
		name    string
		setup   setup
		args    []string
		code    int
		errHas  []string
		entries []string // of dir afterwards
		split   string   // dataset.json then reads this split
	}{
		{name: "over an export", setup: exported, args: []string{"--split", "train"}, code: 1,
			errHas: []string{"already holds an export (dataset.json)", "--force"}, entries: []string{"dataset.json", "test"}, split: "test"},
		{name: "over other files", setup: writeNote, args: []string{"--split", "train"}, code: 1,
			errHas: []string{"is not empty", "--force"}, entries: []string{"notes.txt"}},
		{name: "force replaces the export, keeps other files", setup: func(t *testing.T, dir string) {
			exported(t, dir)
			writeNote(t, dir)
		}, args: []string{"--split", "train", "--force"}, entries: []string{"dataset.json", "notes.txt", "train"}, split: "train"},
		{name: "an empty directory is fine", setup: func(t *testing.T, dir string) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"--split", "val"}, entries: []string{"dataset.json", "val"}, split: "val"},
		{name: "a file", setup: func(t *testing.T, dir string) {
			if err := os.WriteFile(dir, []byte("mine"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"--force"}, code: 1, errHas: []string{"is not a directory"}},
		{name: "another run writing it", setup: func(t *testing.T, dir string) {
			exported(t, dir)
			release, err := atomicfile.Lock(dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(release)
		}, args: []string{"--force"}, code: 1, errHas: []string{"another mope is writing it"}, entries: []string{"dataset.json", "test"}, split: "test"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "D")
			tc.setup(t, dir)
			before, _ := os.ReadFile(filepath.Join(dir, "dataset.json"))
			code, errs := export(dir, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, errs)
			}
			for _, p := range tc.errHas {
				if !strings.Contains(errs, p) {
					t.Errorf("stderr %q lacks %q", errs, p)
				}
			}
			if tc.code != 0 && strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Errorf("error is not one line: %q", errs)
			}
			if tc.entries != nil {
				if got := listDir(t, dir); !slices.Equal(got, tc.entries) {
					t.Errorf("%s holds %q, want %q", dir, got, tc.entries)
				}
			}
			if tc.code != 0 && before != nil {
				after, _ := os.ReadFile(filepath.Join(dir, "dataset.json"))
				if string(after) != string(before) {
					t.Errorf("a refused export changed dataset.json")
				}
			}
			if tc.split != "" {
				r, err := dataset.Load(filepath.Join(dir, "dataset.json"), tc.split, 0)
				if err != nil || len(r.Images) != 2 {
					t.Errorf("split %s: %v, %v", tc.split, r, err)
				}
			}
			if b, err := os.ReadFile(filepath.Join(dir, "notes.txt")); err == nil && string(b) != "mine" {
				t.Errorf("notes.txt changed: %q", b)
			}
			// No temporary or old directory, no lock left beside D (but
			// the lock this test holds).
			for _, name := range listDir(t, parent) {
				if name != "D" && !(name == "D.lock" && strings.HasPrefix(tc.name, "another run")) {
					t.Errorf("left %s in %s", name, parent)
				}
			}
		})
	}
}

// TestDataExportInterruptedLeavesNothing: an export stopped part-way (a
// cancelled context, as Ctrl-C gives) leaves neither a new directory nor
// a change to an existing one.
func TestDataExportInterruptedLeavesNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	parts := []shapes.Part{{Split: "test", N: 300}}
	for _, force := range []bool{false, true} {
		parent := t.TempDir()
		dir := filepath.Join(parent, "D")
		if force {
			if _, err := shapes.ExportSplits(dir, shapes.DefaultConfig(), shapes.Part{Split: "val", N: 1}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := exportShapes(ctx, dir, shapes.DefaultConfig(), parts, force)
		if err == nil || !strings.Contains(err.Error(), "interrupted") || !isInterrupted(err) {
			t.Fatalf("force=%v: error %v, want an interruption", force, err)
		}
		want := []string(nil)
		if force {
			want = []string{"D"}
			if got := listDir(t, dir); !slices.Equal(got, []string{"dataset.json", "val"}) {
				t.Errorf("the old export changed: %q", got)
			}
		}
		if got := listDir(t, parent); !slices.Equal(got, want) {
			t.Errorf("force=%v: %s holds %q, want %q", force, parent, got, want)
		}
	}
}
