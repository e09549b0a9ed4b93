package dataset

import (
	"errors"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/dataset/shapes"
)

// write creates files (name → content) under dir; a content of "img" makes a dummy image.
func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

const karpathyJSON = `{"images": [
 {"filepath": "train2014", "filename": "a.jpg", "split": "train", "sentences": [{"raw": "A cat.", "tokens": ["a", "cat"]}, {"tokens": ["a", "kitten"]}]},
 {"filepath": "val2014", "filename": "b.jpg", "split": "restval", "sentences": [{"raw": "A dog."}]},
 {"filepath": "val2014", "filename": "c.jpg", "split": "test", "sentences": [{"raw": "A bird."}, {"raw": " Two birds. "}]},
 {"filepath": "val2014", "filename": "d.jpg", "split": "test", "sentences": [{"raw": "A fish."}]},
 {"filename": "e.jpg", "split": "val", "sentences": [{"raw": "A horse."}]}
], "dataset": "coco"}`

func karpathyTree(t *testing.T) string {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"ann/dataset_coco.json": karpathyJSON,
		"ann/train2014/a.jpg":   "img", "ann/val2014/b.jpg": "img", "ann/val2014/c.jpg": "img",
		"ann/val2014/d.jpg": "img", "ann/e.jpg": "img",
	})
	return filepath.Join(dir, "ann", "dataset_coco.json")
}

func TestKarpathy(t *testing.T) {
	path := karpathyTree(t)
	dir := filepath.Dir(path)
	r, err := Load(path, "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := &Retrieval{
		Images:       []string{filepath.Join(dir, "val2014/c.jpg"), filepath.Join(dir, "val2014/d.jpg")},
		Captions:     []string{"A bird.", "Two birds.", "A fish."},
		CaptionImage: []int{0, 0, 1},
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	r, err = Load(path, "train+restval", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Images) != 2 || r.Captions[1] != "a kitten" || r.CaptionImage[2] != 1 {
		t.Fatalf("train+restval: %+v", r)
	}
	r, err = Load(path, "all", 3)
	if err != nil || len(r.Images) != 3 || r.Images[2] != filepath.Join(dir, "val2014/c.jpg") {
		t.Fatalf("all, limit 3: %+v, %v", r, err)
	}
	r, err = Load(path, "", 0)
	if err != nil || len(r.Images) != 5 || r.Images[4] != filepath.Join(dir, "e.jpg") {
		t.Fatalf("everything: %+v, %v", r, err)
	}
	// Root elsewhere: the images are not there.
	_, err = Open(path, Options{Split: "test", Root: t.TempDir()})
	wantErr(t, err, "2 of 2 image files do not exist", "c.jpg")
	if !errors.Is(err, ErrMissingImages) {
		t.Errorf("not ErrMissingImages: %v", err)
	}
	_, err = Open(path, Options{Split: "test", Root: t.TempDir(), SkipImageCheck: true})
	if err != nil {
		t.Errorf("SkipImageCheck: %v", err)
	}
	_, err = Load(path, "testing", 0)
	wantErr(t, err, `no images in split "testing"`, "restval 1", "test 2", "train 1", "val 1")
}

func TestKarpathyErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"bad.json":      "{\"images\": [\n{\"filename\": \"a.jpg\",\n \"split\": test}]}",
		"noimages.json": `{"annotations": []}`,
		"nosent.json":   `{"images": [{"filename": "a.jpg", "split": "test", "sentences": []}]}`,
		"empty.json":    `{"images": [{"filename": "a.jpg", "split": "test", "sentences": [{"raw": " ", "tokens": []}]}]}`,
		"dup.json":      `{"images": [{"filename": "a.jpg", "sentences": [{"raw": "x"}]}, {"filename": "a.jpg", "sentences": [{"raw": "y"}]}]}`,
		"a.jpg":         "img",
	})
	_, err := Load(filepath.Join(dir, "missing.json"), "test", 0)
	wantErr(t, err, "no such file")
	_, err = Load(filepath.Join(dir, "bad.json"), "test", 0)
	wantErr(t, err, "bad.json", "line 3")
	_, err = Load(filepath.Join(dir, "noimages.json"), "test", 0)
	wantErr(t, err, `no "images" array`)
	_, err = Load(filepath.Join(dir, "nosent.json"), "test", 0)
	wantErr(t, err, "image 0 (a.jpg) has no sentences")
	_, err = Load(filepath.Join(dir, "empty.json"), "test", 0)
	wantErr(t, err, "sentence 0 is empty")
	_, err = Load(filepath.Join(dir, "dup.json"), "", 0)
	wantErr(t, err, "listed twice")
	_, err = Load(dir, "", 0)
	wantErr(t, err, "is a directory")
}

