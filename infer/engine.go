// Package infer is the fast CPU inference path of a CLIP model: both towers
// run from weights packed once, at load, into the panel layout of the GEMM
// micro-kernel (tensor.PackB), with
//
//   - one fused q/k/v projection per layer ([3·H·D, C], the kept heads only),
//   - the bias (and QuickGELU/GELU for fc1) fused into the GEMM epilogue,
//   - each residual add fused with the next layer norm (tensor.AddLayerNorm),
//   - attention per (item, head) in cache, one T×T score block per worker,
//   - a per-engine activation arena, so a warm engine allocates nothing,
//   - parallelism over GEMM tiles (tensor's driver) and over (item, head)
//     pairs for attention, the layer norms and residual adds (microseconds
//     at one image) staying on the calling thread; or, with SplitItems,
//     over items (each worker runs whole forward passes on its share). All
//     of it runs on tensor's shared spinning workers (tensor.Parallel).
//
// With Options.DType = BF16 every weight GEMM (patch embedding, q/k/v, out,
// fc1, fc2, projections) runs on bfloat16 weights, half the memory, with
// the activations rounded to bfloat16 per A panel and float32 sums
// (tensor.SgemmPackedBF16); embeddings then agree with the float32 path to
// a cosine similarity above 0.999 (bf16_test.go).
//
// The engine runs the model's lowering (package clip/lower, which decides
// kept heads, q/k/v fusion, the attention scale, the activation, the bias
// policy and what is supported, for every engine): pruned models (per-layer
// heads and MLP widths, nil and bias-only branches, skipped layers, HeadKeep
// masks) run through the same code with their own shapes; nothing is padded
// back to the dense widths.
//
// Results match the reference forward (clip.Model.EncodeImage/EncodeText)
// to float32 rounding (different summation order), and are deterministic
// for a given Engine configuration, batch and chunk size.
package infer

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/lower"
	"github.com/mopeclip/mopeclip/tensor"
	"gonum.org/v1/gonum/blas"
)

// Split selects how an Engine spreads a batch over its threads.
type Split int

const (
	// SplitAuto picks SplitItems when the batch has at least MinItemsSplit
	// items per thread, SplitGEMM otherwise.
	SplitAuto Split = iota
	// SplitGEMM runs the whole batch as one pass: the GEMMs are split over
	// threads by tensor's driver, attention over (item, head) pairs and
	// layer norms over rows by the engine's workers.
	SplitGEMM
	// SplitItems gives each worker a share of the items, which it runs
	// through whole forward passes on its own arena.
	SplitItems
)

// String names the split as the --split flags do.
func (s Split) String() string {
	switch s {
	case SplitAuto:
		return "auto"
	case SplitGEMM:
		return "gemm"
	case SplitItems:
		return "items"
	}
	return fmt.Sprintf("Split(%d)", int(s))
}

// ParseSplit parses "auto", "gemm" or "items".
func ParseSplit(s string) (Split, error) {
	switch s {
	case "auto", "":
		return SplitAuto, nil
	case "gemm":
		return SplitGEMM, nil
	case "items":
		return SplitItems, nil
	}
	return 0, fmt.Errorf("infer: unknown split %q (want auto, gemm or items)", s)
}

// Options configure an Engine. The zero value is sensible.
type Options struct {
	// Threads is the number of workers (0: GOMAXPROCS at New).
	Threads int
	// Split is the parallel strategy (see Split).
	Split Split
	// Chunk is the largest number of items per forward pass (0: 16);
	// larger batches run chunk by chunk, bounding the arena.
	Chunk int
	// MinItemsSplit is SplitAuto's threshold in items per thread (0: 4).
	MinItemsSplit int
	// DType is the type of the packed weights of every weight GEMM (F32 or
	// BF16). With BF16 the activations are rounded to bfloat16 as each GEMM
	// packs them and products are summed in float32 (tensor.SgemmPackedBF16:
	// VDPBF16PS on CPUs with AVX512_BF16, an AVX2 or pure-Go kernel
	// elsewhere); attention, layer norms and epilogues stay float32.
	DType DType
	// ReleaseWeights drops the model's copies of the matrices the engine
	// packs (their Value.Data becomes nil, layer by layer, with a GC after
	// each), so that a process holds the weights once. The model can then
	// no longer run its reference forward or be saved.
	ReleaseWeights bool
	// Towers are the towers whose weights are packed (0: both). A tower
	// left out costs no memory; encoding with it panics, and PackBlock,
	// RunLayers, EmbedFrom and Layers return an error for it. MoPE scoring
	// of one tower uses it to hold one tower's packed weights.
	Towers clip.TowerSet
}

// DType is the weight type of an Engine's GEMMs.
type DType int

const (
	// F32 keeps the weights in float32 (tensor.SgemmPacked).
	F32 DType = iota
	// BF16 stores them as bfloat16, half the memory (tensor.SgemmPackedBF16).
	BF16
	// INT8 quantises them per output channel, a quarter of the memory, and
	// the activations per row at each GEMM (tensor.SgemmPackedInt8; see
	// int8.go).
	INT8
)

