package shapes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unicode"

	"github.com/mopeclip/mopeclip/internal/atomicfile"
)

// Part names a split and how many of its examples to export (n <= 0: the
// split's configured size).
type Part struct {
	Split string
	N     int
}

// Summary counts what an export wrote.
type Summary struct {
	Images, Captions int
	Bytes            int64 // PNG bytes
	JSON             string
}

// ManifestName is the Karpathy-style JSON an export writes.
const ManifestName = "dataset.json"

// Export writes examples 0..n-1 of one split to dir: PNGs under dir/<split>/
// and the Karpathy-style dir/dataset.json. See ExportSplits.
func Export(dir string, cfg Config, split string, n int) error {
	_, err := ExportSplits(dir, cfg, Part{split, n})
	return err
}

// ExportSplits writes the given splits to dir: each image as
// dir/<split>/<ID>.png and one Karpathy-style JSON, dir/dataset.json, listing
// them all:
//
//	{"images":[{"filepath":"test","filename":"shapes-test-000000.png","split":"test",
//	  "sentences":[{"raw":"...","tokens":[...],"imgid":0,"sentid":0}, ...],
//	  "imgid":0,"sentids":[0,...],"objects":[...]}, ...],
//	 "dataset":"shapes","config":{...}}
//
// Every file is written atomically (temporary file, then rename), and the
// JSON last, after the images have been synced to disk, so an interrupted
// export leaves no dataset.json, and a dataset.json never lists a missing or
// partial image, even after a power cut. The output is byte-identical for
// the same configuration (and Go version, whose PNG encoder it uses).
func ExportSplits(dir string, cfg Config, parts ...Part) (Summary, error) {
	return ExportSplitsContext(context.Background(), dir, cfg, parts...)
}

// ExportSplitsContext is ExportSplits that stops with ctx's error between
// chunks of images when ctx is cancelled (no dataset.json is written then).
func ExportSplitsContext(ctx context.Context, dir string, cfg Config, parts ...Part) (Summary, error) {
	var sum Summary
	if err := cfg.Validate(); err != nil {
		return sum, err
	}
	if len(parts) == 0 {
		return sum, fmt.Errorf("shapes: export: no split given")
	}
	for i, p := range parts {
		n, err := cfg.SplitSize(p.Split)
		if err != nil {
			return sum, err
		}
		if p.N <= 0 {
			parts[i].N = n
		}
		for _, q := range parts[:i] {
			if q.Split == p.Split {
				return sum, fmt.Errorf("shapes: export: split %q given twice", p.Split)
			}
		}
	}
	var js bytes.Buffer
	var written []string
	js.WriteString("{\"images\":[")
	imgID, sentID := 0, 0
	for _, p := range parts {
		sub := filepath.Join(dir, p.Split)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return sum, fmt.Errorf("shapes: export: %w", err)
		}
		const chunk = 256
		for start := 0; start < p.N; start += chunk {
			if err := ctx.Err(); err != nil {
				return sum, err
			}
			exs, err := GenerateRange(cfg, p.Split, start, min(chunk, p.N-start))
			if err != nil {
				return sum, err
			}
			paths, nb, err := writePNGs(sub, exs)
			sum.Bytes += nb
			if err != nil {
				return sum, err
			}
			written = append(written, paths...)
			for _, e := range exs {
				if imgID > 0 {
					js.WriteByte(',')
				}
				js.WriteString("\n")
				b, err := json.Marshal(karpathyEntry(e, imgID, &sentID))
				if err != nil {
					return sum, err
				}
				js.Write(b)
				imgID++
				sum.Captions += len(e.Captions)
			}
			sum.Images += len(exs)
		}
	}
	cj, err := json.Marshal(exportConfig(cfg))
	if err != nil {
		return sum, err
	}
	fmt.Fprintf(&js, "\n],\"dataset\":\"shapes\",\"config\":%s}\n", cj)
	// The images must be on disk before a manifest that lists them.
	if err := syncFiles(written); err != nil {
		return sum, err
	}
	sum.JSON = filepath.Join(dir, ManifestName)
	if err := atomicfile.WriteFile(sum.JSON, js.Bytes()); err != nil {
		return sum, err
	}
	return sum, nil
}

