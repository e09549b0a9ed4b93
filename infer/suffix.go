package infer

import (
	"fmt"

	"github.com/mopeclip/mopeclip/clip/lower"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/tensor"
	"gonum.org/v1/gonum/blas"
)

// Tower names for PackBlock, RunLayers and EmbedFrom.
const (
	TowerVision = "vision"
	TowerText   = "text"
)

// Layer is an encoder block (or one branch of it) packed for RunLayers and
// EmbedFrom. Importance scoring uses it to run the layers after a cached
// prefix, with one layer replaced by a pruned variant.
type Layer struct {
	l layer
}

// Heads returns the number of attention heads the layer computes.
func (l *Layer) Heads() int { return l.l.heads }

// Hidden returns the number of MLP neurons the layer computes.
func (l *Layer) Hidden() int { return l.l.hidden }

func (e *Engine) tower(name string) (*tower, error) {
	var tw *tower
	switch name {
	case TowerVision:
		tw = &e.vis
	case TowerText:
		tw = &e.txt
	default:
		return nil, fmt.Errorf("infer: unknown tower %q", name)
	}
	if !tw.packed {
		return nil, fmt.Errorf("infer: the engine was built without the %s tower (Options.Towers)", name)
	}
	return tw, nil
}

// PackBlock packs block b of the named tower with its attention branch
// (kept heads only, HeadKeep honoured) when attn is set and its MLP branch
// when mlp is set; a nil branch is left out. b's shapes may be narrower
// than the engine's model but not wider (the arenas are sized for it).
func (e *Engine) PackBlock(towerName string, b *nn.Block, attn, mlp bool) (*Layer, error) {
	tw, err := e.tower(towerName)
	if err != nil {
		return nil, err
	}
	lb, err := lower.FromBlock(b, -1, tw.C)
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	if !attn {
		lb.Attn, lb.AttnBias = nil, nil
	}
	if !mlp {
		lb.MLP, lb.MLPBias = nil, nil
	}
	L := packBlock(e.dtype, &lb)
	if in := L.heads * L.hd; 3*in > tw.maxWide || in > tw.maxIn || L.hidden > tw.maxWide {
		return nil, fmt.Errorf("infer: block (%d heads of %d, MLP %d) is wider than the engine's model", L.heads, L.hd, L.hidden)
	}
	return &Layer{l: L}, nil
}

// RunLayers runs layers in order on the residual stream x of n items of T
// tokens ([n·T, C] rows of the named tower, after the embeddings) and
// writes the stream they leave into dst (which may be x). Items are spread
// over the engine's threads, chunk by chunk.
func (e *Engine) RunLayers(towerName string, x []float32, n, T int, layers []*Layer, dst []float32) error {
	return e.runFrom(towerName, x, n, T, layers, nil, dst)
}

// EmbedFrom runs layers on the residual stream x as RunLayers does, then
// pools row pool[b] of each item b (vision: 0, the class token; text: the
// EOT position), applies the tower's final layer norm and projection and
// writes the projected, unnormalised embeddings into out [n, E]. The last
// layer computes only what the pooled rows need (keys and values of every
// row, queries, attention output and MLP of the pooled rows), which gives
// the same result as running it on every row.
func (e *Engine) EmbedFrom(towerName string, x []float32, n, T int, layers []*Layer, pool []int, out []float32) error {
	if len(pool) != n {
		return fmt.Errorf("infer: %d pool rows for %d items", len(pool), n)
	}
	for b, p := range pool {
		if p < 0 || p >= T {
			return fmt.Errorf("infer: pool row %d of item %d outside [0,%d)", p, b, T)
		}
	}
	return e.runFrom(towerName, x, n, T, layers, pool, out)
}

func (e *Engine) runFrom(towerName string, x []float32, n, T int, layers []*Layer, pool []int, dst []float32) error {
	tw, err := e.tower(towerName)
	if err != nil {
		return err
	}
	C := tw.C
	if n < 0 || T <= 0 || T > tw.T || len(x) != n*T*C {
		return fmt.Errorf("infer: %d stream values for %d items of %d tokens of width %d (at most %d tokens)", len(x), n, T, C, tw.T)
	}
	want := n * T * C
	if pool != nil {
		want = n * tw.E
	}
	if len(dst) < want {
		return fmt.Errorf("infer: output holds %d values, want %d", len(dst), want)
	}
	for i, l := range layers {
		if l == nil {
			return fmt.Errorf("infer: layer %d is nil", i)
		}
	}
	if n == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	W := min(e.threads, n)
	share := func(_, i int) {
		i0, i1 := i*n/W, (i+1)*n/W
		a := e.arenas[i]
		for c0 := i0; c0 < i1; c0 += e.chunk {
			c := min(e.chunk, i1-c0)
			e.ensure(a, c)
			copy(a.x[:c*T*C], x[c0*T*C:(c0+c)*T*C])
			if pool == nil {
				e.seq(a, tw, c, T, layers, nil)
				copy(dst[c0*T*C:(c0+c)*T*C], a.x[:c*T*C])
				continue
			}
			e.seq(a, tw, c, T, layers, pool[c0:c0+c])
			e.pool1(a.pooled[:c*C], tw, c, dst[c0*tw.E:(c0+c)*tw.E])
		}
	}
	if W <= 1 {
		share(0, 0)
	} else {
		e.pool.run(W, share)
	}
	return nil
}

