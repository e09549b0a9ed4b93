package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/mope"
)

// The score command: MoPE and baseline importance scores of heads, FFN
// neuron groups and layers, sharded and resumable; and score merge.

func init() {
	register(&command{
		name:    "score",
		summary: "score heads, FFN neuron groups and layers by MoPE or a baseline metric (sharded, resumable); 'score merge' joins shards",
		usage: "--model DIR --data FILE --tower vision|text|both --modules heads,ffn,layers\n" +
			"        --metric mope|magnitude|taylor|random|unimodal [--limit N] [--shard I/N] [--dtype f32|bf16|int8 [--rescore SPEC]] --out scores.json\n" +
			"  mope score merge A.json B.json ... --out scores.json\n\n" +
			"  --data shapes scores on the built-in shapes world's calib split (in memory).\n" +
			"  FFN groups: " + mope.GroupRule + ".\n" +
			"  Shard I of N (0 <= I < N) scores the modules with id % N == I; 'mope score merge' of all N\n" +
			"  shard files equals a single run exactly (see docs/sharding.md).\n\n" +
			"  --dtype bf16|int8 scores in two stages (--rescore plan, the default for --metric mope): the\n" +
			"  baseline and the unpruned towers in float32, every module in the reduced type, then in float32\n" +
			"  again the modules whose reduced score lies within an error margin of a module on the other side\n" +
			"  of a keep/drop boundary of the plan of 'mope prune --width 0.5 --depth 0.5' (per layer: heads,\n" +
			"  FFN neurons; per tower: layers), until no such pair is left. The margin starts at 10 (bf16) or\n" +
			"  20 (int8) flipped image retrievals and grows to 1.25x the largest error of any rescored module.\n" +
			"  Rescored scores equal a float32 run's bit for bit, and that plan is float32's whenever no other\n" +
			"  module errs by more than the margin. --rescore width=R,depth=R[,global][,margin=P] names\n" +
			"  another plan (P: starting margin in recall points); --rescore none keeps every score reduced\n" +
			"  (faster; ranks can differ from float32's). See docs/lowprec-scoring.md.",
		run: runScore,
	})
}

