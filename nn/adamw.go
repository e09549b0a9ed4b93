package nn

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/mopeclip/mopeclip/ops"
)

// AdamWConfig holds the AdamW hyper-parameters other than the learning rate,
// which Step takes so that a schedule can drive it.
type AdamWConfig struct {
	Beta1, Beta2 float64
	Eps          float64
	// WeightDecay is the decoupled decay coefficient λ: each step multiplies
	// a decayed parameter by 1 - lr·λ.
	WeightDecay float64
}

// DefaultAdamW is PyTorch's torch.optim.AdamW default: β = (0.9, 0.999),
// ε = 1e-8, λ = 0.01.
func DefaultAdamW() AdamWConfig {
	return AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
}

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter), with the
// update of torch.optim.AdamW (amsgrad off, maximize off). Step t (counted
// from 1) does, for every element of every parameter p with gradient g:
//
//	p ← p·(1 - lr·λ)                  (skipped when p.NoDecay)
//	m ← β1·m + (1-β1)·g
//	v ← β2·v + (1-β2)·g²
//	p ← p - (lr/(1-β1^t)) · m / (√v/√(1-β2^t) + ε)
//
// The element arithmetic is float32; the scalar factors are computed in
// float64 and rounded once. The first and second moments are kept per
// parameter, in the order the parameters were given.
type AdamW struct {
	AdamWConfig
	params []*Param
	m, v   [][]float32
	t      int
}

// NewAdamW returns an optimiser for params with zero moments. It panics on
// duplicate or unnamed parameters (a programming error).
func NewAdamW(params []*Param, cfg AdamWConfig) *AdamW {
	if err := checkUnique(params); err != nil {
		panic(err)
	}
	o := &AdamW{AdamWConfig: cfg, params: append([]*Param(nil), params...)}
	o.m = make([][]float32, len(params))
	o.v = make([][]float32, len(params))
	for i, p := range params {
		if p.Grad == nil || p.Grad.Len() != p.Value.Len() {
			panic(fmt.Sprintf("nn.NewAdamW: parameter %q has no gradient of its size", p.Name))
		}
		o.m[i] = make([]float32, p.Value.Len())
		o.v[i] = make([]float32, p.Value.Len())
	}
	return o
}

// Params returns the optimised parameters, in moment order.
func (o *AdamW) Params() []*Param { return o.params }

// StepCount returns the number of Steps taken (t of the bias correction).
func (o *AdamW) StepCount() int { return o.t }

// ZeroGrad clears every parameter's gradient.
func (o *AdamW) ZeroGrad() { ZeroGrads(o.params) }

// Moments returns the first and second moments of parameter i (views, not
// copies). On a resident backend (ops.Resident) their host copies are
// current only after ops.Sync.
func (o *AdamW) Moments(i int) (m, v []float32) { return o.m[i], o.v[i] }

// State returns every buffer the optimiser owns or updates: the values,
// gradients and both moments of its parameters (for ops.Keep and ops.Sync).
func (o *AdamW) State() [][]float32 {
	out := make([][]float32, 0, 4*len(o.params))
	for i, p := range o.params {
		out = append(out, p.Value.Data, p.Grad.Data, o.m[i], o.v[i])
	}
	return out
}

// adamChunk is the number of elements one goroutine updates at a time.
const adamChunk = 1 << 16

// Step applies one update with learning rate lr. It does not clear the
// gradients. The update is element-wise, so the result does not depend on
// how the work is split across goroutines. On a backend with a fused AdamW
// (ops.FusedAdamW) the backend runs it, where the tensors live.
func (o *AdamW) Step(lr float64) {
	o.t++
	t := float64(o.t)
	bc1 := 1 - math.Pow(o.Beta1, t)
	bc2 := 1 - math.Pow(o.Beta2, t)
	k := adamConsts{
		b1:       float32(o.Beta1),
		b1c:      float32(1 - o.Beta1),
		b2:       float32(o.Beta2),
		b2c:      float32(1 - o.Beta2),
		stepSize: float32(lr / bc1),
		invBC2:   float32(1 / math.Sqrt(bc2)),
		eps:      float32(o.Eps),
	}
	decay := float32(1 - lr*o.WeightDecay)
	if f, ok := ops.CurrentBackend().(ops.FusedAdamW); ok {
		// The same update where the tensors live, in a few launches.
		ts := make([]ops.AdamWTensor, len(o.params))
		for i, p := range o.params {
			ts[i] = ops.AdamWTensor{P: p.Value.Data, G: p.Grad.Data, M: o.m[i], V: o.v[i], Decay: ops.AdamWDecay(lr, o.WeightDecay, p.NoDecay)}
		}
		f.AdamWStep(ts, ops.NewAdamWConsts(o.Beta1, o.Beta2, o.Eps, lr, o.t), nil, 0)
		return
	}
	if ops.Resident() {
		// The update runs on the host: fetch what it reads, declare what
		// it wrote.
		st := o.State()
		ops.Sync(st...)
		defer func() {
			for i, p := range o.params {
				ops.Wrote(p.Value.Data, o.m[i], o.v[i])
			}
		}()
	}

	type job struct {
		i, lo, hi int
	}
	var jobs []job
	for i, p := range o.params {
		n := p.Value.Len()
		for lo := 0; lo < n; lo += adamChunk {
			jobs = append(jobs, job{i, lo, min(n, lo+adamChunk)})
		}
	}
	run := func(j job) {
		p := o.params[j.i]
		d := decay
		if p.NoDecay || o.WeightDecay == 0 {
			d = 1
		}
		adamUpdate(p.Value.Data[j.lo:j.hi], p.Grad.Data[j.lo:j.hi], o.m[j.i][j.lo:j.hi], o.v[j.i][j.lo:j.hi], d, k)
	}
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	if workers <= 1 {
		for _, j := range jobs {
			run(j)
		}
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next == len(jobs) {
					mu.Unlock()
					return
				}
				j := jobs[next]
				next++
				mu.Unlock()
				run(j)
			}
		}()
	}
	wg.Wait()
}

type adamConsts struct {
	b1, b1c, b2, b2c, stepSize, invBC2, eps float32
}

// adamUpdate is the element loop of Step.
func adamUpdate(p, g, m, v []float32, decay float32, k adamConsts) {
	g = g[:len(p)]
	m = m[:len(p)]
	v = v[:len(p)]
	for i := range p {
		gi := g[i]
		mi := k.b1*m[i] + k.b1c*gi
		vi := k.b2*v[i] + k.b2c*(gi*gi)
		m[i] = mi
		v[i] = vi
		denom := float32(math.Sqrt(float64(vi)))*k.invBC2 + k.eps
		p[i] = p[i]*decay - k.stepSize*(mi/denom)
	}
}
