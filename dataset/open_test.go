package dataset

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExpandBraces(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		err  string
	}{
		{"a.tar", "a.tar", ""},
		{"s/{00000..00002}.tar", "s/00000.tar s/00001.tar s/00002.tar", ""},
		{"s/{8..10}.tar", "s/8.tar s/9.tar s/10.tar", ""},
		{"{a,b}-{0..1}", "a-0 a-1 b-0 b-1", ""},
		{"{3..1}", "", "empty range"},
		{"{x..y}", "", "bad range"},
		{"{abc}", "", "bad brace"},
		{"a{0..1", "", "unmatched {"},
		{"a}", "", "unmatched }"},
		{"{0..99999999}", "", "more than"},
	} {
		got, err := ExpandBraces(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != c.want {
			t.Errorf("%q: %v %v, want %s", c.in, got, err, c.want)
		}
	}
}

func TestParseSpecAndFormats(t *testing.T) {
	dir := t.TempDir()
	touch := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	for _, c := range []struct {
		spec string
		want Format
	}{
		{"shapes", Shapes},
		{"SHAPES", Shapes},
		{touch("a.json", "{}"), Karpathy},
		{touch("a.jsonl", "{}"), JSONL},
		{touch("a.tsv", "x"), CSV},
		{touch("a.tar", ""), WebDataset},
		{touch("k.data", `{"images": []}`), Karpathy},
		{touch("c.data", "image,caption\n"), CSV},
	} {
		s, err := ParseSpec(c.spec)
		if err != nil || s.Format != c.want {
			t.Errorf("%s: %v %v, want %v", c.spec, s.Format, err, c.want)
		}
		if f, err := ParseFormat(c.want.String()); err != nil || f != c.want {
			t.Errorf("ParseFormat(%v) = %v %v", c.want, f, err)
		}
	}
	touch("shards/x-0.tar", "")
	touch("shards/x-1.tar", "")
	if s, err := ParseSpec(filepath.Join(dir, "shards")); err != nil || s.Format != WebDataset || len(s.Shards) != 2 {
		t.Errorf("directory of shards: %+v %v", s, err)
	}
	if _, err := ParseSpec(filepath.Join(dir, "x-{0..2}.tar")); err == nil || !strings.Contains(err.Error(), "do not exist") {
		t.Errorf("missing shards: %v", err)
	}
	if _, err := ParseSpec(filepath.Join(dir, "nope.json")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestCSVOpenClipDefaultsAndKeys(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.jpg", "b.jpg"} {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644)
	}
	read := func(name, text string, opt Options) ([]Record, error) {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		d, err := Open(p, opt)
		if err != nil {
			return nil, err
		}
		var out []Record
		err = d.Each(context.Background(), func(r Record) error { out = append(out, r); return nil })
		return out, err
	}
	// open_clip's own files: tab-separated filepath/title, even named .csv;
	// rows of one image are one record with several captions.
	recs, err := read("oc.csv", "title\tfilepath\nred star\ta.jpg\nblue \"sq\tb.jpg\nbig star\ta.jpg\n", Options{})
	if err != nil || len(recs) != 2 || strings.Join(recs[0].Captions, "|") != "red star|big star" || recs[1].Captions[0] != `blue "sq` {
		t.Fatalf("open_clip TSV: %+v %v", recs, err)
	}
	if !strings.HasSuffix(recs[1].Where, "oc.csv:3") {
		t.Errorf("where %q", recs[1].Where)
	}
	recs, err = read("k.csv", "img;text\na.jpg;one\n", Options{CSVImageKey: "img", CSVCaptionKey: "text", CSVSeparator: ';'})
	if err != nil || len(recs) != 1 || recs[0].Captions[0] != "one" {
		t.Fatalf("explicit keys: %+v %v", recs, err)
	}
	if _, err := read("bad.csv", "img,text\na.jpg,one\n", Options{}); err == nil || !strings.Contains(err.Error(), "--csv-img-key") {
		t.Errorf("unknown columns: %v", err)
	}
	if _, err := read("miss.csv", "image,caption\nc.jpg,one\n", Options{}); err == nil || !strings.Contains(err.Error(), "c.jpg") {
		t.Errorf("missing image: %v", err)
	}
}

func TestStreamKeepsOrderAndStopsOnError(t *testing.T) {
	d, err := Open("shapes", Options{Split: "val", Limit: 37})
	if err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 3, 8} {
		var got []int
		err := Stream(context.Background(), d, StreamOptions{Workers: workers, Ahead: 2},
			func(r *Record) (int, error) { return r.Index * 2, nil },
			func(r Record, v int) error {
				if v != 2*r.Index {
					t.Fatalf("value %d for record %d", v, r.Index)
				}
				got = append(got, r.Index)
				return nil
			})
		if err != nil || len(got) != 37 {
			t.Fatalf("workers %d: %d records, %v", workers, len(got), err)
		}
		for i, g := range got {
			if g != i {
				t.Fatalf("workers %d: record %d at position %d", workers, g, i)
			}
		}
	}
	n := 0
	err = Stream(context.Background(), d, StreamOptions{Workers: 4}, func(r *Record) (int, error) { return 0, nil },
		func(Record, int) error {
			n++
			if n == 5 {
				return os.ErrClosed
			}
			return nil
		})
	if err != os.ErrClosed || n != 5 {
		t.Errorf("stop: %v after %d", err, n)
	}
}

func TestIsShapes(t *testing.T) {
	for in, want := range map[string]bool{"shapes": true, " Shapes ": true, "SHAPES": true, "shapes.json": false, "": false, "./shapes": false} {
		if got := IsShapes(in); got != want {
			t.Errorf("IsShapes(%q) = %v, want %v", in, got, want)
		}
	}
}
