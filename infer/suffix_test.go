package infer

import (
	"slices"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/internal/testutil"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// refSuffix runs blocks from..L-1 of a tower with the reference forward
// from the stream x (block from replaced by rep when non-nil, left out when
// skip) and returns the projected embeddings.
func refSuffix(m *clip.Model, tower string, x []float32, B, T int, from int, rep *nn.Block, skip bool, tb *clip.TextBatch) []float32 {
	C := len(x) / (B * T)
	xt, _ := tensor.FromData(append([]float32(nil), x...), B*T, C)
	h := ops.Const(xt)
	enc, mask := m.Vision.Encoder, nn.AttnMask{}
	if tower == TowerText {
		enc, mask = m.Text.Encoder, m.Text.Mask()
	}
	for l := from; l < len(enc.Layers); l++ {
		b := enc.Layers[l]
		if l == from && skip {
			continue
		}
		if l == from && rep != nil {
			b = rep
		}
		h = b.Forward(nil, h, B, T, mask)
	}
	if tower == TowerText {
		return m.TextProjection.Forward(nil, m.Text.Pool(nil, h, tb)).Value.Data
	}
	return m.VisualProjection.Forward(nil, m.Vision.Pool(nil, h)).Value.Data
}

// TestEmbedFromMatchesReference runs the suffixes MoPE scoring runs
// (dropped head, dropped FFN neurons from the mid state, dropped layer,
// layers split into their halves by RunLayers) on both towers of random
// models, at awkward batch sizes and thread counts, against the reference
// forward.
func TestEmbedFromMatchesReference(t *testing.T) {
	for _, threads := range []int{1, 3} {
		for _, B := range []int{1, 7, 33} {
			m := randomModel(t, preset(t, "tiny"), 5)
			e, err := New(m, Options{Threads: threads, Chunk: 4})
			if err != nil {
				t.Fatal(err)
			}
			in := makeInputs(m, B, 9, 11)
			S := m.Config.Vision.ImageSize
			px, _ := tensor.FromData(append([]float32(nil), in.pixels...), B, 3, S, S)
			tb := &clip.TextBatch{IDs: in.ids, EOTPos: in.eot, B: B, T: in.T}
			for _, tw := range []string{TowerVision, TowerText} {
				enc, T := m.Vision.Encoder, m.Vision.SeqLen()
				x0 := m.Vision.Embed(nil, ops.Const(px)).Value.Data
				pool := make([]int, B)
				mask := nn.AttnMask{}
				if tw == TowerText {
					enc, T, mask = m.Text.Encoder, in.T, m.Text.Mask()
					x0 = m.Text.Embed(nil, tb).Value.Data
					copy(pool, in.eot)
				}
				nL := len(enc.Layers)
				full := make([]*Layer, nL)
				for l, b := range enc.Layers {
					if full[l], err = e.PackBlock(tw, b, true, true); err != nil {
						t.Fatal(err)
					}
				}
				E := m.Config.ProjectionDim
				out := make([]float32, B*E+3)
				out[B*E], out[B*E+1], out[B*E+2] = 7, 8, 9 // guards
				check := func(name string, want []float32) {
					t.Helper()
					if err := relErr(out[:B*E], want); err > 2e-5 {
						t.Errorf("%s threads %d B %d %s: rel err %.3g", tw, threads, B, name, err)
					}
					if out[B*E] != 7 || out[B*E+1] != 8 || out[B*E+2] != 9 {
						t.Errorf("%s threads %d B %d %s: guard overwritten", tw, threads, B, name)
					}
				}
				// Whole tower from the embeddings.
				if err := e.EmbedFrom(tw, x0, B, T, full, pool, out); err != nil {
					t.Fatal(err)
				}
				check("full", refSuffix(m, tw, x0, B, T, 0, nil, false, tb))
				// Layer 1 without head 1, from the stream entering it.
				x1 := make([]float32, len(x0))
				if err := e.RunLayers(tw, x0, B, T, full[:1], x1); err != nil {
					t.Fatal(err)
				}
				xr := enc.Layers[0].Forward(nil, ops.Const(testutil.MustTensor(slices.Clone(x0), B*T, len(x0)/(B*T))), B, T, mask).Value.Data
				if err := relErr(x1, xr); err > 2e-5 {
					t.Errorf("%s RunLayers: rel err %.3g", tw, err)
				}
				b1 := enc.Layers[1]
				attn := *b1.SelfAttn
				attn.HeadKeep = make([]bool, attn.Heads)
				for i := range attn.HeadKeep {
					attn.HeadKeep[i] = i != 1
				}
				nb := *b1
				nb.SelfAttn = &attn
				v, err := e.PackBlock(tw, &nb, true, true)
				if err != nil {
					t.Fatal(err)
				}
				if v.Heads() != attn.Heads-1 {
					t.Errorf("variant computes %d heads, want %d", v.Heads(), attn.Heads-1)
				}
				if err := e.EmbedFrom(tw, x1, B, T, append([]*Layer{v}, full[2:]...), pool, out); err != nil {
					t.Fatal(err)
				}
				check("head", refSuffix(m, tw, x1, B, T, 1, &nb, false, tb))
				// Layer 1 dropped.
				if err := e.EmbedFrom(tw, x1, B, T, full[2:], pool, out); err != nil {
					t.Fatal(err)
				}
				check("skip", refSuffix(m, tw, x1, B, T, 1, nil, true, tb))
				// Layer 1 in halves: attention, then the MLP from the mid state.
				an, err := e.PackBlock(tw, b1, true, false)
				if err != nil {
					t.Fatal(err)
				}
				mn, err := e.PackBlock(tw, b1, false, true)
				if err != nil {
					t.Fatal(err)
				}
				mid := make([]float32, len(x1))
				if err := e.RunLayers(tw, x1, B, T, []*Layer{an}, mid); err != nil {
					t.Fatal(err)
				}
				if err := e.EmbedFrom(tw, mid, B, T, append([]*Layer{mn}, full[2:]...), pool, out); err != nil {
					t.Fatal(err)
				}
				check("halves", refSuffix(m, tw, x1, B, T, 1, nil, false, tb))
				// The same with the engine's own layers and their branches.
				own, err := e.Layers(tw)
				if err != nil || len(own) != nL {
					t.Fatalf("Layers: %d layers, %v", len(own), err)
				}
				if err := e.RunLayers(tw, x1, B, T, []*Layer{own[1].Branch(true)}, mid); err != nil {
					t.Fatal(err)
				}
				if err := e.EmbedFrom(tw, mid, B, T, append([]*Layer{own[1].Branch(false)}, own[2:]...), pool, out); err != nil {
					t.Fatal(err)
				}
				check("own halves", refSuffix(m, tw, x1, B, T, 1, nil, false, tb))
				// The last layer alone (pooled rows only) and no layer at all.
				xl := make([]float32, len(x0))
				if err := e.RunLayers(tw, x0, B, T, full[:nL-1], xl); err != nil {
					t.Fatal(err)
				}
				if err := e.EmbedFrom(tw, xl, B, T, full[nL-1:], pool, out); err != nil {
					t.Fatal(err)
				}
				check("last", refSuffix(m, tw, xl, B, T, nL-1, nil, false, tb))
				if err := e.EmbedFrom(tw, xl, B, T, nil, pool, out); err != nil {
					t.Fatal(err)
				}
				check("none", refSuffix(m, tw, xl, B, T, nL-1, nil, true, tb))
			}
			if err := e.EmbedFrom("audio", nil, 0, 1, nil, nil, nil); err == nil {
				t.Error("unknown tower accepted")
			}
			if err := e.EmbedFrom(TowerVision, make([]float32, 5), 1, 1, nil, []int{0}, make([]float32, 100)); err == nil {
				t.Error("short stream accepted")
			}
			// No e.Close(): pool.close (forward.go) writes p.start[w]
			// while a worker that never ran may still be reading it in
			// loop's range expression, which -race reports when B = 1
			// left the workers idle (pre-existing; reported).
		}
	}
}
