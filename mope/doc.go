// Package mope implements MoPE-CLIP's module-wise pruning error metric
// (Lin et al., CVPR 2024), the baseline importance metrics it is compared
// with, and structured pruning of CLIP as real model edits.
//
// # Modules
//
// A Module is one prunable unit of one tower ("vision" or "text"): an
// attention head (Kind "head", Index = head), a group of FFN neurons (Kind
// "ffn", Index = group) or a whole layer (Kind "layer", Index 0). Layers,
// heads and neurons are numbered in the model being scored.
//
// FFN grouping rule: layer l with I neurons is cut into G' = min(G, I)
// contiguous blocks; group g holds neurons [⌊g·I/G'⌋, ⌊(g+1)·I/G'⌋)
// (NeuronGroup). G defaults to 16. Contiguous blocks are the paper-neutral
// choice: CLIP's neuron order carries no meaning, and the plan may keep any
// subset of neurons afterwards.
//
// # Metrics
//
//	mope       Z(model) − Z(model without θ), Z = mean of TR@1/5/10, IR@1/5/10
//	           (percent) on the calibration set, zero-shot.
//	unimodal   1 − mean cos(f(x), f_θ(x)): the drop in cosine similarity of
//	           the tower's own normalised output embeddings.
//	magnitude  L1 norm of the module's weights and biases (head: its q/k/v
//	           rows and biases and its out_proj columns; FFN group: its fc1
//	           rows and biases and its fc2 columns; layer: every parameter of
//	           the block, layer norms included).
//	taylor     |Σ w·∂L/∂w| over the module's weights, L = CLIP's InfoNCE loss
//	           of each image with its first caption, gradients summed over the
//	           calibration batches (DynaBERT / first-order Taylor).
//	random     a uniform number in [0,1) from (seed, module), independent of
//	           sharding.
//
// Larger = more important for every metric.
//
// # Speed (mope, unimodal)
//
// Scoring one tower computes the other tower's normalised embeddings once.
// Layers are visited in order; the hidden states entering layer l (H_l) and
// after its attention branch (M_l) are computed once for the whole
// calibration set and kept; evaluating a module of layer l runs only layers
// l..L from them (FFN groups start from M_l, skipping layer l's attention). A
// removed head is dropped through MultiHeadAttention.HeadKeep (no FLOPs), a
// removed FFN group runs the MLP on a sliced copy of fc1/fc2, a removed layer
// is skipped. Text is evaluated at the length of the longest caption
// (causal attention makes the pooled EOT state independent of the padding
// behind it).
//
// Engines (Options.Engine, recorded in the score file's settings): "fast"
// (the default on the CPU backend) runs every layer step, evaluation and
// baseline on package infer's packed engine (infer.Engine.RunLayers and
// EmbedFrom: fused q/k/v and epilogues, arenas, items over the threads; the
// last layer of an evaluation computes only the pooled rows' queries and
// MLP); "ref" (the default on another ops backend, e.g. --device cuda) runs
// nn.Block.Forward. They agree to float32 rounding (embeddings ≤ 1e-5
// relative, tested); a rounding difference can still move a retrieval rank,
// i.e. a mope score by 100/(6·n) for n queries. Scores do not depend on the
// fast engine's thread count.
//
// # API for callers
//
//	m, _ := clip.Load(dir)
//	tok, _ := mope.LoadTokenizer(dir, "")                // dir's vocab.json + merges.txt
//	cal, _ := mope.LoadCalib(m, "shapes", "", 1000, tok)  // or a dataset file; or NewCalib
//	f, _ := mope.Score(m, cal, mope.Options{Metric: "mope",
//	        Towers: clip.BothTowers,
//	        Kinds:  []string{mope.KindHead, mope.KindFFN, mope.KindLayer}})
//	mope.WriteScores("scores.json", f)                   // ReadScores, Merge for shards
//
//	// one call: width → depth (layers rescored on the width-pruned model)
//	pruned, rep, _ := mope.PruneModel(m, f, mope.PruneOptions{Width: 0.5, Depth: 0.75, Calib: cal})
//	// or TargetFLOPs: 0.5 / TargetParams: 0.5 instead of Width/Depth
//
//	// step by step
//	wp, _ := mope.WidthPlan(m, f, mope.WidthOptions{Ratio: 0.5})
//	w, _ := mope.Apply(m, wp)                            // new model; m untouched
//	ls, _ := mope.Score(w, cal, mope.Options{Metric: "mope", Towers: towers, Kinds: []string{mope.KindLayer}})
//	dp, _ := mope.DepthPlan(w, ls.Lookup(), 0.75, towers)
//	student, _ := mope.Apply(w, dp)
//	student.Config.Vision.TeacherLayer(l)                // teacher layer of student layer l
//	student.SaveWith(out, clip.SaveOptions{From: dir})
//
// Plans are plain data (JSON-serialisable); Mask gives the masked (not
// sliced) equivalent of a plan for checks.
package mope
