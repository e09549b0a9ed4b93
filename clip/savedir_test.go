package clip

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
)

func trainedTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Train([]string{"a red square", "a blue circle", "two green triangles", "a red star"}, 600)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func readJSONFile(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// Every directory Save writes is a complete Hugging Face CLIP directory:
// the files CLIPModel.from_pretrained and CLIPProcessor.from_pretrained
// read, with the keys they read.
func TestSaveWritesCompleteHFDirectory(t *testing.T) {
	m := tinyModel(t, 31)
	tok := trainedTokenizer(t)
	dir := filepath.Join(t.TempDir(), "model")
	if err := m.SaveWith(dir, SaveOptions{Tokenizer: tok}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := []string{ConfigFile, MergesFile, WeightsFile, PreprocessorFile, SpecialTokensFile, TokenizerConfigFile, VocabFile}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("directory holds %v, want %v", names, want)
	}
	tc := readJSONFile(t, filepath.Join(dir, TokenizerConfigFile))
	if tc["model_max_length"] != float64(m.Config.Text.MaxPositionEmbeddings) || tc["tokenizer_class"] != "CLIPTokenizer" ||
		tc["bos_token"] != "<|startoftext|>" || tc["eos_token"] != "<|endoftext|>" {
		t.Fatalf("tokenizer_config.json: %v", tc)
	}
	st := readJSONFile(t, filepath.Join(dir, SpecialTokensFile))
	if st["pad_token"] != "<|endoftext|>" || st["unk_token"] != "<|endoftext|>" {
		t.Fatalf("special_tokens_map.json: %v", st)
	}
	pp := readJSONFile(t, filepath.Join(dir, PreprocessorFile))
	for _, k := range []string{"size", "crop_size", "image_mean", "image_std", "resample", "do_convert_rgb", "do_center_crop", "do_normalize", "do_rescale", "rescale_factor", "do_resize", "image_processor_type"} {
		if _, ok := pp[k]; !ok {
			t.Errorf("preprocessor_config.json lacks %s", k)
		}
	}
	pc, err := LoadPreprocess(dir)
	if err != nil || pc != imageproc.DefaultConfig(m.Config.Vision.ImageSize) && pc.Resize != m.Config.Vision.ImageSize {
		t.Fatalf("preprocess %+v, %v", pc, err)
	}
	back, err := LoadTokenizer(dir)
	if err != nil || back.VocabSize() != tok.VocabSize() {
		t.Fatalf("tokenizer %v", err)
	}
}

// A model directory is replaced as a whole: other entries (checkpoints,
// curves) are carried over, stale weights are not, a tokenizer already there
// is kept and completed, and the model's preprocessing is written.
func TestSaveReplacesWholeDirectory(t *testing.T) {
	m := tinyModel(t, 32)
	dir := filepath.Join(t.TempDir(), "model")
	if err := m.SaveWith(dir, SaveOptions{Tokenizer: trainedTokenizer(t)}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, TokenizerConfigFile)) // as old mope directories were
	os.MkdirAll(filepath.Join(dir, "checkpoint"), 0o755)
	os.WriteFile(filepath.Join(dir, "checkpoint", "state.bin"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "model-00001-of-00002.safetensors"), []byte("stale"), 0o644)
	os.WriteFile(filepath.Join(dir, WeightsIndex), []byte("{}"), 0o644)
	pc := imageproc.DefaultConfig(m.Config.Vision.ImageSize)
	pc.Resize, pc.Mean = 40, [3]float32{0.5, 0.5, 0.5}
	m.Preprocess = &pc
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"model-00001-of-00002.safetensors", WeightsIndex} {
		if _, err := os.Stat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("%s survived", gone)
		}
	}
	for _, kept := range []string{"checkpoint/state.bin", VocabFile, MergesFile, TokenizerConfigFile} {
		if _, err := os.Stat(filepath.Join(dir, kept)); err != nil {
			t.Errorf("%s: %v", kept, err)
		}
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.ImageConfig() != pc {
		t.Fatalf("preprocessing %+v, want %+v", got.ImageConfig(), pc)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
		t.Fatalf("leftovers beside the model: %v", ents)
	}
}

