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
	"strings"
)

// ReadJSONL reads a JSON-lines file of {"image": path, "caption": text} or
// {"image": path, "captions": [text, ...]} objects (both fields may be
// given), with an optional "split". Blank lines are skipped. Rows naming the
// same image are grouped.
func ReadJSONL(path string, opt Options) (*Retrieval, error) {
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
		if rec.Image == nil || strings.TrimSpace(*rec.Image) == "" {
			return nil, fmt.Errorf("dataset: %s:%d: no \"image\" field", path, line)
		}
		var caps []string
		if rec.Caption != nil {
			caps = append(caps, *rec.Caption)
		}
		caps = append(caps, rec.Captions...)
		if len(caps) == 0 {
			return nil, fmt.Errorf("dataset: %s:%d: no \"caption\" or \"captions\" field", path, line)
		}
		for _, c := range caps {
			if strings.TrimSpace(c) == "" {
				return nil, fmt.Errorf("dataset: %s:%d: empty caption", path, line)
			}
		}
		split := ""
		if rec.Split != nil {
			split = *rec.Split
		}
		splits[split]++
		if rec.Split != nil && !filter.match(split) {
			continue
		}
		g.add(resolve(root, filepath.FromSlash(strings.TrimSpace(*rec.Image))), trimAll(caps)...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", path, err)
	}
	return finish(path, g.pairs, nonEmptySplits(splits), opt)
}

// ReadCSV reads a CSV file (RFC 4180; tab-separated for a .tsv name) whose
// header names the columns image and caption (any case), and optionally
// split. Other columns are ignored. Rows naming the same image are grouped.
func ReadCSV(path string, opt Options) (*Retrieval, error) {
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
	if strings.EqualFold(filepath.Ext(path), ".tsv") {
		r.Comma = '\t'
	}
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
	ic, okI := col["image"]
	cc, okC := col["caption"]
	sc, okS := col["split"]
	if !okI || !okC {
		return nil, fmt.Errorf("dataset: %s: line 1: header %q lacks the columns \"image\" and \"caption\"", path, strings.Join(header, string(r.Comma)))
	}
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
		if img == "" {
			return nil, fmt.Errorf("dataset: %s:%d: empty image", path, line)
		}
		if c == "" {
			return nil, fmt.Errorf("dataset: %s:%d: empty caption", path, line)
		}
		split := ""
		if okS {
			split = strings.TrimSpace(rec[sc])
		}
		splits[split]++
		if okS && !filter.match(split) {
			continue
		}
		g.add(resolve(root, filepath.FromSlash(img)), c)
	}
	return finish(path, g.pairs, nonEmptySplits(splits), opt)
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
