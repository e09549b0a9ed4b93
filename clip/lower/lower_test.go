package lower

import (
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/blas"
)

// numbered returns an attention layer over width C whose weights and
// biases are distinct, recognisable values: q_proj W[r][c] = 1000 + r·C + c,
// k_proj 2000 + ..., v_proj 3000 + ..., out_proj 4000 + ...; biases 10·(p+1)
// + row.
func numbered(C, H, D int) *nn.MultiHeadAttention {
	a := nn.NewMultiHeadAttention("a", C, H, D, 0, 0, nil)
	for p, l := range []*nn.Linear{a.Q, a.K, a.V, a.Out} {
		for i := range l.W.Value.Data {
			l.W.Value.Data[i] = float32(1000*(p+1) + i)
		}
		for i := range l.B.Value.Data {
			l.B.Value.Data[i] = float32(10*(p+1) + i)
		}
	}
	return a
}

func TestAttnLayout(t *testing.T) {
	const C, H, D = 3, 4, 2
	for _, c := range []struct {
		name   string
		keep   []bool
		noBias []int // which of q, k, v lose their bias
		kept   []int
	}{
		{"all", nil, nil, []int{0, 1, 2, 3}},
		{"mask", []bool{false, true, false, true}, nil, []int{1, 3}},
		{"one", []bool{false, false, true, false}, []int{1}, []int{2}},
		{"no-bias", nil, []int{0, 1, 2}, []int{0, 1, 2, 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := numbered(C, H, D)
			a.HeadKeep = c.keep
			lins := []*nn.Linear{a.Q, a.K, a.V}
			for _, p := range c.noBias {
				lins[p].B = nil
			}
			la, bias, err := attn(a, C)
			if err != nil || la == nil || bias != nil {
				t.Fatalf("attn: %v %v %v", la, bias, err)
			}
			if la.Heads != len(c.kept) || la.HeadDim != D || la.Scale != ops.AttnScale(0, D) {
				t.Fatalf("heads %d dim %d scale %g", la.Heads, la.HeadDim, la.Scale)
			}
			in := len(c.kept) * D
			qkv := la.QKV()
			if qkv.In != C || qkv.Out != 3*in || len(qkv.W) != 3*in*C {
				t.Fatalf("qkv %dx%d with %d values", qkv.Out, qkv.In, len(qkv.W))
			}
			if len(c.noBias) == 3 {
				if qkv.B != nil {
					t.Errorf("qkv bias %v, want nil when none of q, k, v has one", qkv.B)
				}
			} else if len(qkv.B) != 3*in {
				t.Fatalf("qkv bias has %d values", len(qkv.B))
			}
			for p := 0; p < 3; p++ {
				for j, h := range c.kept {
					for d := 0; d < D; d++ {
						row := p*in + j*D + d
						src := h*D + d
						for col := 0; col < C; col++ {
							if got, want := qkv.W[row*C+col], float32(1000*(p+1)+src*C+col); got != want {
								t.Fatalf("qkv W[%d][%d] = %g, want %g", row, col, got, want)
							}
						}
						if qkv.B == nil {
							continue
						}
						want := float32(10*(p+1) + src)
						if lins[p].B == nil {
							want = 0
						}
						if qkv.B[row] != want {
							t.Fatalf("qkv B[%d] = %g, want %g", row, qkv.B[row], want)
						}
					}
				}
			}
			out := la.Out()
			if out.In != in || out.Out != C || &out.B[0] != &a.Out.B.Value.Data[0] {
				t.Fatalf("out %dx%d, bias not the model's", out.Out, out.In)
			}
			if len(c.kept) == H && &out.W[0] != &a.Out.W.Value.Data[0] {
				t.Errorf("out_proj copied although every head is kept")
			}
			for r := 0; r < C; r++ {
				for j, h := range c.kept {
					for d := 0; d < D; d++ {
						if got, want := out.W[r*in+j*D+d], float32(4000+r*H*D+h*D+d); got != want {
							t.Fatalf("out W[%d][%d] = %g, want %g", r, j*D+d, got, want)
						}
					}
				}
			}
		})
	}
}

func TestActivation(t *testing.T) {
	for _, name := range []string{"quick_gelu", "gelu"} {
		a, err := nn.ParseActivation(name)
		require.NoError(t, err)
		ta, err := activation(a)
		require.NoError(t, err)
		// The epilogue's activation computes what the reference's does.
		x := []float32{-3, -0.5, 0, 0.7, 2.5}
		want := make([]float32, len(x))
		switch a {
		case nn.ActQuickGELU:
			tensor.QuickGELU(want, x)
		case nn.ActGELU:
			tensor.GELU(want, x)
		}
		got := make([]float32, len(x))
		// got = act(x·1) through the GEMM epilogue the engines use.
		one := tensor.PackB(blas.NoTrans, 1, 1, []float32{1}, 1)
		tensor.SgemmPackedEpilogue(blas.NoTrans, len(x), 1, x, 1, one, 0, got, 1, tensor.Epilogue{Act: ta})
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s(%g) = %g, want %g", name, x[i], got[i], want[i])
			}
		}
	}
	if _, err := activation(nn.Activation(9)); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("unknown activation: %v", err)
	}
}

func TestModelErrors(t *testing.T) {
	cfg, err := clip.Preset("tiny")
	require.NoError(t, err)
	for _, c := range []struct {
		name string
		edit func(m *clip.Model)
		want string
	}{
		{"nil", nil, "incomplete model"},
		{"patch", func(m *clip.Model) { m.Vision.Cfg.ImageSize = 30 }, "vision: image size 30 is not a multiple of patch 8"},
		{"projection", func(m *clip.Model) { m.TextProjection = nn.NewLinear("p", 7, 32, false, nil) }, "text: projection is 32x7, want 32x48"},
		{"ln", func(m *clip.Model) { m.Text.FinalLN = nn.NewLayerNorm("f", 3, 1e-5) }, "text: final layer norm is not a layer norm of width 48"},
		{"q", func(m *clip.Model) {
			m.Vision.Encoder.Layers[1].SelfAttn.Q.B = nn.NewParam("b", 5)
		}, "vision: layer 1: q_proj bias has 5 values, want 64"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var m *clip.Model
			if c.edit != nil {
				if m, err = clip.New(cfg, 1); err != nil {
					t.Fatal(err)
				}
				c.edit(m)
			}
			_, err := Model(m)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}
