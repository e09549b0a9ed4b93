package nn

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/internal/safetensors"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

func TestSaveLoadParams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.safetensors")
	src := NewTransformer("text_model.encoder", Uniform(2, BlockConfig{Width: 8, Heads: 2, HeadDim: 4, Hidden: 16, Eps: 1e-5}), tensor.NewRNG(1))
	if err := SaveParams(path, src.Params(), map[string]string{"note": "x"}); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["note"] != "x" || f.Tensors["text_model.encoder.layers.1.mlp.fc2.weight"] == nil {
		t.Fatalf("file content: %v %v", f.Metadata, f.Names)
	}
	dst := NewTransformer("text_model.encoder", Uniform(2, BlockConfig{Width: 8, Heads: 2, HeadDim: 4, Hidden: 16, Eps: 1e-5}), nil)
	if err := LoadParams(path, dst.Params()); err != nil {
		t.Fatal(err)
	}
	for i, p := range dst.Params() {
		if !slices.Equal(p.Value.Data, src.Params()[i].Value.Data) {
			t.Fatalf("%s differs after load", p.Name)
		}
	}
}

func TestLoadParamsErrorsNameTensors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.safetensors")
	a, b, c := NewParam("a", 2, 3), NewParam("b", 4), NewParam("c", 1)
	a.Value.Fill(1)
	if err := SaveParams(path, []*Param{a, b, c}, nil); err != nil {
		t.Fatal(err)
	}
	// Model: a with another shape, b fine, c absent from the model
	// (unexpected), d absent from the file (missing).
	a2, b2, d2 := NewParam("a", 3, 2), NewParam("b", 4), NewParam("d", 5)
	b2.Value.Fill(7)
	err := LoadParams(path, []*Param{a2, b2, d2})
	if err == nil {
		t.Fatal("want error")
	}
	msg := err.Error()
	for _, want := range []string{"missing tensors: d", "unexpected tensors: c", "mis-shaped tensors: a (file [2 3], model [3 2])", path} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if b2.Value.Data[0] != 7 || a2.Value.Data[0] != 0 {
		t.Error("a failed load changed parameters")
	}
	// Relaxed loading from the file.
	f, _ := safetensors.Load(path)
	if err := loadFromFile(f, []*Param{b2, d2}, loadOptions{AllowMissing: true, AllowUnexpected: true}); err != nil {
		t.Fatal(err)
	}
	if b2.Value.Data[0] != 0 {
		t.Error("relaxed load did not copy b")
	}
	if err := SaveParams(path, []*Param{a, NewParam("a", 1)}, nil); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate names: %v", err)
	}
	if err := LoadParams(filepath.Join(t.TempDir(), "none"), []*Param{a}); err == nil {
		t.Error("missing file: no error")
	}
}

func TestLoadWidensHalfPrecision(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.safetensors")
	f := &safetensors.File{}
	f.Add("w", &safetensors.Tensor{DType: safetensors.BF16, Shape: []int{2}, F32: []float32{1.5, -2}})
	if err := safetensors.Save(path, f); err != nil {
		t.Fatal(err)
	}
	p := NewParam("w", 2)
	if err := LoadParams(path, []*Param{p}); err != nil {
		t.Fatal(err)
	}
	if p.Value.Data[0] != 1.5 || p.Value.Data[1] != -2 {
		t.Fatalf("got %v", p.Value.Data)
	}
}

// trainer is a small deterministic training run: a 2-layer transformer
// regressing a fixed random map, with data drawn from a per-step seed so that
// a resumed run sees the same batches.
type trainer struct {
	tr    *Transformer
	head  *Linear
	opt   *AdamW
	sched CosineSchedule
	tp    *ops.Tape
}

func newTrainer(seed uint64) *trainer {
	rng := tensor.NewRNG(seed)
	tr := NewTransformer("encoder", Uniform(2, BlockConfig{Width: 16, Heads: 2, HeadDim: 8, Hidden: 32, Act: ActQuickGELU, Eps: 1e-5}), rng)
	head := NewLinear("head", 16, 4, true, rng)
	cfg := DefaultAdamW()
	cfg.WeightDecay = 0.1
	return &trainer{tr: tr, head: head, opt: NewAdamW(Collect(tr, head), cfg),
		sched: CosineSchedule{Warmup: 3, Total: 12, Peak: 3e-3, Min: 1e-4}, tp: ops.NewTape()}
}

func (r *trainer) params() []*Param { return r.opt.Params() }

