// Package nn holds the trainable building blocks of mopeclip: parameters,
// layers (Linear, LayerNorm, MultiHeadAttention, MLP, the pre-LN residual
// Block and the Transformer stack), the AdamW optimiser with a cosine
// learning-rate schedule and global-norm gradient clipping, and parameter and
// training-checkpoint IO in safetensors.
//
// # Shapes
//
// Activations are row-major float32 tensors of shape [B*T, C], where B is the
// batch size, T the number of tokens per sequence and C the width (channels)
// of the layer. Layers that only act on the last dimension (Linear,
// LayerNorm, MLP) read Forward(tp, x) and accept any [..., C]; the layers
// that mix tokens (MultiHeadAttention, Block, Transformer) read
// Forward(tp, x, B, T, mask) to split the rows into sequences, with an
// AttnMask for causal and key-padding masks. A nil tape runs inference.
//
// # Names
//
// Every parameter carries the Hugging Face CLIP name it is stored under, so a
// checkpoint maps 1:1 onto a model: layers are built with a name prefix such
// as "vision_model.encoder.layers.3.self_attn.q_proj" and their parameters are
// "<prefix>.weight" and "<prefix>.bias". A Module returns its parameters in a
// fixed order (construction order), which is the order the optimiser keeps
// its moments in and the order gradient norms are summed in.
//
// # Initialisation
//
// Constructors take a *tensor.RNG and draw parameters in a fixed order, so
// the same seed gives bit-identical models; a nil RNG leaves the weights zero
// (a model about to be loaded from a checkpoint). The scheme follows CLIP (the
// OpenAI release and Hugging Face's CLIPPreTrainedModel._init_weights with
// initializer_factor 1):
//
//   - Linear weights: N(0, std²). Inside a Transformer of L layers and
//     width C the stds are those of Hugging Face CLIP (InitCLIP):
//     q_proj/k_proj/v_proj C^-1/2·(2L)^-1/2, out_proj C^-1/2, fc1 (2C)^-1/2,
//     fc2 C^-1/2·(2L)^-1/2. A layer built on its own uses the std it is
//     given (NewLinearStd); NewLinear uses 0.02 (Std002).
//   - Embeddings: N(0, std²) with the caller's std (CLIP: 0.02 for tokens).
//   - Linear biases: 0.
//   - LayerNorm: weight 1, bias 0.
//
// Biases, norm parameters, embeddings and the logit scale are built with
// NoDecay set and get no weight decay from AdamW.
//
// # Gradient accumulation
//
// Tape.Param accumulates into Param.Grad, so gradients from several backward
// passes add up until ZeroGrad clears them. To accumulate k micro-batches
// into one step, either scale each micro-batch loss by 1/k before Backward,
// or call ScaleGrads(params, 1/k) once before clipping and Step; both give
// the mean gradient. Clip after accumulation, then Step, then ZeroGrad.
package nn
