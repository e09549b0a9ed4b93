package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
)

// embedTinyModel writes a random tiny checkpoint with `mope init` and a small
// trained tokenizer (so that tests need no vocabulary file).
func embedTinyModel(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny")
	if code, _, errs := runMope("init", "--preset", "tiny", "--out", dir, "--seed", "3", "--vocab", ""); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	var corpus []string
	for _, a := range []string{"red", "green", "blue", "big", "small", "a", "the", "photo"} {
		for _, b := range []string{"circle", "square", "star", "of", "cat", "dog"} {
			corpus = append(corpus, a+" "+b)
		}
	}
	tok, err := tokenizer.Train(corpus, 560)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.SaveHF(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestInitTiny(t *testing.T) {
	base := t.TempDir()
	a, b, c := filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "c")
	for _, run := range []struct {
		dir, seed string
	}{{a, "1"}, {b, "1"}, {c, "2"}} {
		code, out, errs := runMope("init", "--preset", "tiny", "--out", run.dir, "--seed", run.seed, "--vocab", "")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if !strings.Contains(out, "wrote "+run.dir) || !strings.Contains(out, "no tokenizer") {
			t.Fatalf("output: %q", out)
		}
	}
	for _, name := range []string{clip.ConfigFile, clip.WeightsFile, "preprocessor_config.json"} {
		if _, err := os.Stat(filepath.Join(a, name)); err != nil {
			t.Fatal(err)
		}
	}
	wa, _ := os.ReadFile(filepath.Join(a, clip.WeightsFile))
	wb, _ := os.ReadFile(filepath.Join(b, clip.WeightsFile))
	wc, _ := os.ReadFile(filepath.Join(c, clip.WeightsFile))
	if !bytes.Equal(wa, wb) || bytes.Equal(wa, wc) {
		t.Fatal("weights do not follow the seed")
	}
	m, err := clip.Load(a)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := clip.Preset("tiny")
	if m.Config.Vision.HiddenSize != want.Vision.HiddenSize || m.Config.ProjectionDim != want.ProjectionDim {
		t.Fatalf("config %+v", m.Config)
	}
	// The preprocessor config is one the preprocess command reads.
	pc, err := modelPreprocessConfig(a)
	if err != nil || pc.Size != 32 || pc.Resize != 32 {
		t.Fatalf("preprocessor config: %+v, %v", pc, err)
	}

	// An existing checkpoint is not overwritten without --force.
	code, _, errs := runMope("init", "--preset", "tiny", "--out", a, "--seed", "9", "--vocab", "")
	if code != 1 || !strings.Contains(errs, "--force") {
		t.Fatalf("overwrite: exit %d: %s", code, errs)
	}
	if code, _, errs := runMope("init", "--preset", "tiny", "--out", a, "--seed", "2", "--vocab", "", "--force"); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, errs)
	}
	wa, _ = os.ReadFile(filepath.Join(a, clip.WeightsFile))
	if !bytes.Equal(wa, wc) {
		t.Fatal("--force did not rewrite the weights")
	}
}

func TestInitVocab(t *testing.T) {
	vocab := tokClipVocab(t)
	dir := filepath.Join(t.TempDir(), "m")
	code, out, errs := runMope("init", "--preset", "tiny", "--out", dir, "--vocab", vocab)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "tokenizer from") {
		t.Fatalf("output: %q", out)
	}
	code, out, errs = runMope("tokenize", "--model", dir, "a photo of a cat")
	if code != 0 || out != "[49406,320,1125,539,320,2368,49407]\n" {
		t.Fatalf("tokenize with the written vocabulary: exit %d %q %s", code, out, errs)
	}
	// The default comes from $MOPECLIP_VOCAB.
	t.Setenv("MOPECLIP_VOCAB", vocab)
	dir2 := filepath.Join(t.TempDir(), "m2")
	if code, _, errs := runMope("init", "--preset", "tiny", "--out", dir2); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, err := clip.LoadTokenizer(dir2); err != nil {
		t.Fatal(err)
	}
}

func TestInitErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--out", dir}, 2, "--preset"},
		{[]string{"--preset", "tiny"}, 2, "--out"},
		{[]string{"--preset", "ViT-Z/99", "--out", dir}, 2, "ViT-B/32"},
		{[]string{"--preset", "tiny", "--out", filepath.Join(dir, "x"), "--vocab", filepath.Join(dir, "none.txt.gz")}, 1, "none.txt.gz"},
		{[]string{"--preset", "tiny", "--out", dir, "extra"}, 2, "extra"},
	} {
		code, _, errs := runMope(append([]string{"init"}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d (want %d): %s", c.args, code, c.code, errs)
		}
	}
	// A bad vocabulary leaves nothing behind.
	if _, err := os.Stat(filepath.Join(dir, "x", clip.ConfigFile)); err == nil {
		t.Error("a failed init wrote a checkpoint")
	}
}

// TestInitSmallVocabPoolsAtItsEOT: a vocabulary smaller than the preset's
// has its own end-of-text id; init writes it as eos_token_id (and its
// start-of-text as bos_token_id), so that the text tower pools at the end
// of each caption, not at the last padding position.
func TestInitSmallVocabPoolsAtItsEOT(t *testing.T) {
	tmp := t.TempDir()
	vocab := filepath.Join(tmp, "small.txt")
	if err := os.WriteFile(vocab, []byte("#version: 0.2\nt h\nth e</w>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "m")
	if code, _, errs := runMope("init", "--preset", "tiny", "--out", dir, "--vocab", vocab); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	cfg, err := clip.LoadConfig(filepath.Join(dir, clip.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := clip.LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Text.EOSTokenID != tok.EOT() || cfg.Text.BOSTokenID != tok.SOT() || tok.EOT() >= 49407 {
		t.Fatalf("eos_token_id %d, bos_token_id %d; the tokenizer's EOT %d, SOT %d", cfg.Text.EOSTokenID, cfg.Text.BOSTokenID, tok.EOT(), tok.SOT())
	}
	ids, eot, err := tok.Batch([]string{"the"}, cfg.Text.MaxPositionEmbeddings, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := clip.EOTPositions(ids, 1, cfg.Text.MaxPositionEmbeddings, cfg.Text.EOSTokenID); got[0] != eot[0] {
		t.Fatalf("pooled at %d, the end-of-text is at %d", got[0], eot[0])
	}
}
