package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Tensor is a dense, contiguous, row-major float32 tensor. Views made by
// Reshape and Rows share Data with the original.
type Tensor struct {
	Shape []int
	Data  []float32
}

// numel returns the product of shape, or an error for negative sizes.
func numel(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("tensor: negative dimension in shape %v", shape)
		}
		n *= d
	}
	return n, nil
}

// New returns a zeroed tensor of the given shape. It panics on a negative
// dimension (a programming error, never user input).
func New(shape ...int) *Tensor {
	n, err := numel(shape)
	if err != nil {
		panic(err)
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, n)}
}

// FromData wraps data (not copied) in a tensor of the given shape.
func FromData(data []float32, shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, fmt.Errorf("tensor: shape %v needs %d values, got %d", shape, n, len(data))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}, nil
}

// Len returns the number of elements.
func (t *Tensor) Len() int { return len(t.Data) }

// Dim returns the size of dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.Shape)
	}
	return t.Shape[i]
}

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
}

// Reshape returns a view with a new shape and the same data. One dimension
// may be -1 and is then inferred.
func (t *Tensor) Reshape(shape ...int) (*Tensor, error) {
	s := append([]int(nil), shape...)
	infer, known := -1, 1
	for i, d := range s {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			return nil, fmt.Errorf("tensor: bad reshape %v of %v", shape, t.Shape)
		default:
			known *= d
		}
	}
	if infer >= 0 {
		if known == 0 || len(t.Data)%known != 0 {
			return nil, fmt.Errorf("tensor: cannot reshape %v to %v", t.Shape, shape)
		}
		s[infer] = len(t.Data) / known
		known *= s[infer]
	}
	if known != len(t.Data) {
		return nil, fmt.Errorf("tensor: cannot reshape %v (%d values) to %v", t.Shape, len(t.Data), shape)
	}
	return &Tensor{Shape: s, Data: t.Data}, nil
}

// MustReshape is Reshape for shapes known to be valid; it panics otherwise.
func (t *Tensor) MustReshape(shape ...int) *Tensor {
	r, err := t.Reshape(shape...)
	if err != nil {
		panic(err)
	}
	return r
}

// Rows returns the view of rows [i, j) along the first dimension.
func (t *Tensor) Rows(i, j int) *Tensor {
	if len(t.Shape) == 0 || i < 0 || j < i || j > t.Shape[0] {
		panic(fmt.Sprintf("tensor: rows [%d,%d) out of range for shape %v", i, j, t.Shape))
	}
	inner := 1
	for _, d := range t.Shape[1:] {
		inner *= d
	}
	s := append([]int{j - i}, t.Shape[1:]...)
	return &Tensor{Shape: s, Data: t.Data[i*inner : j*inner : j*inner]}
}

// Mat is a strided view of a row-major matrix: element (i, j) is
// Data[i*Stride+j]. Column slices of a Tensor are Mats with Stride > Cols; they
// feed Sgemm directly through its leading-dimension arguments.
type Mat struct {
	Rows, Cols, Stride int
	Data               []float32
}

// Matrix views a 2-D tensor (or any tensor as [Shape[0], rest]) as a Mat.
func (t *Tensor) Matrix() Mat {
	if len(t.Shape) == 0 {
		return Mat{1, 1, 1, t.Data}
	}
	r := t.Shape[0]
	c := 1
	for _, d := range t.Shape[1:] {
		c *= d
	}
	return Mat{r, c, c, t.Data}
}

// Cols returns the view of columns [i, j) of m.
func (m Mat) ColSlice(i, j int) Mat {
	if i < 0 || j < i || j > m.Cols {
		panic(fmt.Sprintf("tensor: columns [%d,%d) out of range for %d columns", i, j, m.Cols))
	}
	if m.Rows == 0 {
		return Mat{0, j - i, m.Stride, nil}
	}
	return Mat{m.Rows, j - i, m.Stride, m.Data[i : (m.Rows-1)*m.Stride+j]}
}

// RowSlice returns the view of rows [i, j) of m.
func (m Mat) RowSlice(i, j int) Mat {
	if i < 0 || j < i || j > m.Rows {
		panic(fmt.Sprintf("tensor: rows [%d,%d) out of range for %d rows", i, j, m.Rows))
	}
	if i == j {
		return Mat{0, m.Cols, m.Stride, nil}
	}
	return Mat{j - i, m.Cols, m.Stride, m.Data[i*m.Stride : (j-1)*m.Stride+m.Cols]}
}

// At returns element (i, j).
func (m Mat) At(i, j int) float32 { return m.Data[i*m.Stride+j] }

// Dense copies m into a new contiguous [Rows, Cols] tensor.
func (m Mat) Dense() *Tensor {
	t := New(m.Rows, m.Cols)
	for i := 0; i < m.Rows; i++ {
		copy(t.Data[i*m.Cols:(i+1)*m.Cols], m.Data[i*m.Stride:i*m.Stride+m.Cols])
	}
	return t
}

// RNG is the project's seeded random source: PCG, so that a seed gives the
// same numbers on every platform and Go release.
type RNG struct{ r *rand.Rand }

// NewRNG returns a generator for seed.
func NewRNG(seed uint64) *RNG {
	return &RNG{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Float32 returns a uniform value in [0, 1).
func (g *RNG) Float32() float32 { return g.r.Float32() }

// Float64 returns a uniform value in [0, 1).
func (g *RNG) Float64() float64 { return g.r.Float64() }

// NormFloat64 returns a standard normal value.
func (g *RNG) NormFloat64() float64 { return g.r.NormFloat64() }

// IntN returns a uniform integer in [0, n).
func (g *RNG) IntN(n int) int { return g.r.IntN(n) }

// Perm returns a random permutation of [0, n).
func (g *RNG) Perm(n int) []int { return g.r.Perm(n) }

// Shuffle shuffles n elements with swap.
func (g *RNG) Shuffle(n int, swap func(i, j int)) { g.r.Shuffle(n, swap) }

// Normal fills t with N(mean, std²) values.
func (t *Tensor) Normal(g *RNG, mean, std float64) *Tensor {
	for i := range t.Data {
		t.Data[i] = float32(mean + std*g.NormFloat64())
	}
	return t
}

// Uniform fills t with values uniform in [lo, hi).
func (t *Tensor) Uniform(g *RNG, lo, hi float64) *Tensor {
	for i := range t.Data {
		t.Data[i] = float32(lo + (hi-lo)*g.Float64())
	}
	return t
}

// Fill sets every element to v.
func (t *Tensor) Fill(v float32) *Tensor {
	for i := range t.Data {
		t.Data[i] = v
	}
	return t
}

// Zero sets every element to 0.
func (t *Tensor) Zero() *Tensor { clear(t.Data); return t }

// MaxAbsDiff returns max |a-b| over two equal-length slices (NaN if any
// element is NaN), for tests and parity checks.
func MaxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if d != d {
			return math.NaN()
		}
		if d > m {
			m = d
		}
	}
	return m
}
