package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

type karpathyFile struct {
	Images *[]karpathyImage `json:"images"`
}

type karpathyImage struct {
	Filepath  string `json:"filepath"`
	Filename  string `json:"filename"`
	Split     string `json:"split"`
	Sentences []struct {
		Raw    *string  `json:"raw"`
		Tokens []string `json:"tokens"`
	} `json:"sentences"`
}

// ReadKarpathy reads a Karpathy-split JSON file (COCO, Flickr30K, or one
// written by shapes.Export). A sentence's text is its "raw" field, or its
// tokens joined by spaces where the sentence has no "raw" key (or a null
// one). A "raw" that is empty or blank, or a sentence with neither raw nor
// a non-blank token, is an error naming the file, the image and the
// sentence (a bad record, skipped with Options.SkipBad). Splits in these
// files are "train", "restval", "val" and "test".
func ReadKarpathy(path string, opt Options) (*Retrieval, error) {
	return readFileAs(path, Karpathy, opt)
}

func readKarpathy(path string, opt Options, skips *Skips) ([]Pair, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	var kf karpathyFile
	dec := json.NewDecoder(bufio.NewReaderSize(f, 1<<20))
	if err := dec.Decode(&kf); err != nil {
		return nil, fmt.Errorf("dataset: %s: not a Karpathy-split JSON file: %v", path, jsonErr(err, f))
	}
	if kf.Images == nil {
		return nil, fmt.Errorf("dataset: %s: not a Karpathy-split JSON file: no \"images\" array", path)
	}
	root := rootOf(path, opt)
	filter := parseSplit(opt.Split)
	splits := map[string]int{}
	var g grouper
	for i, im := range *kf.Images {
		splits[im.Split]++
		if !filter.match(im.Split) {
			continue
		}
		if im.Filename == "" {
			if err := badRow(opt, skips, fmt.Errorf("dataset: %s: image %d has no filename", path, i)); err != nil {
				return nil, err
			}
			continue
		}
		var caps []string
		var bad error
		for j, s := range im.Sentences {
			c, err := sentenceText(s.Raw, s.Tokens)
			if err != nil {
				bad = fmt.Errorf("dataset: %s: image %d (%s): sentence %d %v", path, i, im.Filename, j, err)
				break
			}
			caps = append(caps, c)
		}
		if bad == nil && len(caps) == 0 {
			bad = fmt.Errorf("dataset: %s: image %d (%s) has no sentences", path, i, im.Filename)
		}
		if bad != nil {
			if err := badRow(opt, skips, bad); err != nil {
				return nil, err
			}
			continue
		}
		p := resolve(root, filepath.Join(filepath.FromSlash(im.Filepath), filepath.FromSlash(im.Filename)))
		if _, dup := g.index[p]; dup {
			return nil, fmt.Errorf("dataset: %s: image %d (%s) is listed twice", path, i, p)
		}
		g.add(fmt.Sprintf("%s: image %d (%s)", path, i, im.Filename), p, caps...)
	}
	return limitPairs(path, g.pairs, splits, opt)
}

// sentenceText is a Karpathy sentence's caption: raw when the key is
// present, else the non-blank tokens joined by spaces.
func sentenceText(raw *string, tokens []string) (string, error) {
	if raw != nil {
		c := strings.TrimSpace(*raw)
		if c == "" {
			return "", fmt.Errorf("is empty (\"raw\": %q)", *raw)
		}
		return c, nil
	}
	var toks []string
	for _, t := range tokens {
		if t = strings.TrimSpace(t); t != "" {
			toks = append(toks, t)
		}
	}
	if len(toks) == 0 {
		return "", fmt.Errorf("is empty (no \"raw\" and no tokens)")
	}
	return strings.Join(toks, " "), nil
}

// jsonErr adds a line number to a JSON syntax error where it can.
func jsonErr(err error, f *os.File) error {
	var off int64 = -1
	switch e := err.(type) {
	case *json.SyntaxError:
		off = e.Offset
	case *json.UnmarshalTypeError:
		off = e.Offset
	}
	if off < 0 {
		return err
	}
	if _, serr := f.Seek(0, io.SeekStart); serr != nil {
		return err
	}
	buf := make([]byte, off)
	n, _ := io.ReadFull(f, buf)
	return fmt.Errorf("line %d: %v", bytes.Count(buf[:n], []byte{'\n'})+1, err)
}

// sniff guesses the format of a file with an unknown extension.
func sniff(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	for {
		b, err := br.ReadByte()
		if err != nil {
			return "", fmt.Errorf("dataset: %s: empty file", path)
		}
		if b == ' ' || b == '\t' || b == '\r' || b == '\n' {
			continue
		}
		if b != '{' {
			return "csv", nil
		}
		break
	}
	// A Karpathy file is one JSON object with an "images" array; JSONL has
	// one object per line.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	dec := json.NewDecoder(bufio.NewReader(f))
	var probe map[string]json.RawMessage
	if err := dec.Decode(&probe); err == nil {
		if _, ok := probe["images"]; ok {
			return "karpathy", nil
		}
	}
	return "jsonl", nil
}

// readFileAs reads a file of a known format into a Retrieval.
func readFileAs(path string, f Format, opt Options) (*Retrieval, error) {
	d, err := OpenSpec(Spec{Format: f, Path: path}, opt)
	if err != nil {
		return nil, err
	}
	return d.Retrieval()
}
