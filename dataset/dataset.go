// Package dataset reads image–text datasets from disk into one in-memory
// form, for retrieval evaluation and training, and image-folder trees for
// zero-shot classification.
//
// Formats:
//
//   - Karpathy-split JSON (COCO, Flickr30K): {"images": [{"filepath",
//     "filename", "split", "sentences": [{"raw", "tokens"}]}]}. An image's
//     path is Root/filepath/filename.
//   - JSONL: one object per line, {"image": path, "caption": text} or
//     {"image": path, "captions": [text, ...]}, optionally "split".
//   - CSV (RFC 4180, or tab-separated with a .tsv name): a header row with
//     the columns image and caption, optionally split; other columns are
//     ignored.
//   - An image-folder tree, root/<class name>/**/*.jpg|jpeg|png, for
//     classification (ReadImageFolder).
//
// Rows of JSONL and CSV files that name the same image are grouped into one
// image with several captions, in order of first appearance. Relative image
// paths are resolved against Options.Root, by default the directory of the
// dataset file. Every reader checks up front that the images exist and
// reports how many are missing and the first few names.
//
// Split selection: "" or "all" takes everything; otherwise a list of split
// names separated by "," or "+" ("train+restval" is the usual COCO training
// set). JSONL and CSV rows without a split field (or a CSV file without a
// split column) belong to every split. Limit keeps the first N images (after split selection) in file
// order, so it is deterministic.
//
// The built-in synthetic world lives in dataset/shapes; the name "shapes" is
// resolved by callers, not here.
package dataset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Pair is an image and its captions.
type Pair struct {
	Image    string // path
	Captions []string
	// Where names the pair in messages ("file:line"); optional.
	Where string
}

// Retrieval is an image–text retrieval set: images, and captions grouped by
// image in image order. CaptionImage[i] is the index in Images of the image
// that caption i describes.
type Retrieval struct {
	Images       []string
	Captions     []string
	CaptionImage []int
}

// NewRetrieval builds a Retrieval from pairs. Every pair needs an image path
// and at least one non-empty caption; images must be distinct.
func NewRetrieval(pairs []Pair) (*Retrieval, error) {
	r := &Retrieval{Images: make([]string, 0, len(pairs))}
	seen := make(map[string]bool, len(pairs))
	for i, p := range pairs {
		if p.Image == "" {
			return nil, fmt.Errorf("dataset: pair %d has no image path", i)
		}
		if seen[p.Image] {
			return nil, fmt.Errorf("dataset: image %s appears twice", p.Image)
		}
		seen[p.Image] = true
		if len(p.Captions) == 0 {
			return nil, fmt.Errorf("dataset: image %s has no captions", p.Image)
		}
		for _, c := range p.Captions {
			if strings.TrimSpace(c) == "" {
				return nil, fmt.Errorf("dataset: image %s has an empty caption", p.Image)
			}
			r.Captions = append(r.Captions, c)
			r.CaptionImage = append(r.CaptionImage, len(r.Images))
		}
		r.Images = append(r.Images, p.Image)
	}
	return r, nil
}

// Pairs returns the set as pairs (captions grouped by image).
func (r *Retrieval) Pairs() []Pair {
	out := make([]Pair, len(r.Images))
	for i, im := range r.Images {
		out[i].Image = im
	}
	for i, c := range r.Captions {
		p := &out[r.CaptionImage[i]]
		p.Captions = append(p.Captions, c)
	}
	return out
}

// Limit returns the first n images and their captions (all if n <= 0 or n
// is at least the number of images).
func (r *Retrieval) Limit(n int) *Retrieval {
	if n <= 0 || n >= len(r.Images) {
		return r
	}
	out := &Retrieval{Images: r.Images[:n:n]}
	for i, g := range r.CaptionImage {
		if g < n {
			out.Captions = append(out.Captions, r.Captions[i])
			out.CaptionImage = append(out.CaptionImage, g)
		}
	}
	return out
}

// Validate checks the internal consistency of r.
func (r *Retrieval) Validate() error {
	if len(r.Captions) != len(r.CaptionImage) {
		return fmt.Errorf("dataset: %d captions but %d caption-image links", len(r.Captions), len(r.CaptionImage))
	}
	has := make([]bool, len(r.Images))
	for i, g := range r.CaptionImage {
		if g < 0 || g >= len(r.Images) {
			return fmt.Errorf("dataset: caption %d points at image %d of %d", i, g, len(r.Images))
		}
		has[g] = true
	}
	for i, ok := range has {
		if !ok {
			return fmt.Errorf("dataset: image %d (%s) has no captions", i, r.Images[i])
		}
	}
	return nil
}

