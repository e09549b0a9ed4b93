package train

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mopeclip/mopeclip/internal/testutil"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// toy is a tiny regression model trained by Run.
type toy struct {
	tr   *nn.Transformer
	head *nn.Linear
	opt  *nn.AdamW
	tp   *ops.Tape
}

func newToy(seed uint64) *toy {
	rng := tensor.NewRNG(seed)
	tr := nn.NewTransformer("enc", nn.Uniform(2, nn.BlockConfig{Width: 16, Heads: 2, HeadDim: 8, Hidden: 32, Act: nn.ActQuickGELU, Eps: 1e-5}), rng)
	head := nn.NewLinear("head", 16, 4, true, rng)
	cfg := nn.DefaultAdamW()
	cfg.WeightDecay = 0.1
	return &toy{tr: tr, head: head, opt: nn.NewAdamW(nn.Collect(tr, head), cfg), tp: ops.NewTape()}
}

func (m *toy) params() []*nn.Param { return m.opt.Params() }

// step's batch depends on the step only (the contract of StepFunc).
func (m *toy) step(s int) (float64, map[string]float64, error) {
	const B, T = 3, 5
	data := tensor.NewRNG(1000 + uint64(s))
	x := ops.Const(tensor.New(B*T, 16).Normal(data, 0, 1))
	y := ops.Const(tensor.New(B*T, 4).Normal(data, 0, 1))
	m.tp.Reset()
	loss := ops.MSE(m.tp, m.head.Forward(m.tp, m.tr.Forward(m.tp, x, B, T, nn.AttnMask{Causal: true})), y)
	if err := m.tp.Backward(loss); err != nil {
		return 0, nil, err
	}
	return float64(loss.Value.Data[0]), map[string]float64{"half_loss": float64(loss.Value.Data[0]) / 2}, nil
}

func (m *toy) val(int) (map[string]float64, error) {
	var s float64
	for _, p := range m.params() {
		s += float64(p.Value.Data[0])
	}
	return map[string]float64{"probe": s}, nil
}

func cfgFor(dir string, steps int) Config {
	return Config{Steps: steps, Warmup: 3, LR: 3e-3, MinLR: 1e-4, ClipNorm: 0.5, Items: 3, Dir: dir,
		CkptEvery: 4, ValEvery: 5, LogEvery: 5, Resume: true, Extra: map[string]string{"run": "toy"}}
}

func checkSame(t *testing.T, a, b *toy, dirA, dirB string) {
	t.Helper()
	require.True(t, testutil.SameBits(testutil.Snapshot(a.params()), testutil.Snapshot(b.params())),
		"resumed run's parameters differ from the straight run's")
	for i := range a.params() {
		m1, v1 := a.opt.Moments(i)
		m2, v2 := b.opt.Moments(i)
		require.True(t, slices.Equal(m1, m2) && slices.Equal(v1, v2), "AdamW moments of %s differ", a.params()[i].Name)
	}
	ca, err := os.ReadFile(filepath.Join(dirA, CurveFile))
	require.NoError(t, err)
	cb, err := os.ReadFile(filepath.Join(dirB, CurveFile))
	require.NoError(t, err)
	require.Equal(t, string(ca), string(cb), "curves differ")
}

// N steps straight == k steps, interruption (Ctrl-C), resume with fresh
// objects, N−k steps: bit for bit, curve included.
func TestResumeAfterInterruptIsBitIdentical(t *testing.T) {
	const N, k = 13, 6
	dirA, dirB := t.TempDir(), t.TempDir()
	a := newToy(1)
	before := testutil.Snapshot(a.params())
	res, err := Run(context.Background(), cfgFor(dirA, N), a.params(), a.opt, a.step, a.val)
	if err != nil {
		t.Fatal(err)
	}
	if testutil.SameBits(before, testutil.Snapshot(a.params())) || res.Start != 0 || res.Val["probe"] == 0 {
		t.Fatalf("straight run did not train: %+v", res)
	}

	b := newToy(1)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := cfgFor(dirB, N)
	stepB := func(s int) (float64, map[string]float64, error) {
		if s == k-1 {
			cancel() // interrupt after step k-1 completes
		}
		return b.step(s)
	}
	if _, err := Run(ctx, cfg, b.params(), b.opt, stepB, b.val); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run returned %v", err)
	}
	c := newToy(2) // other weights: everything must come from the checkpoint
	res, err = Run(context.Background(), cfgFor(dirB, N), c.params(), c.opt, c.step, c.val)
	if err != nil {
		t.Fatal(err)
	}
	if res.Start != k {
		t.Fatalf("resumed at %d, want %d", res.Start, k)
	}
	checkSame(t, a, c, dirA, dirB)
}

