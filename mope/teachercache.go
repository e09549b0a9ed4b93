package mope

import (
	"sync"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/tensor"
)

// TeacherCache keeps the teacher's outputs (embeddings and hidden states)
// of every distillation batch it has seen, so that several students
// distilled from one teacher on the same batches run the teacher once per
// batch instead of once per student — the demo's grid distils dozens of
// students from one teacher, each on batches 0…N−1 of the same data, batch
// size and seed. A batch is identified by (training pairs, tokenizer, batch
// size, seed, step), which is what world.Sampler draws it from. Cached
// outputs are those of the same forward pass a run without the cache makes,
// so distillation is bit-identical with and without it.
//
// The memory is the teacher's per-batch outputs (embeddings and every
// layer's hidden states: the shapes teacher at batch 32 about 3 MB, ViT-B/32
// over 100 MB) times the batches cached, up to the cache's byte limit; a
// batch beyond it is computed and not kept. The teacher must not change
// while the cache is in use. A TeacherCache is safe for concurrent use.
type TeacherCache struct {
	teacher  *clip.Model
	maxBytes int64
	mu       sync.Mutex
	bytes    int64
	entries  map[teacherKey]*teacherEntry
}

type teacherKey struct {
	pairs *dataset.Pairs
	tok   *tokenizer.Tokenizer
	batch int
	seed  uint64
	step  int
}

type teacherEntry struct {
	mu  sync.Mutex
	out *teacherOut
}

// NewTeacherCache returns an empty cache of teacher's outputs that keeps at
// most maxBytes of them. Distill uses it (DistillData.TeacherCache) only
// when distilling from this teacher.
func NewTeacherCache(teacher *clip.Model, maxBytes int64) *TeacherCache {
	return &TeacherCache{teacher: teacher, maxBytes: maxBytes, entries: map[teacherKey]*teacherEntry{}}
}

// Len returns the number of batches cached and the bytes they hold.
func (c *TeacherCache) Len() (batches int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.bytes
}

// size is the bytes of o's tensors.
func (o *teacherOut) size() int64 {
	n := len(o.img.Data) + len(o.txt.Data) + len(o.imgN.Data) + len(o.txtN.Data)
	for _, h := range append(append([]*tensor.Tensor(nil), o.vHidden...), o.tHidden...) {
		n += len(h.Data)
	}
	return 4 * int64(n)
}

// get returns the teacher's outputs of batch k, computing them with
// forward when they are missing (or lack the hidden states now needed).
// Concurrent calls for one batch compute it once.
func (c *TeacherCache) get(k teacherKey, hidden bool, forward func() *teacherOut) *teacherOut {
	c.mu.Lock()
	e := c.entries[k]
	if e == nil {
		e = &teacherEntry{}
		c.entries[k] = e
	}
	c.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.out != nil && (!hidden || e.out.vHidden != nil) {
		return e.out
	}
	out := forward()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.out != nil {
		c.bytes -= e.out.size()
	}
	if c.bytes+out.size() > c.maxBytes {
		e.out = nil
		delete(c.entries, k)
		return out
	}
	e.out = out
	c.bytes += out.size()
	return out
}
