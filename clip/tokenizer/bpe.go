package tokenizer

import (
	"hash/maphash"
	"sync"
)

// byteRune maps each byte to the printable rune that stands for it in the
// vocabulary (GPT-2's bytes_to_unicode): printable Latin-1 bytes stand for
// themselves, the others for U+0100 onwards in byte order. byteOrder lists
// the bytes in vocabulary order (the first 256 ids), and runeByte inverts
// byteRune.
var byteRune, byteOrder, runeByte = func() (br [256]rune, order [256]byte, rb map[rune]byte) {
	printable := func(b int) bool {
		return ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF)
	}
	n, k := 0, 0
	for b := 0; b < 256; b++ {
		if printable(b) {
			br[b] = rune(b)
			order[k] = byte(b)
			k++
		}
	}
	for b := 0; b < 256; b++ {
		if !printable(b) {
			br[b] = rune(256 + n)
			n++
			order[k] = byte(b)
			k++
		}
	}
	rb = make(map[rune]byte, 256)
	for b, r := range br {
		rb[r] = byte(b)
	}
	return br, order, rb
}()

// baseVocab returns the 512 initial tokens: the byte symbols in vocabulary
// order, then the same with the end-of-word marker.
func baseVocab() []string {
	v := make([]string, 0, 512)
	for _, b := range byteOrder {
		v = append(v, string(byteRune[b]))
	}
	for _, b := range byteOrder {
		v = append(v, string(byteRune[b])+endOfWord)
	}
	return v
}

type mergeRule struct {
	rank   int32
	result int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

type cand struct {
	rank int32
	pos  int32
}

func candLess(a, b cand) bool { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos) }

type bpeScratch struct {
	sym, next, prev []int32
	heap            []cand
	pending         []int32
}

func (h *bpeScratch) push(c cand) {
	h.heap = append(h.heap, c)
	i := len(h.heap) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !candLess(h.heap[i], h.heap[p]) {
			break
		}
		h.heap[i], h.heap[p] = h.heap[p], h.heap[i]
		i = p
	}
}

func (h *bpeScratch) pop() cand {
	top := h.heap[0]
	n := len(h.heap) - 1
	h.heap[0] = h.heap[n]
	h.heap = h.heap[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && candLess(h.heap[l], h.heap[m]) {
			m = l
		}
		if r < n && candLess(h.heap[r], h.heap[m]) {
			m = r
		}
		if m == i {
			break
		}
		h.heap[i], h.heap[m] = h.heap[m], h.heap[i]
		i = m
	}
	return top
}

var scratchPool = sync.Pool{New: func() any { return new(bpeScratch) }}

// bpe appends the token ids of one piece (raw UTF-8 bytes, not a special
// token) to dst. It applies merges exactly as CLIP's reference does: take the
// lowest-ranked adjacent pair present, merge all its occurrences left to
// right without overlap, repeat until no adjacent pair has a rank. A heap of
// (rank, position) candidates makes this O(n log n); candidates created
// while one rank is being merged wait until that rank is done.
func (t *Tokenizer) bpe(dst []int32, piece string) []int32 {
	n := len(piece)
	if n == 0 {
		return dst
	}
	if n == 1 {
		return append(dst, t.byteEnd[piece[0]])
	}
	h := scratchPool.Get().(*bpeScratch)
	defer scratchPool.Put(h)
	h.sym, h.next, h.prev = grow(h.sym, n), grow(h.next, n), grow(h.prev, n)
	h.heap, h.pending = h.heap[:0], h.pending[:0]
	sym, next, prev := h.sym, h.next, h.prev
	for i := 0; i < n; i++ {
		sym[i] = t.byteTok[piece[i]]
		next[i] = int32(i + 1)
		prev[i] = int32(i - 1)
	}
	sym[n-1] = t.byteEnd[piece[n-1]]
	next[n-1] = -1
	for i := 0; i < n-1; i++ {
		if m, ok := t.merges[pairKey(sym[i], sym[i+1])]; ok {
			h.push(cand{m.rank, int32(i)})
		}
	}
	for len(h.heap) > 0 {
		rank := h.heap[0].rank
		h.pending = h.pending[:0]
		for len(h.heap) > 0 && h.heap[0].rank == rank {
			i := h.pop().pos
			if sym[i] < 0 {
				continue // merged into its left neighbour
			}
			j := next[i]
			if j < 0 {
				continue
			}
			m, ok := t.merges[pairKey(sym[i], sym[j])]
			if !ok || m.rank != rank {
				continue // stale: the pair here has changed
			}
			sym[i] = m.result
			sym[j] = -1
			nj := next[j]
			next[i] = nj
			if nj >= 0 {
				prev[nj] = i
			}
			h.pending = append(h.pending, i)
		}
		for _, i := range h.pending {
			if p := prev[i]; p >= 0 {
				if m, ok := t.merges[pairKey(sym[p], sym[i])]; ok {
					h.push(cand{m.rank, p})
				}
			}
			if j := next[i]; j >= 0 {
				if m, ok := t.merges[pairKey(sym[i], sym[j])]; ok {
					h.push(cand{m.rank, i})
				}
			}
		}
	}
	for i := int32(0); i >= 0; i = next[i] {
		dst = append(dst, sym[i])
	}
	return dst
}

func grow(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}

// wordCache remembers the ids of recently seen pieces. It is sharded so that
// concurrent Encode calls rarely contend; a shard that grows past its limit
// is emptied (captions repeat words, so it refills with the frequent ones).
type wordCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

const (
	cacheShards    = 64
	cacheShardMax  = 1 << 14 // ~1M words in all
	cacheMaxPiece  = 64      // longer pieces are not cached
	cacheShardMask = cacheShards - 1
)

type cacheShard struct {
	mu sync.RWMutex
	m  map[string][]int32
}

func (c *wordCache) shard(key string) *cacheShard {
	return &c.shards[maphash.String(c.seed, key)&cacheShardMask]
}

func (c *wordCache) get(key string) ([]int32, bool) {
	s := c.shard(key)
	s.mu.RLock()
	v, ok := s.m[key]
	s.mu.RUnlock()
	return v, ok
}

func (c *wordCache) put(key string, ids []int32) {
	s := c.shard(key)
	s.mu.Lock()
	if s.m == nil || len(s.m) >= cacheShardMax {
		s.m = make(map[string][]int32)
	}
	s.m[key] = ids
	s.mu.Unlock()
}
