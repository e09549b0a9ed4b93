package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/internal/atomicfile"
	"github.com/mopeclip/mopeclip/mope"
)

// PruneReportFile is written next to a pruned model: what was done.
const PruneReportFile = "mopeclip_prune.json"

func init() {
	register(&command{
		name:    "prune",
		summary: "prune a model by importance scores: width (heads, FFN neurons) first, then depth (layers)",
		usage: "--model DIR --scores scores.json (--width R --depth R | --target-flops R | --target-params R) --out DIR\n" +
			"        [--global] [--tower vision|text|both] [--data FILE [--split S] [--limit N]] [--min-width 0.5]\n\n" +
			"  Width keeps round(R·n) heads and FFN neurons per layer by their scores (--global: per tower).\n" +
			"  Depth keeps round(R·L) layers: with --data (or a data-free metric: magnitude, random) the\n" +
			"  layers of the width-pruned model are rescored with the file's metric; otherwise the file's\n" +
			"  layer scores (computed on the unpruned model) are used.\n" +
			"  --target-flops R / --target-params R: the fraction of the pruned towers' GFLOPs (one image,\n" +
			"  one 77-token text) or parameters to keep; width and depth are solved: the deepest model whose\n" +
			"  largest fitting width (0.01 grid) is >= --min-width, else the feasible pair of largest cost.\n" +
			"  The output is a Hugging Face layout dir (tokenizer files copied) plus " + PruneReportFile + ".",
		run: runPrune,
	})
}

func runPrune(args []string, stdout, stderr io.Writer) error {
	c := commands["prune"]
	fl := newFlags(c, stderr)
	model := modelFlag(fl, "model `DIR` the scores were computed on")
	scores := fl.String("scores", "", "scores `FILE` from mope score (merged if sharded)")
	out := outFlag(fl, "", "output model `DIR`")
	width := fl.Float64("width", 0, "kept fraction `R` of heads and FFN neurons")
	depth := fl.Float64("depth", 0, "kept fraction `R` of layers (default 1 with --width)")
	targetF := fl.Float64("target-flops", 0, "keep this fraction `R` of the towers' FLOPs")
	targetP := fl.Float64("target-params", 0, "keep this fraction `R` of the towers' parameters")
	minWidth := fl.Float64("min-width", 0.5, "with a target: smallest width before layers are removed")
	global := fl.Bool("global", false, "rank heads and neurons across the layers of a tower")
	towers := towerFlag(fl, 0, "towers to prune: `vision|text|both` (default: those scored)")
	deprecatedFlag(fl, "towers", "tower")
	data := dataFlag(fl, "", "calibration `FILE` or 'shapes' to rescore layers after width pruning")
	split := splitFlag(fl, "", "dataset split(s) of --data")
	limit := limitFlag(fl, 0, "first `N` images of --data")
	batch := fl.Int("batch", 0, "items per forward batch when rescoring")
	tokPath := vocabFlag(fl, "tokenizer `PATH` when the model dir has none")
	quiet := quietFlag(fl)
	force := fl.Bool("force", false, "write --out although it is the source model")
	device := deviceFlag(fl)
	asJSON := jsonFlag(fl)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if err := noArgs(fl); err != nil {
		return err
	}
	if err := requireFlags(fl, "model", "scores", "out"); err != nil {
		return err
	}
	if err := checkLimit(*limit); err != nil {
		return err
	}
	if err := checkFloats(floatFlag{"width", *width, ratio}, floatFlag{"depth", *depth, ratio}, floatFlag{"target-flops", *targetF, ratio},
		floatFlag{"target-params", *targetP, ratio}, floatFlag{"min-width", *minWidth, ratio}); err != nil {
		return err
	}
	targets := 0
	for _, set := range []bool{*width > 0, *targetF > 0, *targetP > 0} {
		if set {
			targets++
		}
	}
	if targets != 1 {
		return fmt.Errorf("%w: give exactly one of --width R [--depth R], --target-flops R, --target-params R", errUsage)
	}
	if *depth > 0 && *width == 0 {
		return fmt.Errorf("%w: --depth goes with --width", errUsage)
	}
	if *width > 0 && *depth == 0 {
		*depth = 1
	}
	if err := refuseSameDir(*out, *model, "--model", *force); err != nil {
		return err
	}
	_, release, err := claimOut(*out, *device, stderr)
	if err != nil {
		return err
	}
	defer release()
	f, err := mope.ReadScores(*scores)
	if err != nil {
		return err
	}
	if !f.Complete || f.Shard != "" {
		return fmt.Errorf("%s is a shard or an unfinished run: merge or resume it first", *scores)
	}
	m, err := openModel(*model, stderr)
	if err != nil {
		return err
	}
	o := mope.PruneOptions{Width: *width, Depth: *depth, Global: *global, TargetFLOPs: *targetF, TargetParams: *targetP,
		MinWidth: *minWidth, Batch: *batch}
	if *towers != 0 {
		o.Towers = *towers
	}
	if !*quiet {
		o.Progress = stderr
	}
	var tok *tokenizer.Tokenizer // also written into --out when the model directory has none
	if *data != "" {
		if tok, err = scoreTokenizer(*model, *tokPath); err != nil {
			return err
		}
		if o.Calib, err = mope.LoadCalib(m, *data, *split, *limit, tok); err != nil {
			return err
		}
	}
	pruned, rep, err := mope.PruneModel(m, f, o)
	if err != nil {
		return err
	}
	depthFromFile := rep.Depth
	if rep.DepthScores != "file" {
		depthFromFile = 1
	}
	if why := mope.RescoreMismatch(f, rep.Width, depthFromFile, *global); why != "" {
		fmt.Fprintf(stderr, "note: %s\n", why)
	}
	if err := pruned.SaveWith(*out, clip.SaveOptions{From: *model, Tokenizer: tok}); err != nil {
		return err
	}
	pr := pruneReport{Model: *out, Source: *model, Scores: *scores, Metric: f.Settings.Metric, PruneReport: rep}
	js, _ := json.MarshalIndent(pr, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(*out, PruneReportFile), append(js, '\n')); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, pr)
	}
	fmt.Fprintf(stdout, "%s: width %.2f depth %.2f (%s) towers %v: %.3f → %.3f GFLOPs (%.1f%%), %d → %d params (%.1f%%); depth scores: %s\n",
		*out, rep.Width, rep.Depth, f.Settings.Metric, rep.Towers.Names(), rep.FLOPsBefore, rep.FLOPsAfter, 100*rep.FLOPsAfter/rep.FLOPsBefore,
		rep.ParamsBefore, rep.ParamsAfter, 100*float64(rep.ParamsAfter)/float64(rep.ParamsBefore), rep.DepthScores)
	return nil
}

// pruneReport is PruneReportFile and prune --json.
type pruneReport struct {
	Model  string      `json:"model"` // the pruned model (--out)
	Source string      `json:"source_model"`
	Scores string      `json:"scores"`
	Metric mope.Metric `json:"metric"`
	*mope.PruneReport
}
