package ops

import (
	"fmt"

	"github.com/mopeclip/mopeclip/tensor"
)

// rowLen returns the number of rows (first dimension) of x and the elements
// per row.
func rowLen(op string, x *tensor.Tensor) (rows, inner int) {
	if len(x.Shape) == 0 {
		panic(fmt.Sprintf("ops.%s: need at least 1 dimension, got shape %v", op, x.Shape))
	}
	return x.Shape[0], numel(x.Shape[1:])
}

// gather copies rows idx of src (rows of inner) into dst.
func gather(op string, dst, src []float32, rows, inner int, idx []int) {
	for r, i := range idx {
		if i < 0 || i >= rows {
			panic(fmt.Sprintf("ops.%s: index %d (position %d) out of range [0, %d)", op, i, r, rows))
		}
	}
	if inner > 0 && len(idx) > 0 {
		backend.GatherRows(dst, src, inner, idx)
	}
}

// scatterAdd adds the rows of dy into rows idx of g.
func scatterAdd(g, dy []float32, inner int, idx []int) {
	for r, i := range idx {
		backend.Add(g[i*inner:(i+1)*inner], g[i*inner:(i+1)*inner], dy[r*inner:(r+1)*inner])
	}
}

// gatherRows is Embedding and GatherRows: out [len(idx), inner...].
func gatherRows(tp *Tape, op string, x *Var, idx []int) *Var {
	rec := tp.track(op, x)
	rows, inner := rowLen(op, x.Value)
	out := newVar(append([]int{len(idx)}, x.Value.Shape[1:]...)...)
	gather(op, out.Value.Data, x.Value.Data, rows, inner, idx)
	if !rec {
		return out
	}
	idx = append([]int(nil), idx...)
	return tp.record(out, func(dy []float32) {
		scatterAdd(tp.gradZero(x), dy, inner, idx)
	})
}

// Embedding returns the rows ids of table [V, C] as [len(ids), C]. It panics
// naming the id when one is out of range (the caller validates user input).
func Embedding(tp *Tape, table *Var, ids []int) *Var {
	if len(table.Value.Shape) != 2 {
		panic(fmt.Sprintf("ops.Embedding: table must be [V, C], got %v", table.Value.Shape))
	}
	return gatherRows(tp, "Embedding", table, ids)
}

// GatherRows returns rows idx of x [N, C...] as [len(idx), C...] (EOT pooling,
// class token). Indices may repeat.
func GatherRows(tp *Tape, x *Var, idx []int) *Var { return gatherRows(tp, "GatherRows", x, idx) }

// SliceRows returns rows [i, j) of the first dimension of x. The value shares
// x's data.
func SliceRows(tp *Tape, x *Var, i, j int) *Var {
	rec := tp.track("SliceRows", x)
	rows, inner := rowLen("SliceRows", x.Value)
	if i < 0 || j < i || j > rows {
		panic(fmt.Sprintf("ops.SliceRows: rows [%d, %d) out of range for shape %v", i, j, x.Value.Shape))
	}
	out := &Var{Value: x.Value.Rows(i, j)}
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) {
		g, fresh := tp.gradBuf(x)
		if fresh {
			backend.Fill(g, 0) // whole: a resident backend need not load it
			backend.Copy(g[i*inner:j*inner], dy)
		} else {
			backend.Add(g[i*inner:j*inner], g[i*inner:j*inner], dy)
		}
	})
}

// ConcatRows concatenates xs along the first dimension; the other dimensions
// must agree.
func ConcatRows(tp *Tape, xs ...*Var) *Var {
	if len(xs) == 0 {
		panic("ops.ConcatRows: no inputs")
	}
	rec := tp.track("ConcatRows", xs...)
	rest := xs[0].Value.Shape
	if len(rest) == 0 {
		panic(fmt.Sprintf("ops.ConcatRows: need at least 1 dimension, got shape %v", rest))
	}
	rest = rest[1:]
	total := 0
	for _, x := range xs {
		s := x.Value.Shape
		if len(s) == 0 || !sameShape(s[1:], rest) {
			panic(fmt.Sprintf("ops.ConcatRows: shape %v does not match %v in the trailing dimensions", s, xs[0].Value.Shape))
		}
		total += s[0]
	}
	out := newVar(append([]int{total}, rest...)...)
	// Written in pieces: fill it first so that a resident backend writes
	// the whole buffer (and need not upload the host's zeros).
	backend.Fill(out.Value.Data, 0)
	off := 0
	for _, x := range xs {
		backend.Copy(out.Value.Data[off:], x.Value.Data)
		off += len(x.Value.Data)
	}
	if !rec {
		return out
	}
	xs = append([]*Var(nil), xs...)
	return tp.record(out, func(dy []float32) {
		off := 0
		for _, x := range xs {
			n := len(x.Value.Data)
			if x.RequiresGrad() {
				tp.accum(x, dy[off:off+n], 1)
			}
			off += n
		}
	})
}