// String names the type as the --dtype flags do.
func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case BF16:
		return "bf16"
	case INT8:
		return "int8"
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// ParseDType parses "f32" (or ""), "bf16" and "int8".
func ParseDType(s string) (DType, error) {
	switch s {
	case "f32", "float32", "":
		return F32, nil
	case "bf16", "bfloat16":
		return BF16, nil
	case "int8":
		return INT8, nil
	}
	return 0, fmt.Errorf("infer: unknown dtype %q (want f32, bf16 or int8)", s)
}

// weight is one packed weight matrix op(B) = Wᵀ (k×n, from W [n, k]), in
// float32 (f), bfloat16 (h) or int8 (q).
type weight struct {
	f *tensor.PackedB
	h *tensor.PackedBF16
	q *tensor.PackedInt8
}

// packW packs W [n, k] in the given type.
func packW(dt DType, k, n int, w []float32) weight {
	if dt == BF16 {
		return weight{h: tensor.PackBBF16(blas.Trans, k, n, w, k)}
	}
	if dt == INT8 && k <= tensor.Int8MaxK {
		return packInt8(k, n, w)
	}
	return weight{f: tensor.PackB(blas.Trans, k, n, w, k)}
}

// mul sets c = a·W (a is rows×k with stride lda, c rows×n with stride ldc).
func (w *weight) mul(rows int, a []float32, lda int, c []float32, ldc int) {
	if w.h != nil {
		tensor.SgemmPackedBF16(blas.NoTrans, rows, 1, a, lda, w.h, 0, c, ldc)
		return
	}
	if w.q != nil {
		w.mulInt8(rows, a, lda, c, ldc, nil)
		return
	}
	tensor.SgemmPacked(blas.NoTrans, rows, 1, a, lda, w.f, 0, c, ldc)
}

// mulEp is mul with the fused epilogue ep.
func (w *weight) mulEp(rows int, a []float32, lda int, c []float32, ldc int, ep tensor.Epilogue) {
	if w.h != nil {
		tensor.SgemmPackedBF16Epilogue(blas.NoTrans, rows, 1, a, lda, w.h, 0, c, ldc, ep)
		return
	}
	if w.q != nil {
		w.mulInt8(rows, a, lda, c, ldc, &ep)
		return
	}
	tensor.SgemmPackedEpilogue(blas.NoTrans, rows, 1, a, lda, w.f, 0, c, ldc, ep)
}

type lnParams struct {
	g, b []float32
	eps  float32
}

// layer is one lowered block (lower.Block) packed for the engine.
type layer struct {
	ln1, ln2 lnParams
	// attention (heads == 0: no attention computed; attnBias, when set, is
	// what the headless branch adds)
	heads, hd int
	scale     float32
	qkv       weight // C → 3·heads·hd
	qkvB      []float32
	out       weight // heads·hd → C
	outB      []float32
	attnBias  []float32
	// MLP (hidden == 0: no MLP computed; mlpBias as attnBias)
	hidden  int
	act     tensor.Activation
	fc1     weight
	fc1B    []float32
	fc2     weight
	fc2B    []float32
	mlpBias []float32
}

// imageGeom is the input geometry of the vision tower: S×S images of Cin
// channels cut into P×P patches.
type imageGeom struct{ S, P, Cin int }

type tower struct {
	C       int
	T       int // vision: the sequence length; text: the context length
	causal  bool
	layers  []layer
	final   lnParams // post_layernorm / final_layer_norm
	proj    weight
	projB   []float32
	E       int
	maxWide int  // max 3·H·D and MLP hidden over the layers
	maxIn   int  // max H·D
	packed  bool // false: left out by Options.Towers (sizes only)
}

// Engine runs a clip.Model's towers. Its methods may be called from several
// goroutines; calls are serialised (each uses all the engine's threads).
type Engine struct {
	m       *clip.Model
	vis     tower
	txt     tower
	threads int
	split   Split
	chunk   int
	minItem int
	dtype   DType

	// vision embedding
	img      imageGeom
	patch    weight // Cin·P·P → C
	cls      []float32
	vPos     []float32
	preLN    lnParams
	tokEmb   []float32
	tPos     []float32
	vocab    int
	patchK   int
	nPatches int

	mu     sync.Mutex
	pool   *pool
	arenas []*arena // one per worker (SplitItems); arenas[0] for SplitGEMM
	cur    region   // the parallel region being run (SplitGEMM)
	// Pre-bound task functions (method values allocate when made).
	attnFn, itemsFn func(w, i int)
	items           itemsJob
}

