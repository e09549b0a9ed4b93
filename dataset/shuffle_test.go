package dataset

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// writeShards writes n samples (KEY.png with fake bytes, KEY.txt) over
// shards tar files and returns the brace pattern.
func writeShards(t *testing.T, n, shards int) string {
	t.Helper()
	dir := t.TempDir()
	for s := 0; s < shards; s++ {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for i := s * n / shards; i < (s+1)*n/shards; i++ {
			for _, m := range []struct{ ext, data string }{{"png", fmt.Sprint("img", i)}, {"txt", fmt.Sprintf("caption %d\nother %d\n", i, i)}} {
				tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%05d.%s", i, m.ext), Mode: 0o644, Size: int64(len(m.data)), Typeflag: tar.TypeReg})
				tw.Write([]byte(m.data))
			}
		}
		tw.Close()
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("s-%d.tar", s)), buf.Bytes(), 0o644)
	}
	return filepath.Join(dir, fmt.Sprintf("s-{0..%d}.tar", shards-1))
}

func readN(t *testing.T, sh *Shuffler, n int) []string {
	t.Helper()
	var out []string
	for range n {
		r, err := sh.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s|%s|%s", r.Bytes, r.Path, r.Where)) // Index is the read order of tar shards
	}
	return out
}

func TestShufflerEpochsAndSeek(t *testing.T) {
	for _, spec := range []string{writeShards(t, 23, 4), "shapes"} {
		opt := Options{Split: "val", Limit: 23}
		d, err := Open(spec, opt)
		if err != nil {
			t.Fatal(err)
		}
		so := ShuffleOptions{Seed: 9, Buffer: 5}
		sh := NewShuffler(d, so)
		all := readN(t, sh, 3*23)
		sh.Close()
		if sh.Position() != (Position{Epoch: 2, Offset: 23}) {
			t.Errorf("%s: position %v after 3 epochs", spec, sh.Position())
		}
		// Each epoch is a permutation of the records; epochs differ.
		e0, e1 := slices.Sorted(slices.Values(all[:23])), slices.Sorted(slices.Values(all[23:46]))
		if !slices.Equal(e0, e1) || slices.Equal(all[:23], all[23:46]) {
			t.Errorf("%s: epochs are not different permutations of the same records", spec)
		}
		if len(slices.Compact(e0)) != 23 {
			t.Errorf("%s: an epoch repeats records", spec)
		}
		// The same seed gives the same sequence; Seek lands mid-epoch.
		for _, p := range []Position{{0, 0}, {1, 7}, {2, 22}} {
			sh2 := NewShuffler(d, so)
			if err := sh2.Seek(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			at := p.Epoch*23 + p.Offset
			if got := readN(t, sh2, 69-at); !slices.Equal(got, all[at:]) {
				t.Errorf("%s: after Seek(%v) the sequence differs", spec, p)
			}
			sh2.Close()
		}
		if err := NewShuffler(d, so).Seek(context.Background(), Position{0, 24}); err == nil {
			t.Errorf("%s: seek beyond an epoch accepted", spec)
		}
		other := NewShuffler(d, ShuffleOptions{Seed: 10, Buffer: 5})
		if slices.Equal(readN(t, other, 23), all[:23]) {
			t.Errorf("%s: another seed gives the same order", spec)
		}
		other.Close()
	}
	if p, err := ParsePosition("3:14"); err != nil || p != (Position{3, 14}) || p.String() != "3:14" {
		t.Errorf("ParsePosition: %v %v", p, err)
	}
	if _, err := ParsePosition("3"); err == nil {
		t.Error("bad position accepted")
	}
}
