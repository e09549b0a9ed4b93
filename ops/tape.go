package ops

import (
	"errors"
	"fmt"

	"github.com/mopeclip/mopeclip/tensor"
)

// Var is a value in a computation, with its gradient when it takes part in
// differentiation.
type Var struct {
	Value *tensor.Tensor
	// Grad is the gradient. For a Param it is the caller's grad tensor,
	// accumulated into (+=) by every Backward. For an intermediate it is
	// allocated on demand during Backward and released once propagated
	// (kept only after Tape.RetainGrad); Consts have none.
	Grad *tensor.Tensor

	tape   *Tape  // the tape that tracks this Var; nil for constants
	gen    uint64 // tape generation an op output was recorded in
	kind   varKind
	retain bool
}

type varKind uint8

const (
	kindConst varKind = iota // no gradient
	kindParam                // leaf with a caller-owned gradient
	kindOp                   // recorded op output
)

// Shape returns the shape of the value.
func (v *Var) Shape() []int { return v.Value.Shape }

// RequiresGrad reports whether gradients flow into v.
func (v *Var) RequiresGrad() bool { return v != nil && v.kind != kindConst }

// Tape records ops for reverse-mode differentiation. The zero value is not
// usable; call NewTape. A nil *Tape means inference (see the package doc).
type Tape struct {
	nodes []node
	gen   uint64
	// saved are tape-owned buffers that backward passes read; Reset
	// recycles them.
	saved [][]float32
	pool  map[int]*bucket
}

// node is one recorded op: its output and the closure that propagates the
// output's gradient dy into the inputs.
type node struct {
	out  *Var
	back func(dy []float32)
}

// bucket holds free buffers of one length.
type bucket struct {
	free [][]float32
	used bool // requested since the last Reset
}

// NewTape returns an empty tape.
func NewTape() *Tape { return &Tape{gen: 1, pool: map[int]*bucket{}} }

// Param returns a leaf whose gradient is accumulated into grad on every
// Backward. grad must have as many elements as value; nil allocates a zeroed
// one (read it back from the Var's Grad). On a nil tape the Var carries no
// gradient tracking.
func (tp *Tape) Param(value, grad *tensor.Tensor) *Var {
	if value == nil {
		panic("ops.Param: nil value")
	}
	if grad == nil {
		grad = tensor.New(value.Shape...)
	}
	if len(grad.Data) != len(value.Data) {
		panic(fmt.Sprintf("ops.Param: grad shape %v does not match value shape %v", grad.Shape, value.Shape))
	}
	if tp == nil {
		return &Var{Value: value, Grad: grad}
	}
	return &Var{Value: value, Grad: grad, tape: tp, kind: kindParam}
}

// Const returns a Var that takes no gradient.
func Const(value *tensor.Tensor) *Var {
	if value == nil {
		panic("ops.Const: nil value")
	}
	return &Var{Value: value}
}

// RetainGrad keeps the gradient of the intermediate v after Backward (it is
// otherwise released as soon as it has been propagated). It has no effect on
// Params and Consts.
func (tp *Tape) RetainGrad(v *Var) {
	if v != nil && v.kind == kindOp {
		v.retain = true
	}
}

// Reset drops the recorded ops so the tape can record the next step. Saved
// activations and intermediate gradients go back to the tape's pool; Params
// and Consts stay usable, Vars recorded before the Reset do not.
func (tp *Tape) Reset() {
	for i := range tp.nodes {
		out := tp.nodes[i].out
		if out.Grad != nil {
			tp.put(out.Grad.Data)
			out.Grad = nil
		}
		tp.nodes[i] = node{}
	}
	tp.nodes = tp.nodes[:0]
	for i, b := range tp.saved {
		tp.put(b)
		tp.saved[i] = nil
	}
	tp.saved = tp.saved[:0]
	// Forget buffer lengths the last step did not ask for, so the pool
	// holds no more than one step's worth of each shape in use.
	for n, b := range tp.pool {
		if !b.used {
			delete(tp.pool, n)
		} else {
			b.used = false
		}
	}
	tp.gen++
}

