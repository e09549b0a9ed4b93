package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mopeclip/mopeclip/internal/cputime"
)

// syntheticCaptions makes n caption-like texts: 5-20 words drawn with a
// Zipf distribution from the vocabulary's whole-word tokens, with some
// capitals, punctuation and numbers.
func syntheticCaptions(tok *Tokenizer, n int) []string {
	var words []string
	for id := 1000; id < 40000 && len(words) < 20000; id++ {
		w := tok.vocab[id]
		if !strings.HasSuffix(w, endOfWord) {
			continue
		}
		w = strings.TrimSuffix(w, endOfWord)
		if strings.Trim(w, "abcdefghijklmnopqrstuvwxyz") == "" {
			words = append(words, w)
		}
	}
	rng := rand.New(rand.NewPCG(11, 12))
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(len(words)-1))
	captions := make([]string, n)
	var sb strings.Builder
	for i := range captions {
		sb.Reset()
		k := 5 + rng.IntN(16)
		for j := 0; j < k; j++ {
			if j > 0 {
				sb.WriteByte(' ')
			}
			w := words[zipf.Uint64()]
			if j == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			sb.WriteString(w)
			switch rng.IntN(30) {
			case 0:
				sb.WriteString(",")
			case 1:
				fmt.Fprintf(&sb, " %d", rng.IntN(2000))
			case 2:
				sb.WriteString("'s")
			}
		}
		sb.WriteByte('.')
		captions[i] = sb.String()
	}
	return captions
}

// withEmptyCache returns a tokenizer sharing t's tables with a cold cache.
func (t *Tokenizer) withEmptyCache() *Tokenizer {
	n, err := build(t.vocab, t.ids, t.pairs)
	if err != nil {
		panic(err)
	}
	return n
}

// TestThroughput reports how long 100k captions take (cold and warm
// cache); run with -v to see the numbers. Skipped with -short.
func TestThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	tok := openAI(t).withEmptyCache()
	captions := syntheticCaptions(tok, 100_000)
	for _, pass := range []string{"cold cache", "warm cache"} {
		start, cpu0 := time.Now(), cputime.Process()
		if _, _, err := tok.Batch(captions, DefaultContext, true); err != nil {
			t.Fatal(err)
		}
		d, cpu := time.Since(start), cputime.Process()-cpu0
		t.Logf("Batch of 100k captions, %s: %v wall (%.0f captions/s), %v CPU (%.1f µs/caption), GOMAXPROCS=%d",
			pass, d.Round(time.Millisecond), 1e5/d.Seconds(), cpu.Round(time.Millisecond), cpu.Seconds()*1e6/1e5, runtime.GOMAXPROCS(0))
		if d > 30*time.Second {
			t.Errorf("tokenizing 100k captions took %v", d)
		}
	}
}

func BenchmarkEncodeCaption(b *testing.B) {
	tok := openAI(b)
	captions := syntheticCaptions(tok, 10_000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tok.Encode(captions[i%len(captions)])
	}
}

func BenchmarkBPEColdWord(b *testing.B) {
	tok := openAI(b)
	for i := 0; i < b.N; i++ {
		tok.bpe(nil, "pneumonoultramicroscopicsilicovolcanoconiosis")
	}
}

func BenchmarkClean(b *testing.B) {
	for i := 0; i < b.N; i++ {
		Clean("A Close-up of two dogs playing in the snow, 4k — “trending” on artstation &amp; more")
	}
}
