package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/internal/atomicfile"
)

// The data command: export the built-in shapes world, preview it, and
// inspect dataset files.

var dataSubcommands = []*command{
	{
		name:    "data export",
		summary: "write a split of the built-in shapes world as PNGs plus a Karpathy-style DIR/dataset.json",
		usage:   "shapes --out DIR [--split test] [--limit N] [--seed S] [--force] [world flags]",
	},
	{
		name:    "data preview",
		summary: "write a contact sheet of shapes images (numbered) and print their captions",
		usage:   "--out grid.png [--split train] [--limit 16] [--seed S] [--scale 3] [world flags]",
	},
	{
		name:    "data inspect",
		summary: "read a dataset (Karpathy .json, .jsonl, .csv/.tsv, tar shards, image-folder tree) and print what it holds",
		usage:   "SPEC [--split test] [--limit N] [--root DIR] [--examples 3] [--skip-bad]",
	},
}

func init() {
	dataSubcommands[0].run = runDataExport
	dataSubcommands[1].run = runDataPreview
	dataSubcommands[2].run = runDataInspect
	register(&command{
		name:    "data",
		summary: "export, preview and inspect datasets (the built-in shapes world included)",
		usage:   "export|preview|inspect [flags]\n\n  mope data export shapes --split test --out DIR [--limit N] [--seed S]\n  mope data preview --split train --limit 16 --out grid.png\n  mope data inspect PATH [--split test] [--limit N]",
		run:     runData,
	})
}

func runData(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		for _, sc := range dataSubcommands {
			if args[0] == strings.TrimPrefix(sc.name, "data ") {
				return sc.run(args[1:], stdout, stderr)
			}
		}
	}
	fs := newFlags(commands["data"], stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: missing sub-command (export, preview or inspect)", errUsage)
	}
	return fmt.Errorf("%w: unknown sub-command %q (want export, preview or inspect)", errUsage, fs.Arg(0))
}

// parseMixed parses flags that may come before or after positional arguments.
func parseMixed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// worldFlags registers the shapes-world knobs on fs.
func worldFlags(fs *flag.FlagSet) func() (shapes.Config, error) {
	d := shapes.DefaultConfig()
	seed := seedFlag(fs, d.Seed, "world seed")
	size := fs.Int("size", d.ImageSize, "image size in pixels")
	minObj := fs.Int("min-objects", d.MinObjects, "fewest objects per image")
	maxObj := fs.Int("max-objects", d.MaxObjects, "most objects per image (at most 5)")
	caps := fs.Int("captions", d.CaptionsPerImage, "captions per image")
	noise := fs.Float64("noise", d.Noise, "per-pixel noise amplitude (fraction of 255)")
	hard := fs.Float64("hard-negatives", d.HardNegativeProb, "chance that an odd example is a one-change twin of the one before")
	return func() (shapes.Config, error) {
		c := d
		c.Seed, c.ImageSize, c.MinObjects, c.MaxObjects = *seed, *size, *minObj, *maxObj
		c.CaptionsPerImage, c.Noise, c.HardNegativeProb = *caps, *noise, *hard
		if err := c.Validate(); err != nil {
			return c, fmt.Errorf("%w: %v", errUsage, err)
		}
		return c, nil
	}
}

// parseSplits reads "test", "train,val" or "all" into export parts.
func parseSplits(s string, n int) ([]shapes.Part, error) {
	var parts []shapes.Part
	names := strings.Split(s, ",")
	if s == "all" {
		names = shapes.Splits
	}
	for _, name := range names {
		name = strings.TrimSpace(name)
		ok := false
		for _, v := range shapes.Splits {
			ok = ok || v == name
		}
		if !ok {
			return nil, fmt.Errorf("%w: unknown split %q (want %s, a comma-separated list, or all)", errUsage, name, strings.Join(shapes.Splits, ", "))
		}
		parts = append(parts, shapes.Part{Split: name, N: n})
	}
	return parts, nil
}

// maxExport bounds data export's images per split (10 million PNGs of the
// default 64-pixel world are about 40 GB).
const maxExport = 10_000_000

func runDataExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags(dataSubcommands[0], stderr)
	out := outFlag(fs, "", "output `DIR` (required)")
	split := splitFlag(fs, "test", "split(s): train, val, test, calib, a comma-separated list, or all")
	n := limitFlag(fs, 0, "images per split, at most "+strconv.Itoa(maxExport)+"; all is the split's default size: train 20000, others 1000")
	deprecatedFlag(fs, "n", "limit")
	force := fs.Bool("force", false, "replace an existing export in DIR (other files there are kept)")
	world := worldFlags(fs)
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "shapes" {
		return fmt.Errorf("%w: want exactly one dataset name, shapes (got %q)", errUsage, pos)
	}
	if *out == "" {
		return fmt.Errorf("%w: --out DIR is required", errUsage)
	}
	if err := checkLimit(*n); err != nil {
		return err
	}
	if *n > maxExport {
		return fmt.Errorf("%w: --limit %d is more than %d images per split", errUsage, *n, maxExport)
	}
	cfg, err := world()
	if err != nil {
		return err
	}
	parts, err := parseSplits(*split, *n)
	if err != nil {
		return err
	}
	t0 := time.Now()
	ctx, stop := signalContext()
	defer stop()
	sum, err := exportShapes(ctx, *out, cfg, parts, *force)
	if err != nil {
		return err
	}
	el := time.Since(t0)
	fmt.Fprintf(stdout, "wrote %d images and %d captions (shapes %s, seed %d, %dx%d) to %s: %.1f MB of PNG in %.1fs (%.0f images/s)\n",
		sum.Images, sum.Captions, *split, cfg.Seed, cfg.ImageSize, cfg.ImageSize, sum.JSON,
		float64(sum.Bytes)/1e6, el.Seconds(), float64(sum.Images)/el.Seconds())
	return nil
}

// exportShapes writes the export to dir as a whole: into a temporary
// sibling directory, then one rename, under a lock on dir (a second run
// writing the same dir fails at once). An existing non-empty dir is refused
// unless force; with force the new export replaces the old one's
// dataset.json and split directories, and other files in dir are kept. An
// interrupted or failed export leaves dir as it was.
func exportShapes(ctx context.Context, dir string, cfg shapes.Config, parts []shapes.Part, force bool) (shapes.Summary, error) {
	var sum shapes.Summary
	dir = filepath.Clean(dir)
	unlock, err := atomicfile.Lock(dir)
	if err != nil {
		return sum, err
	}
	defer unlock()
	if err := checkExportDir(dir, force); err != nil {
		return sum, err
	}
	err = atomicfile.WriteDir(dir, func(tmp string) error {
		var err error
		sum, err = shapes.ExportSplitsContext(ctx, tmp, cfg, parts...)
		return err
	}, func(name string) bool { return !isExportEntry(name) })
	if ctx.Err() != nil && err != nil {
		return sum, fmt.Errorf("interrupted; %s left as it was: %w", dir, err)
	}
	sum.JSON = filepath.Join(dir, shapes.ManifestName)
	return sum, err
}

// checkExportDir refuses a dir that exists and is not empty, unless force.
func checkExportDir(dir string, force bool) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		if fi, serr := os.Stat(dir); serr == nil && !fi.IsDir() {
			return fmt.Errorf("--out %s exists and is not a directory", dir)
		}
		return fmt.Errorf("--out: %w", err)
	case len(ents) == 0 || force:
		return nil
	}
	what := "is not empty"
	if _, err := os.Stat(filepath.Join(dir, shapes.ManifestName)); err == nil {
		what = "already holds an export (" + shapes.ManifestName + ")"
	}
	return fmt.Errorf("--out %s %s; use --force to replace it, or another --out (an export writes all its splits at once: --split train,test)", dir, what)
}

// isExportEntry reports whether name is a file or directory an export
// writes (the manifest, a split's directory), which --force replaces.
func isExportEntry(name string) bool {
	return name == shapes.ManifestName || slices.Contains(shapes.Splits, name)
}

func runDataPreview(args []string, stdout, stderr io.Writer) error {
	fs := newFlags(dataSubcommands[1], stderr)
	out := outFlag(fs, "", "output PNG `FILE` (required)")
	split := splitFlag(fs, "train", "split: train, val, test or calib")
	n := fs.Int("limit", 16, "number of images, 1 to 1024 (no 0 for all here: a sheet of a whole split is too big)")
	deprecatedFlag(fs, "n", "limit")
	start := fs.Int("start", 0, "index of the first image")
	scale := fs.Int("scale", 3, "integer zoom of each image")
	cols := fs.Int("cols", 0, "images per row (0: a near-square grid)")
	world := worldFlags(fs)
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 || len(pos) == 1 && !dataset.IsShapes(pos[0]) {
		return fmt.Errorf("%w: preview shows the shapes world only (got %q)", errUsage, pos)
	}
	if *out == "" {
		return fmt.Errorf("%w: --out FILE.png is required", errUsage)
	}
	if err := checkPNGOut(*out); err != nil {
		return err
	}
	if *n < 1 || *n > 1024 || *scale < 1 || *scale > 16 || *start < 0 {
		return fmt.Errorf("%w: want 1 <= --limit <= 1024, 1 <= --scale <= 16, --start >= 0", errUsage)
	}
	cfg, err := world()
	if err != nil {
		return err
	}
	if _, err := parseSplits(*split, 0); err != nil || strings.Contains(*split, ",") || *split == "all" {
		return fmt.Errorf("%w: --split must be one of %s", errUsage, strings.Join(shapes.Splits, ", "))
	}
	exs, err := shapes.GenerateRange(cfg, *split, *start, *n)
	if err != nil {
		return err
	}
	imgs, _, _ := shapes.Flatten(exs)
	sheet := shapes.ContactSheet(imgs, *cols, *scale)
	if err := atomicfile.Write(*out, func(w io.Writer) error { return png.Encode(w, sheet) }); err != nil {
		return err
	}
	for i, e := range exs {
		var objs []string
		for _, o := range e.Objects {
			objs = append(objs, fmt.Sprintf("%s %s %s @%s", o.Size, o.Color, o.Shape, o.Position))
		}
		bg := e.Background.Style.String()
		if e.Background.Named {
			bg += " " + e.Background.Color.String()
		}
		twin := ""
		if e.TwinOf >= 0 {
			twin = fmt.Sprintf("; hard negative of %d (%s)", e.TwinOf-*start, e.Change)
		}
		fmt.Fprintf(stdout, "%d %s: %s; %s background%s\n", i, e.ID, strings.Join(objs, ", "), bg, twin)
		for _, c := range e.Captions {
			fmt.Fprintf(stdout, "    %s\n", c)
		}
	}
	fmt.Fprintf(stdout, "wrote %s (%dx%d, %d images)\n", *out, sheet.Rect.Dx(), sheet.Rect.Dy(), len(exs))
	return nil
}

func runDataInspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags(dataSubcommands[2], stderr)
	split := splitFlag(fs, "", "split(s) to read: \"\" or all, or names joined by , or +")
	limit := limitFlag(fs, 0, "read only the first `N` images")
	root := fs.String("root", "", "base directory of relative image paths (default: the file's directory)")
	examples := fs.Int("examples", 3, "print this many images with their captions")
	skipBad := fs.Bool("skip-bad", false, "skip bad records and count them instead of stopping at the first")
	asJSON := jsonFlag(fs)
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want exactly one PATH", errUsage)
	}
	if err := checkLimit(*limit); err != nil {
		return err
	}
	if *examples < 0 {
		return fmt.Errorf("%w: --examples must be 0 or positive, got %d", errUsage, *examples)
	}
	path := pos[0]
	d, err := dataset.Open(path, dataset.Options{Split: *split, Limit: *limit, Root: *root, SkipBad: *skipBad})
	if err != nil {
		return err
	}
	rep := inspectReport{Path: path, Split: *split, Limit: *limit}
	if d.Classes != nil {
		if *asJSON {
			rep.Format, rep.Images, rep.Classes = "image-folder", d.Len(), d.Classes
			return writeJSON(stdout, rep)
		}
		fmt.Fprintf(stdout, "%s: image folder, %d classes, %d images\n", path, len(d.Classes), d.Len())
		for i, name := range d.Classes[:min(len(d.Classes), *examples)] {
			fmt.Fprintf(stdout, "  class %d: %s\n", i, name)
		}
		return nil
	}
	var nImg, nCap int
	var shown []dataset.Record
	err = d.Each(context.Background(), func(r dataset.Record) error {
		nImg++
		nCap += len(r.Captions)
		if len(shown) < *examples {
			shown = append(shown, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if *asJSON {
		rep.Format, rep.Images, rep.Captions = fmt.Sprint(d.Spec.Format), nImg, nCap
		rep.Skipped, rep.FirstSkipped = d.Skipped()
		for _, r := range shown {
			rep.Examples = append(rep.Examples, inspectExample{Where: r.Where, Image: filepath.ToSlash(r.Path), Captions: r.Captions})
		}
		return writeJSON(stdout, rep)
	}
	fmt.Fprintf(stdout, "%s (%v): %d images, %d captions (%.2f per image)\n", path, d.Spec.Format, nImg, nCap,
		float64(nCap)/float64(max(nImg, 1)))
	if n, first := d.Skipped(); n > 0 {
		fmt.Fprintf(stdout, "  skipped %d bad records (first: %s)\n", n, first[0])
	}
	for i, r := range shown {
		where := r.Where
		if r.Path != "" {
			where = filepath.ToSlash(r.Path)
		}
		fmt.Fprintf(stdout, "  %d %s\n", i, where)
		for _, c := range r.Captions {
			fmt.Fprintf(stdout, "      %s\n", c)
		}
	}
	return nil
}

// inspectReport is data inspect --json.
type inspectReport struct {
	Path         string           `json:"path"`
	Format       string           `json:"format"`
	Split        string           `json:"split,omitempty"`
	Limit        int              `json:"limit,omitempty"`
	Images       int              `json:"images"`
	Captions     int              `json:"captions,omitempty"`
	Classes      []string         `json:"classes,omitempty"`
	Skipped      int              `json:"skipped_records,omitempty"`
	FirstSkipped []string         `json:"first_skipped,omitempty"`
	Examples     []inspectExample `json:"examples,omitempty"`
}

// inspectExample is one record shown by data inspect.
type inspectExample struct {
	Where    string   `json:"where"`
	Image    string   `json:"image,omitempty"`
	Captions []string `json:"captions"`
}
