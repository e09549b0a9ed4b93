package train

import (
	"testing"

	"github.com/mopeclip/mopeclip/internal/cputime"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// The model of torch_train_step.py: 4 pre-LN blocks of width 256 with 4 heads
// of 64 and a 1024-unit QuickGELU MLP, on 32 sequences of 64 tokens, MSE of
// the last hidden state to a fixed random target, AdamW (lr 1e-4, weight
// decay 0.01 on weight matrices).
const (
	layers, width, heads, hidden = 4, 256, 4, 1024
	tokens, batch                = 64, 32
)

type stepper struct {
	tr   *nn.Transformer
	opt  *nn.AdamW
	tp   *ops.Tape
	x, y *ops.Var
}

func newStepper() *stepper {
	rng := tensor.NewRNG(0)
	cfg := nn.BlockConfig{Width: width, Heads: heads, HeadDim: width / heads, Hidden: hidden, Act: nn.ActQuickGELU, Eps: 1e-5}
	tr := nn.NewTransformer("encoder", nn.Uniform(layers, cfg), rng)
	return &stepper{
		tr:  tr,
		opt: nn.NewAdamW(tr.Params(), nn.DefaultAdamW()),
		tp:  ops.NewTape(),
		x:   ops.Const(tensor.New(batch*tokens, width).Normal(rng, 0, 1)),
		y:   ops.Const(tensor.New(batch*tokens, width).Normal(rng, 0, 1)),
	}
}

// step is one training step: zero grads, forward, backward, AdamW.
func (s *stepper) step(tb testing.TB) {
	s.opt.ZeroGrad()
	s.tp.Reset()
	out := s.tr.Forward(s.tp, s.x, batch, tokens, nn.AttnMask{})
	if err := s.tp.Backward(ops.MSE(s.tp, out, s.y)); err != nil {
		tb.Fatal(err)
	}
	s.opt.Step(1e-4)
}

// BenchmarkTrainStep reports tokens/s (batch·tokens per step, wall clock)
// and tokens/cpu-s (per second of process CPU time, which a busy machine
// distorts less). Compare with `/usr/bin/python3
// bench/train/torch_train_step.py` at the same thread count (-cpu 1 ↔
// torch.set_num_threads(1)).
func BenchmarkTrainStep(b *testing.B) {
	s := newStepper()
	s.step(b) // warm the tape's buffer pool
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Process().Seconds()
	for i := 0; i < b.N; i++ {
		s.step(b)
	}
	b.StopTimer()
	n := float64(batch * tokens * b.N)
	b.ReportMetric(n/b.Elapsed().Seconds(), "tokens/s")
	if cpu := cputime.Process().Seconds() - cpu0; cpu > 0 {
		b.ReportMetric(n/cpu, "tokens/cpu-s")
	}
}

// TestTrainStepLearns checks the benchmarked loop does train: the loss falls.
func TestTrainStepLearns(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of compute")
	}
	s := newStepper()
	loss := func() float32 {
		return ops.MSE(nil, s.tr.Forward(nil, s.x, batch, tokens, nn.AttnMask{}), s.y).Value.Data[0]
	}
	before := loss()
	for i := 0; i < 2; i++ {
		s.step(t)
	}
	if after := loss(); !(after < before) {
		t.Fatalf("loss %v -> %v", before, after)
	}
}
