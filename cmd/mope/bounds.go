package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/train"
)

// Bounds on the numeric flags a user can get absurdly wrong (a negative
// count, a NaN learning rate, a ratio above 1, a size that cannot be
// allocated): each is a usage error naming the flag, found before anything
// is loaded, instead of a panic, a silent default or a run that finishes
// with garbage.

// intAtLeast is an integer flag and its smallest allowed value.
type intAtLeast struct {
	name   string
	v, min int
}

// checkInts returns a usage error for the first flag below its minimum.
func checkInts(bs ...intAtLeast) error {
	for _, b := range bs {
		if b.v >= b.min {
			continue
		}
		if b.min == 0 {
			return fmt.Errorf("%w: --%s must be 0 or positive, got %d", errUsage, b.name, b.v)
		}
		return fmt.Errorf("%w: --%s must be at least %d, got %d", errUsage, b.name, b.min, b.v)
	}
	return nil
}

// floatRule is what a float flag may hold.
type floatRule int

const (
	nonNegative floatRule = iota // [0, +Inf)
	positive                     // (0, +Inf)
	ratio                        // [0, 1]
)

func (r floatRule) String() string {
	switch r {
	case positive:
		return "a finite number > 0"
	case ratio:
		return "a number in [0, 1]"
	}
	return "a finite number >= 0"
}

// floatFlag is a float flag and its rule.
type floatFlag struct {
	name string
	v    float64
	rule floatRule
}

// checkFloats returns a usage error for the first flag that breaks its
// rule (NaN and ±Inf break every rule).
func checkFloats(fs ...floatFlag) error {
	for _, f := range fs {
		ok := !math.IsNaN(f.v) && !math.IsInf(f.v, 0) && f.v >= 0
		switch f.rule {
		case positive:
			ok = ok && f.v > 0
		case ratio:
			ok = ok && f.v <= 1
		}
		if !ok {
			return fmt.Errorf("%w: --%s must be %v, got %v", errUsage, f.name, f.rule, f.v)
		}
	}
	return nil
}

// checkOptimiser checks the optimiser flags shared by pretrain, distill and
// pipeline.
func checkOptimiser(lr, minLR, wd, clipNorm float64) error {
	return checkFloats(floatFlag{"lr", lr, positive}, floatFlag{"min-lr", minLR, nonNegative},
		floatFlag{"wd", wd, nonNegative}, floatFlag{"clip", clipNorm, nonNegative})
}

// Upper bounds of sizes that are allocated at once.
const (
	maxImageSize  = 4096 // pixels a side: preprocess --size (a 4096² float32 input is 200 MB)
	maxBenchBatch = 4096 // bench --batch: items per forward pass
)

// modelInputFiles are the files of a model directory that loading reads:
// an --out naming one of them would overwrite the model.
var modelInputFiles = []string{clip.ConfigFile, clip.WeightsFile, clip.WeightsIndex, clip.OpenCLIPConfigFile, clip.OpenCLIPWeightsFile,
	clip.VocabFile, clip.MergesFile, clip.FastTokenizerFile, clip.TokenizerConfigFile, clip.SpecialTokensFile, clip.PreprocessorFile}

// refuseOverwritingInput refuses an --out file that is one of the command's
// inputs: a file given by a flag (flag name → path) or a file a model
// directory is loaded from (its config, weights, shards and tokenizer).
// Writing it would destroy what the command reads.
func refuseOverwritingInput(out string, files map[string]string, modelDirs map[string]string) error {
	if _, err := os.Stat(out); err != nil {
		return nil // nothing there to lose
	}
	for flag, f := range files {
		if f != "" && sameFile(out, f) {
			return fmt.Errorf("%w: --out %s is %s: writing it would destroy the input; choose another --out", errUsage, out, flag)
		}
	}
	for flag, dir := range modelDirs {
		if dir == "" {
			continue
		}
		names := modelInputFiles
		if shards, err := filepath.Glob(filepath.Join(dir, "*.safetensors")); err == nil {
			for _, s := range shards {
				names = append(names[:len(names):len(names)], filepath.Base(s))
			}
		}
		for _, name := range names {
			if sameFile(out, filepath.Join(dir, name)) {
				return fmt.Errorf("%w: --out %s is the %s of %s %s: writing it would destroy the model; choose another --out", errUsage, out, name, flag, dir)
			}
		}
	}
	return nil
}

// checkPNGOut refuses an --out that does not end in .png (a contact sheet
// written over dataset.json, say).
func checkPNGOut(out string) error {
	if !strings.EqualFold(filepath.Ext(out), ".png") {
		return fmt.Errorf("%w: --out %s: want a .png file name", errUsage, out)
	}
	return nil
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// removeEmptyRun undoes the empty directories a training run that failed
// (err, not an interruption or a --stop-at) made in an --out that did not
// exist before it (fresh): out/checkpoint and out, each only if empty.
func removeEmptyRun(out string, fresh bool, err error) {
	if err == nil || !fresh || isInterrupted(err) || errors.Is(err, train.ErrStopped) {
		return
	}
	os.Remove(filepath.Join(out, "checkpoint")) // fails, harmlessly, unless empty
	os.Remove(out)
}
