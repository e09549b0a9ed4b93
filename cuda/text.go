//go:build cuda

package cuda

import (
	"encoding/binary"
	"fmt"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/lower"
)

// TextEncoder is the CLIP text tower with its projection resident on the
// device, the text counterpart of VisionEncoder: the weights are uploaded
// once (a snapshot: later changes to the model are not seen), activations
// live in buffers sized for MaxBatch texts of the full context length, and a
// batch costs one upload of token ids and EOT positions, the kernels, and
// one download of embeddings. It computes what clip.Model.EncodeText
// computes:
//
//	x      = tok[ids] + pos[t]                    text_embed
//	per layer (skipped layers and removed branches are left out):
//	  h    = LN1(x)                               ln_fwd (adds the pending bias into x)
//	  qkv  = h·[Wq;Wk;Wv]ᵀ + [bq;bk;bv]           one GEMM (+ bias epilogue)
//	  o    = causal attention(qkv)                attn_flash_fwd_dXX, causal mask
//	  x   += o·Woᵀ                                GEMM, beta = 1 (bo pending)
//	  h    = LN2(x + bo)                          ln_fwd
//	  m    = act(h·W1ᵀ + b1)                      GEMM + bias/act epilogue
//	  x   += m·W2ᵀ                                GEMM, beta = 1 (b2 pending)
//	eot    = x[b·T + EOTPos[b]]                   gather_rows
//	pooled = LN_final(eot + b2)                   ln_fwd
//	emb    = pooled·Wprojᵀ                        GEMM
//
// Layer norm is per token, so, as in clip.TextModel.Pool, final_layer_norm
// runs on the gathered EOT rows only. Texts of a batch share one length T
// (at most the context, max_position_embeddings); the causal mask makes
// padding after a text's EOT irrelevant to its embedding.
//
// Not safe for concurrent use.
type TextEncoder struct {
	tower
	// V is the vocabulary size, Ctx the context length (the largest T),
	// C the width, E the embedding dimension.
	V, Ctx, C, E int
	finalEps     float32

	tok, pos, finalG, finalB, proj, projB devPtr

	ids, idx              devPtr // int32 [MaxBatch·Ctx], int32 [MaxBatch]
	gathered, pooled, emb devPtr
	upB, upT              int // the batch of the last Upload
}

// NewTextEncoder uploads the text tower of m.
func NewTextEncoder(c *Context, m *clip.Model, opt EncoderOptions) (*TextEncoder, error) {
	if c == nil || m == nil || m.Text == nil {
		return nil, fmt.Errorf("cuda: NewTextEncoder needs a context and a model")
	}
	if err := c.encoderOptions(&opt); err != nil {
		return nil, err
	}
	p, err := lower.Model(m)
	if err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	return newTextEncoder(c, &p.Text, p.Text.Blocks, opt)
}

