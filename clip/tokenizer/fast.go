package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// LoadFast reads the BPE vocabulary and merges of a Hugging Face "fast"
// tokenizer file (tokenizer.json, written by the tokenizers library):
// model.type "BPE", model.vocab (token -> id) and model.merges, either
// "a b" strings (tokenizers < 0.20) or ["a", "b"] pairs (later). The
// pre-tokenisation and normalisation it describes are CLIP's, which this
// package implements; they are not read.
func LoadFast(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var doc struct {
		Model *struct {
			Type   string            `json:"type"`
			Vocab  map[string]int64  `json:"vocab"`
			Merges []json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: invalid JSON: %w", path, err)
	}
	if doc.Model == nil {
		return nil, fmt.Errorf("tokenizer: %s: no \"model\" object", path)
	}
	if doc.Model.Type != "" && doc.Model.Type != "BPE" {
		return nil, fmt.Errorf("tokenizer: %s: model.type %q is not BPE", path, doc.Model.Type)
	}
	if len(doc.Model.Vocab) == 0 {
		return nil, fmt.Errorf("tokenizer: %s: model.vocab is empty", path)
	}
	if len(doc.Model.Merges) == 0 {
		return nil, fmt.Errorf("tokenizer: %s: model.merges is empty", path)
	}
	ids := make(map[string]int32, len(doc.Model.Vocab))
	vocab := make([]string, len(doc.Model.Vocab))
	for tok, id := range doc.Model.Vocab {
		if id < 0 || id >= int64(len(vocab)) {
			return nil, fmt.Errorf("tokenizer: %s: model.vocab: id %d of %q outside 0..%d", path, id, tok, len(vocab)-1)
		}
		if vocab[id] != "" {
			return nil, fmt.Errorf("tokenizer: %s: model.vocab: id %d is used by %q and %q", path, id, vocab[id], tok)
		}
		vocab[id], ids[tok] = tok, int32(id)
	}
	pairs := make([][2]string, len(doc.Model.Merges))
	for i, raw := range doc.Model.Merges {
		p, err := parseFastMerge(raw)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %s: model.merges[%d]: %v", path, i, err)
		}
		pairs[i] = p
	}
	t, err := build(vocab, ids, pairs)
	if err != nil {
		var le *lineError
		if errors.As(err, &le) {
			return nil, fmt.Errorf("tokenizer: %s: model.merges[%d]: %v", path, le.index, le.err)
		}
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return t, nil
}

// parseFastMerge decodes one merge: "a b" or ["a", "b"].
func parseFastMerge(raw json.RawMessage) ([2]string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		f := strings.Split(s, " ")
		if len(f) != 2 || f[0] == "" || f[1] == "" {
			return [2]string{}, fmt.Errorf("%q is not two symbols separated by one space", s)
		}
		return [2]string{f[0], f[1]}, nil
	}
	var p []string
	if json.Unmarshal(raw, &p) == nil && len(p) == 2 && p[0] != "" && p[1] != "" {
		return [2]string{p[0], p[1]}, nil
	}
	return [2]string{}, fmt.Errorf("%s is neither \"a b\" nor [\"a\", \"b\"]", raw)
}
