package nn

import (
	"fmt"

	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// Param is one trainable tensor: its value, the gradient that backward passes
// accumulate into (same shape), and its checkpoint name.
type Param struct {
	Name  string
	Value *tensor.Tensor
	Grad  *tensor.Tensor
	// NoDecay exempts the parameter from AdamW's weight decay (biases,
	// norms, embeddings, logit scale).
	NoDecay bool
}

// NewParam returns a zero-valued parameter with a zero gradient.
func NewParam(name string, shape ...int) *Param {
	return &Param{Name: name, Value: tensor.New(shape...), Grad: tensor.New(shape...)}
}

// Module is anything that owns parameters. Params returns them in a fixed
// order that does not change between calls.
type Module interface {
	Params() []*Param
}

// Collect concatenates the parameters of mods, in order.
func Collect(mods ...Module) []*Param {
	var ps []*Param
	for _, m := range mods {
		ps = append(ps, m.Params()...)
	}
	return ps
}

// NumParams returns the number of scalar values in params.
func NumParams(params []*Param) int {
	n := 0
	for _, p := range params {
		n += p.Value.Len()
	}
	return n
}

// ZeroGrads clears the gradients of params (where they live: on a resident
// backend, ops.Resident, the device copies).
func ZeroGrads(params []*Param) {
	if ops.Resident() {
		b := ops.CurrentBackend()
		for _, p := range params {
			b.Fill(p.Grad.Data, 0)
		}
		return
	}
	for _, p := range params {
		p.Grad.Zero()
	}
}

// ScaleGrads multiplies every gradient by s (e.g. 1/k after accumulating k
// micro-batches).
func ScaleGrads(params []*Param, s float32) {
	scale := tensor.Scale
	if ops.Resident() {
		scale = ops.CurrentBackend().Scale
	}
	for _, p := range params {
		scale(s, p.Grad.Data)
	}
}

// checkUnique returns an error when two parameters share a name or a
// parameter is malformed.
func checkUnique(params []*Param) error {
	seen := make(map[string]bool, len(params))
	for _, p := range params {
		if p == nil || p.Value == nil {
			return fmt.Errorf("nn: nil parameter")
		}
		if p.Name == "" {
			return fmt.Errorf("nn: parameter with shape %v has no name", p.Value.Shape)
		}
		if seen[p.Name] {
			return fmt.Errorf("nn: duplicate parameter name %q", p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// join builds a dotted parameter name; an empty prefix gives just name.
func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// Var returns p as a leaf of tp whose gradient accumulates into p.Grad; on a
// nil tape (inference) the Var tracks nothing.
func (p *Param) Var(tp *ops.Tape) *ops.Var { return tp.Param(p.Value, p.Grad) }