// tokenizer.json (the fast tokenizer file) is read when vocab.json and
// merges.txt are absent, in both merge spellings, and SaveWith From such a
// directory writes vocab.json and merges.txt.
func TestTokenizerJSON(t *testing.T) {
	tok := trainedTokenizer(t)
	src := t.TempDir()
	if err := tok.SaveHF(src); err != nil {
		t.Fatal(err)
	}
	vocab := readJSONFile(t, filepath.Join(src, VocabFile))
	raw, _ := os.ReadFile(filepath.Join(src, MergesFile))
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")[1:]
	for _, pairs := range []bool{false, true} {
		var merges []any
		for _, l := range lines {
			if pairs {
				f := strings.Fields(l)
				merges = append(merges, []string{f[0], f[1]})
			} else {
				merges = append(merges, l)
			}
		}
		doc := map[string]any{"version": "1.0", "model": map[string]any{"type": "BPE", "vocab": vocab, "merges": merges,
			"continuing_subword_prefix": "", "end_of_word_suffix": "</w>"}}
		dir := t.TempDir()
		b, _ := json.Marshal(doc)
		os.WriteFile(filepath.Join(dir, FastTokenizerFile), b, 0o644)
		got, err := LoadTokenizer(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range []string{"a red square", "two blue stars!"} {
			a, _ := tok.Tokenize(text, 16, false)
			b, _ := got.Tokenize(text, 16, false)
			if !slices.Equal(a, b) {
				t.Fatalf("%q: %v via tokenizer.json, %v via vocab.json", text, b, a)
			}
		}
		m := tinyModel(t, 33)
		m.Config.Text.VocabSize = 49408
		out := filepath.Join(t.TempDir(), "m")
		if err := m.SaveWith(out, SaveOptions{From: dir}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(out, VocabFile)); err != nil {
			t.Fatal(err)
		}
	}
	// Empty merges and broken files are errors naming the file.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FastTokenizerFile), []byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`), 0o644)
	if _, err := LoadTokenizer(dir); err == nil || !strings.Contains(err.Error(), "merges") {
		t.Errorf("empty merges: %v", err)
	}
	os.WriteFile(filepath.Join(dir, FastTokenizerFile), []byte(`{"model": {"type": "WordPiece"}}`), 0o644)
	if _, err := LoadTokenizer(dir); err == nil || !strings.Contains(err.Error(), "WordPiece") {
		t.Errorf("WordPiece: %v", err)
	}
	if err := tok.SaveHF(dir); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, MergesFile), []byte("#version: 0.2\n"), 0o644)
	if _, err := LoadTokenizer(dir); err == nil || !strings.Contains(err.Error(), "no merges") {
		t.Errorf("empty merges.txt: %v", err)
	}
}

// preprocessor_config.json settings the pipeline does not implement are
// errors naming the key; the ones it does are honoured.
func TestParsePreprocessorConfig(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want string // error substring; "" = ok
	}{
		{`{"size": {"shortest_edge": 40}, "crop_size": 32, "image_mean": [0.5, 0.5, 0.5]}`, ""},
		{`{"resample": 2}`, "resample"},
		{`{"do_rescale": false}`, "do_rescale"},
		{`{"rescale_factor": 1}`, "rescale_factor"},
		{`{"crop_size": {"height": 30, "width": 30}}`, "crop_size"},
		{`{"image_std": [1, 2]}`, "image_std"},
		{`{"size": {"shortest_edge": 20}}`, "size"},
		{`{"size": {"height": 32, "width": 32}, "do_center_crop": false}`, ""},
		{`{"do_resize": false}`, "do_resize"},
		{`not json`, "invalid"},
	} {
		pc, err := ParsePreprocessorConfig([]byte(c.doc), 32)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.doc, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want %q", c.doc, err, c.want)
		case c.want == "" && strings.Contains(c.doc, "shortest_edge") && (pc.Resize != 40 || pc.Mean[0] != 0.5):
			t.Errorf("%s: %+v", c.doc, pc)
		case c.want == "" && strings.Contains(c.doc, "do_center_crop") && pc.Mode != imageproc.Squash:
			t.Errorf("%s: %+v", c.doc, pc)
		}
	}
}

// Concurrent saves of different models to one directory leave one of them,
// whole: config and weights always agree (issue: two prunes to one --out).
func TestConcurrentSavesDoNotMix(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	models := make([]*Model, 4)
	for i := range models {
		m := tinyModel(t, uint64(40+i))
		if i%2 == 1 {
			cfg := m.Config.Clone()
			cfg.Vision.NumHiddenLayers = 1
			var err error
			if m, err = New(cfg, uint64(40+i)); err != nil {
				t.Fatal(err)
			}
		}
		models[i] = m
	}
	errs := make(chan error, 3*len(models))
	done := make(chan bool)
	for _, m := range models {
		go func() {
			for range 3 {
				errs <- m.Save(dir)
			}
			done <- true
		}()
	}
	for range models {
		<-done
	}
	for range 3 * len(models) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatalf("the directory does not load after concurrent saves: %v", err)
	}
	ok := false
	for _, m := range models {
		if sameBitsF32(got.Params()[0].Value.Data, m.Params()[0].Value.Data) && got.Config.Vision.NumHiddenLayers == m.Config.Vision.NumHiddenLayers {
			ok = true
		}
	}
	if !ok {
		t.Fatal("the directory holds none of the saved models")
	}
}
