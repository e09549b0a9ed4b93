package dataset

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTar writes a tar of the given members (in order) to path.
func writeTar(t *testing.T, path string, members [][2]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		if err := tw.WriteHeader(&tar.Header{Name: m[0], Mode: 0o644, Size: int64(len(m[1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(m[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readAll opens spec and reads every record's captions (a webdataset's bad
// records surface while reading), returning the captions per record and
// the number of records skipped.
func readAll(spec string, opt Options) ([][]string, int, error) {
	d, err := Open(spec, opt)
	if err != nil {
		return nil, 0, err
	}
	var caps [][]string
	err = d.Each(context.Background(), func(r Record) error {
		caps = append(caps, r.Captions)
		return nil
	})
	n, _ := d.Skipped()
	return caps, n, err
}

// TestEmptyCaptionsRejected: an empty caption anywhere, in every reader, is
// an error that names the file and the record, or with SkipBad one skipped
// record; the Karpathy fallback from a missing "raw" to the tokens stays.
func TestEmptyCaptionsRejected(t *testing.T) {
	img := func(name string) [2]string { return [2]string{name, "img"} }
	karpathy := func(sent string) string {
		return `{"images": [{"filename": "a.jpg", "split": "test", "sentences": [` + sent + `]},
			{"filename": "b.jpg", "split": "test", "sentences": [{"raw": "fine"}]}]}`
	}
	cases := []struct {
		name  string
		file  string      // written in the dataset directory, besides a.jpg, b.jpg
		data  string      // its contents (when tar is nil)
		tar   [][2]string // a webdataset shard's members, in order
		want  []string    // error parts; nil: no error
		first string      // the first record's first caption when accepted
	}{
		{name: "karpathy raw empty", file: "k.json", data: karpathy(`{"raw": "", "tokens": ["a", "cat"]}`),
			want: []string{"k.json", "image 0 (a.jpg)", "sentence 0", "is empty", `"raw": ""`}},
		{name: "karpathy raw blank", file: "k.json", data: karpathy(`{"raw": "fine"}, {"raw": "  \t"}`),
			want: []string{"k.json", "image 0 (a.jpg)", "sentence 1", "is empty"}},
		{name: "karpathy raw missing, tokens", file: "k.json", data: karpathy(`{"tokens": ["a", "cat"]}`), first: "a cat"},
		{name: "karpathy raw null, tokens", file: "k.json", data: karpathy(`{"raw": null, "tokens": ["a", " ", "dog"]}`), first: "a dog"},
		{name: "karpathy raw missing, no tokens", file: "k.json", data: karpathy(`{"tokens": []}`),
			want: []string{"k.json", "image 0 (a.jpg)", "sentence 0", `no "raw" and no tokens`}},
		{name: "karpathy raw missing, blank tokens", file: "k.json", data: karpathy(`{"tokens": ["", " "]}`),
			want: []string{"k.json", "image 0 (a.jpg)", "sentence 0", `no "raw" and no tokens`}},
		{name: "karpathy empty sentence object", file: "k.json", data: karpathy(`{}`),
			want: []string{"k.json", "image 0 (a.jpg)", "sentence 0"}},
		{name: "jsonl caption empty", file: "d.jsonl", data: `{"image": "a.jpg", "caption": ""}` + "\n" + `{"image": "b.jpg", "caption": "fine"}` + "\n",
			want: []string{"d.jsonl:1", "empty caption"}},
		{name: "jsonl captions blank", file: "d.jsonl", data: `{"image": "b.jpg", "caption": "fine"}` + "\n" + `{"image": "a.jpg", "captions": ["x", " "]}` + "\n",
			want: []string{"d.jsonl:2", "empty caption"}},
		{name: "csv caption empty", file: "d.csv", data: "image,caption\na.jpg,\" \"\nb.jpg,fine\n",
			want: []string{"d.csv:2", "empty caption"}},
		{name: "wds blank txt", file: "s.tar", tar: [][2]string{img("a.png"), {"a.txt", " \n\n"}, img("b.png"), {"b.txt", "fine\n"}},
			want: []string{"s.tar:a.txt", "empty caption"}},
		{name: "wds blank txt beside a json caption", file: "s.tar", tar: [][2]string{img("a.png"), {"a.json", `{"caption": "x"}`}, {"a.txt", ""}, img("b.png"), {"b.txt", "fine"}},
			want: []string{"s.tar:a.txt", "empty caption"}},
		{name: "wds json caption empty", file: "s.tar", tar: [][2]string{img("a.png"), {"a.json", `{"caption": ""}`}, {"a.txt", "x"}, img("b.png"), {"b.txt", "fine"}},
			want: []string{"s.tar:a.json", "empty caption", `"caption": ""`}},
		{name: "wds json captions blank", file: "s.tar", tar: [][2]string{img("a.png"), {"a.json", `{"captions": ["x", " "]}`}, img("b.png"), {"b.txt", "fine"}},
			want: []string{"s.tar:a.json", "empty caption", `"captions"[1]`}},
		{name: "wds txt with a trailing newline", file: "s.tar", tar: [][2]string{img("a.png"), {"a.txt", "a cat\r\n"}, img("b.png"), {"b.txt", "fine"}}, first: "a cat"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, map[string]string{"a.jpg": "img", "b.jpg": "img"})
			path := filepath.Join(dir, tc.file)
			if tc.tar != nil {
				writeTar(t, path, tc.tar)
			} else {
				write(t, dir, map[string]string{tc.file: tc.data})
			}
			caps, _, err := readAll(path, Options{})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(caps) != 2 || caps[0][0] != tc.first {
					t.Fatalf("captions %q, want 2 records, the first %q", caps, tc.first)
				}
				return
			}
			wantErr(t, err, tc.want...)
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			// SkipBad: the bad record is counted and the good one read.
			caps, skipped, err := readAll(path, Options{SkipBad: true, SkipImageCheck: true})
			if err != nil {
				t.Fatalf("SkipBad: %v", err)
			}
			if skipped != 1 || len(caps) != 1 || caps[0][0] != "fine" {
				t.Fatalf("SkipBad: %d skipped, captions %q; want 1 skipped and [[fine]]", skipped, caps)
			}
		})
	}
}
