package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/export"
	"github.com/mopeclip/mopeclip/internal/ortnode"
	"github.com/mopeclip/mopeclip/internal/testutil"
	"github.com/mopeclip/mopeclip/tensor"
)

// openCLIPDir writes the random tiny model of embedTinyModel (with random
// biases and layer-norm gains too, and the EOT id of its tokenizer) both as a Hugging Face directory and as
// an open_clip hub directory (testutil.WriteOpenCLIP, open_clip's names)
// with the same tokenizer, and returns both.
func openCLIPDir(t *testing.T) (hf, oc string) {
	t.Helper()
	src := embedTinyModel(t)
	m, err := clip.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	testutil.RandomizeParams(m, 17)
	// open_clip pools the text at the largest id (the legacy
	// eos_token_id 2 of transformers): the same token as the first
	// end-of-text when the config names the tokenizer's own EOT.
	tok, err := clip.LoadTokenizer(src)
	if err != nil {
		t.Fatal(err)
	}
	m.Config.Text.EOSTokenID = tok.EOT()
	hf = filepath.Join(t.TempDir(), "hf")
	if err := m.Save(hf); err != nil {
		t.Fatal(err)
	}
	oc = filepath.Join(t.TempDir(), "open_clip")
	if err := os.MkdirAll(oc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := testutil.WriteOpenCLIP(oc, m, nil); err != nil {
		t.Fatal(err)
	}
	if err := clip.CopyTokenizer(src, hf); err != nil {
		t.Fatal(err)
	}
	// The open_clip directory gets the tokenizer only: its preprocessing
	// is its preprocess_cfg.
	for _, name := range []string{clip.VocabFile, clip.MergesFile} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(oc, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return hf, oc
}

// TestOpenCLIPDirectoryThroughCommands: an open_clip hub directory works
// with 'mope info', 'mope embed' and 'mope export --format hf|onnx' run
// as a user runs them; its embeddings are bit for bit those of the same
// weights in the Hugging Face layout, and the exports embed the same.
func TestOpenCLIPDirectoryThroughCommands(t *testing.T) {
	hf, oc := openCLIPDir(t)

	// info: the layout, and the same sizes as the HF directory.
	var infos [2]infoOutput
	for i, dir := range []string{hf, oc} {
		code, out, errs := runMope("info", "--model", dir, "--json")
		if code != 0 {
			t.Fatalf("info %s: exit %d: %s", dir, code, errs)
		}
		if err := json.Unmarshal([]byte(out), &infos[i]); err != nil {
			t.Fatalf("info --json: %v\n%s", err, out)
		}
	}
	if infos[1].Layout != clip.LayoutOpenCLIP.String() || infos[1].Model != oc {
		t.Errorf("info of the open_clip directory: layout %q, model %q", infos[1].Layout, infos[1].Model)
	}
	if infos[0].Params != infos[1].Params || infos[0].GFLOPs != infos[1].GFLOPs ||
		infos[0].Vision.Layers != infos[1].Vision.Layers || infos[0].Text.Width != infos[1].Text.Width {
		t.Errorf("info differs: HF %d params %.4f GFLOPs, open_clip %d params %.4f GFLOPs",
			infos[0].Params, infos[0].GFLOPs, infos[1].Params, infos[1].GFLOPs)
	}

	// embed: the same numbers as the HF layout (preprocessed pixels, so
	// that only the model is compared: the open_clip directory's own
	// preprocess_cfg has another mean).
	m, err := clip.Load(hf)
	if err != nil {
		t.Fatal(err)
	}
	S := m.Config.Vision.ImageSize
	pix := tensor.New(2, 3, S, S).Normal(tensor.NewRNG(9), 0, 1)
	pixPath := filepath.Join(t.TempDir(), "pix.npy")
	if err := imageproc.WriteNPY(pixPath, pix.Data, pix.Shape); err != nil {
		t.Fatal(err)
	}
	want, got := embedOf(t, hf, pixPath), embedOf(t, oc, pixPath)
	if !testutil.SameBits(got.ImageEmbeds, want.ImageEmbeds) || !testutil.SameBits(got.TextEmbeds, want.TextEmbeds) {
		t.Fatalf("open_clip embeddings differ from the HF layout's: image %.3g, text %.3g",
			testutil.MaxRelErrRows(got.ImageEmbeds, want.ImageEmbeds), testutil.MaxRelErrRows(got.TextEmbeds, want.TextEmbeds))
	}
	// From image files, the open_clip directory's preprocess_cfg is used.
	_, a, b := preprocessFixture(t)
	fromFiles := func(dir string) embedOutput {
		code, out, errs := runMope("embed", "--model", dir, "--image", a, "--image", b)
		if code != 0 {
			t.Fatalf("embed --image %s: exit %d: %s", dir, code, errs)
		}
		return parseEmbed(t, out)
	}
	ocFiles := fromFiles(oc)
	if testutil.SameBits(ocFiles.ImageEmbeds, fromFiles(hf).ImageEmbeds) {
		t.Error("embed --image on the open_clip directory ignored its preprocess_cfg (the same as CLIP's defaults)")
	}

	// export --format hf: a Hugging Face directory with the same outputs,
	// its preprocessing included.
	hfOut := filepath.Join(t.TempDir(), "export-hf")
	if code, _, errs := runMope("export", "--model", oc, "--format", "hf", "--out", hfOut); code != 0 {
		t.Fatalf("export hf: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(hfOut, clip.OpenCLIPConfigFile)); err == nil {
		t.Errorf("the HF export holds %s", clip.OpenCLIPConfigFile)
	}
	ex := embedOf(t, hfOut, pixPath)
	if !testutil.SameBits(ex.ImageEmbeds, want.ImageEmbeds) || !testutil.SameBits(ex.TextEmbeds, want.TextEmbeds) {
		t.Errorf("the HF export embeds differently: image %.3g, text %.3g",
			testutil.MaxRelErrRows(ex.ImageEmbeds, want.ImageEmbeds), testutil.MaxRelErrRows(ex.TextEmbeds, want.TextEmbeds))
	}
	if ef := fromFiles(hfOut); !testutil.SameBits(ef.ImageEmbeds, ocFiles.ImageEmbeds) {
		t.Errorf("the HF export preprocesses image files differently from its open_clip source: %.3g",
			testutil.MaxRelErrRows(ef.ImageEmbeds, ocFiles.ImageEmbeds))
	}

	// export --format onnx: the encoders and the tokenizer, and (where
	// ONNX Runtime is installed) the same embeddings.
	onnxOut := filepath.Join(t.TempDir(), "export-onnx")
	s, so := exportSummary(t, oc, "onnx", onnxOut)
	if s.Format != "onnx" || s.Vision.Layers != m.Config.Vision.NumHiddenLayers || s.Text.Layers != m.Config.Text.NumHiddenLayers {
		t.Errorf("export summary %s", so)
	}
	for _, f := range []string{export.ImageEncoderFile, export.TextEncoderFile, clip.VocabFile, clip.MergesFile, clip.PreprocessorFile} {
		if _, err := os.Stat(filepath.Join(onnxOut, f)); err != nil {
			t.Errorf("ONNX export lacks %s: %v", f, err)
		}
	}
	if err := ortnode.Available(context.Background()); err != nil {
		if os.Getenv(ortnode.RequireEnv) == "1" {
			t.Fatalf("%v (%s=1)", err, ortnode.RequireEnv)
		}
		t.Logf("ONNX Runtime not run: %v", err)
		return
	}
	res := runORT(t, oc, onnxOut, m.Config.Text.MaxPositionEmbeddings, pix)
	if e := testutil.MaxRelErrRows(rows(res.ImageEmbeds, 2), want.ImageEmbeds); !(e <= 1e-5) {
		t.Errorf("ONNX image embeddings differ from mope embed's: %.3e > 1e-5", e)
	}
	if e := testutil.MaxRelErrRows(rows(res.TextEmbeds, len(exportTexts)), want.TextEmbeds); !(e <= 1e-5) {
		t.Errorf("ONNX text embeddings differ from mope embed's: %.3e > 1e-5", e)
	}
}
