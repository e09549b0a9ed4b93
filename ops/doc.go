// Package ops holds the differentiable operations of mopeclip: a reverse-mode
// autodiff tape over float32 tensors, and the forward and backward passes of
// every op a CLIP transformer, its losses and MoPE distillation need.
//
// # Vars and tapes
//
// A Var is a tensor value, plus a gradient when it takes part in
// differentiation. Leaves are made by Tape.Param (trainable: its gradient is
// accumulated, +=, into the caller's grad tensor on every Backward) and by
// Const (no gradient). Every op takes the tape first:
//
//	tp := ops.NewTape()
//	w := tp.Param(weight, weightGrad) // weightGrad is accumulated into
//	y := ops.Linear(tp, ops.Const(x), w, nil)
//	loss := ops.Mean(tp, y)
//	if err := tp.Backward(loss); err != nil { ... }
//	tp.Reset() // ready for the next step; Params may be reused across Resets
//
// A nil *Tape means inference: ops compute their forward pass only, record
// nothing and keep no activations. Tape.Param on a nil tape returns a Var
// without gradient tracking. An op whose inputs need no gradient is not
// recorded either (its output behaves like a Const), so a frozen teacher can
// run on the same tape as the student at no cost.
//
// The tape is a list of nodes in creation order, so Backward simply walks it
// backwards from the loss. Gradients of intermediate Vars are allocated on
// demand from a buffer pool owned by the tape and handed back to the pool as
// soon as the node that produced the Var has propagated them, so after
// Backward an intermediate's Grad is nil unless Tape.RetainGrad was called for
// it (retained gradients live until the next Backward or Reset). Values of
// recorded Vars are ordinary Go allocations that stay valid after Reset;
// buffers an op saves for its backward pass (layer-norm statistics, attention
// probabilities, ...) belong to the tape and are recycled by Reset. A Var
// produced before a Reset must not be fed to ops after it (that panics), except
// Params and Consts, which are leaves.
//
// A Tape is not safe for concurrent use; one goroutine records and runs it.
// Ops may use several goroutines internally (attention runs its (batch, head)
// pairs in parallel); every output element is then owned by one goroutine and
// computed the same way whichever goroutine runs it, so results and gradients
// are bit-identical from run to run for a given GOMAXPROCS and kernel variant.
//
// # Shapes
//
// Tensors are row-major. The names used throughout:
//
//	B  batch size (images or texts in a batch)
//	T  sequence length (tokens per item: 77 for CLIP text, 1+(S/P)² for ViT)
//	C  model width (embedding dimension); C = H·D in attention
//	H  number of attention heads
//	D  head dimension
//	N  rows of a 2-D operand (often B·T), or batch size of the contrastive loss
//	S  image side in pixels, P patch side
//
// Sequence tensors are stored flat as [B·T, C] (or [B, T, C]; ops that work
// row-wise treat every leading dimension as rows). AddRowVector broadcasts a
// trailing block, so position embeddings [T, C] add to [B, T, C] directly. Attention takes and returns
// [B·T, H·D] with the heads concatenated along the last dimension, exactly as
// the q/k/v projections produce them. Linear weights use the Hugging Face
// layout [out, in]; convolution weights are [C, 3, P, P]. Scalars (losses, the
// CLIP logit scale) have shape [1].
//
// Shape mismatches are programming errors: ops panic with a message naming
// the op and the shapes. Backward returns an error for misuse (a non-scalar
// loss, a loss from another tape or from before a Reset, ...).
//
// # Backend
//
// Ops reach compute through the Backend interface: GEMM, the vector kernels
// and their backward passes, and the attention core. CPU is the
// implementation on package tensor (whose registries pick AVX-512, AVX2, NEON
// or pure-Go kernels). The active backend is a package-level setting, CPU by
// default, changed only with SetBackend at program start, before any op runs
// (the CUDA backend plugs in there). Data movement (copies, fills, row
// gathers, unfolding patches) goes through the backend too; the scalar loss
// heads and L2Normalize run in ops itself on the tensors' Data slices.
//
// A backend may keep its own copies of the slices it sees (a GPU's memory):
// it then implements Residency, and host code brackets its reads and writes
// of Value.Data and Grad.Data with Sync and Wrote (no-ops on the CPU). A
// training loop on such a backend names what persists across steps with Keep
// and ends each step with EndStep (StepScoped). cuda/README.md describes the
// rules.
//
// # Performance
//
// Big ops are coarse: a Linear is one GEMM forward and two backward (dX = dY·W
// and dW += dYᵀ·X with beta=1 accumulation into the parameter gradient), the
// bias gradient a column sum; attention runs per (batch, head) as small GEMMs
// on strided views of q, k and v (no copies), skipping the padded keys of
// KeyLens and dropped heads entirely. When an op writes the first gradient
// contribution of an input it writes instead of accumulating, so fresh
// gradient buffers are never zeroed needlessly.
package ops
