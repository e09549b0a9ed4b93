package mope

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"sort"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/internal/progress"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// Options configure Score.
type Options struct {
	Metric Metric        // one of Metrics
	Towers clip.TowerSet // Vision and/or Text
	Kinds  []string      // KindHead, KindFFN, KindLayer
	Groups int           // FFN groups per layer (0: DefaultGroups)
	Batch  int           // items per forward batch (0: 32 images / 128 captions)
	Seed   uint64        // random metric
	Shard  string        // "I/N": score only modules with id%N == I ("": all)
	// Engine runs the towers for the mope and unimodal metrics: EngineFast
	// or EngineRef ("": fast on the CPU backend, ref otherwise). Recorded
	// in the settings: the two agree to float32 rounding, which can move
	// a retrieval rank and so a score.
	Engine Engine
	// Threads is the fast engine's number of workers (0: GOMAXPROCS).
	Threads int
	// GPU, when set, runs the towers of the mope and unimodal metrics on
	// the GPU (EngineCUDA or EngineCUDATF32 unless Engine names another).
	GPU GPU
	// DType is the weight type of the fast engine's GEMMs (infer.F32,
	// infer.BF16 or infer.INT8; see infer.Options.DType): reduced-precision
	// scoring, recorded in the settings unless F32. It needs the fast
	// engine and the mope or unimodal metric.
	DType infer.DType
	// Rescore, with a reduced DType and the mope metric, makes the run
	// two-stage (rescore.go): every module in DType, then in float32 the
	// modules whose order can decide the plan Rescore describes, so that
	// plan is float32's. nil: one stage, every score in DType.
	Rescore *Rescore

	// Data, Split and Limit describe the calibration set in the settings.
	Data, Split string
	Limit       int

	// Progress, when set, receives the progress (internal/progress: a bar
	// on a terminal, timestamped lines elsewhere).
	Progress io.Writer
	// Checkpoint, when set, is written with the partial results every
	// CheckpointEvery (default 60 s) and at the end.
	Checkpoint      string
	CheckpointEvery time.Duration
	// Resume holds the results of an interrupted run with the same
	// settings and shard; its modules are not scored again.
	Resume *ScoreFile

	ctx context.Context // ScoreContext's, for the float32 stage of Rescore
}

func (o *Options) settings(m *clip.Model, cal *Calib) Settings {
	s := Settings{Metric: o.Metric, Towers: o.Towers, Kinds: o.Kinds, Groups: o.Groups, GroupRule: GroupRule,
		Data: o.Data, Split: o.Split, Limit: o.Limit, Batch: o.Batch, Seed: o.Seed, Engine: o.Engine, Model: Fingerprint(m)}
	if o.DType != infer.F32 {
		s.DType = o.DType.String()
		if o.Rescore != nil {
			s.Rescore = o.Rescore.String()
		}
	}
	if cal != nil {
		s.Images, s.Captions = cal.NImg, cal.NTxt
	}
	return s
}

// Score scores the modules of m selected by o (one shard of them when
// o.Shard is set). cal may be nil for the magnitude and random metrics.
func Score(m *clip.Model, cal *Calib, o Options) (*ScoreFile, error) {
	return ScoreContext(context.Background(), m, cal, o)
}