// Backward propagates d(loss)/d(loss) = 1 back through the recorded ops,
// accumulating into the gradients of every Param the loss depends on. The
// loss must hold one element and have been recorded on tp since the last
// Reset. Backward may be called more than once per recording (the Param
// gradients then accumulate once per call).
func (tp *Tape) Backward(loss *Var) error {
	switch {
	case tp == nil:
		return errors.New("ops: Backward on a nil tape")
	case loss == nil || loss.Value == nil:
		return errors.New("ops: Backward of a nil loss")
	case len(loss.Value.Data) != 1:
		return fmt.Errorf("ops: Backward needs a loss with one element, got shape %v", loss.Value.Shape)
	case loss.kind == kindConst:
		return errors.New("ops: Backward of a loss that depends on no Param (a constant, or computed without a tape)")
	case loss.tape != tp:
		return errors.New("ops: Backward of a loss recorded on another tape")
	case loss.kind == kindOp && loss.gen != tp.gen:
		return errors.New("ops: Backward of a loss recorded before Tape.Reset")
	}
	tp.backward(loss, []float32{1})
	return nil
}

// backward seeds out's gradient with seed and runs the tape backwards.
func (tp *Tape) backward(out *Var, seed []float32) {
	if out.kind == kindParam {
		Sync(out.Grad.Data)
		tensor.Add(out.Grad.Data, out.Grad.Data, seed)
		Wrote(out.Grad.Data)
		return
	}
	last := -1
	for i := len(tp.nodes) - 1; i >= 0; i-- {
		if tp.nodes[i].out == out {
			last = i
			break
		}
	}
	if last < 0 {
		panic("ops: Backward: loss not found on its tape")
	}
	// Gradients retained by an earlier Backward start again from nothing.
	for i := 0; i <= last; i++ {
		if o := tp.nodes[i].out; o.Grad != nil {
			tp.put(o.Grad.Data)
			o.Grad = nil
		}
	}
	g, _ := tp.gradBuf(out)
	if len(seed) == 1 && len(g) == 1 {
		backend.Fill(g, seed[0])
	} else {
		copy(g, seed)
		Wrote(g)
	}
	for i := last; i >= 0; i-- {
		n := &tp.nodes[i]
		if n.out.Grad == nil {
			continue
		}
		n.back(n.out.Grad.Data)
		if !n.out.retain && n.out.Grad != nil { // nil: handed on by pass
			tp.put(n.out.Grad.Data)
			n.out.Grad = nil
		}
	}
}

// get returns a buffer of n elements with arbitrary contents.
func (tp *Tape) get(n int) []float32 {
	b := tp.pool[n]
	if b == nil {
		b = &bucket{}
		tp.pool[n] = b
	}
	b.used = true
	if k := len(b.free); k > 0 {
		buf := b.free[k-1]
		b.free[k-1] = nil
		b.free = b.free[:k-1]
		return buf
	}
	return make([]float32, n)
}

// put returns buf to the pool.
func (tp *Tape) put(buf []float32) {
	if cap(buf) == 0 {
		return
	}
	buf = buf[:cap(buf)]
	b := tp.pool[len(buf)]
	if b == nil {
		b = &bucket{}
		tp.pool[len(buf)] = b
	}
	b.free = append(b.free, buf)
}

// save returns a tape-owned buffer of n elements (arbitrary contents) that
// lives until Reset.
func (tp *Tape) save(n int) []float32 {
	buf := tp.get(n)
	tp.saved = append(tp.saved, buf)
	return buf
}

// scratch returns a temporary buffer (arbitrary contents); release it with
// drop. On a nil tape it is a plain allocation.
func (tp *Tape) scratch(n int) []float32 {
	if tp == nil {
		return make([]float32, n)
	}
	return tp.get(n)
}

