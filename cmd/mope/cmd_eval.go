package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/eval"
)

func init() {
	register(&command{
		name:    "eval",
		summary: "zero-shot image–text retrieval (TR/IR@1,5,10) or classification (top-1/top-5, mean per-class recall) of a model",
		usage: "--model DIR --data SPEC [--task retrieval|zeroshot] [--split S] [--limit N] [--skip-bad] [--json]\n\n" +
			"  --data: a Karpathy-split .json (COCO, Flickr30K), a .jsonl, a .csv/.tsv (open_clip's\n" +
			"  filepath/title columns, tab-separated, or image/caption; see --csv-*), webdataset tar\n" +
			"  shards (shards/{00000..00099}.tar, or a directory of .tar files), an image-folder tree\n" +
			"  root/<class>/*.jpg (zeroshot), or \"shapes\" for the built-in shapes world (its test\n" +
			"  split, generated in memory). See docs/data.md.",
		run: runEval,
	})
}

func runEval(args []string, stdout, stderr io.Writer) error {
	c := commands["eval"]
	fl := newFlags(c, stderr)
	model := modelFlag(fl, "model `DIR` (Hugging Face or open_clip layout, with vocab.json and merges.txt or tokenizer.json)")
	vocab := vocabFlag(fl, "tokenizer `PATH` when the model dir has none (e.g. open_clip): a dir with vocab.json+merges.txt or OpenAI's bpe .txt.gz")
	data := dataFlag(fl, "", "dataset `SPEC`: a .json (Karpathy), .jsonl, .csv/.tsv file, tar shards, an image-folder DIR, or shapes")
	task := fl.String("task", "", "retrieval or zeroshot (default: zeroshot for an image folder, else retrieval)")
	split := splitFlag(fl, "test", "split to evaluate (names joined by , or +, or all; files with splits and shapes only)")
	limit := limitFlag(fl, 0, "evaluate the first `N` images only")
	root := fl.String("root", "", "base `DIR` of relative image paths (default: the dataset file's directory)")
	asJSON := jsonFlag(fl)
	batch := fl.Int("batch", clip.DefaultBatch, "forward batch size")
	modeName := fl.String("mode", "resize-crop", "image preprocessing: resize-crop (CLIP) or squash (UPop)")
	var templates stringList
	fl.Var(&templates, "template", "zero-shot prompt template with {} or {c} for the class name (repeatable; default: CLIP's 7 ImageNet ensemble templates)")
	templateSet := fl.String("templates", "", "zero-shot templates: a built-in set (openai-imagenet: OpenAI's 80; openai-imagenet-7; photo) or a `FILE` with one per line")
	classFile := fl.String("classnames", "", "zeroshot: `FILE` with one class name per line, in the sorted order of the class folders (default: folder names, _ as space)")
	skipBad := fl.Bool("skip-bad", false, "skip bad records (missing or undecodable image, no captions, truncated tar) and count them, instead of stopping at the first")
	imgKey := fl.String("csv-img-key", "", "CSV/TSV column of the image path (default: filepath, else image)")
	capKey := fl.String("csv-caption-key", "", "CSV/TSV column of the caption (default: title, else caption)")
	sep := fl.String("csv-separator", "", "CSV/TSV separator, one character or \\t (default: tab for .tsv or a header with a tab, else comma)")
	quiet := quietFlag(fl)
	misses := fl.Bool("misses", false, "shapes: also classify the caption→image top-1 misses: the hard-negative twin, the same objects placed otherwise, the same colours with other shapes, or other")
	device := deviceFlag(fl)
	engine := engineFlag(fl)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if err := checkLimit(*limit); err != nil {
		return err
	}
	defer tightenGC(os.Getenv)()
	defer noHugePages()()
	switch {
	case fl.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fl.Arg(0))
	case *model == "":
		return fmt.Errorf("%w: need --model DIR", errUsage)
	case *data == "":
		return fmt.Errorf("%w: need --data SPEC (or --data shapes)", errUsage)
	case *batch < 1:
		return fmt.Errorf("%w: --batch must be at least 1", errUsage)
	case len(templates) > 0 && *templateSet != "":
		return fmt.Errorf("%w: give --template or --templates, not both", errUsage)
	}
	mode, err := imageproc.ParseMode(*modeName)
	if err != nil {
		return fmt.Errorf("%w: --mode %q: want resize-crop or squash", errUsage, *modeName)
	}
	var t eval.Task
	if *task != "" {
		if t, err = eval.ParseTask(*task); err != nil {
			return fmt.Errorf("%w: --task %q: want retrieval or zeroshot", errUsage, *task)
		}
	}
	separator, err := parseSeparator(*sep)
	if err != nil {
		return err
	}
	spec, err := dataset.ParseSpec(*data)
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	if spec.Format == dataset.Shapes && !slices.Contains(shapes.Splits, *split) {
		return fmt.Errorf("%w: unknown split %q for shapes (want one of %s)", errUsage, *split, strings.Join(shapes.Splits, ", "))
	}
	isFolder := spec.Format == dataset.Folder
	switch {
	case t == eval.Retrieval && isFolder:
		return fmt.Errorf("%w: --data %s is a directory of class folders: retrieval needs image–text data (a .json, .jsonl, .csv file or tar shards; the folder is for --task zeroshot)", errUsage, *data)
	case t == eval.ZeroShot && !isFolder:
		return fmt.Errorf("%w: --task zeroshot needs --data DIR, an image-folder tree DIR/<class name>/*.jpg", errUsage)
	case *misses && spec.Format != dataset.Shapes:
		return fmt.Errorf("%w: --misses needs --data shapes (it reads the scenes' objects)", errUsage)
	case (len(templates) > 0 || *templateSet != "" || *classFile != "") && !isFolder:
		return fmt.Errorf("%w: --template, --templates and --classnames are for --task zeroshot on an image folder", errUsage)
	}
	opt := eval.Options{Task: t, Misses: *misses}
	if len(templates) > 0 {
		opt.Templates = templates
	}
	if *templateSet != "" {
		if opt.Templates, err = eval.Templates(*templateSet); err != nil {
			return err
		}
	}

	m, err := openModel(*model, stderr)
	if err != nil {
		return err
	}
	tok, err := modelTokenizer(*model, *vocab)
	if err != nil {
		return err
	}
	if opt.Pre, err = modelPreprocessConfig(*model); err != nil {
		return err
	}
	opt.Pre.Mode = mode
	d, err := dataset.OpenSpec(spec, dataset.Options{Split: *split, Limit: *limit, Root: *root, SkipBad: *skipBad,
		CSVImageKey: *imgKey, CSVCaptionKey: *capKey, CSVSeparator: separator})
	if err != nil {
		return err
	}
	if *classFile != "" {
		if opt.ClassNames, err = eval.ClassNames(*classFile, len(d.Classes)); err != nil {
			return err
		}
	}
	enc := &clip.Encoder{Model: m, Tok: tok, Batch: *batch}
	// The fast engine packs its own copy of the weights; eval never runs
	// the model's reference forward after that, so the model's copies are
	// dropped and the process holds the weights once (ViT-B/32: 0.6 GB
	// instead of 1.2 GB).
	release, err := encoderDevice(*device, *engine, enc, true, true, true, stderr)
	if err != nil {
		return err
	}
	defer release()
	if !*quiet {
		opt.Progress = stderr
		describeData(stderr, d)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := eval.Run(ctx, enc, d, opt)
	if err != nil {
		return err
	}
	rep.Model, rep.Preprocess, rep.Batch, rep.Device, rep.Engine = *model, *modeName, *batch, device.String(), cpuEngine(*engine).String()
	if *asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	printEvalReport(stdout, rep)
	return nil
}