// seq runs layers on a.x ([n·T, C]) on one thread. With pool == nil the
// resulting stream is left in a.x; otherwise the last layer runs for the
// pooled rows only and a.pooled holds their residual rows [n, C].
func (e *Engine) seq(a *arena, tw *tower, n, T int, layers []*Layer, pool []int) {
	s := newStream(a, tw.C, n*T)
	last := len(layers) - 1
	if pool != nil && last < 0 {
		e.gather(a, tw.C, T, pool)
		return
	}
	for li, lw := range layers {
		if pool != nil && li == last {
			s.flush()
			e.lastPooled(a, tw, &lw.l, n, T, pool)
			return
		}
		e.block(a, tw, &lw.l, &s, n, T, false)
	}
	s.flush()
}

// gather copies row pool[b] of each item's stream into a.pooled.
func (e *Engine) gather(a *arena, C, T int, pool []int) {
	for b, p := range pool {
		r := (b*T + p) * C
		copy(a.pooled[b*C:(b+1)*C], a.x[r:r+C])
	}
}

// lastPooled runs layer L on a.x for the pooled rows only, leaving their
// residual rows in a.pooled.
func (e *Engine) lastPooled(a *arena, tw *tower, L *layer, n, T int, pool []int) {
	C := tw.C
	rows := n * T
	x, h := a.x[:rows*C], a.h[:rows*C]
	e.gather(a, C, T, pool)
	xp := a.pooled[:n*C]
	if L.attnBias != nil {
		addBias(xp, L.attnBias, C)
	}
	if L.heads > 0 {
		// Keys and values of every row are needed; the queries of the
		// other rows come along with the fused product.
		tensor.LayerNorm(h, x, L.ln1.g, L.ln1.b, C, L.ln1.eps, nil, nil)
		H, D := L.heads, L.hd
		in := H * D
		W3 := 3 * in
		qkv := a.big[:rows*W3]
		L.qkv.mulEp(rows, h, C, qkv, W3, tensor.Epilogue{Bias: L.qkvB})
		att := a.att[:n*in]
		for b, p := range pool {
			nk := T
			if tw.causal {
				nk = p + 1
			}
			base := b * T * W3
			for hh := 0; hh < H; hh++ {
				s := a.scores[:nk]
				q := qkv[base+p*W3+hh*D : base+p*W3+(hh+1)*D]
				tensor.Sgemm(blas.NoTrans, blas.Trans, 1, nk, D, L.scale, q, D, qkv[base+in+hh*D:], W3, 0, s, nk)
				tensor.SoftmaxRows(s, nk)
				tensor.Sgemm(blas.NoTrans, blas.NoTrans, 1, D, nk, 1, s, nk, qkv[base+2*in+hh*D:], W3, 0, att[b*in+hh*D:], in)
			}
		}
		d := a.d[:n*C]
		L.out.mulEp(n, att, in, d, C, tensor.Epilogue{Bias: L.outB})
		tensor.Add(xp, xp, d)
	}
	if L.hidden > 0 {
		hp := a.h[:n*C]
		tensor.LayerNorm(hp, xp, L.ln2.g, L.ln2.b, C, L.ln2.eps, nil, nil)
		F := L.hidden
		hid := a.big[:n*F]
		d := a.d[:n*C]
		L.fc1.mulEp(n, hp, C, hid, F, tensor.Epilogue{Bias: L.fc1B, Act: L.act})
		L.fc2.mulEp(n, hid, F, d, C, tensor.Epilogue{Bias: L.fc2B})
		tensor.Add(xp, xp, d)
	}
	if L.mlpBias != nil {
		addBias(xp, L.mlpBias, C)
	}
}

// Layers returns the engine's own packed encoder layers of the named tower,
// in order, sharing their packed weights (no copy); layers the model's Skip
// flags leave out are absent.
func (e *Engine) Layers(towerName string) ([]*Layer, error) {
	tw, err := e.tower(towerName)
	if err != nil {
		return nil, err
	}
	out := make([]*Layer, len(tw.layers))
	for i := range tw.layers {
		out[i] = &Layer{l: tw.layers[i]}
	}
	return out, nil
}

// Branch returns l with its attention branch only (attn) or its MLP branch
// only, sharing l's packed weights.
func (l *Layer) Branch(attn bool) *Layer {
	c := *l
	if attn {
		c.l.hidden, c.l.mlpBias = 0, nil
	} else {
		c.l.heads, c.l.attnBias = 0, nil
	}
	return &c
}