func (tp *Tape) drop(buf []float32) {
	if tp != nil {
		tp.put(buf)
	}
}

// gradBuf returns v's gradient buffer. fresh reports that it was just
// allocated with arbitrary contents: the caller must write every element
// instead of accumulating.
func (tp *Tape) gradBuf(v *Var) (g []float32, fresh bool) {
	if v.Grad != nil {
		return v.Grad.Data, false
	}
	g = tp.get(len(v.Value.Data))
	v.Grad = &tensor.Tensor{Shape: v.Value.Shape, Data: g}
	return g, true
}

// gradZero returns v's gradient buffer, zeroed if just allocated, for ops that
// scatter into it.
func (tp *Tape) gradZero(v *Var) []float32 {
	g, fresh := tp.gradBuf(v)
	if fresh {
		backend.Fill(g, 0)
	}
	return g
}

// accum adds alpha·src into v's gradient (writing it when fresh).
func (tp *Tape) accum(v *Var, src []float32, alpha float32) {
	g, fresh := tp.gradBuf(v)
	switch {
	case fresh:
		backend.Copy(g, src)
		if alpha != 1 {
			backend.Scale(alpha, g)
		}
	case alpha == 1:
		backend.Add(g, g, src)
	default:
		backend.Axpy(alpha, src, g)
	}
}

// pass adds out's gradient dy into x's, for ops whose gradient w.r.t. x is
// dy itself (Add, Reshape). When x has no gradient yet and out's is not
// retained, out's buffer is handed to x instead of copied.
func (tp *Tape) pass(out, x *Var, dy []float32) {
	if x.Grad == nil && !out.retain && out.Grad != nil && len(dy) > 0 && len(dy) == len(x.Value.Data) && &out.Grad.Data[0] == &dy[0] {
		x.Grad = &tensor.Tensor{Shape: x.Value.Shape, Data: out.Grad.Data}
		out.Grad = nil
		return
	}
	tp.accum(x, dy, 1)
}

// track validates the inputs of op and reports whether its output must be
// recorded: tp is non-nil and some input takes a gradient.
func (tp *Tape) track(op string, inputs ...*Var) bool {
	need := false
	for i, v := range inputs {
		if v == nil {
			panic(fmt.Sprintf("ops.%s: input %d is nil", op, i))
		}
		if v.Value == nil {
			panic(fmt.Sprintf("ops.%s: input %d has no value", op, i))
		}
		if tp == nil || v.kind == kindConst {
			continue
		}
		if v.tape != tp {
			panic(fmt.Sprintf("ops.%s: input %d was recorded on another tape", op, i))
		}
		if v.kind == kindOp && v.gen != tp.gen {
			panic(fmt.Sprintf("ops.%s: input %d was recorded before Tape.Reset", op, i))
		}
		need = true
	}
	return need
}

// record makes out a recorded op output with the given backward closure.
func (tp *Tape) record(out *Var, back func(dy []float32)) *Var {
	out.tape, out.gen, out.kind = tp, tp.gen, kindOp
	tp.nodes = append(tp.nodes, node{out, back})
	return out
}

// newVar wraps a fresh tensor of the given shape.
func newVar(shape ...int) *Var { return &Var{Value: tensor.New(shape...)} }

// numel is the number of elements of shape.
func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// lastDim returns the last dimension of x and the number of rows (product
// of the others); it panics for a 0-d tensor.
func lastDim(op string, x *tensor.Tensor) (rows, n int) {
	if len(x.Shape) == 0 {
		panic(fmt.Sprintf("ops.%s: need at least 1 dimension, got shape %v", op, x.Shape))
	}
	n = x.Shape[len(x.Shape)-1]
	if n == 0 {
		return 0, 0
	}
	return len(x.Data) / n, n
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