func TestJSONL(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"data.jsonl": "\ufeff{\"image\": \"imgs/1.png\", \"caption\": \"one\"}\n\n" +
			`{"image": "imgs/2.png", "captions": ["two", "deux"], "extra": 5}` + "\n" +
			`{"image": "imgs/1.png", "caption": "uno", "captions": ["eins"]}` + "\n",
		"imgs/1.png": "img", "imgs/2.png": "img",
		"split.jsonl": `{"image": "imgs/1.png", "caption": "a", "split": "train"}` + "\n" +
			`{"image": "imgs/2.png", "caption": "b", "split": "test"}` + "\n",
		"bad.jsonl":      `{"image": "imgs/1.png", "caption": "a"}` + "\n" + `{"image": "imgs/2.png", "caption": }` + "\n",
		"noimg.jsonl":    `{"caption": "a"}` + "\n",
		"nocap.jsonl":    "\n\n" + `{"image": "imgs/1.png"}` + "\n",
		"emptycap.jsonl": `{"image": "imgs/1.png", "captions": ["a", "  "]}` + "\n",
		"two.jsonl":      `{"image": "imgs/1.png", "caption": "a"} {"image": "x"}` + "\n",
		"miss.jsonl":     `{"image": "imgs/1.png", "caption": "a"}` + "\n" + `{"image": "imgs/9.png", "caption": "b"}` + "\n",
		"blank.jsonl":    "\n \n",
	})
	r, err := Load(filepath.Join(dir, "data.jsonl"), "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := &Retrieval{
		Images:       []string{filepath.Join(dir, "imgs/1.png"), filepath.Join(dir, "imgs/2.png")},
		Captions:     []string{"one", "uno", "eins", "two", "deux"},
		CaptionImage: []int{0, 0, 0, 1, 1},
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	if p := r.Pairs(); len(p) != 2 || !reflect.DeepEqual(p[1].Captions, []string{"two", "deux"}) {
		t.Fatalf("pairs %+v", p)
	}
	r, err = Load(filepath.Join(dir, "split.jsonl"), "test", 0)
	if err != nil || len(r.Images) != 1 || r.Captions[0] != "b" {
		t.Fatalf("split filter: %+v %v", r, err)
	}
	_, err = Load(filepath.Join(dir, "split.jsonl"), "val", 0)
	wantErr(t, err, `no images in split "val"`, "test 1, train 1")
	_, err = Load(filepath.Join(dir, "bad.jsonl"), "", 0)
	wantErr(t, err, "bad.jsonl:2: malformed line")
	_, err = Load(filepath.Join(dir, "noimg.jsonl"), "", 0)
	wantErr(t, err, `noimg.jsonl:1: no "image" field`)
	_, err = Load(filepath.Join(dir, "nocap.jsonl"), "", 0)
	wantErr(t, err, "nocap.jsonl:3: no \"caption\"")
	_, err = Load(filepath.Join(dir, "emptycap.jsonl"), "", 0)
	wantErr(t, err, "emptycap.jsonl:1: empty caption")
	_, err = Load(filepath.Join(dir, "two.jsonl"), "", 0)
	wantErr(t, err, "two.jsonl:1: malformed line")
	_, err = Load(filepath.Join(dir, "miss.jsonl"), "", 0)
	wantErr(t, err, "1 of 2 image files do not exist", "9.png")
	r, err = Load(filepath.Join(dir, "miss.jsonl"), "", 1) // the limit comes before the check
	if err != nil || len(r.Images) != 1 {
		t.Fatalf("limit 1: %+v %v", r, err)
	}
	_, err = Load(filepath.Join(dir, "blank.jsonl"), "", 0)
	wantErr(t, err, "blank.jsonl: no images")
}

