package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/dataset/shapes"
)

func init() {
	register(&command{
		name:    "eval",
		summary: "zero-shot image–text retrieval (TR/IR@1,5,10) or classification (top-1/top-5) of a model",
		usage: "--model DIR --data FILE [--task retrieval|zeroshot] [--split S] [--limit N] [--json]\n\n" +
			"  --data: a Karpathy-split .json (COCO, Flickr30K), a .jsonl or .csv of (image, caption),\n" +
			"  an image-folder tree root/<class>/*.jpg (zeroshot), or \"shapes\" for the built-in\n" +
			"  shapes world (its test split by default, generated in memory, --limit 1000 by default).",
		run: runEval,
	})
}

// evalReport is the --json output: retrieval fields (percent) or
// classification fields, plus what was evaluated and how. R1 and R5 are
// the means of TR and IR at 1 and 5 (the "mean R@1" of the demo, the
// pipeline and validation); Mean is the mean of all six recalls (RSUM/6).
type evalReport struct {
	Model   string   `json:"model"`
	Task    string   `json:"task"`
	Mode    string   `json:"preprocess"`
	Batch   int      `json:"batch"`
	Device  string   `json:"device"`
	Engine  string   `json:"engine"`
	Data    string   `json:"data"`
	Split   string   `json:"split,omitempty"`
	Images  int      `json:"images"`
	Texts   int      `json:"captions,omitempty"`
	Classes int      `json:"classes,omitempty"`
	TR1     *float64 `json:"tr1,omitempty"`
	TR5     *float64 `json:"tr5,omitempty"`
	TR10    *float64 `json:"tr10,omitempty"`
	IR1     *float64 `json:"ir1,omitempty"`
	IR5     *float64 `json:"ir5,omitempty"`
	IR10    *float64 `json:"ir10,omitempty"`
	R1      *float64 `json:"r1,omitempty"`
	R5      *float64 `json:"r5,omitempty"`
	Mean    *float64 `json:"mean,omitempty"`
	Top1    *float64 `json:"top1,omitempty"`
	Top5    *float64 `json:"top5,omitempty"`
	// Misses counts the caption→image top-1 misses by kind (shapes, --misses).
	Misses  map[string]int `json:"misses,omitempty"`
	Seconds float64        `json:"seconds"`
}

