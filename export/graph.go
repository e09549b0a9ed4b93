package export

import (
	"fmt"
	"strconv"
	"strings"
)

// builder appends nodes and initializers to a Graph with unique value
// names, caching small int64 constants.
type builder struct {
	g      *Graph
	used   map[string]bool
	consts map[string]string
}

func newBuilder(name string) *builder {
	return &builder{g: &Graph{Name: name}, used: map[string]bool{}, consts: map[string]string{}}
}

// fresh returns name, or name with a numeric suffix when it is taken.
func (b *builder) fresh(name string) string {
	n := name
	for i := 1; b.used[n]; i++ {
		n = name + "_" + strconv.Itoa(i)
	}
	b.used[n] = true
	return n
}

// op adds a node with one output, named after name, and returns the output.
func (b *builder) op(name, opType string, inputs []string, attrs ...Attr) string {
	out := b.fresh(name)
	b.g.Nodes = append(b.g.Nodes, &Node{Name: out, OpType: opType, Inputs: inputs, Outputs: []string{out}, Attrs: attrs})
	return out
}

// opN adds a node with n outputs, named after name, and returns them.
func (b *builder) opN(name, opType string, inputs []string, n int, attrs ...Attr) []string {
	outs := make([]string, n)
	for i := range outs {
		outs[i] = b.fresh(name + "_" + strconv.Itoa(i))
	}
	b.g.Nodes = append(b.g.Nodes, &Node{Name: b.fresh(name), OpType: opType, Inputs: inputs, Outputs: outs, Attrs: attrs})
	return outs
}

// weight adds a float32 initializer (the data is copied) and returns its name.
func (b *builder) weight(name string, data []float32, dims ...int) string {
	if n := product(dims); n != len(data) {
		panic(fmt.Sprintf("export: initializer %s: %d values for dims %v", name, len(data), dims))
	}
	name = b.fresh(name)
	b.g.Initializers = append(b.g.Initializers, FloatTensor(name, data, dims...))
	return name
}

// scalar adds a float32 scalar constant (a 0-d initializer).
func (b *builder) scalar(name string, v float32) string {
	return b.weight(name, []float32{v})
}

// ints returns a 1-D int64 constant holding vals, shared between users.
func (b *builder) ints(vals ...int64) string {
	key := fmt.Sprint(vals)
	if n, ok := b.consts[key]; ok {
		return n
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = strings.ReplaceAll(strconv.FormatInt(v, 10), "-", "m")
	}
	name := b.fresh("const_" + strings.Join(parts, "_"))
	b.g.Initializers = append(b.g.Initializers, Int64Tensor(name, vals, len(vals)))
	b.consts[key] = name
	return name
}

// int0 adds an int64 scalar (0-d) constant.
func (b *builder) int0(name string, v int64) string {
	name = b.fresh(name)
	b.g.Initializers = append(b.g.Initializers, Int64Tensor(name, []int64{v}))
	return name
}

func product(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}
