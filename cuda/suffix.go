//go:build cuda

package cuda

import (
	"fmt"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/lower"
	"github.com/mopeclip/mopeclip/nn"
)

// Suffix runs one tower of a model from any layer on hidden states kept on
// the device: MoPE scoring's prefix cache (package mope). The hidden states
// entering layer l of every calibration item are computed once (States,
// RunLayers) and kept on the device; an evaluation without one module of
// layer l then runs only a replacement of layer l (PackBlock: the lowering
// of the edited block) and layers l+1.. on a copy of them, and downloads the
// embeddings (EmbedFrom). It is the device counterpart of infer.Engine's
// PackBlock / RunLayers / EmbedFrom.
//
// Unlike VisionEncoder and TextEncoder it uploads every layer of the
// encoder, skipped ones included (nn.Transformer.Skip is ignored), as
// scoring runs them all. Not safe for concurrent use.
type Suffix struct {
	tw     clip.Tower
	vis    *VisionEncoder
	txt    *TextEncoder
	t      *tower
	layers []*Layer
	// T is the tokens per item (vision: 1 + patches; text: the context),
	// C the width, E the embedding dimension.
	T, C, E int
}

// Layer is one uploaded pre-LN block of a Suffix: a layer of the model
// (Suffix.Layers), one of its branches (Branch) or an edited block
// (Suffix.PackBlock, freed by Suffix.Release).
type Layer struct {
	l     blockLayer
	owned []devPtr
}

// States are the hidden states of N items of T tokens [N·T, C] on the
// device (the residual stream entering a layer).
type States struct {
	N, T, C int
	p       devPtr
	c       *Context
}

// NewSuffix uploads the given tower of m (clip.VisionTower or
// clip.TextTower) with every layer of its encoder.
func NewSuffix(c *Context, m *clip.Model, tw clip.Tower, opt EncoderOptions) (*Suffix, error) {
	if c == nil || m == nil {
		return nil, fmt.Errorf("cuda: NewSuffix needs a context and a model")
	}
	if err := c.encoderOptions(&opt); err != nil {
		return nil, err
	}
	p, err := lower.Model(m)
	if err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	s := &Suffix{tw: tw}
	switch tw {
	case clip.VisionTower:
		blocks, err := allBlocks(m.Vision.Encoder, p.Vision.Width, "vision")
		if err != nil {
			return nil, err
		}
		if s.vis, err = newVisionEncoder(c, &p.Vision, blocks, opt); err != nil {
			return nil, err
		}
		s.t, s.T, s.C, s.E = &s.vis.tower, s.vis.T, s.vis.C, s.vis.E
	case clip.TextTower:
		blocks, err := allBlocks(m.Text.Encoder, p.Text.Width, "text")
		if err != nil {
			return nil, err
		}
		if s.txt, err = newTextEncoder(c, &p.Text, blocks, opt); err != nil {
			return nil, err
		}
		s.t, s.T, s.C, s.E = &s.txt.tower, s.txt.Ctx, s.txt.C, s.txt.E
	default:
		return nil, fmt.Errorf("cuda: NewSuffix of tower %v: want the vision or the text tower", tw)
	}
	for _, l := range s.t.layers {
		s.layers = append(s.layers, &Layer{l: l})
	}
	return s, nil
}

// allBlocks lowers every layer of enc, skipped ones included.
func allBlocks(enc *nn.Transformer, C int, name string) ([]lower.Block, error) {
	out := make([]lower.Block, len(enc.Layers))
	for i, b := range enc.Layers {
		var err error
		if out[i], err = lower.FromBlock(b, i, C); err != nil {
			return nil, fmt.Errorf("cuda: %s: %w", name, err)
		}
	}
	return out, nil
}

// MaxBatch returns the most items one pass runs (EncoderOptions.MaxBatch).
func (s *Suffix) MaxBatch() int { return s.t.opt.MaxBatch }

// Layers returns the model's layers, in order (shared: not to Release).
func (s *Suffix) Layers() []*Layer { return s.layers }