func runScore(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "merge" {
		return runScoreMerge(args[1:], stdout, stderr)
	}
	c := commands["score"]
	fl := newFlags(c, stderr)
	model := modelFlag(fl, "")
	data := dataFlag(fl, "", "calibration `FILE` (Karpathy .json, .jsonl, .csv) or 'shapes'")
	split := splitFlag(fl, "", "dataset split(s) to use (default: all)")
	towers := towerFlag(fl, clip.BothTowers, "towers to score: `vision|text|both`")
	modules := fl.String("modules", "heads,ffn,layers", "module kinds: `heads,ffn,layers`")
	metric := mope.MetricMoPE
	fl.Var(&metric, "metric", "importance metric: `mope|magnitude|taylor|random|unimodal`")
	limit := limitFlag(fl, 0, "use the first `N` images and their captions (shapes: 1000)")
	shard := fl.String("shard", "", "score shard `I/N` only (0 <= I < N)")
	out := outFlag(fl, "", "output scores `FILE` (JSON); also the checkpoint")
	groups := fl.Int("groups", mope.DefaultGroups, "FFN neuron groups per layer")
	batch := fl.Int("batch", 0, "items per forward batch (0: 32 images / 128 captions)")
	seed := seedFlag(fl, 0, "seed of the random metric")
	resume := fl.Bool("resume", false, "continue the run checkpointed in --out (same settings and shard)")
	every := fl.Duration("checkpoint-every", time.Minute, "write the partial results to --out this often (a duration: scoring has no steps)")
	tokPath := vocabFlag(fl, "tokenizer `PATH` when the model dir has none: a dir with vocab.json+merges.txt or OpenAI's bpe .txt.gz")
	quiet := quietFlag(fl)
	engine := engineFlag(fl)
	threads := threadsFlag(fl, "fast engine workers")
	dtype := fl.String("dtype", "f32", "`f32|bf16|int8`: weight type of the fast engine's GEMMs for the mope/unimodal evaluations (bf16, int8: faster; see --rescore)")
	rescore := fl.String("rescore", "plan", "with --dtype bf16|int8 and --metric mope: `plan|none|width=R,depth=R[,global][,margin=P]`: rescore in float32 the modules that can change that prune plan")
	device := deviceFlag(fl)
	asJSON := jsonFlag(fl)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if err := noArgs(fl); err != nil {
		return err
	}
	if err := requireFlags(fl, "model", "out"); err != nil {
		return err
	}
	if err := checkLimit(*limit); err != nil {
		return err
	}
	kinds, err := mope.ParseKinds(*modules)
	if err != nil {
		return fmt.Errorf("%w: --modules: %v", errUsage, err)
	}
	dt, err := infer.ParseDType(*dtype)
	if err != nil {
		return fmt.Errorf("%w: --dtype: %v", errUsage, err)
	}
	rs, err := mope.ParseRescore(*rescore)
	if err != nil {
		return fmt.Errorf("%w: --rescore: %v", errUsage, err)
	}
	if !flagSet(fl, "rescore") && (metric != mope.MetricMoPE || *shard != "") {
		rs = nil // the default applies to whole mope runs only
	}
	if flagSet(fl, "rescore") && rs != nil && (dt == infer.F32 || metric != mope.MetricMoPE) {
		return fmt.Errorf("%w: --rescore %s needs --dtype bf16|int8 and --metric mope (got --dtype %v --metric %v)", errUsage, *rescore, dt, metric)
	}
	if _, _, err := mope.ParseShard(*shard); err != nil {
		return fmt.Errorf("%w: --shard: %v", errUsage, err)
	}
	if metric.NeedsData() && *data == "" {
		return fmt.Errorf("%w: --metric %s needs --data FILE (or --data shapes)", errUsage, metric)
	}
	if err := checkInts(intAtLeast{"groups", *groups, 0}, intAtLeast{"batch", *batch, 0}); err != nil {
		return err
	}
	if err := checkOutFile(*out); err != nil {
		return err
	}
	if err := refuseOverwritingInput(*out, map[string]string{"--data": *data, "--vocab": *tokPath}, map[string]string{"--model": *model}); err != nil {
		return err
	}
	defer tightenGC(os.Getenv)()
	defer noHugePages()()
	sess, release, err := claimOut(*out, *device, stderr)
	if err != nil {
		return err
	}
	defer release()
	m, err := openModel(*model, stderr)
	if err != nil {
		return err
	}
	if !metric.NeedsGrads() {
		// Scoring never trains: without the gradient buffers (as large as
		// the weights) the collector's target (GOGC) shrinks with the live
		// heap, and so does the peak (docs/perf-limits-2026-12-06.md).
		dropGrads(m)
	}
	var cal *mope.Calib
	if metric.NeedsData() {
		tok, err := scoreTokenizer(*model, *tokPath)
		if err != nil {
			return err
		}
		start := time.Now()
		if cal, err = mope.LoadCalib(m, *data, *split, *limit, tok); err != nil {
			return err
		}
		if !*quiet {
			fmt.Fprintf(stderr, "calibration: %d images, %d captions (text length %d) in %s\n", cal.NImg, cal.NTxt, cal.T, time.Since(start).Round(time.Millisecond))
		}
	}
	o := mope.Options{Metric: metric, Towers: *towers, Kinds: kinds, Groups: *groups, Batch: *batch, Seed: *seed,
		Shard: *shard, Data: *data, Split: *split, Limit: *limit, Checkpoint: *out, CheckpointEvery: *every,
		Engine: *engine, Threads: *threads, DType: dt, Rescore: rs, GPU: sess.gpu()}
	if !*quiet {
		o.Progress = stderr
	}
	if *resume {
		prev, err := mope.ReadScores(*out)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(stderr, "no %s yet: starting from scratch\n", *out)
		case err != nil:
			return err
		default:
			o.Resume = prev
			fmt.Fprintf(stderr, "resuming: %d modules already scored\n", len(prev.Scores))
		}
	}
	ctx, stop := signalContext()
	defer stop()
	f, err := mope.ScoreContext(ctx, m, cal, o)
	if err != nil {
		return reportStop(err, stderr, "score", args, "--resume", *out)
	}
	if *asJSON {
		return writeJSON(stdout, scoreReport{Out: *out, ModelDir: *model, Scored: len(f.Scores), ScoreFile: f})
	}
	fmt.Fprintf(stdout, "%s: %d of %d modules scored (%s", *out, len(f.Scores), f.Total, metric)
	if metric == mope.MetricMoPE {
		fmt.Fprintf(stdout, ", baseline Z %.2f", f.Baseline)
	}
	if f.Shard != "" {
		fmt.Fprintf(stdout, ", shard %s", f.Shard)
	}
	fmt.Fprintln(stdout, ")")
	if r := f.Rescored; r != nil {
		fmt.Fprintf(stdout, "%s rescoring for plan %s: %d of %d modules rescored in float32 (%d rounds; margin %.3g, largest reduced-precision error %.3g recall points)\n",
			f.Settings.DType, f.Settings.Rescore, r.Rescored, len(f.Scores), r.Rounds, r.Margin, r.MaxError)
	}
	return nil
}

// scoreTokenizer loads the tokenizer of a model dir, or the one at path.
func scoreTokenizer(model, path string) (*tokenizer.Tokenizer, error) {
	return modelTokenizer(model, path)
}

func runScoreMerge(args []string, stdout, stderr io.Writer) error {
	c := &command{name: "score merge", summary: "merge the shard files of one scoring run into the file a single run writes", usage: "A.json B.json ... --out scores.json"}
	fl := newFlags(c, stderr)
	out := outFlag(fl, "", "merged scores `FILE`")
	asJSON := jsonFlag(fl)
	pos, err := parseMixed(fl, args)
	if err != nil {
		return err
	}
	if *out == "" || len(pos) == 0 {
		return fmt.Errorf("%w: usage: mope score merge A.json B.json ... --out scores.json", errUsage)
	}
	var files []*mope.ScoreFile
	for _, p := range pos {
		f, err := mope.ReadScores(p)
		if err != nil {
			return err
		}
		files = append(files, f)
	}
	merged, err := mope.Merge(files)
	if err != nil {
		return fmt.Errorf("%v (files: %s)", err, strings.Join(pos, " "))
	}
	if err := mope.WriteScores(*out, merged); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, scoreReport{Out: *out, Scored: len(merged.Scores), ScoreFile: merged})
	}
	fmt.Fprintf(stdout, "%s: %d modules from %d files\n", *out, len(merged.Scores), len(files))
	return nil
}

// scoreReport is score --json and score merge --json: the file written
// (its settings name the model by path and fingerprint) and its scores.
type scoreReport struct {
	Out      string `json:"out"`
	ModelDir string `json:"model_dir,omitempty"` // settings.model is its fingerprint
	Scored   int    `json:"scored"`
	*mope.ScoreFile
}
