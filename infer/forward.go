package infer

import (
	"fmt"

	"github.com/mopeclip/mopeclip/tensor"
	"gonum.org/v1/gonum/blas"
)

// arena holds the activations of one forward pass of up to cap items. It
// grows (once) when a larger chunk comes; otherwise it is reused as is.
type arena struct {
	cap    int
	x      []float32 // residual stream [rows, C]
	h      []float32 // layer norm output [rows, C]
	d      []float32 // branch output (pending residual) [rows, C]
	big    []float32 // q|k|v [rows, 3·H·D], MLP hidden [rows, F], im2col
	att    []float32 // attention output [rows, H·D]
	pooled []float32 // [items, C]
	scores []float32 // one T×T score block
}

func (e *Engine) ensure(a *arena, n int) {
	if a.scores == nil {
		t := max(e.vis.T, e.txt.T)
		a.scores = make([]float32, t*t)
	}
	if n <= a.cap {
		return
	}
	T := max(e.vis.T, e.txt.T)
	C := max(e.vis.C, e.txt.C)
	rows := n * T
	a.cap = n
	a.x = make([]float32, rows*C)
	a.h = make([]float32, rows*C)
	a.d = make([]float32, rows*C)
	a.big = make([]float32, rows*max(e.vis.maxWide, e.txt.maxWide, e.patchK, 1))
	a.att = make([]float32, rows*max(e.vis.maxIn, e.txt.maxIn, 1))
	a.pooled = make([]float32, n*C)
}

// Warm sizes the arenas for batches of up to n items (each call otherwise
// grows them on first use).
func (e *Engine) Warm(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := min(n, e.chunk)
	for i, a := range e.arenas {
		if i == 0 {
			e.ensure(a, c)
		} else {
			e.ensure(a, min(c, (n+e.threads-1)/e.threads))
		}
	}
}

type kind int

const (
	kindImage kind = iota
	kindText
)

// itemsJob is the batch being run (the inputs of the current call).
type itemsJob struct {
	kind   kind
	n, W   int
	pixels []float32
	ids    []int
	eot    []int
	T      int
	out    []float32
}

// region is the attention step being run in parallel (SplitGEMM).
type region struct {
	tw       *tower
	L        *layer
	qkv, att []float32
	T        int
}

// ImageInputLen returns the number of pixel values per image (channels·S·S).
func (e *Engine) ImageInputLen() int { return e.img.Cin * e.img.S * e.img.S }

// EmbedDim returns the projection dimension E of the outputs.
func (e *Engine) EmbedDim() int { return e.vis.E }

// EncodeImages embeds n preprocessed images (pixels [n,3,S,S], as for
// clip.Model.EncodeImage) into out [n,E]: projected, unnormalised.
func (e *Engine) EncodeImages(pixels []float32, n int, out []float32) {
	if n < 0 || len(pixels) != n*e.ImageInputLen() {
		panic(fmt.Sprintf("infer.EncodeImages: %d pixel values for %d images of %d", len(pixels), n, e.ImageInputLen()))
	}
	if !e.vis.packed {
		panic("infer.EncodeImages: the engine was built without the vision tower (Options.Towers)")
	}
	if len(out) < n*e.vis.E {
		panic(fmt.Sprintf("infer.EncodeImages: out holds %d values, want %d", len(out), n*e.vis.E))
	}
	if n == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.run(itemsJob{kind: kindImage, n: n, pixels: pixels, out: out})
}