// Branch returns l with its attention branch only (attn) or its MLP branch
// only, sharing l's device weights.
func (l *Layer) Branch(attn bool) *Layer {
	c := Layer{l: l.l}
	if attn {
		c.l.mlp, c.l.mlpBias = false, 0
	} else {
		c.l.attn, c.l.attnBias = false, 0
	}
	return &c
}

// PackBlock lowers b (a block of this tower, e.g. a layer with a head
// dropped through HeadKeep or a narrower MLP) and uploads its attention
// and/or MLP branch. It must be no wider than the model's widest layer.
// Release frees it.
func (s *Suffix) PackBlock(b *nn.Block, attn, mlp bool) (*Layer, error) {
	lb, err := lower.FromBlock(b, -1, s.C)
	if err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	if !attn {
		lb.Attn, lb.AttnBias = nil, nil
	}
	if !mlp {
		lb.MLP, lb.MLPBias = nil, nil
	}
	if a := lb.Attn; a != nil && (a.Inner() > s.t.maxInner || (flashDMax(a.HeadDim) == 0 && s.t.probs == 0)) {
		return nil, fmt.Errorf("cuda: block with %d heads of %d is wider than the model's", a.Heads, a.HeadDim)
	}
	if m := lb.MLP; m != nil && m.Hidden > s.t.maxHidden {
		return nil, fmt.Errorf("cuda: block with an MLP of %d is wider than the model's", m.Hidden)
	}
	l := &Layer{}
	if l.l, err = s.t.uploadBlock(&l.owned, &lb); err != nil {
		s.Release(l)
		return nil, err
	}
	return l, nil
}

// Release frees a layer of PackBlock (the model's layers are kept).
func (s *Suffix) Release(l *Layer) {
	if l == nil {
		return
	}
	for _, p := range l.owned {
		s.t.c.free(p)
	}
	l.owned = nil
}

// NewStates allocates the hidden states of n items of T tokens (vision:
// T must be the tower's; text: at most the context).
func (s *Suffix) NewStates(n, T int) (*States, error) {
	if n < 1 || T < 1 || T > s.T || (s.vis != nil && T != s.T) {
		return nil, fmt.Errorf("cuda: states of %d items of %d tokens (the %v tower has %d)", n, T, s.tw, s.T)
	}
	p, err := s.t.c.alloc(4 * n * T * s.C)
	if err != nil {
		return nil, err
	}
	return &States{N: n, T: T, C: s.C, p: p, c: s.t.c}, nil
}

// Free releases the states' device memory.
func (st *States) Free() {
	if st == nil || st.p == 0 {
		return
	}
	st.c.free(st.p)
	st.p = 0
}

// at returns the device address of item i's first row.
func (st *States) at(i int) devPtr { return st.p + devPtr(4*i*st.T*st.C) }

func (s *Suffix) checkStates(st *States, lo, B int) error {
	if st == nil || st.p == 0 || st.C != s.C {
		return fmt.Errorf("cuda: no states of this suffix")
	}
	if lo < 0 || B < 1 || lo+B > st.N {
		return fmt.Errorf("cuda: items [%d, %d) outside the %d states", lo, lo+B, st.N)
	}
	return s.t.checkBatch(B)
}

// EmbedImages writes the hidden states entering layer 0 of B images
// (pixels [B, Cin, S, S]) into items [lo, lo+B) of dst.
func (s *Suffix) EmbedImages(dst *States, lo int, pixels []float32, B int) error {
	if s.vis == nil {
		return fmt.Errorf("cuda: EmbedImages on the %v tower", s.tw)
	}
	if err := s.checkStates(dst, lo, B); err != nil {
		return err
	}
	if err := s.vis.Upload(pixels, B); err != nil {
		return err
	}
	return s.vis.embed(dst.at(lo), B)
}

