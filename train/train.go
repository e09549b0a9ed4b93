// Package train is mopeclip's generic training loop: AdamW with a linear
// warm-up and cosine decay, global gradient-norm clipping, a progress line,
// periodic validation logged to a training curve, and atomic checkpoints from
// which a run resumes bit-identically.
//
// The loop owns the optimiser step; the caller supplies a Step function that
// runs the forward and backward passes of one batch (accumulating into the
// parameters' gradients) and returns the loss. Determinism is the caller's
// side of the contract: the batch of step s must be a function of (seed, s)
// only, never of process history, so that a resumed run sees the batches of
// a straight one. Given that, N straight steps and k steps + resume + N−k
// steps give bit-identical parameters, optimiser state and curve (for a fixed
// GOMAXPROCS and kernel variant).
//
// On a resident ops backend (ops.Resident: a GPU keeping the tensors in its
// memory) the loop keeps the parameters, gradients and optimiser state there
// (ops.Keep), ends every step with ops.EndStep, and brings the host copies up
// to date (ops.Sync) only before a checkpoint or a validation.
package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mopeclip/mopeclip/internal/atomicfile"
	"github.com/mopeclip/mopeclip/internal/progress"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/ops"
)

// CheckpointFile is the name of the checkpoint inside Config.Dir.
const CheckpointFile = "checkpoint.safetensors"

// CurveFile is the name of the training curve (CSV) inside Config.Dir.
const CurveFile = "curve.csv"

// DataState is the position of a training data stream (Config.Data).
type DataState interface {
	// State returns the position after the batches drawn so far.
	State() map[string]string
	// Restore returns to a position State returned, before step step.
	Restore(ctx context.Context, state map[string]string, step int) error
}

// dataPrefix marks the checkpoint entries of Config.Data.
const dataPrefix = "train.data."

// accPrefix marks the checkpoint entries holding the curve's running means.
const accPrefix = "train.acc."

// ErrInterrupted is returned when the context is cancelled; a checkpoint of
// the last completed step has been written.
var ErrInterrupted = errors.New("train: interrupted")

// ErrStopped is returned when the run stops at Config.StopAt, as asked; a
// checkpoint of the last completed step has been written.
var ErrStopped = errors.New("train: stopped at the requested step")

// ErrNotFinite is returned when the loss or the gradient stays non-finite
// for MaxNonFinite steps in a row (a diverged run: lower the learning rate).
var ErrNotFinite = errors.New("train: the loss is not finite")

// MaxNonFinite is the number of consecutive non-finite steps after which a
// run stops with ErrNotFinite (a single one is skipped and logged).
const MaxNonFinite = 10

// StepFunc runs the forward and backward passes of training step step (0-based)
// and returns its loss and optional extra scalars (logged in the curve). The
// gradients are zero on entry; the loop clips them and steps the optimiser.
type StepFunc func(step int) (loss float64, scalars map[string]float64, err error)

// ValFunc evaluates the model after step steps and returns metrics for the
// curve (e.g. validation recall). It must not change the parameters.
type ValFunc func(step int) (map[string]float64, error)

// Config configures a run.
type Config struct {
	// Steps is the total number of optimiser steps.
	Steps int
	// Warmup, LR and MinLR define the schedule (nn.CosineSchedule).
	Warmup    int
	LR, MinLR float64
	// ClipNorm is the global gradient-norm clip (0: none).
	ClipNorm float64
	// Items is the number of items (pairs) per step, for the items/s rate.
	Items int
	// Dir holds the checkpoint and the curve; "" disables both.
	Dir string
	// CkptEvery writes a checkpoint every that many steps (0: only at the end
	// and on interruption).
	CkptEvery int
	// ValEvery validates every that many steps and at the end (0: only at the end).
	ValEvery int
	// LogEvery adds a training row (mean loss since the last row) to the
	// curve every that many steps (default 10).
	LogEvery int
	// Resume continues from Dir's checkpoint if there is one.
	Resume bool
	// Data, when set, is the position of a streaming data source: its
	// State is stored in every checkpoint and, on resume, handed back to
	// Restore before the first step (for sources that are read in order
	// and cannot seek by step alone, such as tar shards through a shuffle
	// buffer).
	Data DataState
	// Extra is stored in the checkpoint; on resume the stored values must be
	// equal (it guards against resuming with other hyper-parameters).
	Extra map[string]string
	// Log receives the progress (nil: none) through internal/progress: a
	// bar on a terminal, timestamped lines elsewhere; ProgressEvery is the
	// minimum time between two lines (default progress.DefaultEvery).
	Log           io.Writer
	ProgressEvery time.Duration
	// StopAt, when > 0, stops the run before step StopAt with a checkpoint
	// and ErrStopped, to train in several sittings.
	StopAt int
}

