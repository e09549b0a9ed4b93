package dataset

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/dataset/shapes"
)

// Format is the on-disk form of a dataset.
type Format int

// The formats Open reads.
const (
	Karpathy   Format = iota + 1 // one Karpathy-split JSON file (COCO, Flickr30K)
	JSONL                        // JSON lines of image + caption(s)
	CSV                          // CSV/TSV rows of image + caption
	Folder                       // root/<class name>/**/*.jpg|jpeg|png|webp
	WebDataset                   // tar shards of KEY.jpg + KEY.txt/KEY.json
	Shapes                       // the built-in shapes world, generated in memory
)

var formatNames = map[Format]string{Karpathy: "karpathy", JSONL: "jsonl", CSV: "csv", Folder: "folder", WebDataset: "webdataset", Shapes: "shapes"}

func (f Format) String() string {
	if s, ok := formatNames[f]; ok {
		return s
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat parses a format name (as String writes it; "wds" and "tsv"
// are accepted too).
func ParseFormat(s string) (Format, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "wds", "tar":
		return WebDataset, nil
	case "tsv":
		return CSV, nil
	}
	for f, n := range formatNames {
		if n == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("dataset: unknown format %q (want karpathy, jsonl, csv, folder, webdataset or shapes)", s)
}

// Spec names a dataset: its format and where it is. Shards holds the tar
// files of a webdataset (brace patterns expanded).
type Spec struct {
	Format Format
	Path   string
	Shards []string
}

func (s Spec) String() string { return s.Path }

// IsShapes reports whether a --data value names the built-in shapes world
// ("shapes", any case): the one rule every command uses.
func IsShapes(s string) bool { return strings.EqualFold(strings.TrimSpace(s), "shapes") }

// ParseSpec resolves a --data value: "shapes"; a tar shard, a brace pattern
// of shards ("shards/{00000..00099}.tar"), or a directory holding only .tar
// files (webdataset); a directory of class folders (image folder); or a
// .json (Karpathy), .jsonl/.ndjson (JSONL) or .csv/.tsv (CSV) file, other
// names by content. Files named must exist.
func ParseSpec(s string) (Spec, error) {
	if IsShapes(s) {
		return Spec{Format: Shapes, Path: "shapes"}, nil
	}
	if s == "" {
		return Spec{}, errors.New("dataset: empty dataset name")
	}
	if strings.ContainsAny(s, "{}") {
		shards, err := ExpandBraces(s)
		if err != nil {
			return Spec{}, err
		}
		if err := checkShards(shards); err != nil {
			return Spec{}, err
		}
		return Spec{Format: WebDataset, Path: s, Shards: shards}, nil
	}
	st, err := os.Stat(s)
	if err != nil {
		return Spec{}, fmt.Errorf("dataset: %w", err)
	}
	if st.IsDir() {
		tars, _ := filepath.Glob(filepath.Join(s, "*.tar"))
		if len(tars) > 0 && !hasSubdirs(s) {
			slices.Sort(tars)
			return Spec{Format: WebDataset, Path: s, Shards: tars}, nil
		}
		return Spec{Format: Folder, Path: s}, nil
	}
	switch strings.ToLower(filepath.Ext(s)) {
	case ".tar":
		return Spec{Format: WebDataset, Path: s, Shards: []string{s}}, nil
	case ".json":
		return Spec{Format: Karpathy, Path: s}, nil
	case ".jsonl", ".ndjson":
		return Spec{Format: JSONL, Path: s}, nil
	case ".csv", ".tsv":
		return Spec{Format: CSV, Path: s}, nil
	}
	kind, err := sniff(s)
	if err != nil {
		return Spec{}, err
	}
	switch kind {
	case "karpathy":
		return Spec{Format: Karpathy, Path: s}, nil
	case "jsonl":
		return Spec{Format: JSONL, Path: s}, nil
	}
	return Spec{Format: CSV, Path: s}, nil
}

func hasSubdirs(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") && isDir(dir, e) {
			return true
		}
	}
	return false
}

func checkShards(shards []string) error {
	var missing []string
	for _, p := range shards {
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("dataset: %d of %d tar shards do not exist (first: %s)", len(missing), len(shards), strings.Join(missing[:min(3, len(missing))], ", "))
}

// Record is one image and its captions (retrieval, training) or its class
// (Label, image folders). The image is in exactly one of Path (a file),
// Bytes (an encoded image, e.g. a tar member) or Image (decoded in memory).
type Record struct {
	// Index is the record's position in the dataset (0-based, after split
	// selection and skipped bad records).
	Index int
	// Where names the record in messages: "data.jsonl:12",
	// "shard-00003.tar:000123.jpg", or the image path.
	Where    string
	Path     string
	Bytes    []byte
	Image    image.Image
	Captions []string
	// Label is the class index into Dataset.Classes, or -1.
	Label int
}

// Decode returns the record's image as 8-bit RGB; errors name the record.
func (r *Record) Decode() (*imageproc.RGB8, error) {
	var (
		img *imageproc.RGB8
		err error
	)
	switch {
	case r.Image != nil:
		if r.Image.Bounds().Empty() {
			return nil, fmt.Errorf("%s: empty image", r.Where)
		}
		return imageproc.ToRGB8(r.Image), nil
	case r.Bytes != nil:
		img, err = imageproc.Decode(r.Bytes)
	case r.Path != "":
		var data []byte
		if data, err = os.ReadFile(r.Path); err == nil {
			img, err = imageproc.Decode(data)
		}
	default:
		err = errors.New("no image")
	}
	if err != nil {
		if r.Path != "" && r.Where != r.Path {
			return nil, fmt.Errorf("%s (%s): %w", r.Where, r.Path, trimPathErr(err))
		}
		return nil, fmt.Errorf("%s: %w", r.Where, trimPathErr(err))
	}
	return img, nil
}

// trimPathErr drops the path of an *os.PathError (the message names it).
func trimPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Options controls how a dataset is read.
type Options struct {
	// Split selects images by split: "" or "all" for everything, else names
	// separated by "," or "+". Formats without splits (image folders,
	// webdataset) ignore it; for shapes it names the split (default test).
	Split string
	// Limit keeps the first Limit images (0: all; shapes: the split's size).
	Limit int
	// Root is the base of relative image paths; "" means the directory of
	// the dataset file.
	Root string
	// SkipImageCheck skips the up-front check that every image file exists.
	SkipImageCheck bool
	// CSVImageKey, CSVCaptionKey and CSVSeparator are open_clip's
	// --csv-img-key, --csv-caption-key and --csv-separator. Empty keys take
	// "filepath"/"title" (open_clip's defaults) or else "image"/"caption";
	// a zero separator is tab for .tsv files and, for other names, tab when
	// the header line has a tab, else comma.
	CSVImageKey, CSVCaptionKey string
	CSVSeparator               rune
	// SkipBad skips bad records (missing or undecodable image, no captions,
	// a truncated tar shard) and counts them (Dataset.Skipped) instead of
	// failing on the first.
	SkipBad bool
	// Shapes is the shapes world's configuration (zero: the default).
	Shapes *shapes.Config
}

// Dataset is an opened dataset: a deterministic sequence of records.
type Dataset struct {
	Spec Spec
	// Classes are the class names of a classification set (image folders).
	Classes []string
	opt     Options
	index   []Record // file formats: every record, image not loaded
	n       int      // records, -1 when unknown before reading (tar shards)
	skips   Skips
}

// Open opens the dataset named by spec (see ParseSpec) with opt. File
// formats read their index (paths and captions, not images) at once and
// check that the images exist; tar shards and the shapes world are read as
// records are asked for.
func Open(spec string, opt Options) (*Dataset, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return OpenSpec(s, opt)
}

// OpenSpec is Open on a parsed spec.
func OpenSpec(s Spec, opt Options) (*Dataset, error) {
	d := &Dataset{Spec: s, opt: opt, n: -1}
	var (
		pairs []Pair
		err   error
	)
	switch s.Format {
	case Shapes:
		cfg := shapes.DefaultConfig()
		if opt.Shapes != nil {
			cfg = *opt.Shapes
		}
		split := d.shapesSplit()
		n := opt.Limit
		if n <= 0 {
			if n, err = cfg.SplitSize(split); err != nil {
				return nil, err
			}
		}
		if _, err := shapes.GenerateRange(cfg, split, 0, 0); err != nil {
			return nil, err
		}
		d.n = n
		return d, nil
	case WebDataset:
		return d, nil
	case Folder:
		c, err := ReadImageFolder(s.Path, opt.Limit)
		if err != nil {
			return nil, err
		}
		d.Classes = c.Classes
		for i, it := range c.Items {
			d.index = append(d.index, Record{Index: i, Where: it.Image, Path: it.Image, Label: it.Label})
		}
		d.n = len(d.index)
		return d, nil
	case Karpathy:
		pairs, err = readKarpathy(s.Path, opt, &d.skips)
	case JSONL:
		pairs, err = readJSONL(s.Path, opt, &d.skips)
	case CSV:
		pairs, err = readCSV(s.Path, opt, &d.skips)
	default:
		return nil, fmt.Errorf("dataset: %s: unknown format %v", s.Path, s.Format)
	}
	if err != nil {
		return nil, err
	}
	if !opt.SkipImageCheck && !opt.SkipBad {
		paths := make([]string, len(pairs))
		for i, p := range pairs {
			paths[i] = p.Image
		}
		if err := checkImages(paths); err != nil {
			return nil, err
		}
	}
	for i, p := range pairs {
		d.index = append(d.index, Record{Index: i, Where: p.Where, Path: p.Image, Captions: p.Captions, Label: -1})
	}
	d.n = len(d.index)
	return d, nil
}

func (d *Dataset) shapesSplit() string {
	if s := strings.TrimSpace(d.opt.Split); s != "" && !strings.EqualFold(s, "all") {
		return s
	}
	return "test"
}

// Split is the split selection in effect: the shapes split, the Split
// option of files with splits, "" for formats without splits.
func (d *Dataset) Split() string {
	switch d.Spec.Format {
	case Shapes:
		return d.shapesSplit()
	case Karpathy, JSONL, CSV:
		return d.opt.Split
	}
	return ""
}

// Len is the number of records, or -1 when it is known only after reading
// them all (tar shards).
func (d *Dataset) Len() int { return d.n }

// Skipped returns how many bad records were skipped so far (Options.SkipBad)
// and the first few of them.
func (d *Dataset) Skipped() (int, []string) { return d.skips.Get() }

// Skips counts skipped bad records; safe for concurrent use.
type Skips struct {
	mu    sync.Mutex
	n     int
	first []string
}

// Add counts one skipped record with its error.
func (s *Skips) Add(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if len(s.first) < 3 {
		s.first = append(s.first, err.Error())
	}
}

// Get returns the count and the first errors.
func (s *Skips) Get() (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, slices.Clone(s.first)
}

// Bad handles a bad record: its error by default; with Options.SkipBad it
// is counted (Skipped) and Bad returns nil.
func (d *Dataset) Bad(err error) error {
	if d.opt.SkipBad {
		d.skips.Add(err)
		return nil
	}
	return err
}

// Each calls fn with every record in order; it stops at fn's first error
// and returns it. Each may be called again (a new pass over the data).
func (d *Dataset) Each(ctx context.Context, fn func(Record) error) error {
	switch d.Spec.Format {
	case Shapes:
		return d.eachShapes(ctx, fn)
	case WebDataset:
		return d.eachTar(ctx, fn)
	}
	for _, r := range d.index {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// shapesChunk is how many shapes examples are generated at once.
const shapesChunk = 256

func (d *Dataset) eachShapes(ctx context.Context, fn func(Record) error) error {
	cfg := shapes.DefaultConfig()
	if d.opt.Shapes != nil {
		cfg = *d.opt.Shapes
	}
	split := d.shapesSplit()
	for lo := 0; lo < d.n; lo += shapesChunk {
		exs, err := shapes.GenerateRange(cfg, split, lo, min(shapesChunk, d.n-lo))
		if err != nil {
			return err
		}
		for _, e := range exs {
			if err := ctx.Err(); err != nil {
				return err
			}
			r := Record{Index: e.Index, Where: e.ID, Image: e.Image, Captions: e.Captions, Label: -1}
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// EachExample calls fn with the shapes examples behind the records of a
// shapes dataset, in record order (their objects, for analyses).
func (d *Dataset) EachExample(fn func(shapes.Example) error) error {
	if d.Spec.Format != Shapes {
		return fmt.Errorf("dataset: %s is not the shapes world", d.Spec.Path)
	}
	cfg := shapes.DefaultConfig()
	if d.opt.Shapes != nil {
		cfg = *d.opt.Shapes
	}
	for lo := 0; lo < d.n; lo += shapesChunk {
		exs, err := shapes.GenerateRange(cfg, d.shapesSplit(), lo, min(shapesChunk, d.n-lo))
		if err != nil {
			return err
		}
		for _, e := range exs {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Retrieval returns the dataset's image–text index (file formats only: the
// images stay paths).
func (d *Dataset) Retrieval() (*Retrieval, error) {
	if d.index == nil || d.Classes != nil {
		return nil, fmt.Errorf("dataset: %s: not an image–text file", d.Spec.Path)
	}
	pairs := make([]Pair, len(d.index))
	for i, r := range d.index {
		pairs[i] = Pair{Image: r.Path, Captions: r.Captions, Where: r.Where}
	}
	return NewRetrieval(pairs)
}
