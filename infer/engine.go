// Package infer is the fast CPU inference path of a CLIP model: both towers
// run from weights packed once, at load, into the panel layout of the GEMM
// micro-kernel (tensor.PackB), with
//
//   - one fused q/k/v projection per layer ([3·H·D, C], the kept heads only),
//   - the bias (and QuickGELU/GELU for fc1) fused into the GEMM epilogue,
//   - each residual add fused with the next layer norm (tensor.AddLayerNorm),
//   - attention per (item, head) in cache, one T×T score block per worker,
//   - a per-engine activation arena, so a warm engine allocates nothing,
//   - parallelism over GEMM tiles (tensor's driver), over (item, head) pairs
//     for attention and over rows for the layer norms; or, with SplitItems,
//     over items (each worker runs whole forward passes on its share).
//
// With Options.DType = BF16 every weight GEMM (patch embedding, q/k/v, out,
// fc1, fc2, projections) runs on bfloat16 weights, half the memory, with
// the activations rounded to bfloat16 per A panel and float32 sums
// (tensor.SgemmPackedBF16); embeddings then agree with the float32 path to
// a cosine similarity above 0.999 (bf16_test.go).
//
// Pruned models (per-layer heads and MLP widths, nil branches, skipped
// layers, HeadKeep masks) run through the same code with their own shapes;
// nothing is padded back to the dense widths.
//
// Results match the reference forward (clip.Model.EncodeImage/EncodeText)
// to float32 rounding (different summation order), and are deterministic
// for a given Engine configuration, batch and chunk size.
package infer

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
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

type layer struct {
	ln1, ln2 lnParams
	// attention (heads == 0: no attention branch)
	heads, hd int
	scale     float32
	qkv       weight // C → 3·heads·hd
	qkvB      []float32
	out       weight // heads·hd → C
	outB      []float32
	// MLP (hidden == 0: no MLP branch)
	hidden int
	act    tensor.Activation
	fc1    weight
	fc1B   []float32
	fc2    weight
	fc2B   []float32
}