// ScoreContext is Score stopped by ctx: when ctx is cancelled, the modules
// scored so far are written to o.Checkpoint (a run to resume with
// o.Resume) and the error wraps ctx.Err().
func ScoreContext(ctx context.Context, m *clip.Model, cal *Calib, o Options) (*ScoreFile, error) {
	if o.Groups <= 0 {
		o.Groups = DefaultGroups
	}
	if _, err := ParseMetric(string(o.Metric)); err != nil {
		return nil, fmt.Errorf("mope: %w", err)
	}
	if o.Towers == 0 || len(o.Kinds) == 0 {
		return nil, fmt.Errorf("mope: no towers or module kinds to score")
	}
	if o.Metric.NeedsData() && cal == nil {
		return nil, fmt.Errorf("mope: metric %s needs calibration data", o.Metric)
	}
	if o.Metric != "random" {
		o.Seed = 0
	}
	if !o.Metric.NeedsData() {
		cal = nil
		o.Data, o.Split, o.Limit, o.Batch = "", "", 0, 0
	}
	eng, err := resolveEngine(o.Metric, o.Engine, o.GPU)
	if err != nil {
		return nil, err
	}
	o.Engine = eng
	if o.DType != infer.F32 && eng != EngineFast {
		return nil, fmt.Errorf("mope: scoring in %v needs the fast engine and the mope or unimodal metric (metric %s, engine %q)", o.DType, o.Metric, eng)
	}
	si, sn, err := ParseShard(o.Shard)
	if err != nil {
		return nil, err
	}
	if o.DType == infer.F32 {
		o.Rescore = nil
	}
	if o.Rescore != nil && (o.Metric != MetricMoPE || sn > 1) {
		return nil, fmt.Errorf("mope: f32 rescoring (rescore %s) needs the mope metric and the whole run, not a shard (metric %s, shard %q): use rescore none", o.Rescore, o.Metric, o.Shard)
	}
	if sn == 1 {
		o.Shard = ""
	}
	all := Modules(m, o.Towers, o.Kinds, o.Groups)
	f := &ScoreFile{Format: ScoreFormat, Settings: o.settings(m, cal), Shard: o.Shard, Total: len(all)}
	var todo []ModuleScore
	done := map[int]bool{}
	if r := o.Resume; r != nil {
		if err := sameRun(r, f); err != nil {
			return nil, fmt.Errorf("mope: cannot resume: %w", err)
		}
		for _, s := range r.Scores {
			if s.ID < len(all) && all[s.ID] == s.Module && InShard(s.ID, si, sn) {
				done[s.ID] = true
				f.Scores = append(f.Scores, s)
			}
		}
		f.Baseline = r.Baseline
	}
	for id, mod := range all {
		if InShard(id, si, sn) && !done[id] {
			todo = append(todo, ModuleScore{ID: id, Module: mod})
		}
	}
	total := len(todo) + len(done)
	pr := progress.New(o.Progress, string(o.Metric)+" scores", total, progress.Options{Done: len(done), Unit: "modules/s", Final: total > 0})
	ck := &checkpointer{path: o.Checkpoint, every: o.CheckpointEvery, file: f, last: time.Now()}
	if ck.every <= 0 {
		ck.every = time.Minute
	}
	record := func(s ModuleScore) error {
		f.Scores = append(f.Scores, s)
		pr.Add(1, s.Module.String())
		if err := ctx.Err(); err != nil {
			if werr := ck.maybe(true); werr != nil {
				return werr
			}
			return fmt.Errorf("mope: scoring stopped after %d of %d modules (saved in %s): %w", len(f.Scores), f.Total, o.Checkpoint, err)
		}
		return ck.maybe(false)
	}
	switch o.Metric {
	case "random":
		for _, s := range todo {
			s.Score = randomScore(o.Seed, s.Module)
			if err := record(s); err != nil {
				return nil, err
			}
		}
	case "magnitude":
		for _, s := range todo {
			s.Score = moduleSum(m, s.Module, o.Groups, func(p *nn.Param, i int) float64 { return math.Abs(float64(p.Value.Data[i])) }, false)
			if err := record(s); err != nil {
				return nil, err
			}
		}
	case "taylor":
		if len(todo) > 0 {
			restore := taylorGrads(m, cal, o.Batch)
			for _, s := range todo {
				s.Score = moduleSum(m, s.Module, o.Groups, func(p *nn.Param, i int) float64 {
					return float64(p.Value.Data[i]) * float64(p.Grad.Data[i])
				}, true)
				if err := record(s); err != nil {
					restore()
					return nil, err
				}
			}
			restore()
		}
	case "mope", "unimodal":
		o.ctx = ctx
		if err := scoreForward(m, cal, o, f, todo, len(done) > 0, record); err != nil {
			return nil, err
		}
	}
	f.Complete = true
	sort.Slice(f.Scores, func(i, j int) bool { return f.Scores[i].ID < f.Scores[j].ID })
	if total > 0 {
		pr.Finish(fmt.Sprintf("%s: %d modules in %s", o.Metric, len(todo), pr.Elapsed().Round(time.Millisecond)))
	}
	if err := ck.maybe(true); err != nil {
		return nil, err
	}
	return f, nil
}

