package dataset

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ReadJSONL reads a JSON-lines file of {"image": path, "caption": text} or
// {"image": path, "captions": [text, ...]} objects (both fields may be
// given), with an optional "split". Blank lines are skipped. Rows naming the
// same image are grouped.
func ReadJSONL(path string, opt Options) (*Retrieval, error) {
	return readFileAs(path, JSONL, opt)
}

func readJSONL(path string, opt Options, skips *Skips) ([]Pair, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	root := rootOf(path, opt)
	filter := parseSplit(opt.Split)
	splits := map[string]int{}
	var g grouper
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\ufeff"))
		}
		if len(b) == 0 {
			continue
		}
		var rec struct {
			Image    *string  `json:"image"`
			Caption  *string  `json:"caption"`
			Captions []string `json:"captions"`
			Split    *string  `json:"split"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("dataset: %s:%d: malformed line: %v", path, line, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("dataset: %s:%d: malformed line: more than one JSON value", path, line)
		}
		var caps []string
		if rec.Caption != nil {
			caps = append(caps, *rec.Caption)
		}
		caps = append(caps, rec.Captions...)
		var bad error
		switch {
		case rec.Image == nil || strings.TrimSpace(*rec.Image) == "":
			bad = fmt.Errorf("dataset: %s:%d: no \"image\" field", path, line)
		case len(caps) == 0:
			bad = fmt.Errorf("dataset: %s:%d: no \"caption\" or \"captions\" field (or an empty list)", path, line)
		case slices.ContainsFunc(caps, func(c string) bool { return strings.TrimSpace(c) == "" }):
			bad = fmt.Errorf("dataset: %s:%d: empty caption", path, line)
		}
		if bad != nil {
			if err := badRow(opt, skips, bad); err != nil {
				return nil, err
			}
			continue
		}
		split := ""
		if rec.Split != nil {
			split = *rec.Split
		}
		splits[split]++
		if rec.Split != nil && !filter.match(split) {
			continue
		}
		g.add(fmt.Sprintf("%s:%d", path, line), resolve(root, filepath.FromSlash(strings.TrimSpace(*rec.Image))), trimAll(caps)...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", path, err)
	}
	return limitPairs(path, g.pairs, nonEmptySplits(splits), opt)
}

// ReadCSV reads a CSV or TSV file with a header row (see Options for the
// column names and the separator; a split column is optional). Other
// columns are ignored. Rows naming the same image are one image with
// several captions.
func ReadCSV(path string, opt Options) (*Retrieval, error) {
	return readFileAs(path, CSV, opt)
}

func readCSV(path string, opt Options, skips *Skips) ([]Pair, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\ufeff")) {
		br.Discard(3)
	}
	r := csv.NewReader(br)
	r.Comma = csvSeparator(path, opt, br)
	r.LazyQuotes = r.Comma == '\t' // open_clip reads TSV with pandas, quotes as text
	header, err := r.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("dataset: %s: empty file", path)
	}
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %v", path, csvErr(err))
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	ic, cc, err := csvColumns(path, header, col, opt, r.Comma)
	if err != nil {
		return nil, err
	}
	sc, okS := col["split"]
	root := rootOf(path, opt)
	filter := parseSplit(opt.Split)
	splits := map[string]int{}
	var g grouper
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("dataset: %s: %v", path, csvErr(err))
		}
		line, _ := r.FieldPos(0)
		img, c := strings.TrimSpace(rec[ic]), strings.TrimSpace(rec[cc])
		var bad error
		switch {
		case img == "":
			bad = fmt.Errorf("dataset: %s:%d: empty image", path, line)
		case c == "":
			bad = fmt.Errorf("dataset: %s:%d: empty caption", path, line)
		}
		if bad != nil {
			if err := badRow(opt, skips, bad); err != nil {
				return nil, err
			}
			continue
		}
		split := ""
		if okS {
			split = strings.TrimSpace(rec[sc])
		}
		splits[split]++
		if okS && !filter.match(split) {
			continue
		}
		g.add(fmt.Sprintf("%s:%d", path, line), resolve(root, filepath.FromSlash(img)), c)
	}
	return limitPairs(path, g.pairs, nonEmptySplits(splits), opt)
}

// csvSeparator is opt.CSVSeparator, else tab for .tsv, else tab when the
// header line has a tab (open_clip's own .csv files), else comma.
func csvSeparator(path string, opt Options, br *bufio.Reader) rune {
	if opt.CSVSeparator != 0 {
		return opt.CSVSeparator
	}
	if strings.EqualFold(filepath.Ext(path), ".tsv") {
		return '\t'
	}
	head, _ := br.Peek(64 << 10)
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	}
	if bytes.IndexByte(head, '\t') >= 0 {
		return '\t'
	}
	return ','
}

// csvColumns finds the image and caption columns: the keys named in opt,
// else open_clip's defaults filepath/title, else image/caption.
func csvColumns(path string, header []string, col map[string]int, opt Options, sep rune) (ic, cc int, err error) {
	pick := func(key string, defaults ...string) (int, string, bool) {
		if key != "" {
			i, ok := col[strings.ToLower(key)]
			return i, key, ok
		}
		for _, k := range defaults {
			if i, ok := col[k]; ok {
				return i, k, true
			}
		}
		return 0, strings.Join(defaults, `" or "`), false
	}
	ic, ik, okI := pick(opt.CSVImageKey, "filepath", "image")
	cc, ck, okC := pick(opt.CSVCaptionKey, "title", "caption")
	if !okI || !okC {
		return 0, 0, fmt.Errorf("dataset: %s: line 1: header %q lacks the image column \"%s\" or the caption column \"%s\" (set --csv-img-key, --csv-caption-key, --csv-separator)",
			path, strings.Join(header, string(sep)), ik, ck)
	}
	return ic, cc, nil
}

func csvErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d: malformed row: %v", pe.Line, pe.Err)
	}
	return err
}

func trimAll(s []string) []string {
	out := make([]string, len(s))
	for i, c := range s {
		out[i] = strings.TrimSpace(c)
	}
	return out
}

// nonEmptySplits drops the count of rows without a split, for messages.
func nonEmptySplits(m map[string]int) map[string]int {
	if len(m) == 1 {
		if _, ok := m[""]; ok {
			return nil
		}
	}
	return m
}