// Load reads a retrieval dataset file, choosing the reader by extension
// (.json Karpathy, .jsonl/.ndjson JSONL, .csv/.tsv CSV) or, for other names,
// by content. Image paths are resolved against the file's directory.
func Load(path, split string, limit int) (*Retrieval, error) {
	return ReadFile(path, Options{Split: split, Limit: limit})
}

// ReadFile is Load with all options: the image–text index of a file, for
// callers that want paths rather than records.
func ReadFile(path string, opt Options) (*Retrieval, error) {
	s, err := ParseSpec(path)
	if err != nil {
		return nil, err
	}
	switch s.Format {
	case Karpathy, JSONL, CSV:
	case Folder:
		return nil, fmt.Errorf("dataset: %s is a directory; an image-folder tree is a classification set, a retrieval set is a .json, .jsonl or .csv file", path)
	default:
		return nil, fmt.Errorf("dataset: %s: a %v dataset has no file index; read it with Open", path, s.Format)
	}
	d, err := OpenSpec(s, opt)
	if err != nil {
		return nil, err
	}
	return d.Retrieval()
}

// splitFilter parses a split selection; nil means everything.
type splitFilter map[string]bool

func parseSplit(s string) splitFilter {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "all") {
		return nil
	}
	f := splitFilter{}
	for _, name := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '+' }) {
		if name = strings.TrimSpace(name); name != "" {
			f[name] = true
		}
	}
	return f
}

func (f splitFilter) match(split string) bool { return f == nil || f[split] }

// resolve joins a relative image path to root.
func resolve(root, p string) string {
	if filepath.IsAbs(p) || root == "" {
		return filepath.Clean(p)
	}
	return filepath.Join(root, p)
}

func rootOf(path string, opt Options) string {
	if opt.Root != "" {
		return opt.Root
	}
	return filepath.Dir(path)
}

// ErrMissingImages is wrapped by errors about image files that do not exist.
var ErrMissingImages = errors.New("missing images")

// checkImages reports the images that are not regular files.
func checkImages(paths []string) error {
	var missing []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	show := missing[:min(5, len(missing))]
	more := ""
	if len(missing) > len(show) {
		more = ", ..."
	}
	return fmt.Errorf("dataset: %w: %d of %d image files do not exist (first: %s%s)",
		ErrMissingImages, len(missing), len(paths), strings.Join(show, ", "), more)
}

// grouper collects captions by image in order of first appearance.
type grouper struct {
	index map[string]int
	pairs []Pair
}

func (g *grouper) add(where, image string, captions ...string) {
	if g.index == nil {
		g.index = map[string]int{}
	}
	i, ok := g.index[image]
	if !ok {
		i = len(g.pairs)
		g.index[image] = i
		g.pairs = append(g.pairs, Pair{Image: image, Where: where})
	}
	g.pairs[i].Captions = append(g.pairs[i].Captions, captions...)
}

// limitPairs applies the limit and rejects an empty result.
func limitPairs(path string, pairs []Pair, splits map[string]int, opt Options) ([]Pair, error) {
	if len(pairs) == 0 {
		if len(splits) > 0 && opt.Split != "" {
			return nil, fmt.Errorf("dataset: %s: no images in split %q (present: %s)", path, opt.Split, describeSplits(splits))
		}
		return nil, fmt.Errorf("dataset: %s: no images", path)
	}
	if opt.Limit > 0 && opt.Limit < len(pairs) {
		pairs = pairs[:opt.Limit]
	}
	return pairs, nil
}

// badRow reports a bad row: its error, or nil after counting it when
// opt.SkipBad is set.
func badRow(opt Options, skips *Skips, err error) error {
	if opt.SkipBad && skips != nil {
		skips.Add(err)
		return nil
	}
	return err
}

func describeSplits(splits map[string]int) string {
	names := make([]string, 0, len(splits))
	for s := range splits {
		names = append(names, s)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, s := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		if s == "" {
			s = `""`
		}
		fmt.Fprintf(&b, "%s %d", s, splits[s])
	}
	return b.String()
}
