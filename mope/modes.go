package mope

import (
	"fmt"
	"strings"
)

// This file holds the typed modes of package mope: importance metric,
// pipeline stage and order, scoring engine. Each has Parse, String and Set
// (so a *T is a flag.Value) and marshals to JSON as its name.

// Metric is an importance metric of Score.
type Metric string

// The importance metrics.
const (
	MetricMoPE      Metric = "mope"      // the drop in retrieval when a module is removed (the paper's)
	MetricMagnitude Metric = "magnitude" // weight magnitude (data-free)
	MetricTaylor    Metric = "taylor"    // first-order Taylor estimate of the loss change
	MetricRandom    Metric = "random"    // random scores from a seed (data-free)
	MetricUnimodal  Metric = "unimodal"  // the drop in the tower's own feature agreement
)

// Metrics are the importance metrics Score knows.
var Metrics = []Metric{MetricMoPE, MetricMagnitude, MetricTaylor, MetricRandom, MetricUnimodal}

// ParseMetric parses a metric name.
func ParseMetric(s string) (Metric, error) {
	for _, m := range Metrics {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown metric %q (want %s)", s, joinModes(Metrics))
}

// String returns the metric's name.
func (m Metric) String() string { return string(m) }

// Set parses s into m (flag.Value).
func (m *Metric) Set(s string) error { return setMode(m, s, ParseMetric) }

// NeedsData reports whether the metric needs calibration data.
func (m Metric) NeedsData() bool { return m == MetricMoPE || m == MetricTaylor || m == MetricUnimodal }

// RunsTowers reports whether the metric runs the towers' forward passes
// (and so uses a scoring engine).
func (m Metric) RunsTowers() bool { return m == MetricMoPE || m == MetricUnimodal }

// NeedsGrads reports whether the metric reads the parameters' gradients
// (taylor: |w·∂L/∂w|); the others never train, so a caller may drop them.
func (m Metric) NeedsGrads() bool { return m == MetricTaylor }

// Stage is a pipeline stage.
type Stage string

// Pipeline stages.
const (
	StageFinetune Stage = "finetune" // one tower: width → distil → depth → distil
	StagePretrain Stage = "pretrain" // both towers pruned, then one distillation
)

// Stages lists the pipeline stages.
var Stages = []Stage{StageFinetune, StagePretrain}

// ParseStage parses a stage name.
func ParseStage(s string) (Stage, error) {
	for _, v := range Stages {
		if string(v) == s {
			return v, nil
		}
	}
	return "", fmt.Errorf("unknown stage %q (want %s)", s, joinModes(Stages))
}

// String returns the stage's name.
func (s Stage) String() string { return string(s) }

// Set parses v into s (flag.Value).
func (s *Stage) Set(v string) error { return setMode(s, v, ParseStage) }

// Order is the order of width and depth pruning in a pipeline.
type Order string

// Pruning orders.
const (
	OrderWidthDepth Order = "width-depth"
	OrderDepthWidth Order = "depth-width"
	OrderWidth      Order = "width" // width only, solved for the same FLOPs target
)

// Orders lists the pruning orders.
var Orders = []Order{OrderWidthDepth, OrderDepthWidth, OrderWidth}

// ParseOrder parses an order name.
func ParseOrder(s string) (Order, error) {
	for _, v := range Orders {
		if string(v) == s {
			return v, nil
		}
	}
	return "", fmt.Errorf("unknown order %q (want %s)", s, joinModes(Orders))
}

// String returns the order's name.
func (o Order) String() string { return string(o) }

// Set parses s into o (flag.Value).
func (o *Order) Set(s string) error { return setMode(o, s, ParseOrder) }

// Engine is the forward used by the metrics that run the towers.
type Engine string

// Scoring engines (Options.Engine). The zero value EngineAuto resolves to
// EngineFast on the CPU backend and EngineRef on any other.
const (
	EngineAuto Engine = ""
	// EngineFast runs the layers of every evaluation (and the prefix
	// cache's layer steps) on package infer's packed engine: fused q/k/v,
	// fused epilogues, arenas, the items split over the threads, and the
	// last layer computed for the pooled rows only. Default on the CPU.
	EngineFast Engine = "fast"
	// EngineRef runs them with the reference forward (nn.Block.Forward on
	// the ops backend). Default when ops' backend is not the CPU (--device
	// cuda), where the reference forward runs on the device.
	EngineRef Engine = "ref"
	// EngineCUDA and EngineCUDATF32 run them device-resident on the GPU
	// (cuda.Suffix: the prefix cache stays on the device), matrix products
	// in fp32 or TF32. They are what EngineAuto resolves to when
	// Options.GPU is set (mope score --device cuda|cuda:tf32), recorded in
	// the settings; --engine does not name them.
	EngineCUDA     Engine = "cuda"
	EngineCUDATF32 Engine = "cuda:tf32"
)

// ParseEngine parses "fast", "ref", or "" / "auto" (EngineAuto).
func ParseEngine(s string) (Engine, error) {
	switch s {
	case "", "auto":
		return EngineAuto, nil
	case string(EngineFast), string(EngineRef):
		return Engine(s), nil
	}
	return "", fmt.Errorf("unknown engine %q (want fast, ref or auto)", s)
}

// String returns the engine's name ("auto" for EngineAuto).
func (e Engine) String() string {
	if e == EngineAuto {
		return "auto"
	}
	return string(e)
}

// Set parses s into e (flag.Value).
func (e *Engine) Set(s string) error { return setMode(e, s, ParseEngine) }

func setMode[T any](p *T, s string, parse func(string) (T, error)) error {
	v, err := parse(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

func joinModes[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}