// sameRun checks that a resumed file belongs to the run described by f.
func sameRun(r, f *ScoreFile) error {
	a, b := fmt.Sprintf("%+v", r.Settings), fmt.Sprintf("%+v", f.Settings)
	if a != b {
		return fmt.Errorf("settings differ:\n  file: %s\n  now:  %s", a, b)
	}
	if r.Shard != f.Shard || r.Total != f.Total {
		return fmt.Errorf("file is shard %q of %d modules, this run shard %q of %d", r.Shard, r.Total, f.Shard, f.Total)
	}
	return nil
}

// scoreForward runs the mope and unimodal metrics with the prefix cache.
func scoreForward(m *clip.Model, cal *Calib, o Options, f *ScoreFile, todo []ModuleScore, resumed bool, record func(ModuleScore) error) error {
	if o.Rescore != nil {
		return scoreTwoStage(m, cal, o, f, todo, resumed, record)
	}
	if len(todo) == 0 && resumed {
		return nil
	}
	var eng *infer.Engine
	if f.Settings.Engine == EngineFast {
		var err error
		if eng, err = infer.New(m, infer.Options{Threads: o.Threads, DType: o.DType}); err != nil {
			return fmt.Errorf("mope: fast scoring engine: %w", err)
		}
		defer eng.Close()
	}
	E := m.Config.ProjectionDim
	var gpu GPU
	if f.Settings.Engine == EngineCUDA || f.Settings.Engine == EngineCUDATF32 {
		gpu = o.GPU
	}
	full := map[clip.Tower][]float32{}
	for _, tw := range clip.AllTowers {
		if o.Metric == "mope" || o.Towers.Has(tw) {
			var err error
			if gpu.Ctx != nil {
				full[tw], err = deviceFeatures(gpu, m, tw, cal, o)
			} else {
				full[tw], err = hostFeatures(eng, m, tw, cal, o)
			}
			if err != nil {
				return err
			}
		}
	}
	base := 1.0
	if o.Metric == "mope" {
		base = zScore(full[Vision], full[Text], cal, E)
	}
	if resumed && base != f.Baseline {
		return fmt.Errorf("mope: resumed baseline %v differs from the recomputed %v (different data or build?)", f.Baseline, base)
	}
	f.Baseline = base
	eval := func(tw clip.Tower, feats []float32) float64 {
		if o.Metric == "unimodal" {
			return 1 - meanCos(feats, full[tw], E)
		}
		if tw == Vision {
			return base - zScore(feats, full[Text], cal, E)
		}
		return base - zScore(full[Vision], feats, cal, E)
	}
	for _, tw := range clip.AllTowers {
		var todoTw []ModuleScore
		for _, s := range todo {
			if s.Tower == tw {
				todoTw = append(todoTw, s)
			}
		}
		if len(todoTw) == 0 {
			continue
		}
		score := func(s ModuleScore, feats []float32) error {
			s.Score = eval(tw, feats)
			return record(s)
		}
		var err error
		if gpu.Ctx != nil {
			err = deviceModules(gpu, m, tw, cal, o, todoTw, score)
		} else {
			err = hostModules(eng, m, tw, cal, o, todoTw, score)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// hostFeatures returns the normalised embeddings of the whole tower on the
// CPU: on the fast engine batch by batch, so that only one batch's hidden
// states are held (a ViT-B/32's 5,000 captions would take 380 MB at once,
// twice while a layer runs: the peak of a scoring run) with the same
// numbers as the whole-set path; on the reference forward (e nil) over the
// whole set.
func hostFeatures(e *infer.Engine, m *clip.Model, tw clip.Tower, cal *Calib, o Options) ([]float32, error) {
	r, err := newScorer(e, m, tw, cal, o.Batch)
	if err != nil {
		return nil, err
	}
	fs, ok := r.(*fastScorer)
	if !ok {
		return fullFeatures(hostCache{r}, o.Groups)
	}
	out := make([]float32, 0, fs.n*e.EmbedDim())
	for bi := range fs.batches {
		feats, err := fs.batchFeatures(bi, fs.embedBatch(bi), fs.full)
		if err != nil {
			return nil, err
		}
		out = append(out, feats...)
	}
	return fs.unsort(out), nil
}

// hostModules scores the modules todo of one tower on the CPU.
func hostModules(e *infer.Engine, m *clip.Model, tw clip.Tower, cal *Calib, o Options, todo []ModuleScore, score func(ModuleScore, []float32) error) error {
	r, err := newScorer(e, m, tw, cal, o.Batch)
	if err != nil {
		return err
	}
	return scoreModules(hostCache{r}, todo, o.Groups, score)
}

// cacheScorer is a scorer over a prefix cache of type S (host tensors, or
// states on the device): the hidden states entering each layer are
// computed once, layer by layer, and every evaluation starts there.
type cacheScorer[S any] interface {
	// embedAll returns the hidden states entering layer 0.
	embedAll() (S, error)
	// mid returns M_l = H_l + attn(ln1(H_l)); finish H_{l+1} = M_l + mlp(ln2(M_l)).
	mid(l int, hs S) (S, error)
	finish(l int, ms S) (S, error)
	// features is scorer.features.
	features(start S, from int, mod *Module, groups int) ([]float32, error)
	// drop releases states that are no longer needed.
	drop(S)
}

// hostCache is a host scorer (refScorer, fastScorer) as a cacheScorer.
type hostCache struct{ scorer }

func (h hostCache) embedAll() ([]*tensor.Tensor, error) { return h.scorer.embedAll(), nil }
func (h hostCache) mid(l int, hs []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return h.scorer.mid(l, hs), nil
}
func (h hostCache) finish(l int, ms []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return h.scorer.finish(l, ms), nil
}
func (hostCache) drop([]*tensor.Tensor) {}

// fullFeatures returns the normalised embeddings of the unchanged tower.
func fullFeatures[S any](r cacheScorer[S], groups int) ([]float32, error) {
	hs, err := r.embedAll()
	if err != nil {
		return nil, err
	}
	defer r.drop(hs)
	return r.features(hs, 0, nil, groups)
}

// scoreModules evaluates the tower without each module of todo (all of one
// tower), layer by layer from the prefix cache, and hands the features to
// score in order.
func scoreModules[S any](r cacheScorer[S], todo []ModuleScore, groups int, score func(ModuleScore, []float32) error) error {
	byLayer := map[int][]ModuleScore{}
	last := -1
	for _, s := range todo {
		byLayer[s.Layer] = append(byLayer[s.Layer], s)
		last = max(last, s.Layer)
	}
	hs, err := r.embedAll()
	if err != nil {
		return err
	}
	for l := 0; l <= last; l++ {
		ms, err := r.mid(l, hs)
		if err != nil {
			r.drop(hs)
			return err
		}
		for _, s := range byLayer[l] {
			start := hs
			if s.Kind == KindFFN {
				start = ms
			}
			feats, err := r.features(start, l, &s.Module, groups)
			if err == nil {
				err = score(s, feats)
			}
			if err != nil {
				r.drop(hs)
				r.drop(ms)
				return err
			}
		}
		r.drop(hs)
		if l < last {
			if hs, err = r.finish(l, ms); err != nil {
				r.drop(ms)
				return err
			}
		}
		r.drop(ms)
	}
	return nil
}

// randomScore is a uniform number in [0,1) from (seed, module).
func randomScore(seed uint64, mod Module) float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%s", seed, mod)
	z := h.Sum64()
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

// moduleSum sums f(p, i) over the weights p.Value.Data[i] of a module (see
// the package comment for which weights), taking the absolute value of the
// sum when abs is set. Only f reads gradients (taylor does; magnitude runs
// on a model whose gradients mope score dropped).
func moduleSum(m *clip.Model, mod Module, groups int, f func(p *nn.Param, i int) float64, abs bool) float64 {
	_, enc := towerOf(m, mod.Tower)
	b := enc.Layers[mod.Layer]
	var s float64
	all := func(p *nn.Param) {
		for i := range p.Value.Data {
			s += f(p, i)
		}
	}
	rows := func(p *nn.Param, lo, hi int) { // rows [lo,hi) of a [out,in] weight or entries of a bias
		in := 1
		if len(p.Value.Shape) == 2 {
			in = p.Value.Shape[1]
		}
		for i := lo * in; i < hi*in; i++ {
			s += f(p, i)
		}
	}
	cols := func(p *nn.Param, lo, hi int) {
		out, in := p.Value.Shape[0], p.Value.Shape[1]
		for r := 0; r < out; r++ {
			for c := lo; c < hi; c++ {
				s += f(p, r*in+c)
			}
		}
	}
	switch mod.Kind {
	case KindHead:
		a := b.SelfAttn
		lo, hi := mod.Index*a.HeadDim, (mod.Index+1)*a.HeadDim
		for _, l := range []*nn.Linear{a.Q, a.K, a.V} {
			rows(l.W, lo, hi)
			rows(l.B, lo, hi)
		}
		cols(a.Out.W, lo, hi)
	case KindFFN:
		lo, hi := NeuronGroup(numNeurons(b), groups, mod.Index)
		rows(b.MLP.FC1.W, lo, hi)
		rows(b.MLP.FC1.B, lo, hi)
		cols(b.MLP.FC2.W, lo, hi)
	case KindLayer:
		for _, p := range b.Params() {
			all(p)
		}
	}
	if abs {
		return math.Abs(s)
	}
	return s
}

// taylorGrads accumulates ∂L/∂w of CLIP's InfoNCE loss over the calibration
// set (each image with its first caption, in batches) into the parameters'
// Grad tensors. It returns a function that zeroes them again.
func taylorGrads(m *clip.Model, cal *Calib, batch int) (restore func()) {
	params := m.Params()
	for _, p := range params {
		if p.Grad == nil { // dropped by a caller that did not plan to train
			p.Grad = tensor.New(p.Value.Shape...)
		}
	}
	nn.ZeroGrads(params)
	if batch <= 0 {
		batch = 32
	}
	first := make([]int, cal.NImg)
	for i := range first {
		first[i] = -1
	}
	for j, i := range cal.CaptionImage {
		if first[i] < 0 {
			first[i] = j
		}
	}
	tp := ops.NewTape()
	for lo := 0; lo < cal.NImg; lo += batch {
		hi := min(cal.NImg, lo+batch)
		B := hi - lo
		if B < 2 {
			break // a contrastive loss needs two pairs
		}
		px := tensor.New(B, 3, cal.Size, cal.Size)
		cal.PixelsInto(px.Data, lo, hi)
		tb := &clip.TextBatch{B: B, T: cal.T}
		for i := lo; i < hi; i++ {
			j := first[i]
			tb.IDs = append(tb.IDs, cal.IDs[j*cal.T:(j+1)*cal.T]...)
			tb.EOTPos = append(tb.EOTPos, cal.EOTPos[j])
		}
		img := ops.L2Normalize(tp, m.EncodeImage(tp, ops.Const(px)))
		txt := ops.L2Normalize(tp, m.EncodeText(tp, tb))
		loss := ops.InfoNCE(tp, img, txt, m.LogitScale.Var(tp))
		if err := tp.Backward(loss); err != nil {
			panic(err)
		}
		tp.Reset()
	}
	return func() { nn.ZeroGrads(params) }
}

// checkpointer writes the partial score file periodically.
type checkpointer struct {
	path  string
	every time.Duration
	last  time.Time
	file  *ScoreFile
}

func (c *checkpointer) maybe(force bool) error {
	if c.path == "" || (!force && time.Since(c.last) < c.every) {
		return nil
	}
	c.last = time.Now()
	return WriteScores(c.path, c.file)
}
