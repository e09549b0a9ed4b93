package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/mope"
)

// openModel loads a model directory (Hugging Face or open_clip layout)
// with loadModel's errors and prints the config's warning, if any, as one
// line on stderr: the clip package returns warnings, commands print them.
func openModel(dir string, stderr io.Writer) (*clip.Model, error) {
	m, err := loadModel(dir)
	if err != nil {
		return nil, err
	}
	warnNotes(stderr, m.Notes)
	return m, nil
}

// warnNotes prints the one-line warning of notes, if any.
func warnNotes(stderr io.Writer, notes clip.ConfigNotes) {
	if w := notes.Warning(); w != "" && stderr != nil {
		fmt.Fprintln(stderr, w)
	}
}

// modelTokenizer returns the tokenizer of model directory model (its
// vocab.json + merges.txt, or tokenizer.json) or, when it has none (an
// open_clip directory, say), the one at path (--vocab: a directory with
// those files or OpenAI's bpe_simple_vocab_16e6.txt.gz; default
// $MOPECLIP_VOCAB).
func modelTokenizer(model, path string) (*tokenizer.Tokenizer, error) {
	has := func(name string) bool { _, err := os.Stat(filepath.Join(model, name)); return err == nil }
	if has(clip.VocabFile) || has(clip.MergesFile) || has(clip.FastTokenizerFile) || path == "" {
		tok, err := clip.LoadTokenizer(model)
		if err != nil && path == "" && !has(clip.VocabFile) && !has(clip.FastTokenizerFile) {
			return nil, fmt.Errorf("%w; or pass --vocab (a dir with them, or bpe_simple_vocab_16e6.txt.gz) or set $%s", err, VocabEnv)
		}
		return tok, err
	}
	return mope.LoadTokenizer(model, path)
}
