package infer

import (
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
)

// TestBatchEncoder: a clip.Encoder running on the engine (Encoder.Device =
// Engine.BatchEncoder) gives the reference forward's embeddings for images
// and for tokenized texts of several lengths and batches, on a pruned
// model, and bad batches are errors, not panics.
func TestBatchEncoder(t *testing.T) {
	tok, err := tokenizer.Train(strings.Fields("a red circle left of a blue square there is a small green star"), tokenizer.MinVocabSize+20)
	if err != nil {
		t.Fatal(err)
	}
	cfg := preset(t, "tiny")
	cfg.Vision.LayerHeads = []int{3, 0}
	cfg.Text.LayerIntermediate = []int{0, 50}
	cfg.Text.VocabSize, cfg.Text.EOSTokenID, cfg.Text.BOSTokenID = tok.VocabSize(), tok.EOT(), tok.SOT()
	m := randomModel(t, cfg, 5)
	e, err := New(m, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	in := makeInputs(m, 7, 9, 11)
	ref := &clip.Encoder{Model: m, Tok: tok, Batch: 3}
	fast := &clip.Encoder{Model: m, Tok: tok, Batch: 3, Workers: 1, Device: e.BatchEncoder()}
	wantImg := ref.Images(in.pixels, in.B)
	gotImg := fast.Images(in.pixels, in.B)
	if err := relErr(gotImg.Data, wantImg.Data); err > 1e-5 {
		t.Errorf("images: relative error %.3g", err)
	}
	texts := []string{"a red circle", "there is a small green star left of a blue square", "a", "blue square", "a red circle left of a blue square"}
	wantTxt, err := ref.Texts(texts)
	if err != nil {
		t.Fatal(err)
	}
	gotTxt, err := fast.Texts(texts)
	if err != nil {
		t.Fatal(err)
	}
	if err := relErr(gotTxt.Data, wantTxt.Data); err > 1e-5 {
		t.Errorf("texts: relative error %.3g", err)
	}

	d := e.BatchEncoder()
	if _, err := d.EncodeImages(in.pixels[1:], in.B); err == nil {
		t.Errorf("short pixel buffer accepted")
	}
	if _, err := d.EncodeTexts(&clip.TextBatch{IDs: []int{1, cfg.Text.VocabSize}, EOTPos: []int{1}, B: 1, T: 2}); err == nil {
		t.Errorf("token id outside the vocabulary accepted")
	}
	if _, err := d.EncodeTexts(&clip.TextBatch{IDs: []int{1, 2}, EOTPos: []int{1}, B: 1, T: cfg.Text.MaxPositionEmbeddings + 1}); err == nil {
		t.Errorf("malformed batch accepted")
	}
}
