package eval

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/tensor"
)

var words = []string{"red", "green", "blue", "yellow", "circle", "square", "triangle", "star", "big", "small", "a", "the", "photo", "of"}

func setup(t *testing.T) *clip.Encoder {
	t.Helper()
	var corpus []string
	for _, a := range words {
		for _, b := range words {
			corpus = append(corpus, a+" "+b)
		}
	}
	tok, err := tokenizer.Train(corpus, 560)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := clip.Preset("tiny")
	cfg.Text.VocabSize, cfg.Text.EOSTokenID, cfg.Text.BOSTokenID = tok.VocabSize(), tok.EOT(), tok.SOT()
	m, err := clip.New(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	return &clip.Encoder{Model: m, Tok: tok, Batch: 3}
}

// sample is one image and its captions, the records every format holds.
type sample struct {
	name string
	png  []byte
	caps []string
}

func samples(t *testing.T, n int) []sample {
	rng := tensor.NewRNG(7)
	out := make([]sample, n)
	for i := range out {
		w, h := 20+rng.IntN(30), 20+rng.IntN(30)
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		c := color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				img.Set(x, y, color.RGBA{c.R ^ uint8(x*5), c.G ^ uint8(y*3), c.B, 255})
			}
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		ncap := 1 + i%3
		var caps []string
		for k := 0; k < ncap; k++ {
			caps = append(caps, words[rng.IntN(len(words))]+" "+words[rng.IntN(len(words))]+" "+words[rng.IntN(len(words))])
		}
		out[i] = sample{name: fmt.Sprintf("%06d", i), png: buf.Bytes(), caps: caps}
	}
	return out
}