// EncodeTexts embeds B token sequences (ids [B·T], T ≤ the context length,
// eotPos[b] the pooling position of row b, as clip.TextBatch) into out
// [B,E]: projected, unnormalised.
func (e *Engine) EncodeTexts(ids []int, eotPos []int, B, T int, out []float32) {
	if !e.txt.packed {
		panic("infer.EncodeTexts: the engine was built without the text tower (Options.Towers)")
	}
	if B < 0 || T <= 0 || T > e.txt.T || len(ids) != B*T || len(eotPos) != B {
		panic(fmt.Sprintf("infer.EncodeTexts: %d ids, %d EOT positions for B=%d T=%d (context %d)", len(ids), len(eotPos), B, T, e.txt.T))
	}
	if len(out) < B*e.txt.E {
		panic(fmt.Sprintf("infer.EncodeTexts: out holds %d values, want %d", len(out), B*e.txt.E))
	}
	V := e.vocab
	for i, id := range ids {
		if id < 0 || id >= V {
			panic(fmt.Sprintf("infer.EncodeTexts: token id %d at %d outside the vocabulary of %d", id, i, V))
		}
	}
	for i, p := range eotPos {
		if p < 0 || p >= T {
			panic(fmt.Sprintf("infer.EncodeTexts: EOT position %d of row %d outside [0,%d)", p, i, T))
		}
	}
	if B == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.run(itemsJob{kind: kindText, n: B, ids: ids, eot: eotPos, T: T, out: out})
}

// SplitFor returns the strategy a batch of n items runs with.
func (e *Engine) SplitFor(n int) Split {
	if e.threads <= 1 {
		return SplitGEMM
	}
	switch e.split {
	case SplitItems:
		if n >= 2 {
			return SplitItems
		}
		return SplitGEMM
	case SplitGEMM:
		return SplitGEMM
	}
	if n >= e.minItem*e.threads {
		return SplitItems
	}
	return SplitGEMM
}

func (e *Engine) run(j itemsJob) {
	if e.SplitFor(j.n) == SplitItems {
		j.W = min(e.threads, j.n)
		e.items = j
		e.pool.run(j.W, e.itemsFn)
		e.items = itemsJob{}
		return
	}
	e.items = j
	e.span(e.arenas[0], 0, j.n, e.threads > 1)
	e.items = itemsJob{}
}

// itemsTask runs share i of the items on arena i, one thread.
func (e *Engine) itemsTask(_, i int) {
	j := &e.items
	i0, i1 := i*j.n/j.W, (i+1)*j.n/j.W
	e.span(e.arenas[i], i0, i1-i0, false)
}

// span runs items [i0, i0+n) of the current job, chunk by chunk.
func (e *Engine) span(a *arena, i0, n int, par bool) {
	j := &e.items
	for c0 := i0; c0 < i0+n; c0 += e.chunk {
		c := min(e.chunk, i0+n-c0)
		e.ensure(a, c)
		switch j.kind {
		case kindImage:
			per := e.ImageInputLen()
			e.imageChunk(a, j.pixels[c0*per:(c0+c)*per], c, j.out[c0*e.vis.E:(c0+c)*e.vis.E], par)
		case kindText:
			e.textChunk(a, j.ids[c0*j.T:(c0+c)*j.T], j.eot[c0:c0+c], c, j.T, j.out[c0*e.txt.E:(c0+c)*e.txt.E], par)
		}
	}
}

func (e *Engine) imageChunk(a *arena, px []float32, n int, out []float32, par bool) {
	tw := &e.vis
	C, T, Np, K := tw.C, tw.T, e.nPatches, e.patchK
	S, P, Cin := e.img.S, e.img.P, e.img.Cin
	G := S / P
	// im2col: one row of Cin·P·P values (c, py, px) per patch.
	col := a.big[:n*Np*K]
	for b := 0; b < n; b++ {
		img := px[b*Cin*S*S : (b+1)*Cin*S*S]
		for gy := 0; gy < G; gy++ {
			for gx := 0; gx < G; gx++ {
				dst := col[(b*Np+gy*G+gx)*K : (b*Np+gy*G+gx+1)*K]
				for c := 0; c < Cin; c++ {
					for py := 0; py < P; py++ {
						o := c*S*S + (gy*P+py)*S + gx*P
						copy(dst[(c*P+py)*P:(c*P+py+1)*P], img[o:o+P])
					}
				}
			}
		}
	}
	d := a.d[:n*Np*C]
	e.patch.mul(n*Np, col, K, d, C)
	x := a.x[:n*T*C]
	for b := 0; b < n; b++ {
		xb := x[b*T*C : (b+1)*T*C]
		tensor.Add(xb[:C], e.cls[:C], e.vPos[:C])
		tensor.Add(xb[C:], d[b*Np*C:(b+1)*Np*C], e.vPos[C:T*C])
	}
	tensor.LayerNorm(x, x, e.preLN.g, e.preLN.b, C, e.preLN.eps, nil, nil)
	e.layers(a, tw, n, T, par)
	pooled := a.pooled[:n*C]
	for b := 0; b < n; b++ {
		copy(pooled[b*C:(b+1)*C], x[b*T*C:b*T*C+C])
	}
	e.pool1(pooled, tw, n, out)
}

