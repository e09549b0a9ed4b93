package main

// The flag vocabulary shared by every command (docs/cli.md). Each helper
// registers one flag with its one meaning and default rule; commands add
// their own words to the usage text but never change the meaning. The old
// spellings of renamed flags stay accepted for one release through
// deprecatedFlag, with a one-line warning. TestFlagVocabulary walks every
// command's flag set and fails on an inconsistency.

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/cuda"
	"github.com/mopeclip/mopeclip/mope"
)

// VocabEnv names the environment variable that is the default of --vocab.
const VocabEnv = "MOPECLIP_VOCAB"

// modelFlag registers --model DIR, a model directory in Hugging Face layout.
func modelFlag(fs *flag.FlagSet, usage string) *string {
	if usage == "" {
		usage = "model `DIR` (Hugging Face layout)"
	}
	return fs.String("model", "", usage)
}

// dataFlag registers --data: a dataset file, an image-folder directory or
// the word "shapes" (the built-in world).
func dataFlag(fs *flag.FlagSet, def, usage string) *string {
	return fs.String("data", def, usage)
}

// splitFlag registers --split, a dataset split (names joined by , or +, or
// all). It never means anything else.
func splitFlag(fs *flag.FlagSet, def, usage string) *string {
	return fs.String("split", def, usage)
}

// limitFlag registers --limit N: use the first N images (their captions
// too); 0 means all, everywhere (for the procedural shapes world, "all" is
// the split's default size). Negative values are rejected by checkLimit.
func limitFlag(fs *flag.FlagSet, def int, usage string) *int {
	return fs.Int("limit", def, usage+" (0: all)")
}

// checkLimit rejects a negative --limit.
func checkLimit(n int) error {
	if n < 0 {
		return fmt.Errorf("%w: --limit must be 0 (all) or positive, got %d", errUsage, n)
	}
	return nil
}

// vocabFlag registers --vocab PATH (a tokenizer: a directory with
// vocab.json and merges.txt, or OpenAI's bpe_simple_vocab_16e6.txt.gz),
// whose default is $MOPECLIP_VOCAB, and its old spelling --tokenizer.
func vocabFlag(fs *flag.FlagSet, usage string) *string {
	p := fs.String("vocab", os.Getenv(VocabEnv), usage+" (default $"+VocabEnv+")")
	deprecatedFlag(fs, "tokenizer", "vocab")
	return p
}

// outFlag registers --out, where results go.
func outFlag(fs *flag.FlagSet, def, usage string) *string {
	return fs.String("out", def, usage)
}

// seedFlag registers --seed, the seed of everything random a command does.
func seedFlag(fs *flag.FlagSet, def uint64, usage string) *uint64 {
	return fs.Uint64("seed", def, usage)
}

// threadsFlag registers --threads N: worker threads (0: GOMAXPROCS).
func threadsFlag(fs *flag.FlagSet, usage string) *int {
	if usage == "" {
		usage = "worker threads"
	}
	return fs.Int("threads", 0, usage+" (0: GOMAXPROCS)")
}

// quietFlag registers --quiet: no progress on stderr (errors and warnings
// still go there).
func quietFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("quiet", false, "no progress on stderr")
}

// jsonFlag registers --json: print the result as one JSON document on
// stdout (naming the model and the settings) instead of text.
func jsonFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("json", false, "print the result as one JSON object on stdout")
}

// towerFlag registers --tower vision|text|both (comma lists too; the old
// "image" is accepted for vision, with a warning).
func towerFlag(fs *flag.FlagSet, def clip.TowerSet, usage string) *clip.TowerSet {
	v := &towerValue{set: def, warn: fs.Output()}
	fs.Var(v, "tower", usage)
	return &v.set
}

// towerValue is the flag.Value of --tower: clip.TowerSet plus the warning
// for deprecated aliases.
type towerValue struct {
	set  clip.TowerSet
	warn io.Writer
}

func (v *towerValue) String() string {
	if v == nil {
		return ""
	}
	return v.set.String()
}

func (v *towerValue) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		if t, ok := clip.TowerAliases[strings.TrimSpace(f)]; ok {
			fmt.Fprintf(v.warn, "mope: warning: --tower %s is deprecated, use %s\n", strings.TrimSpace(f), t)
		}
	}
	return v.set.Set(s)
}