// EmbedTexts writes the hidden states entering layer 0 of a tokenised
// batch (of dst.T tokens) into items [lo, lo+b.B) of dst.
func (s *Suffix) EmbedTexts(dst *States, lo int, b *clip.TextBatch) error {
	if s.txt == nil {
		return fmt.Errorf("cuda: EmbedTexts on the %v tower", s.tw)
	}
	if b == nil {
		return fmt.Errorf("cuda: no text batch")
	}
	if err := s.checkStates(dst, lo, b.B); err != nil {
		return err
	}
	if b.T != dst.T {
		return fmt.Errorf("cuda: texts of %d tokens into states of %d", b.T, dst.T)
	}
	if err := s.txt.Upload(b); err != nil {
		return err
	}
	return s.txt.embed(dst.at(lo), b.B, b.T)
}

// RunLayers runs layers in order on every item of src and writes the
// stream they leave (biases included) into dst (which may be src).
func (s *Suffix) RunLayers(dst, src *States, layers []*Layer) error {
	if err := s.checkStates(src, 0, 1); err != nil {
		return err
	}
	if err := s.checkStates(dst, 0, 1); err != nil {
		return err
	}
	if dst.N != src.N || dst.T != src.T {
		return fmt.Errorf("cuda: RunLayers from %d×%d states into %d×%d", src.N, src.T, dst.N, dst.T)
	}
	c := s.t.c
	if dst.p != src.p {
		if err := shimDtoD(dst.p, src.p, 4*src.N*src.T*src.C, c.stream); err != nil {
			return err
		}
	}
	ls := blockLayers(layers)
	for lo := 0; lo < dst.N; lo += s.MaxBatch() {
		B := min(s.MaxBatch(), dst.N-lo)
		x := dst.at(lo)
		pending, err := s.t.runBlocks(ls, x, B, dst.T, s.txt != nil)
		if err != nil {
			return err
		}
		if pending != 0 {
			if err := c.biasAct(x, pending, B*dst.T*s.C, s.C, actNone); err != nil {
				return err
			}
		}
	}
	return c.Synchronize()
}

// EmbedFrom runs layers on a copy of each batch of src, pools (vision: the
// class token; text: row eot[i] of item i, len(eot) = src.N), applies the
// final layer norm and the projection, and writes the projected,
// unnormalised embeddings into out [src.N, E]. src is not changed.
func (s *Suffix) EmbedFrom(src *States, layers []*Layer, eot []int, out []float32) error {
	if err := s.checkStates(src, 0, 1); err != nil {
		return err
	}
	if len(out) != src.N*s.E {
		return fmt.Errorf("cuda: output of %d for %d embeddings of %d", len(out), src.N, s.E)
	}
	if s.txt != nil && len(eot) != src.N {
		return fmt.Errorf("cuda: %d EOT positions for %d texts", len(eot), src.N)
	}
	c, ls := s.t.c, blockLayers(layers)
	for lo := 0; lo < src.N; lo += s.MaxBatch() {
		B := min(s.MaxBatch(), src.N-lo)
		if err := shimDtoD(s.t.x, src.at(lo), 4*B*src.T*s.C, c.stream); err != nil {
			return err
		}
		if s.txt != nil {
			if err := s.txt.uploadEOT(eot[lo:lo+B], src.T); err != nil {
				return err
			}
		}
		pending, err := s.t.runBlocks(ls, s.t.x, B, src.T, s.txt != nil)
		if err != nil {
			return err
		}
		var emb devPtr
		if s.vis != nil {
			err, emb = s.vis.pool(s.t.x, B, pending), s.vis.emb
		} else {
			err, emb = s.txt.pool(s.t.x, B, pending), s.txt.emb
		}
		if err != nil {
			return err
		}
		if err := shimDtoH(out[lo*s.E:(lo+B)*s.E], emb); err != nil {
			return err
		}
	}
	return nil
}

func blockLayers(layers []*Layer) []blockLayer {
	out := make([]blockLayer, len(layers))
	for i, l := range layers {
		out[i] = l.l
	}
	return out
}

// Close frees the suffix's device memory (not the States).
func (s *Suffix) Close() error {
	if s == nil {
		return nil
	}
	if s.vis != nil {
		return s.vis.Close()
	}
	return s.txt.Close()
}