func (e *Engine) textChunk(a *arena, ids, eot []int, n, T int, out []float32, par bool) {
	tw := &e.txt
	C := tw.C
	x := a.x[:n*T*C]
	for b := 0; b < n; b++ {
		for t := 0; t < T; t++ {
			id := ids[b*T+t]
			r := (b*T + t) * C
			tensor.Add(x[r:r+C], e.tokEmb[id*C:(id+1)*C], e.tPos[t*C:(t+1)*C])
		}
	}
	e.layers(a, tw, n, T, par)
	pooled := a.pooled[:n*C]
	for b := 0; b < n; b++ {
		r := (b*T + eot[b]) * C
		copy(pooled[b*C:(b+1)*C], x[r:r+C])
	}
	e.pool1(pooled, tw, n, out)
}

// pool1 applies the final layer norm and the projection to pooled rows.
func (e *Engine) pool1(pooled []float32, tw *tower, n int, out []float32) {
	C := tw.C
	tensor.LayerNorm(pooled, pooled, tw.final.g, tw.final.b, C, tw.final.eps, nil, nil)
	if tw.projB != nil {
		tw.proj.mulEp(n, pooled, C, out, tw.E, tensor.Epilogue{Bias: tw.projB})
		return
	}
	tw.proj.mul(n, pooled, C, out, tw.E)
}

// layers runs the encoder layers of tw on the residual stream a.x
// ([n·T, C]). Each branch's output waits in a.d and is added to the stream
// by the next layer norm (AddLayerNorm), or at the end.
func (e *Engine) layers(a *arena, tw *tower, n, T int, par bool) {
	s := newStream(a, tw.C, n*T)
	for li := range tw.layers {
		e.block(a, tw, &tw.layers[li], &s, n, T, par)
	}
	s.flush()
}

// stream is the residual stream x ([rows, C]) of one forward pass, with the
// normalised input h of the current branch and the branch output d that is
// still to be added to x (pending).
type stream struct {
	x, h, d []float32
	C       int
	pending bool
}

func newStream(a *arena, C, rows int) stream {
	return stream{x: a.x[:rows*C], h: a.h[:rows*C], d: a.d[:rows*C], C: C}
}

// norm sets h = LayerNorm(x + d) (adding the pending branch to x first) or
// h = LayerNorm(x).
func (s *stream) norm(p *lnParams) {
	if s.pending {
		tensor.AddLayerNorm(s.x, s.h, s.x, s.d, p.g, p.b, s.C, p.eps)
	} else {
		tensor.LayerNorm(s.h, s.x, p.g, p.b, s.C, p.eps, nil, nil)
	}
	s.pending = false
}

// flush adds the pending branch output to x.
func (s *stream) flush() {
	if s.pending {
		tensor.Add(s.x, s.x, s.d)
		s.pending = false
	}
}

// addBias adds bias [C] to every row of x (a branch that computes nothing
// but its output bias).
func addBias(x, bias []float32, C int) {
	for r := 0; r+C <= len(x); r += C {
		tensor.Add(x[r:r+C], x[r:r+C], bias)
	}
}