type tower struct {
	C       int
	T       int // vision: the sequence length; text: the context length
	causal  bool
	layers  []layer
	final   lnParams // post_layernorm / final_layer_norm
	proj    weight
	E       int
	maxWide int // max 3·H·D and MLP hidden over the layers
	maxIn   int // max H·D
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
	patch    weight // 3·P·P → C
	cls      []float32
	vPos     []float32
	preLN    lnParams
	tokEmb   []float32
	tPos     []float32
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

// New builds an engine for m, packing every weight matrix. m must not be
// changed while the engine is in use (the engine copies what it packs, but
// keeps references to biases, layer norm and embedding parameters).
func New(m *clip.Model, opts Options) (*Engine, error) {
	if m == nil || m.Vision == nil || m.Text == nil {
		return nil, fmt.Errorf("infer: nil model")
	}
	if opts.DType != F32 && opts.DType != BF16 && opts.DType != INT8 {
		return nil, fmt.Errorf("infer: unknown dtype %v", opts.DType)
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
	v, t := m.Vision, m.Text
	vc := v.Cfg
	var err error
	rel := opts.ReleaseWeights
	if e.vis, err = buildTower(opts.DType, v.Encoder, vc.HiddenSize, v.SeqLen(), false, v.PostLN, m.VisualProjection, rel); err != nil {
		return nil, fmt.Errorf("infer: vision: %w", err)
	}
	if e.txt, err = buildTower(opts.DType, t.Encoder, t.Cfg.HiddenSize, t.Cfg.MaxPositionEmbeddings, true, t.FinalLN, m.TextProjection, rel); err != nil {
		return nil, fmt.Errorf("infer: text: %w", err)
	}
	C, P := vc.HiddenSize, vc.PatchSize
	e.patchK = 3 * P * P
	e.nPatches = vc.NumPatches()
	if got := len(v.PatchEmbedding.Value.Data); got != C*e.patchK {
		return nil, fmt.Errorf("infer: patch embedding has %d values, want %d", got, C*e.patchK)
	}
	e.patch = packW(opts.DType, e.patchK, C, v.PatchEmbedding.Value.Data)
	if opts.ReleaseWeights {
		v.PatchEmbedding.Value.Data = nil
	}
	e.cls = v.ClassEmbedding.Value.Data
	e.vPos = v.PositionEmbed.Value.Data
	e.preLN = ln(v.PreLN)
	e.tokEmb = t.TokenEmbedding.Value.Data
	e.tPos = t.PositionEmbed.Value.Data
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

// Close stops the engine's worker goroutines. The engine must not be used
// afterwards.
func (e *Engine) Close() { e.pool.close() }

// Threads returns the number of workers.
func (e *Engine) Threads() int { return e.threads }

// DType returns the weight type of the engine's GEMMs.
func (e *Engine) DType() DType { return e.dtype }

// Model returns the model the engine was built from.
func (e *Engine) Model() *clip.Model { return e.m }

func ln(l *nn.LayerNorm) lnParams {
	return lnParams{g: l.W.Value.Data, b: l.B.Value.Data, eps: l.Eps}
}

func biasOf(l *nn.Linear, n int) []float32 {
	if l.B == nil {
		return make([]float32, n)
	}
	return l.B.Value.Data
}

// release drops the model's copy of packed weight matrices (ReleaseWeights).
func release(on bool, ls ...*nn.Linear) {
	if !on {
		return
	}
	for _, l := range ls {
		l.W.Value.Data = nil
	}
	runtime.GC()
}

// buildMLP packs MLP m of a width-C block into L (nothing when it has no
// neurons left).
func buildMLP(dt DType, L *layer, m *nn.MLP, C int) error {
	F := m.FC1.Out()
	if m.FC1.In() != C || m.FC2.In() != F || m.FC2.Out() != C {
		return fmt.Errorf("MLP shapes fc1 %dx%d fc2 %dx%d for width %d", m.FC1.Out(), m.FC1.In(), m.FC2.Out(), m.FC2.In(), C)
	}
	if F == 0 {
		return nil
	}
	switch m.Act {
	case nn.ActQuickGELU:
		L.act = tensor.ActQuickGELU
	case nn.ActGELU:
		L.act = tensor.ActGELU
	default:
		return fmt.Errorf("unknown activation %v", m.Act)
	}
	L.hidden = F
	L.fc1 = packW(dt, C, F, m.FC1.W.Value.Data)
	L.fc1B = biasOf(m.FC1, F)
	L.fc2 = packW(dt, F, C, m.FC2.W.Value.Data)
	L.fc2B = biasOf(m.FC2, C)
	return nil
}

func buildTower(dt DType, tr *nn.Transformer, C, T int, causal bool, final *nn.LayerNorm, proj *nn.Linear, rel bool) (tower, error) {
	tw := tower{C: C, T: T, causal: causal, final: ln(final), E: proj.Out()}
	if proj.In() != C {
		return tw, fmt.Errorf("projection takes %d inputs, tower width is %d", proj.In(), C)
	}
	tw.proj = packW(dt, C, tw.E, proj.W.Value.Data)
	release(rel, proj)
	if tr.Skip != nil && len(tr.Skip) != len(tr.Layers) {
		return tw, fmt.Errorf("%d skip flags for %d layers", len(tr.Skip), len(tr.Layers))
	}
	for i, b := range tr.Layers {
		if tr.Skip != nil && tr.Skip[i] {
			continue
		}
		L := layer{ln1: ln(b.LayerNorm1), ln2: ln(b.LayerNorm2)}
		if a := b.SelfAttn; a != nil {
			if err := buildAttn(dt, &L, a, C); err != nil {
				return tw, fmt.Errorf("layer %d: %w", i, err)
			}
			if L.heads > 0 {
				release(rel, a.Q, a.K, a.V, a.Out)
			}
		}
		if mlp := b.MLP; mlp != nil {
			if err := buildMLP(dt, &L, mlp, C); err != nil {
				return tw, fmt.Errorf("layer %d: %w", i, err)
			}
			if L.hidden > 0 {
				tw.maxWide = max(tw.maxWide, L.hidden)
				release(rel, mlp.FC1, mlp.FC2)
			}
		}
		tw.maxWide = max(tw.maxWide, 3*L.heads*L.hd)
		tw.maxIn = max(tw.maxIn, L.heads*L.hd)
		tw.layers = append(tw.layers, L)
	}
	return tw, nil
}

// buildAttn packs the kept heads of a: q, k and v stacked into one
// [3·H·D, C] matrix, and the matching columns of out_proj, in type dt.
func buildAttn(dt DType, L *layer, a *nn.MultiHeadAttention, C int) error {
	H, D := a.Heads, a.HeadDim
	inner := H * D
	if a.Q.Out() != inner || a.K.Out() != inner || a.V.Out() != inner || a.Out.In() != inner ||
		a.Q.In() != C || a.K.In() != C || a.V.In() != C || a.Out.Out() != C {
		return fmt.Errorf("attention shapes do not match %d heads of %d over width %d", H, D, C)
	}
	if a.HeadKeep != nil && len(a.HeadKeep) != H {
		return fmt.Errorf("%d HeadKeep flags for %d heads", len(a.HeadKeep), H)
	}
	var keep []int
	for h := 0; h < H; h++ {
		if a.HeadKeep == nil || a.HeadKeep[h] {
			keep = append(keep, h)
		}
	}
	Hk := len(keep)
	if Hk == 0 || D == 0 {
		return nil // the branch contributes exactly zero
	}
	L.heads, L.hd = Hk, D
	L.scale = a.Scale
	if L.scale == 0 {
		L.scale = float32(1 / math.Sqrt(float64(D)))
	}
	in := Hk * D
	w := make([]float32, 3*in*C)
	bias := make([]float32, 3*in)
	for p, lin := range []*nn.Linear{a.Q, a.K, a.V} {
		wd := lin.W.Value.Data
		bd := biasOf(lin, inner)
		for j, h := range keep {
			copy(w[(p*in+j*D)*C:(p*in+(j+1)*D)*C], wd[h*D*C:(h+1)*D*C])
			copy(bias[p*in+j*D:p*in+(j+1)*D], bd[h*D:(h+1)*D])
		}
	}
	L.qkv = packW(dt, C, 3*in, w)
	L.qkvB = bias
	// out_proj W [C, inner]: keep the columns of the kept heads.
	ow := a.Out.W.Value.Data
	wo := make([]float32, C*in)
	for r := 0; r < C; r++ {
		for j, h := range keep {
			copy(wo[r*in+j*D:r*in+(j+1)*D], ow[r*inner+h*D:r*inner+(h+1)*D])
		}
	}
	L.out = packW(dt, in, C, wo)
	L.outB = biasOf(a.Out, C)
	return nil
}