// step trains on batch number step, in two accumulated micro-batches.
func (r *trainer) step(t *testing.T, step int) {
	const B, T, accum = 2, 5, 2
	data := tensor.NewRNG(1000 + uint64(step))
	for k := 0; k < accum; k++ {
		x := ops.Const(randn(data, 1, B*T, 16))
		y := ops.Const(randn(data, 1, B*T, 4))
		r.tp.Reset()
		out := r.head.Forward(r.tp, r.tr.Forward(r.tp, x, B, T, AttnMask{Causal: true}))
		loss := ops.Scale(r.tp, ops.MSE(r.tp, out, y), 1.0/accum)
		if err := r.tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
	}
	ClipGradNorm(r.params(), 1)
	r.opt.Step(r.sched.LR(step))
	r.opt.ZeroGrad()
}

func snapshot(ps []*Param) [][]float32 {
	var s [][]float32
	for _, p := range ps {
		s = append(s, slices.Clone(p.Value.Data))
	}
	return s
}

func sameBits(a, b [][]float32) bool {
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				return false
			}
		}
	}
	return len(a) == len(b)
}

func TestCheckpointResumeIsBitIdentical(t *testing.T) {
	const N, k = 10, 4
	straight := newTrainer(1)
	before := snapshot(straight.params())
	for s := 0; s < N; s++ {
		straight.step(t, s)
	}
	if sameBits(before, snapshot(straight.params())) {
		t.Fatal("training did not change the parameters")
	}

	first := newTrainer(1)
	for s := 0; s < k; s++ {
		first.step(t, s)
	}
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	if err := SaveCheckpoint(path, first.params(), first.opt, k, map[string]string{"data": "shard-3"}); err != nil {
		t.Fatal(err)
	}
	// Fresh objects with different initial weights: everything must come
	// from the checkpoint.
	resumed := newTrainer(2)
	step, extra, err := LoadCheckpoint(path, resumed.params(), resumed.opt)
	if err != nil {
		t.Fatal(err)
	}
	if step != k || extra["data"] != "shard-3" || resumed.opt.StepCount() != k {
		t.Fatalf("step %d, extra %v, opt t %d", step, extra, resumed.opt.StepCount())
	}
	for s := step; s < N; s++ {
		resumed.step(t, s)
	}
	if !sameBits(snapshot(straight.params()), snapshot(resumed.params())) {
		t.Fatal("resumed run differs from the straight run")
	}
	for i := range straight.params() {
		m1, v1 := straight.opt.Moments(i)
		m2, v2 := resumed.opt.Moments(i)
		if !slices.Equal(m1, m2) || !slices.Equal(v1, v2) {
			t.Fatalf("moments of %s differ", straight.params()[i].Name)
		}
	}
}

func TestCheckpointErrors(t *testing.T) {
	dir := t.TempDir()
	tr := newTrainer(1)
	path := filepath.Join(dir, "c.safetensors")
	if err := SaveCheckpoint(path, tr.params(), nil, 3, nil); err != nil {
		t.Fatal(err)
	}
	// No optimiser state in the file but one asked for.
	if _, _, err := LoadCheckpoint(path, tr.params(), tr.opt); err == nil || !strings.Contains(err.Error(), "no AdamW state") {
		t.Errorf("want missing-optimiser error, got %v", err)
	}
	// Parameters only: fine.
	if step, _, err := LoadCheckpoint(path, tr.params(), nil); err != nil || step != 3 {
		t.Errorf("params-only load: %d %v", step, err)
	}
	// A plain parameter file is not a checkpoint.
	plain := filepath.Join(dir, "p.safetensors")
	if err := SaveParams(plain, tr.params(), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadCheckpoint(plain, tr.params(), nil); err == nil || !strings.Contains(err.Error(), "not a mopeclip training checkpoint") {
		t.Errorf("want format error, got %v", err)
	}
	// Optimiser for other parameters: error names the state tensors, and
	// nothing changes.
	if err := SaveCheckpoint(path, tr.params(), tr.opt, 5, nil); err != nil {
		t.Fatal(err)
	}
	other := NewAdamW(tr.params()[:3], DefaultAdamW())
	before := snapshot(tr.params())
	tr.params()[0].Value.Data[0] += 1
	_, _, err := LoadCheckpoint(path, tr.params(), other)
	if err == nil || !strings.Contains(err.Error(), "unexpected tensors: optimizer.exp_avg.") {
		t.Errorf("want optimiser mismatch error, got %v", err)
	}
	if tr.params()[0].Value.Data[0] != before[0][0]+1 {
		t.Error("failed load changed parameters")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestTrainingIsDeterministic(t *testing.T) {
	for _, procs := range []int{1, runtime.NumCPU()} {
		prev := runtime.GOMAXPROCS(procs)
		a, b := newTrainer(5), newTrainer(5)
		for s := 0; s < 6; s++ {
			a.step(t, s)
			b.step(t, s)
		}
		runtime.GOMAXPROCS(prev)
		if !sameBits(snapshot(a.params()), snapshot(b.params())) {
			t.Fatalf("GOMAXPROCS=%d: two runs with one seed differ", procs)
		}
	}
}
