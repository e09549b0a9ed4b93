package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// WriteDir creates or replaces the directory dir as a whole: fill writes
// the new content into a fresh temporary sibling directory, which then
// takes dir's place by rename, under an exclusive lock on dir's parent so
// that concurrent writers to the same dir cannot interleave (the last one
// to finish wins, with a complete directory). Entries of the old dir for
// which keep returns true (and that fill did not write) are moved into
// the new one. On failure before the swap nothing changes and the
// temporary directory is removed; if the final rename fails, the old
// directory is put back.
func WriteDir(dir string, fill func(tmp string) error, keep func(name string) bool) (err error) {
	dir = filepath.Clean(dir)
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	if base == "." || base == ".." || base == string(filepath.Separator) {
		return fmt.Errorf("atomic write %s: not a directory name", dir)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("atomic write %s: %w", dir, err)
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("atomic write %s: exists and is not a directory", dir)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomic write %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err = os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("atomic write %s: %w", dir, err)
	}
	if err = fill(tmp); err != nil {
		return err
	}
	unlock, err := lockDir(parent)
	if err != nil {
		return fmt.Errorf("atomic write %s: lock %s: %w", dir, parent, err)
	}
	defer unlock()
	return swapDir(dir, tmp, keep)
}

// swapDir puts tmp in dir's place, carrying kept entries over.
func swapDir(dir, tmp string, keep func(string) bool) error {
	old := ""
	if _, err := os.Lstat(dir); err == nil {
		o, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".old-*")
		if err != nil {
			return fmt.Errorf("atomic write %s: %w", dir, err)
		}
		os.Remove(o) // only the unique name is needed
		if err := os.Rename(dir, o); err != nil {
			return fmt.Errorf("atomic write %s: move the old directory aside: %w", dir, err)
		}
		old = o
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("atomic write %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			if rerr := os.Rename(old, dir); rerr != nil {
				return fmt.Errorf("atomic write %s: rename: %v; the old directory is at %s (restoring it failed: %v)", dir, err, old, rerr)
			}
		}
		return fmt.Errorf("atomic write %s: rename: %w", dir, err)
	}
	syncDir(filepath.Dir(dir))
	if old == "" {
		return nil
	}
	ents, err := os.ReadDir(old)
	if err != nil {
		return fmt.Errorf("atomic write %s: read the old directory %s: %w", dir, old, err)
	}
	var failed []string
	for _, e := range ents {
		name := e.Name()
		if keep == nil || !keep(name) || strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			continue // written anew
		}
		if err := os.Rename(filepath.Join(old, name), filepath.Join(dir, name)); err != nil {
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("atomic write %s: could not carry %s over from the old directory, left in %s", dir, strings.Join(failed, ", "), old)
	}
	return os.RemoveAll(old)
}

// syncDir makes renames in dir durable, best effort.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
