package tokenizer

import (
	"container/heap"
	"fmt"
	"sort"
)

// MinVocabSize is the smallest vocabulary Train can make: the 512 byte tokens
// and the two special tokens, no merges.
const MinVocabSize = 512 + 2

// Train learns a CLIP-style byte-level BPE vocabulary of at most vocabSize
// tokens from corpus. Texts are cleaned and split exactly as Encode does
// (the literal special tokens are left out), each piece is a word of byte
// symbols whose last symbol carries "</w>", and merges are learnt greedily:
// each step merges the adjacent pair that occurs most often in the corpus
// (counting every word as often as it occurs). Ties are broken by the
// smaller id of the pair's first token, then of its second token (byte tokens
// have the ids of CLIP's layout, merged tokens the next ids in order), so
// the result depends only on the multiset of texts. A pair whose merged
// string is already a token is skipped. Training stops at vocabSize tokens or
// when no pair is left; the vocabulary is laid out as CLIP's: 512 byte
// tokens, one per merge, <|startoftext|>, <|endoftext|>.
func Train(corpus []string, vocabSize int) (*Tokenizer, error) {
	if vocabSize < MinVocabSize {
		return nil, fmt.Errorf("tokenizer: train: vocabulary size %d is below the minimum %d", vocabSize, MinVocabSize)
	}
	vocab := baseVocab()
	ids := make(map[string]int32, vocabSize)
	for i, v := range vocab {
		ids[v] = int32(i)
	}
	var byteTok, byteEnd [256]int32
	for b := 0; b < 256; b++ {
		byteTok[b] = ids[string(byteRune[b])]
		byteEnd[b] = ids[string(byteRune[b])+endOfWord]
	}

	// Count distinct pieces; iterate them in sorted order so that all the
	// bookkeeping below is deterministic too.
	counts := make(map[string]int64)
	for _, text := range corpus {
		split(Clean(text), func(p string) {
			if p != sotText && p != eotText {
				counts[p]++
			}
		})
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	words := make([][]int32, len(keys))
	freq := make([]int64, len(keys))
	for w, k := range keys {
		syms := make([]int32, len(k))
		for i := 0; i < len(k); i++ {
			syms[i] = byteTok[k[i]]
		}
		syms[len(k)-1] = byteEnd[k[len(k)-1]]
		words[w], freq[w] = syms, counts[k]
	}

	pairCount := make(map[uint64]int64)
	where := make(map[uint64][]int32) // words that contain (or once contained) the pair
	for w, syms := range words {
		for i := 0; i+1 < len(syms); i++ {
			k := pairKey(syms[i], syms[i+1])
			if pairCount[k] == 0 || last(where[k]) != int32(w) {
				where[k] = append(where[k], int32(w))
			}
			pairCount[k] += freq[w]
		}
	}
	h := &pairHeap{}
	for k, c := range pairCount {
		h.items = append(h.items, pairItem{count: c, key: k})
	}
	heap.Init(h)

	var pairs [][2]string
	banned := make(map[uint64]bool)
	seen := make([]int32, len(words)) // merge step that last visited each word, +1
	delta := make(map[uint64]int64)
	for len(vocab)+2 < vocabSize && h.Len() > 0 {
		it := heap.Pop(h).(pairItem)
		if it.count != pairCount[it.key] || it.count <= 0 || banned[it.key] {
			continue // stale entry
		}
		a, b := int32(it.key>>32), int32(uint32(it.key))
		merged := vocab[a] + vocab[b]
		if _, dup := ids[merged]; dup {
			banned[it.key] = true
			continue
		}
		newID := int32(len(vocab))
		vocab = append(vocab, merged)
		ids[merged] = newID
		pairs = append(pairs, [2]string{vocab[a], vocab[b]})
		step := int32(len(pairs))

		clear(delta)
		for _, w := range where[it.key] {
			if seen[w] == step {
				continue
			}
			seen[w] = step
			syms := words[w]
			out := syms[:0:0]
			changed := false
			for i := 0; i < len(syms); i++ {
				if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
					out = append(out, newID)
					i++
					changed = true
					continue
				}
				out = append(out, syms[i])
			}
			if !changed {
				continue
			}
			f := freq[w]
			for i := 0; i+1 < len(syms); i++ {
				delta[pairKey(syms[i], syms[i+1])] -= f
			}
			for i := 0; i+1 < len(out); i++ {
				k := pairKey(out[i], out[i+1])
				delta[k] += f
				if out[i] == newID || out[i+1] == newID {
					if last(where[k]) != w {
						where[k] = append(where[k], w)
					}
				}
			}
			words[w] = out
		}
		delete(where, it.key)
		for k, d := range delta {
			if d == 0 {
				continue
			}
			c := pairCount[k] + d
			if c <= 0 {
				delete(pairCount, k)
				continue
			}
			pairCount[k] = c
			heap.Push(h, pairItem{count: c, key: k})
		}
	}
	vocab = append(vocab, sotText, eotText)
	return build(vocab, nil, pairs)
}

func last(s []int32) int32 {
	if len(s) == 0 {
		return -1
	}
	return s[len(s)-1]
}

type pairItem struct {
	count int64
	key   uint64 // first token id << 32 | second token id
}

// pairHeap pops the most frequent pair; ties go to the smaller key, i.e.
// the smaller first token id, then the smaller second token id.
type pairHeap struct{ items []pairItem }

func (h *pairHeap) Len() int { return len(h.items) }
func (h *pairHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	return a.count > b.count || (a.count == b.count && a.key < b.key)
}
func (h *pairHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *pairHeap) Push(x any)    { h.items = append(h.items, x.(pairItem)) }
func (h *pairHeap) Pop() any {
	n := len(h.items) - 1
	it := h.items[n]
	h.items = h.items[:n]
	return it
}
