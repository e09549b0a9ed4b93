package dataset

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ClassItem is one image of a classification set.
type ClassItem struct {
	Image string // path
	Label int    // index into Classification.Classes
}

// Classification is an image-folder classification set.
type Classification struct {
	Classes []string // sorted directory names
	Items   []ClassItem
}

// imageExts are the file types ReadImageFolder takes (any case).
var imageExts = []string{".jpg", ".jpeg", ".png", ".webp"}

// ReadImageFolder reads root/<class name>/**/*.{jpg,jpeg,png,webp}: each
// sub-directory of root is a class, named by the directory, and classes are
// sorted by name; entries whose name starts with "." are skipped. Items are
// ordered by class, then path. A class without images is an error.
//
// limit > 0 keeps limit items, taken round-robin over the classes (the
// first image of every class, then the second, ...) so that a small limit
// still covers every class; the result stays ordered by class, then path.
func ReadImageFolder(root string, limit int) (*Classification, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	c := &Classification{}
	var perClass [][]string
	var empty []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || !isDir(root, e) {
			continue
		}
		var files []string
		dir := filepath.Join(root, e.Name())
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") && p != dir {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && slices.Contains(imageExts, strings.ToLower(filepath.Ext(p))) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("dataset: %w", err)
		}
		if len(files) == 0 {
			empty = append(empty, e.Name())
		}
		slices.Sort(files)
		c.Classes = append(c.Classes, e.Name())
		perClass = append(perClass, files)
	}
	if len(c.Classes) == 0 {
		return nil, fmt.Errorf("dataset: %s: no class directories (want root/<class name>/<image files>)", root)
	}
	if len(empty) > 0 {
		return nil, fmt.Errorf("dataset: %s: %d of %d classes have no .jpg/.jpeg/.png/.webp images: %s",
			root, len(empty), len(c.Classes), strings.Join(empty[:min(5, len(empty))], ", "))
	}
	keep := make([]int, len(perClass)) // items kept per class
	for i, f := range perClass {
		keep[i] = len(f)
	}
	if limit > 0 {
		clear(keep)
		for taken, round := 0, 0; taken < limit; round++ {
			progress := false
			for i, f := range perClass {
				if round < len(f) && taken < limit {
					keep[i]++
					taken++
					progress = true
				}
			}
			if !progress {
				break
			}
		}
	}
	for i, f := range perClass {
		for _, p := range f[:keep[i]] {
			c.Items = append(c.Items, ClassItem{Image: p, Label: i})
		}
	}
	return c, nil
}

// isDir follows symbolic links to directories.
func isDir(root string, e os.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&os.ModeSymlink != 0 {
		st, err := os.Stat(filepath.Join(root, e.Name()))
		return err == nil && st.IsDir()
	}
	return false
}
