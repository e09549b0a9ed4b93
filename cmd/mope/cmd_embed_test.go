package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/internal/testutil"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

func parseEmbed(t *testing.T, out string) embedOutput {
	t.Helper()
	var e embedOutput
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	return e
}

func TestEmbed(t *testing.T) {
	model := embedTinyModel(t)
	_, a, b := preprocessFixture(t)
	code, out, errs := runMope("embed", "--model", model, "--image", a, "--image", b, "--text", "a red circle", "--text", "the big dog", "--text", "cat")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	e := parseEmbed(t, out)
	if len(e.ImageEmbeds) != 2 || len(e.TextEmbeds) != 3 || len(e.ImageEmbeds[0]) != 32 || len(e.TextEmbeds[2]) != 32 {
		t.Fatalf("shapes: %d×%d images, %d texts", len(e.ImageEmbeds), len(e.ImageEmbeds[0]), len(e.TextEmbeds))
	}
	if !strings.HasPrefix(out, `{"image_embeds":[[`) || !strings.Contains(out, `],"text_embeds":[[`) {
		t.Fatalf("layout: %.80s", out)
	}

	// The printed values are exactly the library's float32 embeddings
	// (unnormalised), so the digits round-trip.
	m, err := clip.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	pre, _ := modelPreprocessConfig(model)
	px, err := imageproc.Batch([]string{a, b}, pre)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := tensor.FromData(px, 2, 3, 32, 32)
	want := m.EncodeImage(nil, ops.Const(x)).Value
	wantRows := [][]float32{want.Data[:32], want.Data[32:]}
	if !testutil.SameBits(e.ImageEmbeds, wantRows) {
		t.Fatalf("image embeddings differ from the library's:\n%v\n%v", e.ImageEmbeds[0][:4], wantRows[0][:4])
	}
	var norm float64
	for _, v := range e.ImageEmbeds[0] {
		norm += float64(v) * float64(v)
	}
	if math.Abs(norm-1) < 1e-3 {
		t.Fatal("image embedding looks normalised")
	}
	tok, _ := clip.LoadTokenizer(model)
	txt, err := clip.EncodeTexts(m, tok, []string{"a red circle", "the big dog", "cat"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !testutil.SameBits(e.TextEmbeds, [][]float32{txt.Data[:32], txt.Data[32:64], txt.Data[64:]}) {
		t.Fatal("text embeddings differ from the library's")
	}

	// --pixels with what preprocess writes gives the same image embeddings.
	npy := filepath.Join(t.TempDir(), "px.npy")
	if code, _, errs := runMope("preprocess", "--model", model, "--image", a, "--image", b, "--out", npy); code != 0 {
		t.Fatalf("preprocess: exit %d: %s", code, errs)
	}
	code, out, errs = runMope("embed", "--model", model, "--pixels", npy)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	p := parseEmbed(t, out)
	if !testutil.SameBits(p.ImageEmbeds, e.ImageEmbeds) || len(p.TextEmbeds) != 0 {
		t.Fatal("--pixels and --image disagree")
	}
	if !strings.Contains(out, `"text_embeds":[]`) {
		t.Fatalf("no texts should print an empty list: %s", out)
	}
	// Texts only.
	code, out, _ = runMope("embed", "--model", model, "--text", "cat")
	if q := parseEmbed(t, out); code != 0 || len(q.ImageEmbeds) != 0 || !testutil.SameBits(q.TextEmbeds, e.TextEmbeds[2:]) {
		t.Fatalf("texts only: exit %d %s", code, out)
	}
}

func TestEmbedErrors(t *testing.T) {
	t.Setenv(VocabEnv, "") // a model without a tokenizer must fail, not fall back to $MOPECLIP_VOCAB (CI sets it)
	model := embedTinyModel(t)
	dir, a, _ := preprocessFixture(t)
	bad := filepath.Join(dir, "bad.npy")
	if err := imageproc.WriteNPY(bad, make([]float32, 2*3*16*16), []int{2, 3, 16, 16}); err != nil {
		t.Fatal(err)
	}
	flat := filepath.Join(dir, "flat.npy")
	if err := imageproc.WriteNPY(flat, make([]float32, 3*32*32), []int{3, 32, 32}); err != nil {
		t.Fatal(err)
	}
	noTok := filepath.Join(t.TempDir(), "notok")
	if code, _, errs := runMope("init", "--preset", "tiny", "--out", noTok, "--vocab", ""); code != 0 {
		t.Fatal(errs)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--image", a}, 2, "--model"},
		{[]string{"--model", model}, 2, "nothing to embed"},
		{[]string{"--model", model, "--image", a, "--pixels", bad}, 2, "not both"},
		{[]string{"--model", model, "stray"}, 2, "stray"},
		{[]string{"--model", filepath.Join(dir, "nowhere"), "--text", "x"}, 1, "does not exist"},
		{[]string{"--model", dir, "--text", "x"}, 1, "config.json"},
		{[]string{"--model", a, "--text", "x"}, 1, "not a directory"},
		{[]string{"--model", model, "--pixels", bad}, 1, "[N,3,32,32]"},
		{[]string{"--model", model, "--pixels", flat}, 1, "[3 32 32]"},
		{[]string{"--model", model, "--pixels", filepath.Join(dir, "none.npy")}, 1, "none.npy"},
		{[]string{"--model", model, "--image", filepath.Join(dir, "none.png")}, 1, "none.png"},
		{[]string{"--model", model, "--image", bad}, 1, "bad.npy"},
		{[]string{"--model", noTok, "--text", "x"}, 1, "vocab.json"},
		{[]string{"--model", model, "--image", a, "--mode", "zoom"}, 2, "zoom"},
	} {
		code, out, errs := runMope(append([]string{"embed"}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q", c.args, code, c.code, errs)
		}
		if out != "" {
			t.Errorf("%v: printed %q on failure", c.args, out)
		}
	}
}