// Result summarises a finished run.
type Result struct {
	Start, Steps int // first step run in this process, total steps
	Loss         float64
	Val          map[string]float64 // last validation
	Curve        *Curve
	Elapsed      time.Duration
	Skipped      int // steps whose gradient was not finite (not applied)
}

// Run trains params with opt (which must optimise params) for cfg.Steps
// steps. Cancelling ctx (e.g. on SIGINT) stops the run: the loop writes a
// checkpoint of the last completed step and returns ErrInterrupted.
func Run(ctx context.Context, cfg Config, params []*nn.Param, opt *nn.AdamW, step StepFunc, val ValFunc) (*Result, error) {
	if cfg.Steps <= 0 {
		return nil, fmt.Errorf("train: %d steps", cfg.Steps)
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = 10
	}
	if ctx == nil {
		ctx = context.Background()
	}
	sched := nn.CosineSchedule{Warmup: cfg.Warmup, Total: cfg.Steps, Peak: cfg.LR, Min: cfg.MinLR}
	res := &Result{Steps: cfg.Steps, Curve: &Curve{}}
	ckpt, curvePath := "", ""
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, err
		}
		ckpt, curvePath = filepath.Join(cfg.Dir, CheckpointFile), filepath.Join(cfg.Dir, CurveFile)
		// A run killed while writing left its temporary files (21 MB for
		// a small model): the run that owns Dir now removes them.
		for _, p := range []string{ckpt, curvePath} {
			if _, err := atomicfile.RemoveStale(p); err != nil {
				return nil, fmt.Errorf("train: %w", err)
			}
		}
	}
	start := 0
	// The running means of the next curve row are part of the state.
	var sum float64
	var n int
	var scalarSum map[string]float64
	if cfg.Resume && ckpt != "" {
		if _, err := os.Stat(ckpt); err == nil {
			s, extra, err := nn.LoadCheckpoint(ckpt, params, opt)
			if err != nil {
				return nil, err
			}
			for k, v := range cfg.Extra {
				if extra[k] != v {
					return nil, fmt.Errorf("train: cannot resume %s: it was written with %s=%q, this run has %q", ckpt, k, extra[k], v)
				}
			}
			if s > cfg.Steps {
				return nil, fmt.Errorf("train: checkpoint %s is at step %d, beyond the %d steps of this run", ckpt, s, cfg.Steps)
			}
			start = s
			if cfg.Data != nil {
				state := map[string]string{}
				for k, v := range extra {
					if name, ok := strings.CutPrefix(k, dataPrefix); ok {
						state[name] = v
					}
				}
				if err := cfg.Data.Restore(ctx, state, s); err != nil {
					return nil, fmt.Errorf("train: resuming %s: %w", ckpt, err)
				}
			}
			n, _ = strconv.Atoi(extra[accPrefix+"n"])
			sum, _ = strconv.ParseFloat(extra[accPrefix+"loss"], 64)
			for k, v := range extra {
				if name, ok := strings.CutPrefix(k, accPrefix+"scalar."); ok {
					if scalarSum == nil {
						scalarSum = map[string]float64{}
					}
					scalarSum[name], _ = strconv.ParseFloat(v, 64)
				}
			}
			if c, err := ReadCurve(curvePath); err == nil {
				res.Curve = c.Until(start)
			}
			logf(cfg.Log, "resuming from %s at step %d/%d\n", ckpt, start, cfg.Steps)
		}
	}
	res.Start = start
	// A resident backend keeps the optimiser's state on the device; the
	// host copies (just loaded on resume) are newer than any device copy.
	state := opt.State()
	ops.Wrote(state...)
	ops.Keep(state...)
	var hostState [][]float32 // what checkpoints and validation read
	for i, p := range opt.Params() {
		m, v := opt.Moments(i)
		hostState = append(hostState, p.Value.Data, m, v)
	}
	save := func(s int) error {
		if ckpt == "" {
			return nil
		}
		ops.Sync(hostState...)
		extra := map[string]string{}
		for k, v := range cfg.Extra {
			extra[k] = v
		}
		if cfg.Data != nil {
			for k, v := range cfg.Data.State() {
				extra[dataPrefix+k] = v
			}
		}
		extra[accPrefix+"n"] = strconv.Itoa(n)
		extra[accPrefix+"loss"] = strconv.FormatFloat(sum, 'g', -1, 64)
		for k, v := range scalarSum {
			extra[accPrefix+"scalar."+k] = strconv.FormatFloat(v, 'g', -1, 64)
		}
		if err := nn.SaveCheckpoint(ckpt, params, opt, s, extra); err != nil {
			return err
		}
		return res.Curve.Write(curvePath)
	}

	t0 := time.Now()
	meter := progress.New(cfg.Log, "step", cfg.Steps, progress.Options{Every: cfg.ProgressEvery, Done: start,
		Unit: "items/s", Scale: float64(max(cfg.Items, 1)), Final: true})
	nonFinite := 0 // consecutive non-finite steps
	for s := start; s < cfg.Steps; s++ {
		var stopped error
		switch {
		case cfg.StopAt > 0 && s >= cfg.StopAt:
			stopped = ErrStopped
		case ctx.Err() != nil:
			stopped = ErrInterrupted
		}
		if stopped != nil {
			if err := save(s); err != nil {
				return res, err
			}
			meter.Logf("stopped: checkpoint at step %d/%d written to %s", s, cfg.Steps, ckpt)
			return res, stopped
		}
		opt.ZeroGrad()
		loss, scalars, err := step(s)
		if err != nil {
			return res, fmt.Errorf("train: step %d: %w", s, err)
		}
		norm := nn.GradNorm(params)
		lr := sched.LR(s)
		if math.IsNaN(norm) || math.IsInf(norm, 0) || math.IsNaN(loss) || math.IsInf(loss, 0) {
			res.Skipped++
			nonFinite++
			meter.Logf("step %d: non-finite loss %v / gradient norm %v, step skipped", s, loss, norm)
			if nonFinite >= MaxNonFinite {
				return res, fmt.Errorf("%w for %d steps in a row (steps %d to %d; learning rate %.3g): the run diverged, lower the learning rate; nothing was saved from this run",
					ErrNotFinite, nonFinite, s-nonFinite+1, s, lr)
			}
		} else {
			nonFinite = 0
			if cfg.ClipNorm > 0 {
				nn.ClipGradNorm(params, cfg.ClipNorm)
			}
			opt.Step(lr)
		}
		opt.ZeroGrad()
		res.Loss = loss
		sum += loss
		n++
		for k, v := range scalars {
			if scalarSum == nil {
				scalarSum = map[string]float64{}
			}
			scalarSum[k] += v
		}
		done := s + 1
		if done%cfg.LogEvery == 0 || done == cfg.Steps {
			row := Row{"step": float64(done), "lr": lr, "loss": sum / float64(n), "grad_norm": norm}
			for k, v := range scalarSum {
				row[k] = v / float64(n)
			}
			res.Curve.Add(row)
			sum, n, scalarSum = 0, 0, nil
		}
		if val != nil && ((cfg.ValEvery > 0 && done%cfg.ValEvery == 0) || done == cfg.Steps) {
			ops.Sync(hostState...)
			m, err := val(done)
			if err != nil {
				return res, fmt.Errorf("train: validation at step %d: %w", done, err)
			}
			res.Val = m
			row := Row{"step": float64(done)}
			for k, v := range m {
				row["val_"+k] = v
			}
			res.Curve.Add(row)
			meter.Logf("step %d/%d validation: %s", done, cfg.Steps, fmtMetrics(m))
		}
		if (cfg.CkptEvery > 0 && done%cfg.CkptEvery == 0) || done == cfg.Steps {
			if err := save(done); err != nil {
				return res, err
			}
		}
		meter.Set(done, fmt.Sprintf("loss %.4f  lr %.2e  |g| %.3g", loss, lr, norm))
		ops.EndStep()
	}
	ops.Sync(hostState...)
	meter.Finish("")
	res.Elapsed = time.Since(t0)
	return res, nil
}

func logf(w io.Writer, format string, a ...any) {
	if w != nil {
		fmt.Fprintf(w, format, a...)
	}
}

func fmtMetrics(m map[string]float64) string {
	keys := sortedKeys(m)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + strconv.FormatFloat(m[k], 'f', 2, 64)
	}
	return strings.Join(parts, "  ")
}
