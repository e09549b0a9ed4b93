// Package tokenizer is CLIP's text tokenizer: byte-level BPE over lower-cased,
// cleaned text, as in OpenAI's clip/simple_tokenizer.py, with the vocabulary
// read from OpenAI's bpe_simple_vocab_16e6.txt.gz or from a Hugging Face
// vocab.json + merges.txt pair, and a trainer for CLIP-style vocabularies.
//
// Encoding a text:
//
//  1. Clean: a subset of ftfy.fix_text (see ftfy.go for what is and is not
//     done), Python's html.unescape twice, whitespace trimmed and collapsed,
//     Python's str.lower.
//  2. Split with CLIP's pattern: the literals <|startoftext|> and
//     <|endoftext|>, the contractions 's 't 're 've 'm 'll 'd, runs of
//     letters, single numeric characters, runs of anything else but spaces.
//  3. Each piece's UTF-8 bytes become byte symbols, the last one marked with
//     "</w>", and BPE merges them by rank. The two literals map to the special
//     tokens directly.
//
// The vocabulary is laid out as CLIP's: 256 byte symbols in GPT-2's
// bytes_to_unicode order, the same with "</w>", one token per merge in rank
// order, then <|startoftext|> and <|endoftext|>.
//
// A Tokenizer is safe for concurrent use.
//
// testdata/golden.json holds the reference outputs (see testdata/README.md).
package tokenizer

//go:generate sh -c "/usr/bin/python3 testdata/gen_tables.py > tables_gen.go && gofmt -w tables_gen.go"

import (
	"fmt"
	"hash/maphash"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"
)

// DefaultContext is the context length of every CLIP model.
const DefaultContext = 77

// OpenAIMerges is the number of merges CLIP uses from its merges file
// (49152 - 256 - 2): the vocabulary then has 49408 tokens.
const OpenAIMerges = 49152 - 256 - 2

// Tokenizer encodes text into CLIP token ids and back.
type Tokenizer struct {
	vocab   []string         // id -> token (byte runes, maybe "</w>"-suffixed)
	ids     map[string]int32 // token -> id (the last id when a token repeats)
	merges  map[uint64]mergeRule
	pairs   [][2]string // merges in rank order
	byteTok [256]int32
	byteEnd [256]int32
	sot     int32
	eot     int32
	cache   wordCache
}

// build finishes a Tokenizer from its vocabulary and ranked merges. It
// checks what BPE needs; errors describe the problem without a location
// (the loaders add file and line).
func build(vocab []string, ids map[string]int32, pairs [][2]string) (*Tokenizer, error) {
	t := &Tokenizer{vocab: vocab, ids: ids, pairs: pairs}
	t.cache.seed = maphash.MakeSeed()
	if ids == nil {
		t.ids = make(map[string]int32, len(vocab))
		for i, tok := range vocab {
			t.ids[tok] = int32(i) // later duplicates win, as in the reference
		}
	}
	for b := 0; b < 256; b++ {
		s := string(byteRune[b])
		id, ok := t.ids[s]
		if !ok {
			return nil, fmt.Errorf("vocabulary lacks the byte token %q (byte 0x%02x)", s, b)
		}
		t.byteTok[b] = id
		if id, ok = t.ids[s+endOfWord]; !ok {
			return nil, fmt.Errorf("vocabulary lacks the byte token %q (byte 0x%02x)", s+endOfWord, b)
		}
		t.byteEnd[b] = id
	}
	var ok bool
	if t.sot, ok = t.ids[sotText]; !ok {
		return nil, fmt.Errorf("vocabulary lacks %s", sotText)
	}
	if t.eot, ok = t.ids[eotText]; !ok {
		return nil, fmt.Errorf("vocabulary lacks %s", eotText)
	}
	t.merges = make(map[uint64]mergeRule, len(pairs))
	for r, p := range pairs {
		if err := t.addMerge(int32(r), p); err != nil {
			return nil, &lineError{index: r, err: err}
		}
	}
	return t, nil
}

func (t *Tokenizer) addMerge(rank int32, p [2]string) error {
	a, ok := t.ids[p[0]]
	if !ok {
		return fmt.Errorf("merge symbol %q is not in the vocabulary", p[0])
	}
	b, ok := t.ids[p[1]]
	if !ok {
		return fmt.Errorf("merge symbol %q is not in the vocabulary", p[1])
	}
	res, ok := t.ids[p[0]+p[1]]
	if !ok {
		return fmt.Errorf("merge result %q is not in the vocabulary", p[0]+p[1])
	}
	t.merges[pairKey(a, b)] = mergeRule{rank: rank, result: res} // a repeated pair keeps its last rank
	return nil
}

// lineError is a build error tied to the merge with the given index.
type lineError struct {
	index int
	err   error
}

func (e *lineError) Error() string { return e.err.Error() }

// SOT returns the id of <|startoftext|>.
func (t *Tokenizer) SOT() int { return int(t.sot) }

// EOT returns the id of <|endoftext|>.
func (t *Tokenizer) EOT() int { return int(t.eot) }

// VocabSize returns the number of token ids (49408 for CLIP).
func (t *Tokenizer) VocabSize() int { return len(t.vocab) }

// NumMerges returns the number of BPE merges.
func (t *Tokenizer) NumMerges() int { return len(t.pairs) }

// Token returns the vocabulary entry of id (byte symbols, "</w>" marking a
// word end) and whether id is valid.
func (t *Tokenizer) Token(id int) (string, bool) {
	if id < 0 || id >= len(t.vocab) {
		return "", false
	}
	return t.vocab[id], true
}

