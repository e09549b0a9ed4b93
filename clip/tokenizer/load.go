package tokenizer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mopeclip/mopeclip/internal/atomicfile"
)

// mergeLine is one parsed merge with its 1-based line number.
type mergeLine struct {
	pair [2]string
	line int
}

// readMerges parses merge lines from r: line 1 is a header (skipped when
// alwaysSkipHeader is true, or when it starts with "#version"); each line holds
// two symbols separated by white space; blank lines at the end are ignored.
// At most max merges are read (max < 0: all); the rest of the file is not.
func readMerges(r io.Reader, path string, max int, alwaysSkipHeader bool) ([]mergeLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var out []mergeLine
	blank := 0 // line number of the first blank line in a run, 0 if none
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if !utf8.ValidString(text) {
			return nil, fmt.Errorf("%s:%d: invalid UTF-8", path, line)
		}
		if line == 1 && (alwaysSkipHeader || strings.HasPrefix(text, "#version")) {
			continue
		}
		if max >= 0 && len(out) >= max {
			break
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			if blank == 0 {
				blank = line
			}
			continue
		}
		if blank != 0 {
			return nil, fmt.Errorf("%s:%d: blank line inside the merges", path, blank)
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("%s:%d: want two symbols separated by a space, got %d fields", path, line, len(f))
		}
		out = append(out, mergeLine{pair: [2]string{f[0], f[1]}, line: line})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// openMaybeGzip opens path, transparently decompressing gzip content.
func openMaybeGzip(path string) (io.Reader, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("tokenizer: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<16)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("tokenizer: %s: %w", path, err)
		}
		return zr, f.Close, nil
	}
	return br, f.Close, nil
}

