package tokenizer

import (
	"compress/gzip"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// vocabPath finds CLIP's merges file: $MOPECLIP_VOCAB, else the shared copy
// beside the repository. Without it the test is skipped, or fails when
// MOPECLIP_REQUIRE_VOCAB=1 (CI).
func vocabPath(t testing.TB) string {
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

var (
	clipOnce sync.Once
	clipTok  *Tokenizer
	clipErr  error
)

func openAI(t testing.TB) *Tokenizer {
	t.Helper()
	p := vocabPath(t)
	clipOnce.Do(func() { clipTok, clipErr = LoadOpenAI(p) })
	if clipErr != nil {
		t.Fatal(clipErr)
	}
	return clipTok
}

func TestKnownIDs(t *testing.T) {
	tok := openAI(t)
	got, err := tok.Tokenize("a photo of a cat", DefaultContext, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{49406, 320, 1125, 539, 320, 2368, 49407}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if tok.SOT() != 49406 || tok.EOT() != 49407 || tok.VocabSize() != 49408 || tok.NumMerges() != OpenAIMerges {
		t.Fatalf("SOT %d EOT %d size %d merges %d", tok.SOT(), tok.EOT(), tok.VocabSize(), tok.NumMerges())
	}
	if s, _ := tok.Token(0); s != "!" {
		t.Errorf("token 0 = %q, want \"!\"", s)
	}
	if s, _ := tok.Token(256); s != "!</w>" {
		t.Errorf("token 256 = %q", s)
	}
	if got := tok.Decode(got); got != "<|startoftext|>a photo of a cat <|endoftext|>" {
		t.Errorf("Decode = %q", got)
	}
}

type golden struct {
	FTFY  string `json:"ftfy"`
	Cases []struct {
		Text   string `json:"text"`
		Clean  string `json:"clean"`
		IDs    []int  `json:"ids"`
		Decode string `json:"decode"`
	} `json:"cases"`
	DecodeCases []struct {
		IDs  []int  `json:"ids"`
		Text string `json:"text"`
	} `json:"decode_cases"`
}

// knownDifferences are golden inputs on which this package knowingly
// differs from ftfy (see ftfy.go).
var knownDifferences = map[string]string{
	"voilÃ le travail": "ftfy restores byte A0 from a space without other evidence of mojibake",
	"Ã la carte":       "ftfy restores byte A0 from a space without other evidence of mojibake",
}

func loadGolden(t *testing.T) *golden {
	data, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// TestGoldenClean needs no vocabulary: the cleanup against Python's.
func TestGoldenClean(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Cases {
		if got := Clean(c.Text); got != c.Clean {
			if why, ok := knownDifferences[c.Text]; ok {
				t.Logf("known difference on %q: %s (got %q, ftfy %q)", c.Text, why, got, c.Clean)
				continue
			}
			t.Errorf("Clean(%q)\n got %q\nwant %q", c.Text, got, c.Clean)
		}
	}
}

func TestGolden(t *testing.T) {
	tok := openAI(t)
	g := loadGolden(t)
	if len(g.Cases) < 100 {
		t.Fatalf("only %d golden cases", len(g.Cases))
	}
	for _, c := range g.Cases {
		got := tok.Encode(c.Text)
		if got == nil {
			got = []int{}
		}
		if !slices.Equal(got, c.IDs) {
			if why, ok := knownDifferences[c.Text]; ok {
				t.Logf("known difference on %q: %s", c.Text, why)
				continue
			}
			t.Errorf("Encode(%q)\n got %v\nwant %v", c.Text, got, c.IDs)
			continue
		}
		if d := tok.Decode(c.IDs); d != strings.TrimRight(c.Decode, " ") {
			t.Errorf("Decode(%v) = %q, want %q", c.IDs, d, c.Decode)
		}
	}
	for _, c := range g.DecodeCases {
		if d := tok.Decode(c.IDs); d != strings.TrimRight(c.Text, " ") {
			t.Errorf("Decode(%v) = %q, want %q", c.IDs, d, c.Text)
		}
	}
}

func TestTokenizeContext(t *testing.T) {
	tok := openAI(t)
	long := strings.Repeat("cat ", 100)
	if _, err := tok.Tokenize(long, DefaultContext, false); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("want a too-long error, got %v", err)
	}
	ids, err := tok.Tokenize(long, DefaultContext, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != DefaultContext || ids[0] != tok.SOT() || ids[76] != tok.EOT() || ids[75] != 2368 {
		t.Fatalf("truncated: len %d, %v", len(ids), ids)
	}
	// Exactly 77 fits without truncation.
	exact := strings.Repeat("cat ", 75)
	if ids, err := tok.Tokenize(exact, DefaultContext, false); err != nil || len(ids) != 77 {
		t.Fatalf("75 words: %v, %d ids", err, len(ids))
	}
	if _, err := tok.Tokenize("x", 1, true); err == nil {
		t.Fatal("context 1 accepted")
	}
	if ids, _ := tok.Tokenize("", DefaultContext, false); !slices.Equal(ids, []int{49406, 49407}) {
		t.Fatalf("empty: %v", ids)
	}
}

func TestBatch(t *testing.T) {
	tok := openAI(t)
	texts := []string{"a photo of a cat", "", "hello <|endoftext|> world", strings.Repeat("dog ", 200)}
	ids, eot, err := tok.Batch(texts, 77, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 4*77 || len(eot) != 4 {
		t.Fatalf("shapes %d %d", len(ids), len(eot))
	}
	if !slices.Equal(ids[:8], []int{49406, 320, 1125, 539, 320, 2368, 49407, 0}) || eot[0] != 6 {
		t.Fatalf("row 0: %v eot %d", ids[:8], eot[0])
	}
	if ids[77] != 49406 || ids[78] != 49407 || eot[1] != 1 {
		t.Fatalf("row 1: %v eot %d", ids[77:80], eot[1])
	}
	if eot[2] != 2 { // the literal <|endoftext|> comes first, as argmax finds it
		t.Fatalf("row 2 eot %d: %v", eot[2], ids[2*77:2*77+6])
	}
	if eot[3] != 76 || ids[3*77+76] != 49407 {
		t.Fatalf("row 3 eot %d", eot[3])
	}
	if _, _, err := tok.Batch(texts, 77, false); err == nil || !strings.Contains(err.Error(), "text 3") {
		t.Fatalf("want error naming text 3, got %v", err)
	}
	// Large batches run in parallel and must agree with the serial path.
	many := make([]string, 3000)
	for i := range many {
		many[i] = texts[i%3] + " " + strings.Repeat("x", i%17)
	}
	ids, eot, err = tok.Batch(many, 77, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range many {
		row, _ := tok.Tokenize(s, 77, false)
		if !slices.Equal(ids[i*77:i*77+len(row)], row) || eot[i] != slices.Index(row, 49407) {
			t.Fatalf("row %d differs", i)
		}
	}
}

func TestConcurrentEncode(t *testing.T) {
	tok := openAI(t)
	want := tok.Encode("the quick brown fox jumps over the lazy dog")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if got := tok.Encode("the quick brown fox jumps over the lazy dog"); !slices.Equal(got, want) {
					t.Error("concurrent Encode differs")
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestBPEMatchesSimpleLoop checks the heap-based merge against the plain
// "merge the lowest-ranked pair everywhere" loop on random words.
func TestBPEMatchesSimpleLoop(t *testing.T) {
	tok := openAI(t)
	rng := rand.New(rand.NewPCG(1, 2))
	letters := []rune("aaaabcdeeeefghiiijklmnooopqrssstuuvwxyzé日🍕")
	for n := 0; n < 3000; n++ {
		k := 1 + rng.IntN(24)
		var sb strings.Builder
		for i := 0; i < k; i++ {
			sb.WriteRune(letters[rng.IntN(len(letters))])
		}
		w := sb.String()
		if got, want := tok.bpe(nil, w), simpleBPE(tok, w); !slices.Equal(got, want) {
			t.Fatalf("bpe(%q) = %v, want %v", w, got, want)
		}
	}
	long := strings.Repeat("ab", 5000) + strings.Repeat("a", 3000)
	if got, want := tok.bpe(nil, long), simpleBPE(tok, long); !slices.Equal(got, want) {
		t.Fatal("long word differs")
	}
}

func simpleBPE(t *Tokenizer, piece string) []int32 {
	syms := make([]int32, len(piece))
	for i := 0; i < len(piece); i++ {
		syms[i] = t.byteTok[piece[i]]
	}
	syms[len(syms)-1] = t.byteEnd[piece[len(piece)-1]]
	for len(syms) > 1 {
		best := int32(-1)
		for i := 0; i+1 < len(syms); i++ {
			if m, ok := t.merges[pairKey(syms[i], syms[i+1])]; ok && (best < 0 || m.rank < best) {
				best = m.rank
			}
		}
		if best < 0 {
			break
		}
		var out []int32
		for i := 0; i < len(syms); i++ {
			if i+1 < len(syms) {
				if m, ok := t.merges[pairKey(syms[i], syms[i+1])]; ok && m.rank == best {
					out = append(out, m.result)
					i++
					continue
				}
			}
			out = append(out, syms[i])
		}
		syms = out
	}
	return syms
}

// TestSplitMatchesRegexp checks the hand-written splitter against Go's
// regexp running CLIP's pattern, on cleaned random text (after cleaning the
// only white space is ' ', where Go's ASCII \s and Unicode's agree).
func TestSplitMatchesRegexp(t *testing.T) {
	re := regexp.MustCompile(splitPattern)
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", "b", "Z", "s", "t", "r", "e", "v", "m", "l", "d", "'", "’", " ", "  ", ".", ",", "!",
		"<", "|", ">", "<|endoftext|>", "<|startoftext|>", "<|endof", "0", "7", "½", "①", "٣", "é", "e\u0301",
		"日本", "한", "🍕", "\u200d", "ſ", "K", "Σ", "ς", "-", "_", "\u00ad", "\t", "\u3000", "ﬁ"}
	for n := 0; n < 5000; n++ {
		var sb strings.Builder
		for i, k := 0, 1+rng.IntN(20); i < k; i++ {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		s := Clean(sb.String())
		want := re.FindAllString(s, -1)
		if got := splitAll(s); !slices.Equal(got, want) {
			t.Fatalf("split(%q)\n got %q\nwant %q", s, got, want)
		}
	}
}

func TestHFRoundTrip(t *testing.T) {
	tok := openAI(t)
	dir := t.TempDir()
	if err := tok.SaveHF(dir); err != nil {
		t.Fatal(err)
	}
	hf, err := LoadHF(filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(hf.vocab, tok.vocab) || !reflect.DeepEqual(hf.pairs, tok.pairs) || hf.SOT() != tok.SOT() || hf.EOT() != tok.EOT() {
		t.Fatal("HF round trip changed the vocabulary")
	}
	for _, s := range []string{"a photo of a cat", "Crème brûlée 🍕 &amp; don't", "東京タワー"} {
		if a, b := tok.Encode(s), hf.Encode(s); !slices.Equal(a, b) {
			t.Fatalf("%q: %v vs %v", s, a, b)
		}
	}
	// The vocab.json is a JSON object of token -> id.
	var m map[string]int
	data, _ := os.ReadFile(filepath.Join(dir, "vocab.json"))
	if err := json.Unmarshal(data, &m); err != nil || m["<|endoftext|>"] != 49407 || m["cat</w>"] != 2368 || len(m) != 49408 {
		t.Fatalf("vocab.json: %v, %d entries", err, len(m))
	}
	// The merges file alone also loads as an OpenAI-style merges file.
	plain, err := LoadOpenAI(filepath.Join(dir, "merges.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plain.vocab, tok.vocab) {
		t.Fatal("merges.txt via LoadOpenAI differs")
	}
}

var trainCorpus = []string{
	"a photo of a cat", "a photo of a dog", "a photo of two cats", "a painting of a cat",
	"two dogs playing in the snow", "a cat sleeping on a sofa", "a dog catching a frisbee",
	"a photo of a red car", "a blurry photo of a bird", "a photo of the cat's toy",
	"Café au lait, s'il vous plaît!", "東京タワーの写真", "🍕🍕 pizza night", "&amp; HTML &lt;3",
}

func TestTrain(t *testing.T) {
	tok, err := Train(trainCorpus, 600)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 600 || tok.NumMerges() != 600-MinVocabSize {
		t.Fatalf("size %d, merges %d", tok.VocabSize(), tok.NumMerges())
	}
	if tok.SOT() != 598 || tok.EOT() != 599 {
		t.Fatalf("special ids %d %d", tok.SOT(), tok.EOT())
	}
	// Deterministic, independent of corpus order.
	shuffled := slices.Clone(trainCorpus)
	rand.New(rand.NewPCG(5, 6)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	again, err := Train(shuffled, 600)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tok.vocab, again.vocab) || !reflect.DeepEqual(tok.pairs, again.pairs) {
		t.Fatal("training is not deterministic")
	}
	// Frequent words end up whole.
	for _, w := range []string{"photo", "a", "cat", "of"} {
		if ids := tok.Encode(w); len(ids) != 1 {
			t.Errorf("%q encodes as %v (%d tokens), want one token", w, ids, len(ids))
		}
	}
	// Lossless: decoding gives the cleaned text back, up to the spaces
	// between pieces.
	noSpace := func(s string) string { return strings.ReplaceAll(s, " ", "") }
	for _, s := range append(trainCorpus, "unseen words: zebra 🦓 ñandú") {
		if got, want := tok.Decode(tok.Encode(s)), Clean(s); noSpace(got) != noSpace(want) {
			t.Errorf("Decode(Encode(%q)) = %q, want %q", s, got, want)
		}
	}
	if got := tok.Decode(tok.Encode("a photo of a cat")); got != "a photo of a cat" {
		t.Errorf("word round trip: %q", got)
	}
	// A round trip through the Hugging Face files keeps everything.
	dir := t.TempDir()
	if err := tok.SaveHF(dir); err != nil {
		t.Fatal(err)
	}
	hf, err := LoadHF(filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(hf.vocab, tok.vocab) || !reflect.DeepEqual(hf.pairs, tok.pairs) {
		t.Fatal("trained tokenizer changed through SaveHF/LoadHF")
	}
	// Small corpus: training stops when no pair is left.
	tiny, err := Train([]string{"ab ab"}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if tiny.NumMerges() != 1 || tiny.VocabSize() != MinVocabSize+1 {
		t.Fatalf("tiny: %d merges", tiny.NumMerges())
	}
	if _, err := Train(trainCorpus, 513); err == nil {
		t.Fatal("vocabulary size 513 accepted")
	}
}

func TestTrainTieBreak(t *testing.T) {
	// "ab" and "cd" are equally frequent: the pair whose first token has the
	// smaller id (a < c in the byte layout) is merged first.
	tok, err := Train([]string{"cd ab"}, MinVocabSize+1)
	if err != nil {
		t.Fatal(err)
	}
	if tok.pairs[0] != [2]string{"a", "b</w>"} {
		t.Fatalf("first merge %q", tok.pairs[0])
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadErrors(t *testing.T) {
	expect := func(err error, parts ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("no error, want %q", parts)
		}
		for _, p := range parts {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error %q lacks %q", err, p)
			}
		}
	}
	_, err := LoadOpenAI(filepath.Join(t.TempDir(), "missing.txt.gz"))
	expect(err, "missing.txt.gz")

	p := writeFile(t, "m.txt", "#version: 0.2\ni n\nt h e\n")
	_, err = LoadOpenAI(p)
	expect(err, p+":3:", "two symbols")

	p = writeFile(t, "m.txt", "#version: 0.2\ni n\nin zz\n")
	_, err = LoadOpenAI(p)
	expect(err, p+":3:", `"zz"`)

	p = writeFile(t, "m.txt", "#version: 0.2\ni n\n\nt h\n")
	_, err = LoadOpenAI(p)
	expect(err, p+":3:", "blank")

	p = writeFile(t, "m.txt", "#version: 0.2\ni \xff\n")
	_, err = LoadOpenAI(p)
	expect(err, p+":2:", "UTF-8")

	p = writeFile(t, "m.txt.gz", "\x1f\x8b\x08\x00garbage")
	_, err = LoadOpenAI(p)
	expect(err, p)

	p = writeFile(t, "empty.txt", "")
	_, err = LoadOpenAI(p)
	expect(err, p, "empty")

	// A gzip file that ends early.
	gz := filepath.Join(t.TempDir(), "trunc.gz")
	f, _ := os.Create(gz)
	zw := gzip.NewWriter(f)
	zw.Write([]byte("#version: 0.2\n" + strings.Repeat("i n\n", 1)))
	zw.Flush()
	f.Close()
	_, err = LoadOpenAI(gz)
	expect(err, gz)

	// Hugging Face files.
	good, err := Train([]string{"ab ab cd"}, MinVocabSize+2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := good.SaveHF(dir); err != nil {
		t.Fatal(err)
	}
	vj, mt := filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt")
	_, err = LoadHF(filepath.Join(dir, "nope.json"), mt)
	expect(err, "nope.json")
	_, err = LoadHF(vj, filepath.Join(dir, "nope.txt"))
	expect(err, "nope.txt")

	bad := writeFile(t, "vocab.json", "{\"a\": 0,\n\"b\": 1,\n\"c\" 2}")
	_, err = LoadHF(bad, mt)
	expect(err, bad+":3:")
	bad = writeFile(t, "vocab.json", "{\"a\": 0,\n\"b\": \"x\"}")
	_, err = LoadHF(bad, mt)
	expect(err, bad+":2:", "not a number")
	bad = writeFile(t, "vocab.json", "{\"a\": 0,\n\"b\": 0}")
	_, err = LoadHF(bad, mt)
	expect(err, bad+":2:", "id 0")
	bad = writeFile(t, "vocab.json", "{\"a\": 0, \"b\": 2}")
	_, err = LoadHF(bad, mt)
	expect(err, bad, "id 1")
	bad = writeFile(t, "vocab.json", "[1, 2]")
	_, err = LoadHF(bad, mt)
	expect(err, bad+":1:", "object")
	bad = writeFile(t, "vocab.json", "{\"!\": 0}")
	_, err = LoadHF(bad, mt)
	expect(err, bad, "byte token")

	mbad := writeFile(t, "merges.txt", "#version: 0.2\na b</w>\nq r\n")
	_, err = LoadHF(vj, mbad)
	expect(err, mbad+":3:", "not in the vocabulary")
}

func TestDecodeEdgeCases(t *testing.T) {
	tok, err := Train([]string{"abc"}, MinVocabSize)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Decode([]int{-1, 100000}); got != "\uFFFD\uFFFD" {
		t.Fatalf("out of range ids: %q", got)
	}
	if got := tok.Decode(nil); got != "" {
		t.Fatalf("nil: %q", got)
	}
}

// FuzzEncode: encoding never panics, truncation keeps the context, and
// decoding gives the cleaned text back up to spaces.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"a photo of a cat", "don't &amp;amp; &lt;3", "cafÃ©", "日本語 🍕", "ΣΑΣ", "\x1b[1m\xff\xfe", "<|endoftext|>", ""} {
		f.Add(s)
	}
	tok := openAI(f)
	noSpace := func(s string) string { return strings.ReplaceAll(s, " ", "") }
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := tok.Tokenize(s, DefaultContext, true)
		if err != nil || len(ids) > DefaultContext || ids[0] != tok.SOT() || ids[len(ids)-1] != tok.EOT() {
			t.Fatalf("Tokenize(%q) = %v, %v", s, ids, err)
		}
		clean := Clean(s)
		if strings.Contains(clean, endOfWord) {
			return // the decoder turns a literal "</w>" into a space
		}
		if got := tok.Decode(tok.Encode(s)); noSpace(got) != noSpace(clean) {
			t.Fatalf("Decode(Encode(%q)) = %q, want %q", s, got, clean)
		}
	})
}