// writeFormats writes the samples in every format and returns the specs.
func writeFormats(t *testing.T, ss []sample) map[string]string {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "img"), 0o755)
	for _, s := range ss {
		if err := os.WriteFile(filepath.Join(dir, "img", s.name+".png"), s.png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	specs := map[string]string{}
	// Karpathy JSON.
	type sent struct {
		Raw string `json:"raw"`
	}
	type kimg struct {
		Filepath  string `json:"filepath"`
		Filename  string `json:"filename"`
		Split     string `json:"split"`
		Sentences []sent `json:"sentences"`
	}
	var ks []kimg
	var jsonl, tsv, csvc strings.Builder
	tsv.WriteString("filepath\ttitle\n")
	csvc.WriteString("image,caption\n")
	for _, s := range ss {
		k := kimg{Filepath: "img", Filename: s.name + ".png", Split: "test"}
		for _, c := range s.caps {
			k.Sentences = append(k.Sentences, sent{c})
			fmt.Fprintf(&tsv, "img/%s.png\t%s\n", s.name, c)
			fmt.Fprintf(&csvc, "img/%s.png,\"%s\"\n", s.name, c)
		}
		ks = append(ks, k)
		b, _ := json.Marshal(map[string]any{"image": "img/" + s.name + ".png", "captions": s.caps})
		jsonl.Write(append(b, '\n'))
	}
	b, _ := json.Marshal(map[string]any{"images": ks})
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	specs["karpathy"] = write("k.json", string(b))
	specs["jsonl"] = write("d.jsonl", jsonl.String())
	specs["tsv (open_clip)"] = write("oc.csv", tsv.String())
	specs["csv"] = write("d.csv", csvc.String())
	// Webdataset: two shards; odd samples carry .txt, even ones .json.
	for sh := 0; sh < 2; sh++ {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for i, s := range ss {
			if i*2/len(ss) != sh {
				continue
			}
			add := func(name string, data []byte) {
				tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
				tw.Write(data)
			}
			add(s.name+".png", s.png)
			if i%2 == 1 {
				add(s.name+".txt", []byte(strings.Join(s.caps, "\n")+"\n"))
			} else {
				j, _ := json.Marshal(map[string]any{"caption": s.caps[0], "captions": s.caps[1:], "url": "x"})
				add(s.name+".json", j)
			}
		}
		tw.Close()
		write(fmt.Sprintf("shard-%05d.tar", sh), buf.String())
	}
	specs["webdataset"] = filepath.Join(dir, "shard-{00000..00001}.tar")
	return specs
}

func TestSameRecordsSameMetricsInEveryFormat(t *testing.T) {
	enc := setup(t)
	ss := samples(t, 11)
	specs := writeFormats(t, ss)
	pre := imageproc.DefaultConfig(enc.Model.Config.Vision.ImageSize)

	// Reference: the in-memory path of package clip on the decoded images.
	var imgs []image.Image
	var caps []string
	var capImg []int
	for i, s := range ss {
		im, err := imageproc.Decode(s.png)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, im)
		for _, c := range s.caps {
			caps, capImg = append(caps, c), append(capImg, i)
		}
	}
	want, err := clip.EvalRetrievalImages(enc.Model, enc.Tok, imgs, caps, capImg, pre, enc.Batch)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reference: %v", want)
	for name, spec := range specs {
		d, err := dataset.Open(spec, dataset.Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rep, err := Run(context.Background(), enc, d, Options{Pre: pre, Stream: dataset.StreamOptions{Workers: 3, Ahead: 2}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := rep.RetrievalMetrics(); got != want || rep.Images != len(ss) || rep.Texts != len(caps) {
			t.Errorf("%s: %v on %d images, %d captions; want %v on %d, %d", name, got, rep.Images, rep.Texts, want, len(ss), len(caps))
		}
		if rep.Benchmark["text_retrieval_recall@1"] != want.TR1/100 || rep.Benchmark["image_retrieval_recall@5"] != want.IR5/100 {
			t.Errorf("%s: CLIP_benchmark names %v", name, rep.Benchmark)
		}
		checkTimes(t, name, rep)
	}
}

// checkTimes checks the timing fields of a report: the image and text parts
// take some time, lie within the whole run, the image tower's time within
// the image part, and the image rate is the images over the image part's
// time.
func checkTimes(t *testing.T, name string, rep *Report) {
	t.Helper()
	if rep.ImageSeconds <= 0 || rep.TextSeconds <= 0 || rep.ImageSeconds+rep.TextSeconds > rep.Seconds {
		t.Errorf("%s: image part %vs, text part %vs, whole run %vs", name, rep.ImageSeconds, rep.TextSeconds, rep.Seconds)
	}
	if rep.EncodeSeconds <= 0 || rep.EncodeSeconds > rep.ImageSeconds {
		t.Errorf("%s: %vs in the image tower, image part %vs", name, rep.EncodeSeconds, rep.ImageSeconds)
	}
	if want := float64(rep.Images) / rep.ImageSeconds; rep.ImagesPerSecond != want {
		t.Errorf("%s: %v images/s, want %d images / %vs = %v", name, rep.ImagesPerSecond, rep.Images, rep.ImageSeconds, want)
	}
}

// TestBlockedMetricsMatchWholeMatrix checks that computing the similarity
// in row blocks (and twice, once per pass) gives the ranks of the whole
// matrix, ties included.
func TestBlockedMetricsMatchWholeMatrix(t *testing.T) {
	for _, c := range []struct{ nImg, nTxt, E int }{{1, 1, 3}, {7, 20, 5}, {100, 333, 16}, {130, 65, 8}} {
		rng := tensor.NewRNG(uint64(c.nImg))
		img, txt := tensor.New(c.nImg, c.E), tensor.New(c.nTxt, c.E)
		for i := range img.Data {
			img.Data[i] = float32(rng.IntN(5)) // small integers: many ties
		}
		for i := range txt.Data {
			txt.Data[i] = float32(rng.IntN(5))
		}
		capImg := make([]int, c.nTxt)
		for j := range capImg {
			capImg[j] = rng.IntN(c.nImg)
		}
		old := clip.SimBlockBytes
		whole := clip.RetrievalRanker(img.Clone(), txt.Clone(), capImg, true)
		clip.SimBlockBytes = 1 // one block of 48 rows at a time
		blocked := clip.RetrievalRanker(img.Clone(), txt.Clone(), capImg, true)
		clip.SimBlockBytes = old
		wt, wi := whole.Ranks()
		bt, bi := blocked.Ranks()
		if fmt.Sprint(wt, wi, whole.Top()) != fmt.Sprint(bt, bi, blocked.Top()) {
			t.Errorf("%+v: blocked ranks differ from the whole matrix's", c)
		}
	}
}

func TestZeroShotFolderWithTemplates(t *testing.T) {
	enc := setup(t)
	root := t.TempDir()
	ss := samples(t, 9)
	classes := []string{"red_circle", "blue_square", "star"}
	for i, s := range ss {
		dir := filepath.Join(root, classes[i%3])
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, s.name+".png"), s.png, 0o644)
	}
	d, err := dataset.Open(root, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pre := imageproc.DefaultConfig(enc.Model.Config.Vision.ImageSize)
	tmpl := filepath.Join(t.TempDir(), "t.txt")
	os.WriteFile(tmpl, []byte("# comment\na photo of a {c}.\n\nthe {}\n"), 0o644)
	ts, err := Templates(tmpl)
	if err != nil || len(ts) != 2 {
		t.Fatalf("templates %v %v", ts, err)
	}
	rep, err := Run(context.Background(), enc, d, Options{Pre: pre, Templates: ts})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Task != "zeroshot" || rep.Images != 9 || rep.Classes != 3 || *rep.Top5 != 100 {
		t.Fatalf("report %+v", rep)
	}
	checkTimes(t, "zeroshot", rep)
	if rep.Benchmark["acc1"] != *rep.Top1/100 || rep.Benchmark["mean_per_class_recall"] != *rep.MeanClassRecall/100 {
		t.Errorf("benchmark names %v", rep.Benchmark)
	}
	// Balanced classes: mean per-class recall equals top-1.
	if *rep.MeanClassRecall != *rep.Top1 {
		t.Errorf("mean per-class recall %v, top-1 %v on balanced classes", *rep.MeanClassRecall, *rep.Top1)
	}
	if got, _ := Templates("openai-imagenet"); len(got) != 80 {
		t.Errorf("%d OpenAI templates", len(got))
	}
	if _, err := Templates(filepath.Join(root, "none.txt")); err == nil {
		t.Error("missing templates file accepted")
	}
}

func TestBadRecords(t *testing.T) {
	enc := setup(t)
	pre := imageproc.DefaultConfig(enc.Model.Config.Vision.ImageSize)
	ss := samples(t, 4)
	dir := t.TempDir()
	for _, s := range ss[:3] {
		os.WriteFile(filepath.Join(dir, s.name+".png"), s.png, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "broken.png"), ss[3].png[:40], 0o644)
	lines := []string{
		`{"image": "000000.png", "caption": "red star"}`,
		`{"image": "broken.png", "caption": "blue star"}`,
		`{"image": "000001.png", "captions": []}`,
		`{"image": "gone.png", "caption": "a circle"}`,
		`{"image": "000002.png", "caption": "big square"}`,
	}
	jl := filepath.Join(dir, "d.jsonl")
	os.WriteFile(jl, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	if _, err := dataset.Open(jl, dataset.Options{}); err == nil || !strings.Contains(err.Error(), "d.jsonl:3") {
		t.Errorf("empty caption list: %v", err)
	}
	d, err := dataset.Open(jl, dataset.Options{SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), enc, d, Options{Pre: pre})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Images != 2 || rep.Skipped != 3 {
		t.Errorf("skip-bad: %d images, %d skipped; want 2, 3", rep.Images, rep.Skipped)
	}
	// Without --skip-bad the undecodable image is an error naming the line.
	os.WriteFile(jl, []byte(strings.Join([]string{lines[0], lines[1], lines[4]}, "\n")+"\n"), 0o644)
	d, err = dataset.Open(jl, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), enc, d, Options{Pre: pre}); err == nil || !strings.Contains(err.Error(), "d.jsonl:2") || !strings.Contains(err.Error(), "broken.png") {
		t.Errorf("undecodable image: %v", err)
	}
	// A truncated tar shard names the shard and the last member.
	specs := writeFormats(t, samples(t, 6))
	shard := strings.Replace(specs["webdataset"], "{00000..00001}", "00000", 1)
	data, _ := os.ReadFile(shard)
	os.WriteFile(shard, data[:len(data)*2/3], 0o644)
	d, err = dataset.Open(specs["webdataset"], dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), enc, d, Options{Pre: pre}); err == nil || !strings.Contains(err.Error(), "shard-00000.tar") || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated tar: %v", err)
	}
	d, _ = dataset.Open(specs["webdataset"], dataset.Options{SkipBad: true})
	rep, err = Run(context.Background(), enc, d, Options{Pre: pre})
	if err != nil || rep.Skipped != 1 || rep.Images < 3 {
		t.Errorf("truncated tar with skip-bad: %+v %v", rep, err)
	}
}

func TestLongCaptionsTruncatedAndCounted(t *testing.T) {
	enc := setup(t)
	pre := imageproc.DefaultConfig(enc.Model.Config.Vision.ImageSize)
	ss := samples(t, 2)
	dir := t.TempDir()
	long := strings.Repeat("red circle ", 40)
	var lines []string
	for i, s := range ss {
		os.WriteFile(filepath.Join(dir, s.name+".png"), s.png, 0o644)
		c := "red star"
		if i == 1 {
			c = long
		}
		b, _ := json.Marshal(map[string]any{"image": s.name + ".png", "caption": c})
		lines = append(lines, string(b))
	}
	jl := filepath.Join(dir, "d.jsonl")
	os.WriteFile(jl, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	d, _ := dataset.Open(jl, dataset.Options{})
	var log bytes.Buffer
	rep, err := Run(context.Background(), enc, d, Options{Pre: pre, Progress: &log})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Truncated != 1 || strings.Count(log.String(), "truncated") != 1 {
		t.Errorf("truncated %d, log %q", rep.Truncated, log.String())
	}
}
