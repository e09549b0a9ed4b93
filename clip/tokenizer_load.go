package clip

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mopeclip/mopeclip/clip/tokenizer"
)

// LoadTokenizer reads the CLIP tokenizer of a model directory:
// dir/vocab.json and dir/merges.txt, or, when both are absent, the fast
// tokenizer file dir/tokenizer.json. A missing file is an error that says
// which one and how to provide it; an empty vocabulary or merge list is an
// error too (a tokenizer without merges would silently tokenise every word
// into bytes).
func LoadTokenizer(dir string) (*tokenizer.Tokenizer, error) {
	vocab, merges := filepath.Join(dir, VocabFile), filepath.Join(dir, MergesFile)
	hasVocab, hasMerges := fileExists(vocab), fileExists(merges)
	switch {
	case hasVocab && hasMerges:
		tok, err := tokenizer.LoadHF(vocab, merges)
		if err != nil {
			return nil, err
		}
		if tok.NumMerges() == 0 {
			return nil, fmt.Errorf("tokenizer: %s has no merges (an empty merge list tokenises every word into bytes)", merges)
		}
		return tok, nil
	case !hasVocab && !hasMerges && fileExists(filepath.Join(dir, FastTokenizerFile)):
		return tokenizer.LoadFast(filepath.Join(dir, FastTokenizerFile))
	case hasVocab != hasMerges:
		missing := VocabFile
		if hasVocab {
			missing = MergesFile
		}
		return nil, fmt.Errorf("tokenizer: %s has no %s (the tokenizer needs %s and %s; copy them from the original model, or write them with 'mope init --vocab bpe_simple_vocab_16e6.txt.gz')",
			dir, missing, VocabFile, MergesFile)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %v (want a directory with %s and %s, or %s)", dir, errors.Unwrap(err), VocabFile, MergesFile, FastTokenizerFile)
	}
	return nil, fmt.Errorf("tokenizer: %s has no %s and %s, nor %s (copy them from the original model, or write them with 'mope init --vocab bpe_simple_vocab_16e6.txt.gz', or pass --vocab)",
		dir, VocabFile, MergesFile, FastTokenizerFile)
}