func runEval(args []string, stdout, stderr io.Writer) error {
	c := commands["eval"]
	fl := newFlags(c, stderr)
	model := modelFlag(fl, "model `DIR` (Hugging Face layout, with vocab.json and merges.txt)")
	data := dataFlag(fl, "", "dataset `FILE` (.json Karpathy, .jsonl, .csv), image-folder DIR, or shapes")
	task := fl.String("task", "", "retrieval or zeroshot (default: zeroshot for an image folder, else retrieval)")
	split := splitFlag(fl, "test", "split to evaluate (names joined by , or +, or all)")
	limit := limitFlag(fl, 0, "evaluate the first `N` images only (shapes: 1000)")
	root := fl.String("root", "", "base `DIR` of relative image paths (default: the dataset file's directory)")
	asJSON := jsonFlag(fl)
	batch := fl.Int("batch", clip.DefaultBatch, "forward batch size")
	modeName := fl.String("mode", "resize-crop", "image preprocessing: resize-crop (CLIP) or squash (UPop)")
	var templates stringList
	fl.Var(&templates, "template", "zero-shot prompt template with {} for the class name (repeatable; default: CLIP's 7 ImageNet ensemble templates)")
	classFile := fl.String("classnames", "", "zeroshot: `FILE` with one class name per line, in the sorted order of the class folders (default: folder names, _ as space)")
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
	switch {
	case fl.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fl.Arg(0))
	case *model == "":
		return fmt.Errorf("%w: need --model DIR", errUsage)
	case *data == "":
		return fmt.Errorf("%w: need --data FILE (or --data shapes)", errUsage)
	case *batch < 1:
		return fmt.Errorf("%w: --batch must be at least 1", errUsage)
	}
	mode, err := imageproc.ParseMode(*modeName)
	if err != nil {
		return fmt.Errorf("%w: --mode %q: want resize-crop or squash", errUsage, *modeName)
	}
	isShapes := *data == "shapes"
	isDir := false
	if !isShapes {
		st, err := os.Stat(*data)
		if err != nil {
			return fmt.Errorf("--data: %w", err)
		}
		isDir = st.IsDir()
	}
	switch *task {
	case "":
		*task = "retrieval"
		if isDir {
			*task = "zeroshot"
		}
	case "retrieval", "zeroshot":
	default:
		return fmt.Errorf("%w: --task %q: want retrieval or zeroshot", errUsage, *task)
	}
	switch {
	case *task == "retrieval" && isDir:
		return fmt.Errorf("%w: --data %s is a directory: retrieval needs a .json, .jsonl or .csv file (a folder of class directories is for --task zeroshot)", errUsage, *data)
	case *task == "zeroshot" && !isDir:
		return fmt.Errorf("%w: --task zeroshot needs --data DIR, an image-folder tree DIR/<class name>/*.jpg", errUsage)
	case *misses && !isShapes:
		return fmt.Errorf("%w: --misses needs --data shapes (it reads the scenes' objects)", errUsage)
	case (len(templates) > 0 || *classFile != "") && *task != "zeroshot":
		return fmt.Errorf("%w: --template and --classnames are for --task zeroshot", errUsage)
	}

	m, err := openModel(*model, stderr)
	if err != nil {
		return err
	}
	tok, err := clip.LoadTokenizer(*model)
	if err != nil {
		return err
	}
	pre, err := modelPreprocessConfig(*model)
	if err != nil {
		return err
	}
	pre.Mode = mode
	enc := &clip.Encoder{Model: m, Tok: tok, Batch: *batch}
	release, err := encoderDevice(*device, *engine, enc, true, true, stderr)
	if err != nil {
		return err
	}
	defer release()
	if !*quiet {
		enc.Progress = stderr
	}
	rep := evalReport{Model: *model, Task: *task, Data: *data, Mode: *modeName, Batch: *batch, Device: *device, Engine: cpuEngine(*engine).String()}
	t0 := time.Now()
	switch {
	case isShapes:
		n := *limit
		if n == 0 {
			n = 1000
		}
		if !slices.Contains(shapes.Splits, *split) {
			return fmt.Errorf("%w: unknown split %q for shapes (want one of %s)", errUsage, *split, strings.Join(shapes.Splits, ", "))
		}
		exs, err := shapes.Generate(shapes.DefaultConfig(), *split, n)
		if err != nil {
			return err
		}
		imgs, caps, capImg := shapes.Flatten(exs)
		rep.Split, rep.Images, rep.Texts = *split, len(imgs), len(caps)
		fmt.Fprintf(progressW(enc), "shapes %s: %d images, %d captions\n", *split, len(imgs), len(caps))
		if !*misses {
			met, err := enc.RetrievalDecoded(len(imgs), func(i int) image.Image { return imgs[i] }, caps, capImg, pre)
			if err != nil {
				return err
			}
			rep.setRetrieval(met.TR1, met.TR5, met.TR10, met.IR1, met.IR5, met.IR10)
			break
		}
		img, err := enc.DecodedImages(len(imgs), func(i int) image.Image { return imgs[i] }, pre)
		if err != nil {
			return err
		}
		txt, err := enc.Texts(caps)
		if err != nil {
			return err
		}
		met := clip.RetrievalMetrics(img, txt, capImg) // normalises img and txt
		rep.setRetrieval(met.TR1, met.TR5, met.TR10, met.IR1, met.IR5, met.IR10)
		counts := shapes.Misses(exs, capImg, topImages(clip.Similarity(txt, img), len(imgs)))
		rep.Misses = map[string]int{}
		for _, k := range shapes.MissKinds {
			rep.Misses[string(k)] = counts[k]
		}
	case *task == "retrieval":
		r, err := dataset.Open(*data, dataset.Options{Split: *split, Limit: *limit, Root: *root})
		if err != nil {
			return err
		}
		rep.Split, rep.Images, rep.Texts = *split, len(r.Images), len(r.Captions)
		fmt.Fprintf(progressW(enc), "%s: %d images, %d captions\n", *data, len(r.Images), len(r.Captions))
		met, err := enc.Retrieval(r, pre)
		if err != nil {
			return err
		}
		rep.setRetrieval(met.TR1, met.TR5, met.TR10, met.IR1, met.IR5, met.IR10)
	default: // zeroshot on an image folder
		cls, err := dataset.ReadImageFolder(*data, *limit)
		if err != nil {
			return err
		}
		names := make([]string, len(cls.Classes))
		for i, n := range cls.Classes {
			names[i] = strings.TrimSpace(strings.ReplaceAll(n, "_", " "))
		}
		if *classFile != "" {
			if names, err = readClassNames(*classFile, len(cls.Classes)); err != nil {
				return err
			}
		}
		var tmpl []string
		if len(templates) > 0 {
			tmpl = templates
		}
		rep.Images, rep.Classes = len(cls.Items), len(cls.Classes)
		fmt.Fprintf(progressW(enc), "%s: %d images, %d classes\n", *data, len(cls.Items), len(cls.Classes))
		met, err := enc.ZeroShot(cls, names, tmpl, pre)
		if err != nil {
			return err
		}
		rep.Top1, rep.Top5 = &met.Top1, &met.Top5
	}
	rep.Seconds = time.Since(t0).Seconds()

	if *asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
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
		fmt.Fprintf(stdout, "zero-shot classification on %s (%d images, %d classes): top-1 %.2f  top-5 %.2f  (%.1fs)\n",
			rep.Data, rep.Images, rep.Classes, *rep.Top1, *rep.Top5, rep.Seconds)
	}
	return nil
}

// topImages returns, for each row of sim [rows, nImg], the column of its
// largest value (the first one on ties).
func topImages(sim []float32, nImg int) []int {
	top := make([]int, len(sim)/nImg)
	for r := range top {
		row := sim[r*nImg : (r+1)*nImg]
		for j, v := range row {
			if v > row[top[r]] {
				top[r] = j
			}
		}
	}
	return top
}

func (r *evalReport) setRetrieval(v ...float64) {
	for i, p := range []**float64{&r.TR1, &r.TR5, &r.TR10, &r.IR1, &r.IR5, &r.IR10} {
		x := v[i]
		*p = &x
	}
	mean := (v[0] + v[1] + v[2] + v[3] + v[4] + v[5]) / 6
	r1, r5 := (v[0]+v[3])/2, (v[1]+v[4])/2
	r.Mean, r.R1, r.R5 = &mean, &r1, &r5
}

// progressW is where one-off progress lines go: the encoder's progress
// writer, or nowhere.
func progressW(e *clip.Encoder) io.Writer {
	if e.Progress == nil {
		return io.Discard
	}
	return e.Progress
}

// readClassNames reads one class name per non-empty line.
func readClassNames(path string, want int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			names = append(names, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(names) != want {
		return nil, fmt.Errorf("%s: %d class names for %d class folders", path, len(names), want)
	}
	return names, nil
}