// PrependToken returns [B, N+1, C] with tok [C] put before the N rows of each
// item of x [B, N, C]: the ViT class token.
func PrependToken(tp *Tape, x, tok *Var) *Var {
	rec := tp.track("PrependToken", x, tok)
	s := x.Value.Shape
	if len(s) != 3 || len(tok.Value.Shape) != 1 || tok.Value.Shape[0] != s[2] {
		panic(fmt.Sprintf("ops.PrependToken: need x [B, N, C] and token [C], got %v and %v", s, tok.Value.Shape))
	}
	B, N, C := s[0], s[1], s[2]
	out := newVar(B, N+1, C)
	y, xd := out.Value.Data, x.Value.Data
	backend.Fill(y, 0) // written in pieces (see ConcatRows)
	for b := 0; b < B; b++ {
		backend.Copy(y[b*(N+1)*C:], tok.Value.Data)
		backend.Copy(y[(b*(N+1)+1)*C:(b+1)*(N+1)*C], xd[b*N*C:(b+1)*N*C])
	}
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) {
		if x.RequiresGrad() {
			g, fresh := tp.gradBuf(x)
			if fresh {
				backend.Fill(g, 0) // written in pieces (see ConcatRows)
			}
			for b := 0; b < B; b++ {
				src := dy[(b*(N+1)+1)*C : (b+1)*(N+1)*C]
				dst := g[b*N*C : (b+1)*N*C]
				if fresh {
					backend.Copy(dst, src)
				} else {
					backend.Add(dst, dst, src)
				}
			}
		}
		if tok.RequiresGrad() {
			g := tp.gradZero(tok)
			for b := 0; b < B; b++ {
				backend.Add(g, g, dy[b*(N+1)*C:(b*(N+1)+1)*C])
			}
		}
	})
}

// PatchEmbed returns the patch embeddings of pixels [B, Cin, H, W] (CHW, Cin
// is 3 for images) under the convolution weight w [C, Cin, P, P] with stride
// = kernel = P and no bias: [B, (H/P)·(W/P), C], patches in row-major order.
// It unfolds the patches into a [B·N, Cin·P·P] matrix and runs one GEMM; the
// backward pass unfolds again rather than keeping the matrix.
func PatchEmbed(tp *Tape, pixels *Var, w *Var, patch int) *Var {
	rec := tp.track("PatchEmbed", pixels, w)
	ps, ws := pixels.Value.Shape, w.Value.Shape
	if len(ps) != 4 || len(ws) != 4 || ws[1] != ps[1] || ws[2] != patch || ws[3] != patch || patch <= 0 {
		panic(fmt.Sprintf("ops.PatchEmbed: need pixels [B, Cin, H, W] and weight [C, Cin, %d, %d], got %v and %v", patch, patch, ps, ws))
	}
	if ps[2]%patch != 0 || ps[3]%patch != 0 {
		panic(fmt.Sprintf("ops.PatchEmbed: image %dx%d is not a multiple of patch %d", ps[2], ps[3], patch))
	}
	g := patchGeom{B: ps[0], Cin: ps[1], H: ps[2], W: ps[3], P: patch}
	C, N, K := ws[0], g.N(), g.K()
	rows := g.B * N
	out := newVar(g.B, N, C)
	if rows > 0 && C > 0 {
		cols := tp.scratch(rows * K)
		backend.PatchUnfold(cols, pixels.Value.Data, g.B, g.Cin, g.H, g.W, g.P)
		backend.Gemm(false, true, rows, C, K, 1, cols, K, w.Value.Data, K, 0, out.Value.Data, C)
		tp.drop(cols)
	}
	if !rec {
		return out
	}
	return tp.record(out, func(dy []float32) {
		if rows == 0 || C == 0 {
			for _, v := range []*Var{pixels, w} {
				if v.RequiresGrad() {
					tp.gradZero(v)
				}
			}
			return
		}
		cols := tp.get(rows * K)
		if w.RequiresGrad() {
			backend.PatchUnfold(cols, pixels.Value.Data, g.B, g.Cin, g.H, g.W, g.P)
			gw, fresh := tp.gradBuf(w)
			backend.Gemm(true, false, C, K, rows, 1, dy, C, cols, K, beta(fresh), gw, K)
		}
		if pixels.RequiresGrad() {
			backend.Gemm(false, false, rows, K, C, 1, dy, C, w.Value.Data, K, 0, cols, K)
			gp, fresh := tp.gradBuf(pixels)
			g.fold(gp, cols, !fresh)
		}
		tp.put(cols)
	})
}

// patchGeom is the geometry of a patch unfold.
type patchGeom struct{ B, Cin, H, W, P int }

func (g patchGeom) N() int { return (g.H / g.P) * (g.W / g.P) }
func (g patchGeom) K() int { return g.Cin * g.P * g.P }

// unfold writes cols[(b·N + py·gw + px)·K + (c·P + ky)·P + kx] =
// pix[b, c, py·P+ky, px·P+kx].
func (g patchGeom) unfold(cols, pix []float32) {
	g.walk(func(col, img []float32) { copy(col, img) }, cols, pix)
}

// fold is the adjoint of unfold: pix (=|+=) the patch values. With stride =
// kernel every pixel belongs to exactly one patch.
func (g patchGeom) fold(pix, cols []float32, acc bool) {
	if acc {
		g.walk(func(col, img []float32) { backend.Add(img, img, col) }, cols, pix)
	} else {
		backend.Fill(pix, 0) // written in pieces (see ConcatRows)
		g.walk(func(col, img []float32) { backend.Copy(img, col) }, cols, pix)
	}
}

// walk calls f on each matching pair of P-long runs of cols and pix.
func (g patchGeom) walk(f func(col, img []float32), cols, pix []float32) {
	P, gh, gw := g.P, g.H/g.P, g.W/g.P
	K := g.K()
	for b := 0; b < g.B; b++ {
		for py := 0; py < gh; py++ {
			for px := 0; px < gw; px++ {
				base := (b*gh*gw + py*gw + px) * K
				for c := 0; c < g.Cin; c++ {
					for ky := 0; ky < P; ky++ {
						o := base + (c*P+ky)*P
						p := ((b*g.Cin+c)*g.H+py*P+ky)*g.W + px*P
						f(cols[o:o+P], pix[p:p+P])
					}
				}
			}
		}
	}
}