// newTextEncoder uploads the tower t with blocks as its layers (the
// lowering's, or every layer of the encoder for a Suffix).
func newTextEncoder(c *Context, t *lower.Text, blocks []lower.Block, opt EncoderOptions) (*TextEncoder, error) {
	e := &TextEncoder{tower: tower{c: c, opt: opt, width: t.Width}, V: t.Vocab, Ctx: t.SeqLen, C: t.Width,
		E: t.Embed(), finalEps: t.Final.Eps}
	if err := e.upload(t, blocks); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.allocActivations(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *TextEncoder) upload(t *lower.Text, blocks []lower.Block) error {
	if err := e.putAll([]hostUpload{{&e.tok, t.Tok}, {&e.pos, t.Pos}, {&e.finalG, t.Final.G}, {&e.finalB, t.Final.B},
		{&e.proj, t.Proj.W}, {&e.projB, t.Proj.B}}); err != nil {
		return err
	}
	return e.uploadBlocks(blocks)
}

func (e *TextEncoder) allocActivations() error {
	B := e.opt.MaxBatch
	var err error
	for _, b := range []struct {
		dst *devPtr
		n   int
	}{
		{&e.ids, B * e.Ctx}, {&e.idx, B}, {&e.gathered, B * e.C}, {&e.pooled, B * e.C}, {&e.emb, B * e.E},
	} {
		if *b.dst, err = e.buf(b.n); err != nil {
			return err
		}
	}
	return e.allocBlocks(B, e.Ctx)
}

// MaxBatch returns the largest batch the encoder accepts.
func (e *TextEncoder) MaxBatch() int { return e.maxBatch() }

// Upload checks a tokenised batch (ids in the vocabulary, 1 <= T <= the
// context, EOT positions in [0, T)) and copies its ids and EOT positions to
// the input buffers.
func (e *TextEncoder) Upload(b *clip.TextBatch) error {
	e.upB, e.upT = 0, 0
	if b == nil {
		return fmt.Errorf("cuda: no text batch")
	}
	if err := e.checkBatch(b.B); err != nil {
		return err
	}
	B, T := b.B, b.T
	if T < 1 || T > e.Ctx {
		return fmt.Errorf("cuda: %d tokens per text outside [1, %d]", T, e.Ctx)
	}
	if len(b.IDs) != B*T || len(b.EOTPos) != B {
		return fmt.Errorf("cuda: %d ids and %d EOT positions for %d texts of %d tokens", len(b.IDs), len(b.EOTPos), B, T)
	}
	buf := make([]byte, 4*B*T)
	for i, id := range b.IDs {
		if id < 0 || id >= e.V {
			return fmt.Errorf("cuda: token id %d at %d outside the vocabulary of %d", id, i, e.V)
		}
		binary.LittleEndian.PutUint32(buf[4*i:], uint32(id))
	}
	if err := e.uploadEOT(b.EOTPos, T); err != nil {
		return err
	}
	if err := shimHtoDBytes(e.ids, buf); err != nil {
		return err
	}
	e.upB, e.upT = B, T
	return nil
}

// uploadEOT checks the EOT positions of texts of T tokens and copies the
// stream rows they pool (r·T + EOTPos[r]) to the index buffer.
func (e *TextEncoder) uploadEOT(eot []int, T int) error {
	idx := make([]byte, 4*len(eot))
	for r, p := range eot {
		if p < 0 || p >= T {
			return fmt.Errorf("cuda: EOT position %d of text %d outside [0, %d)", p, r, T)
		}
		binary.LittleEndian.PutUint32(idx[4*r:], uint32(r*T+p))
	}
	return shimHtoDBytes(e.idx, idx)
}

// Forward queues the tower on the batch of the last Upload, which must have
// been B texts of T tokens; the result is in the embedding buffer once the
// stream reaches it (Download waits).
func (e *TextEncoder) Forward(B, T int) error {
	if err := e.checkBatch(B); err != nil {
		return err
	}
	if B != e.upB || T != e.upT {
		return fmt.Errorf("cuda: Forward(%d, %d) after an Upload of %d texts of %d tokens", B, T, e.upB, e.upT)
	}
	if err := e.embed(e.x, B, T); err != nil {
		return err
	}
	pending, err := e.blocks(B, T, true)
	if err != nil {
		return err
	}
	return e.pool(e.x, B, pending)
}

// embed queues the embeddings of the B texts of T tokens in the id buffer
// into the residual stream x [B·T, C]: the hidden states entering layer 0.
func (e *TextEncoder) embed(x devPtr, B, T int) error {
	return e.c.textEmbed(x, e.ids, e.tok, e.pos, B, T, e.C)
}

// pool queues the gathering of each text's EOT row of the stream x (the
// index buffer), final_layer_norm (adding the pending bias) and the
// projection into the embedding buffer.
func (e *TextEncoder) pool(x devPtr, B int, pending devPtr) error {
	c, C := e.c, e.C
	if err := c.gatherRows(e.gathered, C, x, C, e.idx, B, C); err != nil {
		return err
	}
	if err := c.lnFwd(e.gathered, C, 0, 0, pending, 0, 0, e.pooled, C, e.finalG, e.finalB, 0, 0, B, C, e.finalEps); err != nil {
		return err
	}
	return e.linear(e.pooled, B, C, e.proj, e.E, 0, e.emb, e.projB, actNone)
}

// Download copies the embeddings [B, E] of the last Forward to dst.
func (e *TextEncoder) Download(dst []float32, B int) error {
	if err := e.checkBatch(B); err != nil {
		return err
	}
	if len(dst) != B*e.E {
		return fmt.Errorf("cuda: destination of %d for %d embeddings of %d", len(dst), B, e.E)
	}
	return shimDtoH(dst, e.emb)
}

// EncodeText returns the projected, unnormalised embeddings [B, E] of a
// tokenised batch, as clip.Model.EncodeText.
func (e *TextEncoder) EncodeText(b *clip.TextBatch) ([]float32, error) {
	if err := e.Upload(b); err != nil {
		return nil, err
	}
	if err := e.Forward(b.B, b.T); err != nil {
		return nil, err
	}
	out := make([]float32, b.B*e.E)
	return out, e.Download(out, b.B)
}

// Close frees the encoder's device memory.
func (e *TextEncoder) Close() error {
	if e == nil {
		return nil
	}
	return e.close()
}