// New builds an engine for m, packing every weight matrix of its lowering
// (lower.Model, which also decides what is supported). m must not be
// changed while the engine is in use (the engine copies what it packs, but
// keeps references to biases, layer norm and embedding parameters).
func New(m *clip.Model, opts Options) (*Engine, error) {
	if opts.DType != F32 && opts.DType != BF16 && opts.DType != INT8 {
		return nil, fmt.Errorf("infer: unknown dtype %v", opts.DType)
	}
	p, err := lower.Model(m)
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	e := &Engine{m: m, threads: opts.Threads, split: opts.Split, chunk: opts.Chunk, minItem: opts.MinItemsSplit, dtype: opts.DType}
	if e.threads <= 0 {
		e.threads = runtime.GOMAXPROCS(0)
	}
	if e.chunk <= 0 {
		e.chunk = 16
	}
	if e.minItem <= 0 {
		e.minItem = 4
	}
	rel := opts.ReleaseWeights
	v, t := &p.Vision, &p.Text
	towers := opts.Towers
	if towers == 0 {
		towers = clip.BothTowers
	}
	e.vis = buildTower(opts.DType, &v.Tower, rel, towers.Has(clip.VisionTower))
	e.txt = buildTower(opts.DType, &t.Tower, rel, towers.Has(clip.TextTower))
	e.img = imageGeom{S: v.ImageSize, P: v.PatchSize, Cin: v.Channels}
	e.patchK = v.Patch.In
	e.nPatches = v.Patches
	if e.vis.packed {
		e.patch = packW(opts.DType, e.patchK, v.Patch.Out, v.Patch.W)
	}
	if rel && e.vis.packed {
		v.Patch.Release()
		runtime.GC()
	}
	e.cls = v.Class
	e.vPos = v.Pos
	e.preLN = ln(v.PreLN)
	e.tokEmb = t.Tok
	e.tPos = t.Pos
	e.vocab = t.Vocab
	e.pool = newPool(e.threads)
	e.arenas = make([]*arena, e.threads)
	for i := range e.arenas {
		e.arenas[i] = &arena{}
		e.ensure(e.arenas[i], 0) // score block
	}
	e.attnFn = e.attnTask
	e.itemsFn = e.itemsTask
	return e, nil
}

// Close releases the engine. Its parallel regions run on tensor's shared
// workers (tensor.Parallel), so there is nothing to stop today; the engine
// must not be used afterwards.
func (e *Engine) Close() { e.pool.close() }

// Threads returns the number of workers.
func (e *Engine) Threads() int { return e.threads }

// DType returns the weight type of the engine's GEMMs.
func (e *Engine) DType() DType { return e.dtype }

// Model returns the model the engine was built from.
func (e *Engine) Model() *clip.Model { return e.m }

func ln(l lower.LayerNorm) lnParams { return lnParams{g: l.G, b: l.B, eps: l.Eps} }

// buildTower packs the blocks and the projection of a lowered tower; with
// rel, the model's copy of each matrix is dropped once packed. Without
// pack it records the tower's sizes only (Options.Towers).
func buildTower(dt DType, lt *lower.Tower, rel, pack bool) tower {
	tw := tower{C: lt.Width, T: lt.SeqLen, causal: lt.Causal, final: ln(lt.Final), E: lt.Proj.Out, projB: lt.Proj.B, packed: pack}
	if !pack {
		for i := range lt.Blocks {
			b := &lt.Blocks[i]
			if a := b.Attn; a != nil {
				tw.maxWide, tw.maxIn = max(tw.maxWide, 3*a.Heads*a.HeadDim), max(tw.maxIn, a.Heads*a.HeadDim)
			}
			if m := b.MLP; m != nil {
				tw.maxWide = max(tw.maxWide, m.Hidden)
			}
		}
		return tw
	}
	tw.proj = packW(dt, lt.Proj.In, lt.Proj.Out, lt.Proj.W)
	if rel {
		lt.Proj.Release()
		runtime.GC()
	}
	for i := range lt.Blocks {
		b := &lt.Blocks[i]
		L := packBlock(dt, b)
		if rel {
			b.Release()
			runtime.GC()
		}
		tw.maxWide = max(tw.maxWide, L.hidden, 3*L.heads*L.hd)
		tw.maxIn = max(tw.maxIn, L.heads*L.hd)
		tw.layers = append(tw.layers, L)
	}
	return tw
}

// packBlock packs a lowered block in type dt.
func packBlock(dt DType, b *lower.Block) layer {
	L := layer{ln1: ln(b.LN1), ln2: ln(b.LN2), attnBias: b.AttnBias, mlpBias: b.MLPBias}
	if a := b.Attn; a != nil {
		L.heads, L.hd, L.scale = a.Heads, a.HeadDim, a.Scale
		qkv, out := a.QKV(), a.Out()
		L.qkv, L.qkvB = packW(dt, qkv.In, qkv.Out, qkv.W), qkv.B
		L.out, L.outB = packW(dt, out.In, out.Out, out.W), out.B
	}
	if m := b.MLP; m != nil {
		L.hidden, L.act = m.Hidden, m.Act
		L.fc1, L.fc1B = packW(dt, m.FC1.In, m.FC1.Out, m.FC1.W), m.FC1.B
		L.fc2, L.fc2B = packW(dt, m.FC2.In, m.FC2.Out, m.FC2.W), m.FC2.B
	}
	return L
}