func TestCSV(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"a.png": "img", "b.png": "img", "c.png": "img",
		"data.csv": "\ufeffid,Image,Caption,split\n" +
			"1,a.png,\"a red, round thing\",test\n" +
			"2,b.png,\"said \"\"hi\"\"\nover two lines\",test\n" +
			"3,a.png,another,test\n" +
			"4,c.png,train row,train\n",
		"data.tsv":      "image\tcaption\na.png\tone\nb.png\ttwo\n",
		"nosplit.csv":   "image,caption\na.png,x\nb.png,y\n",
		"badheader.csv": "path,text\na.png,x\n",
		"badquote.csv":  "image,caption\na.png,x\nb.png,\"unterminated\n",
		"fields.csv":    "image,caption\na.png,x\nb.png,y,z\n",
		"emptycap.csv":  "image,caption\na.png,x\nb.png,\n",
		"empty.csv":     "",
		"data.txt":      "image,caption\na.png,sniffed\n",
	})
	r, err := Load(filepath.Join(dir, "data.csv"), "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := &Retrieval{
		Images:       []string{filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")},
		Captions:     []string{"a red, round thing", "another", "said \"hi\"\nover two lines"},
		CaptionImage: []int{0, 0, 1},
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	r, err = Load(filepath.Join(dir, "data.tsv"), "", 0)
	if err != nil || len(r.Captions) != 2 || r.Captions[1] != "two" {
		t.Fatalf("tsv: %+v %v", r, err)
	}
	r, err = Load(filepath.Join(dir, "nosplit.csv"), "test", 1)
	if err != nil || len(r.Images) != 1 || r.Captions[0] != "x" {
		t.Fatalf("no split column, limit 1: %+v %v", r, err)
	}
	r, err = Load(filepath.Join(dir, "data.txt"), "", 0)
	if err != nil || r.Captions[0] != "sniffed" {
		t.Fatalf("sniffed csv: %+v %v", r, err)
	}
	_, err = Load(filepath.Join(dir, "badheader.csv"), "", 0)
	wantErr(t, err, "line 1", `lacks the image column`)
	_, err = Load(filepath.Join(dir, "badquote.csv"), "", 0)
	wantErr(t, err, "line 3", "malformed row")
	_, err = Load(filepath.Join(dir, "fields.csv"), "", 0)
	wantErr(t, err, "line 3", "wrong number of fields")
	_, err = Load(filepath.Join(dir, "emptycap.csv"), "", 0)
	wantErr(t, err, "emptycap.csv:3: empty caption")
	_, err = Load(filepath.Join(dir, "empty.csv"), "", 0)
	wantErr(t, err, "empty file")
	_, err = Load(filepath.Join(dir, "data.csv"), "val", 0)
	wantErr(t, err, `no images in split "val"`, "test 3", "train 1")
}

func TestSniffJSON(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"a.png":  "img",
		"k.data": `{"images": [{"filename": "a.png", "split": "test", "sentences": [{"raw": "karpathy"}]}]}`,
		"j.data": `{"image": "a.png", "caption": "jsonl"}` + "\n",
	})
	for name, want := range map[string]string{"k.data": "karpathy", "j.data": "jsonl"} {
		r, err := Load(filepath.Join(dir, name), "test", 0)
		if err != nil || r.Captions[0] != want {
			t.Errorf("%s: %+v %v", name, r, err)
		}
	}
}