// writePNGs encodes and writes the examples' images in parallel. Each file
// goes to a temporary name and is renamed into place, so no PNG is ever
// half-written under its final name; the data is made durable by one
// syncFiles call before the manifest is written, not by a sync per file.
func writePNGs(dir string, exs []Example) ([]string, int64, error) {
	errs := make([]error, len(exs))
	sizes := make([]int64, len(exs))
	paths := make([]string, len(exs))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// BestSpeed: on these noisy images it is 2× faster than the
			// default level and no larger. The level is part of the
			// byte-identical output, so it is fixed.
			enc := png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &onePool{}}
			var buf bytes.Buffer
			for i := range work {
				buf.Reset()
				paths[i] = filepath.Join(dir, exs[i].ID+".png")
				if errs[i] = enc.Encode(&buf, exs[i].Image); errs[i] == nil {
					errs[i] = writeRename(paths[i], buf.Bytes())
					sizes[i] = int64(buf.Len())
				}
			}
		}()
	}
	for i := range exs {
		work <- i
	}
	close(work)
	wg.Wait()
	var total int64
	for i, err := range errs {
		total += sizes[i]
		if err != nil {
			return nil, total, err
		}
	}
	return paths, total, nil
}

// onePool is a png.EncoderBufferPool for one goroutine.
type onePool struct{ b *png.EncoderBuffer }

func (p *onePool) Get() *png.EncoderBuffer  { return p.b }
func (p *onePool) Put(b *png.EncoderBuffer) { p.b = b }

// writeRename writes data to a temporary file next to path and renames it
// over path (no sync; see syncFiles).
func writeRename(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("shapes: export: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("shapes: export: %w", err)
	}
	return nil
}

type kSentence struct {
	Raw    string   `json:"raw"`
	Tokens []string `json:"tokens"`
	ImgID  int      `json:"imgid"`
	SentID int      `json:"sentid"`
}

type kObject struct {
	Shape    string  `json:"shape"`
	Color    string  `json:"color"`
	Size     string  `json:"size"`
	X        float64 `json:"x"`
	Y        float64 `json:"y"`
	R        float64 `json:"r"`
	Position string  `json:"position"`
}

type kImage struct {
	Filepath   string      `json:"filepath"`
	Filename   string      `json:"filename"`
	Split      string      `json:"split"`
	Sentences  []kSentence `json:"sentences"`
	ImgID      int         `json:"imgid"`
	SentIDs    []int       `json:"sentids"`
	ID         string      `json:"id"`
	Objects    []kObject   `json:"objects"`
	Background string      `json:"background"`
	TwinOf     *int        `json:"twin_of,omitempty"`
	Change     string      `json:"change,omitempty"`
}

func karpathyEntry(e Example, imgID int, sentID *int) kImage {
	k := kImage{Filepath: e.Split, Filename: e.ID + ".png", Split: e.Split, ImgID: imgID, ID: e.ID, Change: e.Change}
	for _, c := range e.Captions {
		k.Sentences = append(k.Sentences, kSentence{Raw: c, Tokens: Tokenize(c), ImgID: imgID, SentID: *sentID})
		k.SentIDs = append(k.SentIDs, *sentID)
		*sentID++
	}
	for _, o := range e.Objects {
		k.Objects = append(k.Objects, kObject{o.Shape.String(), o.Color.String(), o.Size.String(),
			round4(o.X), round4(o.Y), round4(o.R), o.Position.String()})
	}
	k.Background = e.Background.Style.String()
	if e.Background.Named {
		k.Background += " " + e.Background.Color.String()
	}
	if e.TwinOf >= 0 {
		t := e.TwinOf
		k.TwinOf = &t
	}
	return k
}

func round4(v float64) float64 {
	return float64(int64(v*10000+0.5)) / 10000
}

// Tokenize splits a caption into lower-case words (letters and digits), the
// way Karpathy's files store "tokens".
func Tokenize(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

type configJSON struct {
	Seed                uint64   `json:"seed"`
	ImageSize           int      `json:"image_size"`
	Supersample         int      `json:"supersample"`
	MinObjects          int      `json:"min_objects"`
	MaxObjects          int      `json:"max_objects"`
	Shapes              int      `json:"shapes"`
	Colors              int      `json:"colors"`
	RelationProb        float64  `json:"relation_prob"`
	DuplicateProb       float64  `json:"duplicate_prob"`
	HardNegativeProb    float64  `json:"hard_negative_prob"`
	Backgrounds         []string `json:"backgrounds"`
	NamedBackgroundProb float64  `json:"named_background_prob"`
	BackgroundNoise     float64  `json:"background_noise"`
	Noise               float64  `json:"noise"`
	CaptionsPerImage    int      `json:"captions_per_image"`
}

func exportConfig(c Config) configJSON {
	j := configJSON{c.Seed, c.ImageSize, c.Supersample, c.MinObjects, c.MaxObjects, c.Shapes, c.Colors,
		c.RelationProb, c.DuplicateProb, c.HardNegativeProb, nil, c.NamedBackgroundProb, c.BackgroundNoise,
		c.Noise, c.CaptionsPerImage}
	for _, b := range c.Backgrounds {
		j.Backgrounds = append(j.Backgrounds, b.String())
	}
	return j
}
