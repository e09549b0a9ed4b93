// Package train benchmarks one training step (forward, backward, AdamW) of a
// small pre-LN transformer built from package nn, against the same model in
// PyTorch (torch_train_step.py). See bench/README.md, "Training step".
package train
