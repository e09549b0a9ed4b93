// Package cputime reads the CPU time of the process, for benchmark figures
// per CPU-second that do not depend on how much of a shared machine other
// processes take (the tests and benchmarks of tensor, clip/tokenizer,
// clip/imageproc and bench/ use it).
package cputime
