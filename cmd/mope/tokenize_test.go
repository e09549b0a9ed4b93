package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip/tokenizer"
)

// tokClipVocab finds CLIP's merges file like the tokenizer tests do.
func tokClipVocab(t *testing.T) string {
	t.Helper()
	p := os.Getenv("MOPECLIP_VOCAB")
	if p == "" {
		p = filepath.Join("..", "..", "..", "shared", "clip", "bpe_simple_vocab_16e6.txt.gz")
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("MOPECLIP_REQUIRE_VOCAB") == "1" {
			t.Fatalf("CLIP vocabulary required (MOPECLIP_REQUIRE_VOCAB=1) but not found: %v", err)
		}
		t.Skipf("CLIP vocabulary not found (set MOPECLIP_VOCAB): %v", err)
	}
	return p
}

func tokRun(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestTokenizeVocab(t *testing.T) {
	vocab := tokClipVocab(t)
	code, out, errs := tokRun("tokenize", "--vocab", vocab, "a photo of a cat", "don't")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := "[49406,320,1125,539,320,2368,49407]\n[49406,847,713,49407]\n"
	if out != want {
		t.Fatalf("got %q, want %q", out, want)
	}
	// Flags after the text, and "--" before a text that looks like a flag.
	code, out, errs = tokRun("tokenize", "a photo of a cat", "--vocab", vocab, "--context", "5", "--truncate", "--", "-5 degrees")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != "[49406,320,1125,539,49407]" || !strings.HasPrefix(lines[1], "[49406,") {
		t.Fatalf("got %q", out)
	}
	// Too long without --truncate is an error (exit 1), not a usage error.
	code, _, errs = tokRun("tokenize", "--vocab", vocab, "--context", "4", "a photo of a cat")
	if code != 1 || !strings.Contains(errs, "too long") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestTokenizeModelDir(t *testing.T) {
	tok, err := tokenizer.Train([]string{"a photo of a cat", "a photo of a dog"}, tokenizer.MinVocabSize+20)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := tok.SaveHF(dir); err != nil {
		t.Fatal(err)
	}
	code, out, errs := tokRun("tokenize", "--model", dir, "a photo of a cat")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want, _ := tok.Tokenize("a photo of a cat", 77, false)
	if got := strings.TrimSpace(out); got != tokJSON(want) {
		t.Fatalf("got %s, want %s", got, tokJSON(want))
	}
	code, _, errs = tokRun("tokenize", "--model", filepath.Join(dir, "missing"), "x")
	if code != 1 || !strings.Contains(errs, "vocab.json") {
		t.Fatalf("missing model: exit %d: %s", code, errs)
	}
}

func tokJSON(ids []int) string {
	b, _ := json.Marshal(ids)
	return string(b)
}

func TestTokenizeUsage(t *testing.T) {
	t.Setenv(VocabEnv, "") // "no vocabulary" must not be filled in from $MOPECLIP_VOCAB (CI sets it)
	for _, args := range [][]string{
		{"tokenize", "text"}, // no vocabulary
		{"tokenize", "--vocab", "a", "--model", "b", "text"}, // both
		{"tokenize", "--vocab", "a"},                         // no text
		{"tokenize", "--vocab", "a", "--context", "1", "x"},  // bad context
		{"tokenize", "--bogus"},
	} {
		if code, _, errs := tokRun(args...); code != 2 || !strings.Contains(errs, "mope tokenize") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
}