// block runs one pre-LN layer L on s: attention (when L keeps heads), then
// the MLP (when it keeps neurons), each output left pending in s.d; a
// bias-only branch adds its bias to the stream.
func (e *Engine) block(a *arena, tw *tower, L *layer, s *stream, n, T int, par bool) {
	rows, C := n*T, s.C
	if L.attnBias != nil {
		s.flush()
		addBias(s.x, L.attnBias, C)
	}
	if L.heads > 0 {
		s.norm(&L.ln1)
		in := L.heads * L.hd
		qkv := a.big[:rows*3*in]
		L.qkv.mulEp(rows, s.h, C, qkv, 3*in, tensor.Epilogue{Bias: L.qkvB})
		att := a.att[:rows*in]
		e.attention(a, tw, L, qkv, att, n, T, par)
		L.out.mulEp(rows, att, in, s.d, C, tensor.Epilogue{Bias: L.outB})
		s.pending = true
	}
	if L.hidden > 0 {
		s.norm(&L.ln2)
		F := L.hidden
		hid := a.big[:rows*F]
		L.fc1.mulEp(rows, s.h, C, hid, F, tensor.Epilogue{Bias: L.fc1B, Act: L.act})
		L.fc2.mulEp(rows, hid, F, s.d, C, tensor.Epilogue{Bias: L.fc2B})
		s.pending = true
	}
	if L.mlpBias != nil {
		s.flush()
		addBias(s.x, L.mlpBias, C)
	}
}

// attention computes att = softmax(q·kᵀ·scale [+ causal mask])·v for every
// (item, head) of the chunk, from qkv [rows, 3·H·D] (q heads, k heads, v
// heads), one T×T score block per worker.
func (e *Engine) attention(a *arena, tw *tower, L *layer, qkv, att []float32, n, T int, par bool) {
	units := n * L.heads
	if par && units > 1 {
		e.cur = region{tw: tw, L: L, qkv: qkv, att: att, T: T}
		e.pool.run(units, e.attnFn)
		e.cur = region{}
		return
	}
	for u := 0; u < units; u++ {
		attnUnit(tw, L, qkv, att, a.scores, T, u)
	}
}

func (e *Engine) attnTask(w, i int) {
	r := &e.cur
	attnUnit(r.tw, r.L, r.qkv, r.att, e.arenas[w].scores, r.T, i)
}

func attnUnit(tw *tower, L *layer, qkv, att, scores []float32, T, u int) {
	H, D := L.heads, L.hd
	in := H * D
	W3 := 3 * in
	b, h := u/H, u%H
	base := b * T * W3
	q := qkv[base+h*D:]
	k := qkv[base+in+h*D:]
	v := qkv[base+2*in+h*D:]
	s := scores[:T*T]
	tensor.Sgemm(blas.NoTrans, blas.Trans, T, T, D, L.scale, q, W3, k, W3, 0, s, T)
	if tw.causal {
		for i := 0; i < T; i++ {
			row := s[i*T : (i+1)*T]
			tensor.SoftmaxRows(row[:i+1], i+1)
			clear(row[i+1:])
		}
	} else {
		tensor.SoftmaxRows(s, T)
	}
	tensor.Sgemm(blas.NoTrans, blas.NoTrans, T, D, T, 1, s, T, v, W3, 0, att[b*T*in+h*D:], in)
}

// pool runs the engine's parallel regions (attention heads, items, suffix
// shares) on at most n workers of tensor's process-wide worker set
// (tensor.Parallel), the caller being worker 0: the same spinning workers
// as the GEMMs' thread grids, so that no region waits for a thread to
// wake. A region started from inside another runs on its caller alone.
type pool struct{ n int }

func newPool(n int) *pool { return &pool{n: n} }

// run calls fn(w, i) for i in [0, total), spread over the workers.
func (p *pool) run(total int, fn func(w, i int)) { tensor.Parallel(total, p.n, fn) }

func (p *pool) close() {}