// engineFlag registers --engine auto|fast|ref: the CPU forward. auto is
// the fast engine (package infer) on the CPU and the reference forward on
// the ops backend of --device cuda where a command runs one.
func engineFlag(fs *flag.FlagSet) *mope.Engine {
	e := new(mope.Engine)
	fs.Var(e, "engine", "forward: `auto|fast|ref`: fast is package infer (packed weights, fused kernels; equal to ref to float32 rounding), ref the reference ops forward; auto: fast on the CPU, ref on the ops backend of --device cuda")
	return e
}

// cpuEngine resolves --engine for commands that run the CPU forward (auto:
// fast).
func cpuEngine(e mope.Engine) mope.Engine {
	if e == mope.EngineAuto {
		return mope.EngineFast
	}
	return e
}

// deviceFlag adds --device to fs (a cuda.Device, validated when parsed, so
// a bad value is a usage error before anything is loaded or opened): "cpu"
// (default), "cuda" (fp32 on the GPU) or "cuda:tf32" (matrix products on
// tensor cores). Inference (embed, eval, bench) and MoPE scoring run the
// towers device-resident (openGPUTowers, encoderDevice, mope.Options.GPU);
// training swaps the ops backend (useDevice).
func deviceFlag(fs *flag.FlagSet) *cuda.Device {
	d := new(cuda.Device)
	fs.Var(d, "device", "where it runs: `cpu|cuda|cuda:tf32` (embed, eval, bench: GPU-resident towers; score, and the scoring of pipeline and demo: GPU-resident towers with the prefix cache on the device; pretrain, distill and the training inside pipeline and demo: the device-resident GPU ops backend, whole steps on the device; demo then builds one model at a time); cuda needs a binary built with -tags cuda (make mope-cuda)")
	return d
}

// aliasValue is a deprecated spelling of another flag: setting it sets the
// other flag and warns once per use.
type aliasValue struct {
	target   flag.Value
	old, new string
	warn     io.Writer
}

func (a *aliasValue) String() string {
	if a == nil || a.target == nil {
		return ""
	}
	return a.target.String()
}

func (a *aliasValue) Set(s string) error {
	fmt.Fprintf(a.warn, "mope: warning: --%s is deprecated, use --%s (the old spelling goes in the next release)\n", a.old, a.new)
	return a.target.Set(s)
}

func (a *aliasValue) IsBoolFlag() bool {
	b, ok := a.target.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// deprecatedFlag registers old as a deprecated alias of the flag named
// new, which must already be registered. Help lists it under "deprecated".
func deprecatedFlag(fs *flag.FlagSet, old, new string) {
	f := fs.Lookup(new)
	if f == nil {
		panic("mope: deprecatedFlag: no flag --" + new)
	}
	fs.Var(&aliasValue{target: f.Value, old: old, new: new, warn: fs.Output()}, old, "deprecated spelling of --"+new)
}

// isAlias reports whether f is a deprecated spelling.
func isAlias(f *flag.Flag) (*aliasValue, bool) {
	a, ok := f.Value.(*aliasValue)
	return a, ok
}

// printFlags writes the help of fs's flags to w: the current ones as
// flag.PrintDefaults does, then the deprecated spellings in one line.
func printFlags(fs *flag.FlagSet, w io.Writer) {
	cur := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	cur.SetOutput(w)
	var old []string
	fs.VisitAll(func(f *flag.Flag) {
		if a, ok := isAlias(f); ok {
			old = append(old, fmt.Sprintf("--%s (use --%s)", a.old, a.new))
			return
		}
		cur.Var(f.Value, f.Name, f.Usage)
		cur.Lookup(f.Name).DefValue = f.DefValue
	})
	cur.PrintDefaults()
	if len(old) > 0 {
		sort.Strings(old)
		fmt.Fprintf(w, "\ndeprecated spellings, accepted with a warning until the next release: %s\n", strings.Join(old, ", "))
	}
}

// flagSet returns whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
		if a, ok := isAlias(f); ok && a.new == name {
			set = true
		}
	})
	return set
}

// requireFlags returns a usage error naming the required flags of fs that
// are empty strings.
func requireFlags(fs *flag.FlagSet, names ...string) error {
	var missing []string
	for _, n := range names {
		if f := fs.Lookup(n); f != nil && f.Value.String() == "" {
			missing = append(missing, "--"+n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	verb := "is"
	if len(missing) > 1 {
		verb = "are"
	}
	return fmt.Errorf("%w: %s %s required", errUsage, strings.Join(missing, ", "), verb)
}

// noArgs returns a usage error when fs has positional arguments left.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}
