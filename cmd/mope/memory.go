package main

import (
	"runtime/debug"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/tensor"
)

// evalGCPercent is the collector's growth target while mope eval and mope
// score run, when
// the user has set neither GOGC nor GOMEMLIMIT. Evaluation's heap is the
// model's weights and the embeddings: long-lived float32 arrays that the
// collector does not scan, so collecting at 25 % growth instead of Go's
// default 100 % costs little time and keeps the peak near the live heap
// (docs/data.md: a ViT-B/32 over 25,000 images and 125,000 captions within
// 1.5 GB; same recalls and images/s).
const evalGCPercent = 25

// tightenGC sets the collector's target to evalGCPercent unless getenv
// shows that the user chose one (GOGC or GOMEMLIMIT); the returned function
// restores the previous target.
func tightenGC(getenv func(string) string) (restore func()) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(evalGCPercent)
	return func() { debug.SetGCPercent(old) }
}

// noHugePages turns off the huge-page collapse of packed weights
// (tensor.SetHugePages) for a long batch run, evaluation or scoring, and
// returns the function that restores it. Huge pages shorten one-image
// passes, whose weights stream from memory; these runs are compute-bound,
// and the Go heap keeps freed huge pages resident for longer: scoring 12
// ViT-B/32 modules on 1,000 pairs peaked at 1.91–1.96 GiB with them and
// 1.76–1.87 GiB without (three runs each; docs/perf-latency-2026-12-06.md).
func noHugePages() (restore func()) {
	was := tensor.SetHugePages(false)
	return func() { tensor.SetHugePages(was) }
}

// dropGrads drops the gradient buffers a loaded model carries (as large as
// its weights) from a model that will not train: one whose weights the
// engine has released, or one that is only scored.
// The Go heap then holds the weights once, which also halves how much
// garbage the collector lets accumulate before it runs (GOGC).
func dropGrads(m *clip.Model) {
	for _, p := range m.Params() {
		p.Grad = nil
	}
	debug.FreeOSMemory() // and the released weights go back to the OS now
}
