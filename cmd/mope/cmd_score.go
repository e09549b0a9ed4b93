package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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
			"        --metric mope|magnitude|taylor|random|unimodal [--limit N] [--shard I/N] [--dtype f32|bf16|int8] --out scores.json\n" +
			"  mope score merge A.json B.json ... --out scores.json\n\n" +
			"  --data shapes scores on the built-in shapes world's calib split (in memory).\n" +
			"  FFN groups: " + mope.GroupRule + ".\n" +
			"  Shard I of N (0 <= I < N) scores the modules with id % N == I; 'mope score merge' of all N\n" +
			"  shard files equals a single run exactly (see docs/sharding.md).",
		run: runScore,
	})
}

func runScore(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "merge" {
		return runScoreMerge(args[1:], stdout, stderr)
	}
	c := commands["score"]
	fl := newFlags(c, stderr)
	model := fl.String("model", "", "model `DIR` (Hugging Face layout)")
	data := fl.String("data", "", "calibration `FILE` (Karpathy .json, .jsonl, .csv) or 'shapes'")
	split := fl.String("split", "", "dataset split(s) to use (default: all)")
	tower := fl.String("tower", "both", "`vision|text|both`")
	modules := fl.String("modules", "heads,ffn,layers", "module kinds: `heads,ffn,layers`")
	metric := fl.String("metric", "mope", "`mope|magnitude|taylor|random|unimodal`")
	limit := fl.Int("limit", 0, "use the first `N` images and their captions (0: all; shapes: 1000)")
	shard := fl.String("shard", "", "score shard `I/N` only (0 <= I < N)")
	out := fl.String("out", "", "output scores `FILE` (JSON); also the checkpoint")
	groups := fl.Int("groups", mope.DefaultGroups, "FFN neuron groups per layer")
	batch := fl.Int("batch", 0, "items per forward batch (0: 32 images / 128 captions)")
	seed := fl.Uint64("seed", 0, "seed of the random metric")
	resume := fl.Bool("resume", false, "continue the run checkpointed in --out (same settings and shard)")
	every := fl.Duration("checkpoint-every", time.Minute, "write the partial results to --out this often")
	tokPath := fl.String("tokenizer", os.Getenv("MOPECLIP_VOCAB"), "tokenizer `PATH`: a dir with vocab.json+merges.txt or OpenAI's bpe .txt.gz (default: the model dir, then $MOPECLIP_VOCAB)")
	quiet := fl.Bool("quiet", false, "no progress bar")
	engine := fl.String("engine", "", "`fast|ref`: forward of the mope/unimodal evaluations: fast (package infer; default on the CPU) or ref (reference ops forward; default with --device cuda)")
	threads := fl.Int("threads", 0, "fast engine workers (0: GOMAXPROCS)")
	dtype := fl.String("dtype", "f32", "`f32|bf16|int8`: weight type of the fast engine's GEMMs for the mope/unimodal evaluations (bf16, int8: faster, approximate scores)")
	device := deviceFlag(fl)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	release, err := useDevice(*device, stderr)
	if err != nil {
		return err
	}
	defer release()
	if fl.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fl.Arg(0))
	}
	if *model == "" || *out == "" {
		return fmt.Errorf("%w: --model and --out are required", errUsage)
	}
	towers, err := mope.ParseTowers(*tower)
	if err != nil {
		return fmt.Errorf("%w: --tower: %v", errUsage, err)
	}
	kinds, err := mope.ParseKinds(*modules)
	if err != nil {
		return fmt.Errorf("%w: --modules: %v", errUsage, err)
	}
	dt, err := infer.ParseDType(*dtype)
	if err != nil {
		return fmt.Errorf("%w: --dtype: %v", errUsage, err)
	}
	if _, _, err := mope.ParseShard(*shard); err != nil {
		return fmt.Errorf("%w: --shard: %v", errUsage, err)
	}
	needData := *metric == "mope" || *metric == "taylor" || *metric == "unimodal"
	if needData && *data == "" {
		return fmt.Errorf("%w: --metric %s needs --data FILE (or --data shapes)", errUsage, *metric)
	}
	m, err := clip.Load(*model)
	if err != nil {
		return err
	}
	var cal *mope.Calib
	if needData {
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
	o := mope.Options{Metric: *metric, Towers: towers, Kinds: kinds, Groups: *groups, Batch: *batch, Seed: *seed,
		Shard: *shard, Data: *data, Split: *split, Limit: *limit, Checkpoint: *out, CheckpointEvery: *every,
		Engine: *engine, Threads: *threads, DType: dt}
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
	f, err := mope.Score(m, cal, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d of %d modules scored (%s", *out, len(f.Scores), f.Total, *metric)
	if *metric == "mope" {
		fmt.Fprintf(stdout, ", baseline Z %.2f", f.Baseline)
	}
	if f.Shard != "" {
		fmt.Fprintf(stdout, ", shard %s", f.Shard)
	}
	fmt.Fprintln(stdout, ")")
	return nil
}

// scoreTokenizer loads the tokenizer of a model dir, or the one at path.
func scoreTokenizer(model, path string) (*tokenizer.Tokenizer, error) {
	if _, err := os.Stat(filepath.Join(model, clip.VocabFile)); err == nil {
		return mope.LoadTokenizer(model, "")
	}
	if path == "" {
		return nil, fmt.Errorf("%s has no %s/%s: pass --tokenizer (a dir with them, or bpe_simple_vocab_16e6.txt.gz)", model, clip.VocabFile, clip.MergesFile)
	}
	return mope.LoadTokenizer(model, path)
}

func runScoreMerge(args []string, stdout, stderr io.Writer) error {
	c := &command{name: "score merge", summary: "merge the shard files of one scoring run into the file a single run writes", usage: "A.json B.json ... --out scores.json"}
	fl := newFlags(c, stderr)
	out := fl.String("out", "", "merged scores `FILE`")
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
	fmt.Fprintf(stdout, "%s: %d modules from %d files\n", *out, len(merged.Scores), len(files))
	return nil
}