// A crash (kill -9, here a failing step) loses only the steps since the last
// periodic checkpoint, and the resumed run is still bit-identical.
func TestResumeAfterCrashIsBitIdentical(t *testing.T) {
	const N = 11
	dirA, dirB := t.TempDir(), t.TempDir()
	a := newToy(3)
	if _, err := Run(context.Background(), cfgFor(dirA, N), a.params(), a.opt, a.step, a.val); err != nil {
		t.Fatal(err)
	}
	b := newToy(3)
	crash := func(s int) (float64, map[string]float64, error) {
		if s == 7 {
			return 0, nil, errors.New("killed")
		}
		return b.step(s)
	}
	if _, err := Run(context.Background(), cfgFor(dirB, N), b.params(), b.opt, crash, b.val); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("crashing run returned %v", err)
	}
	c := newToy(4)
	res, err := Run(context.Background(), cfgFor(dirB, N), c.params(), c.opt, c.step, c.val)
	if err != nil {
		t.Fatal(err)
	}
	if res.Start != 4 { // CkptEvery 4: steps 4..6 were lost
		t.Fatalf("resumed at %d, want 4", res.Start)
	}
	checkSame(t, a, c, dirA, dirB)
}

func TestResumeRefusesOtherRun(t *testing.T) {
	dir := t.TempDir()
	a := newToy(1)
	if _, err := Run(context.Background(), cfgFor(dir, 4), a.params(), a.opt, a.step, nil); err != nil {
		t.Fatal(err)
	}
	cfg := cfgFor(dir, 8)
	cfg.Extra = map[string]string{"run": "other"}
	if _, err := Run(context.Background(), cfg, a.params(), a.opt, a.step, nil); err == nil || !strings.Contains(err.Error(), "other") {
		t.Fatalf("want a refusal naming the mismatch, got %v", err)
	}
}

func TestProgressAndPlot(t *testing.T) {
	dir := t.TempDir()
	a := newToy(1)
	var log bytes.Buffer
	cfg := cfgFor(dir, 6)
	cfg.Log = &log
	res, err := Run(context.Background(), cfg, a.params(), a.opt, a.step, a.val)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"step 6/6", "items/s", "ETA", "validation: probe"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("progress output lacks %q:\n%s", want, log.String())
		}
	}
	c, err := ReadCurve(filepath.Join(dir, CurveFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Columns(); !slices.Equal(got, []string{"step", "grad_norm", "half_loss", "loss", "lr", "val_probe"}) {
		t.Fatalf("columns %v", got)
	}
	if x, _ := c.Series("loss"); len(x) != 2 || len(res.Curve.Rows) != 4 {
		t.Fatalf("curve rows: %d loss points, %d rows", len(x), len(res.Curve.Rows))
	}
	png := filepath.Join(dir, "curve.png")
	if err := PlotCurve(c, png, "toy run"); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 1000 {
		t.Fatalf("plot: %v", err)
	}
}

// Temporary checkpoint files never pile up: those of a killed run are
// removed when the next run starts, and a failed write removes its own.
func TestCheckpointTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "."+CheckpointFile+".tmp-123")
	if err := os.WriteFile(stale, make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	a := newToy(1)
	if _, err := Run(context.Background(), cfgFor(dir, 4), a.params(), a.opt, a.step, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temporary file kept: %v", err)
	}
	// A checkpoint that cannot be renamed into place (a directory is in
	// the way): the run fails at its first checkpoint and leaves no
	// temporary file.
	bad := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bad, CheckpointFile, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	b := newToy(1)
	if _, err := Run(context.Background(), cfgFor(bad, 8), b.params(), b.opt, b.step, nil); err == nil {
		t.Fatal("a checkpoint write into a directory succeeded")
	}
	if left, _ := filepath.Glob(filepath.Join(bad, ".*.tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left after a failed write: %v", left)
	}
}

// A run whose loss stays non-finite stops with ErrNotFinite; one
// non-finite step is skipped.
func TestNonFiniteLossStops(t *testing.T) {
	a := newToy(1)
	nan := func(s int) (float64, map[string]float64, error) {
		loss, sc, err := a.step(s)
		if s == 1 || s >= 3 {
			loss = math.NaN()
		}
		return loss, sc, err
	}
	res, err := Run(context.Background(), cfgFor("", 3+MaxNonFinite+5), a.params(), a.opt, nan, nil)
	if !errors.Is(err, ErrNotFinite) || res.Skipped != 1+MaxNonFinite {
		t.Fatalf("err %v, %d skipped", err, res.Skipped)
	}
}

func TestStopAtIsNotAnInterruption(t *testing.T) {
	a := newToy(1)
	cfg := cfgFor(t.TempDir(), 8)
	cfg.StopAt = 3
	if _, err := Run(context.Background(), cfg, a.params(), a.opt, a.step, nil); !errors.Is(err, ErrStopped) || errors.Is(err, ErrInterrupted) {
		t.Fatalf("err %v", err)
	}
}

// TestPlotCommittedCurve draws the committed teacher's curve (PNG and SVG):
// both panels, every validation column in the legend.
func TestPlotCommittedCurve(t *testing.T) {
	c, err := ReadCurve(filepath.Join("..", "assets", "shapes-teacher", CurveFile))
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("MOPECLIP_PLOT_OUT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "curve")
	}
	if err := PlotCurve(c, out+".png", "shapes teacher"); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(out + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{">shapes teacher<", ">training loss<", ">validation<", ">mean R@1<", ">TR@5<", ">step<"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("curve.svg lacks %s", want)
		}
	}
	if err := PlotCurve(c, out+".jpg", "x"); err == nil {
		t.Errorf("a .jpg path was accepted")
	}
}