func TestRetrievalHelpers(t *testing.T) {
	r, err := NewRetrieval([]Pair{{Image: "x", Captions: []string{"1", "2"}}, {Image: "y", Captions: []string{"3"}}, {Image: "z", Captions: []string{"4", "5"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	l := r.Limit(2)
	if !reflect.DeepEqual(l, &Retrieval{Images: []string{"x", "y"}, Captions: []string{"1", "2", "3"}, CaptionImage: []int{0, 0, 1}}) {
		t.Fatalf("limit: %+v", l)
	}
	if r.Limit(0) != r || r.Limit(10) != r {
		t.Error("Limit without effect should return r")
	}
	for _, bad := range [][]Pair{{{Image: "", Captions: []string{"a"}}}, {{Image: "x"}}, {{Image: "x", Captions: []string{" "}}}, {{Image: "x", Captions: []string{"a"}}, {Image: "x", Captions: []string{"b"}}}} {
		if _, err := NewRetrieval(bad); err == nil {
			t.Errorf("NewRetrieval(%+v) accepted", bad)
		}
	}
	bad := &Retrieval{Images: []string{"x", "y"}, Captions: []string{"a"}, CaptionImage: []int{0}}
	if err := bad.Validate(); err == nil {
		t.Error("image without caption accepted")
	}
}

func TestImageFolder(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"zebra/1.JPG": "img", "zebra/2.png": "img", "zebra/sub/3.jpeg": "img", "zebra/notes.txt": "x",
		"cat/a.jpg": "img", "cat/.hidden.jpg": "img",
		"ant/x.png": "img", "ant/y.png": "img", "ant/z.png": "img",
		".git/c.png": "img", "README.md": "x",
	})
	c, err := ReadImageFolder(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Classes, []string{"ant", "cat", "zebra"}) {
		t.Fatalf("classes %v", c.Classes)
	}
	var got []string
	for _, it := range c.Items {
		rel, _ := filepath.Rel(dir, it.Image)
		got = append(got, filepath.ToSlash(rel)+":"+c.Classes[it.Label])
	}
	want := []string{"ant/x.png:ant", "ant/y.png:ant", "ant/z.png:ant", "cat/a.jpg:cat", "zebra/1.JPG:zebra", "zebra/2.png:zebra", "zebra/sub/3.jpeg:zebra"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("items %v\nwant %v", got, want)
	}
	c, err = ReadImageFolder(dir, 5)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, it := range c.Items {
		got = append(got, filepath.Base(it.Image))
	}
	// Round-robin: x, a, 1, then y, 2.
	if !reflect.DeepEqual(got, []string{"x.png", "y.png", "a.jpg", "1.JPG", "2.png"}) {
		t.Fatalf("limit 5: %v", got)
	}
	write(t, dir, map[string]string{"empty/readme.txt": "x"})
	_, err = ReadImageFolder(dir, 0)
	wantErr(t, err, "1 of 4 classes have no", "empty")
	_, err = ReadImageFolder(filepath.Join(dir, "nope"), 0)
	wantErr(t, err, "no such file")
	_, err = ReadImageFolder(filepath.Join(dir, "cat"), 0)
	wantErr(t, err, "no class directories")
}

// TestShapesRoundTrip exports the shapes world and reads it back.
func TestShapesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cfg := shapes.DefaultConfig()
	if _, err := shapes.ExportSplits(dir, cfg, shapes.Part{Split: "test", N: 20}, shapes.Part{Split: "val", N: 4}); err != nil {
		t.Fatal(err)
	}
	exs, err := shapes.Generate(cfg, "test", 20)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Load(filepath.Join(dir, shapes.ManifestName), "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, caps, capImg := shapes.Flatten(exs)
	if !reflect.DeepEqual(r.Captions, caps) || !reflect.DeepEqual(r.CaptionImage, capImg) {
		t.Fatalf("captions differ after the round trip")
	}
	for i, e := range exs {
		if r.Images[i] != filepath.Join(dir, "test", e.ID+".png") {
			t.Fatalf("image %d: %s", i, r.Images[i])
		}
		f, err := os.Open(r.Images[i])
		if err != nil {
			t.Fatal(err)
		}
		im, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		b := e.Image.Bounds()
		if im.Bounds() != b {
			t.Fatalf("%s: bounds %v", e.ID, im.Bounds())
		}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if color.RGBAModel.Convert(im.At(x, y)) != e.Image.RGBAAt(x, y) {
					t.Fatalf("%s: pixel %d,%d differs after PNG round trip", e.ID, x, y)
				}
			}
		}
	}
	r, err = Load(filepath.Join(dir, shapes.ManifestName), "all", 0)
	if err != nil || len(r.Images) != 24 {
		t.Fatalf("all splits: %d images, %v", len(r.Images), err)
	}
}
