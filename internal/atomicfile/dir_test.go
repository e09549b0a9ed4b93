package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func writeFiles(files map[string]string) func(string) error {
	return func(tmp string) error {
		for n, c := range files {
			if err := os.WriteFile(filepath.Join(tmp, n), []byte(c), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
}

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		if e.IsDir() {
			out[e.Name()] = "<dir>"
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		out[e.Name()] = string(b)
	}
	return out
}

func TestWriteDirReplacesKeepsAndRollsBack(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "model")
	if err := WriteDir(dir, writeFiles(map[string]string{"a": "1", "b": "1"}), nil); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "checkpoint"), 0o755)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	keep := func(n string) bool { return n != "b" }
	if err := WriteDir(dir, writeFiles(map[string]string{"a": "2"}), keep); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, dir)
	want := map[string]string{"a": "2", "checkpoint": "<dir>", "notes.txt": "mine"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after replace: %v, want %v", got, want)
	}
	boom := errors.New("boom")
	err := WriteDir(dir, func(tmp string) error {
		os.WriteFile(filepath.Join(tmp, "a"), []byte("half"), 0o644)
		return boom
	}, keep)
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if got := readAll(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("failed write changed the directory: %v", got)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Fatalf("leftovers beside the directory: %v", ents)
	}
	if err := os.WriteFile(filepath.Join(parent, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(filepath.Join(parent, "file"), writeFiles(nil), nil); err == nil {
		t.Fatal("replaced a plain file")
	}
}

// Concurrent writers to one directory: every state observed afterwards is
// one writer's complete content, never a mix.
func TestWriteDirConcurrentWritersDoNotInterleave(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				v := fmt.Sprintf("%d-%d", w, i)
				files := map[string]string{"config": v, "weights": v}
				if w%2 == 0 {
					files["extra"] = v
				}
				if err := WriteDir(dir, writeFiles(files), func(string) bool { return false }); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := readAll(t, dir)
	if got["config"] != got["weights"] || (len(got) == 3 && got["extra"] != got["config"]) {
		t.Fatalf("mixed directory: %v", got)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
		t.Fatalf("leftovers: %v", ents)
	}
}