// LoadOpenAI reads CLIP's merges file (bpe_simple_vocab_16e6.txt.gz, gzip or
// plain text): line 1 is a header, each later line one merge "a b" in rank
// order. As in CLIP, only the first OpenAIMerges merges are used, so the
// vocabulary is the 512 byte tokens, one token per merge, <|startoftext|>
// and <|endoftext|>. A merge whose symbols are not byte tokens or results of
// earlier merges is an error, as is a line that is not two symbols.
func LoadOpenAI(path string) (*Tokenizer, error) {
	r, closeFn, err := openMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	lines, err := readMerges(r, path, OpenAIMerges, true)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if len(lines) == 0 {
		// An empty file is certainly not a vocabulary; a header-only one is
		// a valid (byte-level) vocabulary, but empty is likely a mistake.
		if fi, err := os.Stat(path); err == nil && fi.Size() == 0 {
			return nil, fmt.Errorf("tokenizer: %s: empty file", path)
		}
	}
	vocab := baseVocab()
	known := make(map[string]bool, len(vocab)+len(lines))
	for _, v := range vocab {
		known[v] = true
	}
	pairs := make([][2]string, len(lines))
	for i, l := range lines {
		for _, s := range l.pair {
			if !known[s] {
				return nil, fmt.Errorf("tokenizer: %s:%d: symbol %q is neither a byte token nor made by an earlier merge", path, l.line, s)
			}
		}
		m := l.pair[0] + l.pair[1]
		known[m] = true
		vocab = append(vocab, m)
		pairs[i] = l.pair
	}
	vocab = append(vocab, sotText, eotText)
	t, err := build(vocab, nil, pairs)
	if err != nil {
		var le *lineError
		if errors.As(err, &le) {
			return nil, fmt.Errorf("tokenizer: %s:%d: %v", path, lines[le.index].line, le.err)
		}
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return t, nil
}

// LoadHF reads a Hugging Face CLIP tokenizer: vocab.json (token -> id, ids
// 0..n-1 each used once) and merges.txt (an optional "#version" header, then
// one merge "a b" per line in rank order). The vocabulary must contain the
// 512 byte tokens, <|startoftext|>, <|endoftext|>, and every merge's symbols
// and result.
func LoadHF(vocabJSON, mergesTXT string) (*Tokenizer, error) {
	vocab, ids, err := readVocabJSON(vocabJSON)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(mergesTXT)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	lines, err := readMerges(f, mergesTXT, -1, false)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	pairs := make([][2]string, len(lines))
	for i, l := range lines {
		pairs[i] = l.pair
	}
	t, err := build(vocab, ids, pairs)
	if err != nil {
		var le *lineError
		if errors.As(err, &le) {
			return nil, fmt.Errorf("tokenizer: %s:%d: %v", mergesTXT, lines[le.index].line, le.err)
		}
		return nil, fmt.Errorf("tokenizer: %s: %w", vocabJSON, err)
	}
	return t, nil
}

// readVocabJSON parses a JSON object of token -> id.
func readVocabJSON(path string) ([]string, map[string]int32, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("tokenizer: %w", err)
	}
	fail := func(off int64, format string, args ...any) error {
		line := 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n"))
		return fmt.Errorf("tokenizer: %s:%d: %s", path, line, fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	jsonErr := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fail(se.Offset, "%v", err)
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fail(dec.InputOffset(), "%v", err)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, jsonErr(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fail(dec.InputOffset(), "want a JSON object of token -> id")
	}
	ids := make(map[string]int32)
	byID := make(map[int32]string)
	maxID := int32(-1)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, jsonErr(err)
		}
		key := tok.(string) // object keys are strings
		keyOff := dec.InputOffset()
		tok, err = dec.Token()
		if err != nil {
			return nil, nil, jsonErr(err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, nil, fail(keyOff, "id of %q is not a number", key)
		}
		id64, err := strconv.ParseInt(num.String(), 10, 32)
		if err != nil || id64 < 0 {
			return nil, nil, fail(keyOff, "id of %q is not a non-negative integer: %s", key, num)
		}
		id := int32(id64)
		if _, dup := ids[key]; dup {
			return nil, nil, fail(keyOff, "token %q appears twice", key)
		}
		if prev, dup := byID[id]; dup {
			return nil, nil, fail(keyOff, "id %d is used by %q and %q", id, prev, key)
		}
		ids[key], byID[id] = id, key
		maxID = max(maxID, id)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, jsonErr(err)
	}
	if dec.More() {
		return nil, nil, fail(dec.InputOffset(), "data after the JSON object")
	}
	vocab := make([]string, maxID+1)
	for id := range vocab {
		tok, ok := byID[int32(id)]
		if !ok {
			return nil, nil, fmt.Errorf("tokenizer: %s: no token has id %d (ids must be 0..%d)", path, id, maxID)
		}
		vocab[id] = tok
	}
	if len(vocab) == 0 {
		return nil, nil, fmt.Errorf("tokenizer: %s: empty vocabulary", path)
	}
	return vocab, ids, nil
}

// SaveHF writes the tokenizer as a Hugging Face CLIP tokenizer: dir/vocab.json
// (token -> id, in id order) and dir/merges.txt ("#version: 0.2", then one
// merge per line). dir is created if needed; each file is replaced
// atomically.
func (t *Tokenizer) SaveHF(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	var vb bytes.Buffer
	vb.WriteByte('{')
	enc := json.NewEncoder(&vb)
	enc.SetEscapeHTML(false)
	for id, tok := range t.vocab {
		if id > 0 {
			vb.WriteByte(',')
		}
		if err := enc.Encode(tok); err != nil {
			return fmt.Errorf("tokenizer: %w", err)
		}
		vb.Truncate(vb.Len() - 1) // Encode's newline
		vb.WriteByte(':')
		vb.WriteString(strconv.Itoa(id))
	}
	vb.WriteString("}\n")
	var mb bytes.Buffer
	mb.WriteString("#version: 0.2\n")
	for _, p := range t.pairs {
		mb.WriteString(p[0])
		mb.WriteByte(' ')
		mb.WriteString(p[1])
		mb.WriteByte('\n')
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "vocab.json"), vb.Bytes()); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "merges.txt"), mb.Bytes()); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	return nil
}