// Encode returns the BPE token ids of text, without <|startoftext|> and
// <|endoftext|> around them.
func (t *Tokenizer) Encode(text string) []int {
	return t.appendEncode(nil, text)
}

func (t *Tokenizer) appendEncode(dst []int, text string) []int {
	var tmp []int32
	split(Clean(text), func(piece string) {
		switch piece {
		case sotText:
			dst = append(dst, int(t.sot))
			return
		case eotText:
			dst = append(dst, int(t.eot))
			return
		}
		if ids, ok := t.cache.get(piece); ok {
			for _, id := range ids {
				dst = append(dst, int(id))
			}
			return
		}
		tmp = t.bpe(tmp[:0], piece)
		for _, id := range tmp {
			dst = append(dst, int(id))
		}
		if len(piece) <= cacheMaxPiece {
			t.cache.put(strings.Clone(piece), append([]int32(nil), tmp...))
		}
	})
	return dst
}

// Tokenize returns <|startoftext|>, the ids of text, <|endoftext|>, without
// padding. When that is longer than context it is an error, unless truncate
// is set: then the first context ids are kept and the last one is replaced by
// <|endoftext|> (CLIP's clip.tokenize(truncate=True)). context must be at
// least 2.
func (t *Tokenizer) Tokenize(text string, context int, truncate bool) ([]int, error) {
	if context < 2 {
		return nil, fmt.Errorf("tokenizer: context length %d is less than 2", context)
	}
	ids := make([]int, 1, 16)
	ids[0] = int(t.sot)
	ids = t.appendEncode(ids, text)
	ids = append(ids, int(t.eot))
	if len(ids) > context {
		if !truncate {
			return nil, fmt.Errorf("tokenizer: input %q is too long for context length %d (%d tokens)",
				abbrev(text), context, len(ids))
		}
		ids = ids[:context]
		ids[context-1] = int(t.eot)
	}
	return ids, nil
}

func abbrev(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max]) + "…"
}

// Batch tokenizes texts into one row of context ids each, zero-padded, as
// clip.tokenize does: ids has len(texts)*context entries, row i at
// ids[i*context:(i+1)*context]. eotPos[i] is the index in row i of its first
// <|endoftext|>, which is where CLIP pools the text features (the argmax of
// the row, <|endoftext|> being the largest id). Texts are encoded in
// parallel. The error names the first text that is too long.
func (t *Tokenizer) Batch(texts []string, context int, truncate bool) (ids []int, eotPos []int, err error) {
	if context < 2 {
		return nil, nil, fmt.Errorf("tokenizer: context length %d is less than 2", context)
	}
	ids = make([]int, len(texts)*context)
	eotPos = make([]int, len(texts))
	errs := make([]error, len(texts))
	work := func(i int) {
		row, err := t.Tokenize(texts[i], context, truncate)
		if err != nil {
			errs[i] = fmt.Errorf("text %d: %w", i, err)
			return
		}
		copy(ids[i*context:], row)
		eotPos[i] = len(row) - 1
		for j, id := range row {
			if id == int(t.eot) {
				eotPos[i] = j
				break
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), (len(texts)+255)/256)
	if workers <= 1 {
		for i := range texts {
			work(i)
		}
	} else {
		var wg sync.WaitGroup
		const chunk = 256
		next := make(chan int, (len(texts)+chunk-1)/chunk)
		for s := 0; s < len(texts); s += chunk {
			next <- s
		}
		close(next)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for s := range next {
					for i := s; i < min(s+chunk, len(texts)); i++ {
						work(i)
					}
				}
			}()
		}
		wg.Wait()
	}
	for _, e := range errs {
		if e != nil {
			return nil, nil, e
		}
	}
	return ids, eotPos, nil
}

// Decode turns ids back into text the way CLIP's reference decoder does: the
// tokens' bytes are joined and read as UTF-8 (each invalid sequence becomes
// U+FFFD), and every "</w>" becomes a space; trailing spaces are then
// removed. Special tokens come out as their literals; an id outside the
// vocabulary comes out as U+FFFD. Decode(Encode(s)) is Clean(s) up to the
// spaces that separate pieces ("cat." decodes as "cat .").
func (t *Tokenizer) Decode(ids []int) string {
	var raw []byte
	for _, id := range ids {
		if id < 0 || id >= len(t.vocab) {
			raw = append(raw, 0xEF, 0xBF, 0xBD)
			continue
		}
		for _, r := range t.vocab[id] {
			if b, ok := runeByte[r]; ok {
				raw = append(raw, b)
			} else {
				raw = utf8.AppendRune(raw, r) // not a byte symbol (a foreign vocabulary)
			}
		}
	}
	s := strings.ReplaceAll(decodeUTF8Replace(raw), endOfWord, " ")
	return strings.TrimRight(s, " ")
}

// decodeUTF8Replace decodes b as UTF-8, replacing each maximal invalid
// subpart by one U+FFFD (Python's errors="replace").
func decodeUTF8Replace(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r != utf8.RuneError || size > 1 {
			sb.WriteRune(r)
			b = b[size:]
			continue
		}
		sb.WriteRune(utf8.RuneError)
		b = b[maximalSubpart(b):]
	}
	return sb.String()
}

// maximalSubpart is the length of the longest prefix of b that starts a
// well-formed UTF-8 sequence (at least 1).
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		if b[n] < lo || b[n] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
		n++
	}
	return n
}
