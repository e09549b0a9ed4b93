package clip

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mopeclip/mopeclip/clip/tokenizer"
)

// LoadTokenizer reads the CLIP tokenizer of a Hugging Face model directory:
// dir/vocab.json and dir/merges.txt. A missing file is an error that says
// which one and how to provide it.
func LoadTokenizer(dir string) (*tokenizer.Tokenizer, error) {
	var missing []string
	for _, name := range []string{VocabFile, MergesFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, name)
		} else if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
	}
	switch len(missing) {
	case 1:
		return nil, fmt.Errorf("tokenizer: %s has no %s (the tokenizer needs %s and %s; copy them from the original model, or write them with 'mope init --vocab bpe_simple_vocab_16e6.txt.gz')",
			dir, missing[0], VocabFile, MergesFile)
	case 2:
		return nil, fmt.Errorf("tokenizer: %s has no %s or %s (copy them from the original model, or write them with 'mope init --vocab bpe_simple_vocab_16e6.txt.gz')",
			dir, VocabFile, MergesFile)
	}
	return tokenizer.LoadHF(filepath.Join(dir, VocabFile), filepath.Join(dir, MergesFile))
}