// describeData prints one line about the dataset before it is read.
func describeData(w io.Writer, d *dataset.Dataset) {
	name := d.Spec.Path
	if s := d.Split(); s != "" {
		name += " " + s
	}
	switch n := d.Len(); {
	case d.Classes != nil:
		fmt.Fprintf(w, "%s: %d images, %d classes\n", name, n, len(d.Classes))
	case n >= 0:
		fmt.Fprintf(w, "%s: %d images (%v)\n", name, n, d.Spec.Format)
	default:
		fmt.Fprintf(w, "%s: %d tar shards\n", name, len(d.Spec.Shards))
	}
}

// parseSeparator reads --csv-separator: one character, or \t.
func parseSeparator(s string) (rune, error) {
	switch s {
	case "":
		return 0, nil
	case `\t`, "tab", "\t":
		return '\t', nil
	}
	if r := []rune(s); len(r) == 1 && r[0] != '"' && r[0] != '\n' && r[0] != '\r' {
		return r[0], nil
	}
	return 0, fmt.Errorf("%w: --csv-separator %q: want one character (or \\t)", errUsage, s)
}

func printEvalReport(stdout io.Writer, rep *eval.Report) {
	if rep.Task == "retrieval" {
		fmt.Fprintf(stdout, "retrieval on %s (%d images, %d captions):\n", rep.Data, rep.Images, rep.Texts)
		fmt.Fprintf(stdout, "  text retrieval  (image→text)  R@1 %6.2f  R@5 %6.2f  R@10 %6.2f\n", *rep.TR1, *rep.TR5, *rep.TR10)
		fmt.Fprintf(stdout, "  image retrieval (text→image)  R@1 %6.2f  R@5 %6.2f  R@10 %6.2f\n", *rep.IR1, *rep.IR5, *rep.IR10)
		fmt.Fprintf(stdout, "  mean R@1 %.2f  mean R@5 %.2f  mean of the six recalls %.2f  (%.1fs)\n", *rep.R1, *rep.R5, *rep.Mean, rep.Seconds)
		if rep.Misses != nil {
			n := 0
			counts := map[shapes.MissKind]int{}
			for k, v := range rep.Misses {
				n += v
				counts[shapes.MissKind(k)] = v
			}
			fmt.Fprintf(stdout, "  text→image top-1 misses: %d (%s)\n", n, shapes.FormatMisses(counts))
		}
	} else {
		fmt.Fprintf(stdout, "zero-shot classification on %s (%d images, %d classes): top-1 %.2f  top-5 %.2f  mean per-class recall %.2f  (%.1fs)\n",
			rep.Data, rep.Images, rep.Classes, *rep.Top1, *rep.Top5, *rep.MeanClassRecall, rep.Seconds)
	}
	fmt.Fprintf(stdout, "  images: %d in %.1fs (%.1f/s; %.1fs of it in the image tower, the rest waiting for decoding); text tower %.1fs\n",
		rep.Images, rep.ImageSeconds, rep.ImagesPerSecond, rep.EncodeSeconds, rep.TextSeconds)
	if rep.Skipped > 0 {
		fmt.Fprintf(stdout, "  skipped %d bad records\n", rep.Skipped)
	}
}
