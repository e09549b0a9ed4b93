package dataset

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
)

// ExpandBraces expands the brace patterns of a shard list as webdataset
// and braceexpand do: "{00000..00099}" is a numeric range (zero-padded to
// the width of its first bound when that has a leading zero), "{a,b,c}" a
// list; several patterns multiply out, left to right.
func ExpandBraces(s string) ([]string, error) {
	i := strings.IndexByte(s, '{')
	if i < 0 {
		if strings.IndexByte(s, '}') >= 0 {
			return nil, fmt.Errorf("dataset: %q: unmatched }", s)
		}
		return []string{s}, nil
	}
	j := strings.IndexByte(s[i:], '}')
	if j < 0 {
		return nil, fmt.Errorf("dataset: %q: unmatched {", s)
	}
	j += i
	alts, err := braceAlternatives(s[i+1 : j])
	if err != nil {
		return nil, fmt.Errorf("dataset: %q: %w", s, err)
	}
	rest, err := ExpandBraces(s[j+1:])
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(alts)*len(rest))
	for _, a := range alts {
		for _, r := range rest {
			out = append(out, s[:i]+a+r)
		}
	}
	return out, nil
}

// maxShards bounds a brace expansion (a typo such as {0..99999999} would
// otherwise allocate without end).
const maxShards = 1 << 20

func braceAlternatives(body string) ([]string, error) {
	if lo, hi, ok := strings.Cut(body, ".."); ok {
		a, errA := strconv.Atoi(lo)
		b, errB := strconv.Atoi(hi)
		if errA != nil || errB != nil || a < 0 || b < 0 {
			return nil, fmt.Errorf("bad range {%s} (want {FIRST..LAST} of non-negative integers)", body)
		}
		if b < a {
			return nil, fmt.Errorf("empty range {%s}", body)
		}
		if b-a >= maxShards {
			return nil, fmt.Errorf("range {%s} has more than %d items", body, maxShards)
		}
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		out := make([]string, 0, b-a+1)
		for k := a; k <= b; k++ {
			out = append(out, fmt.Sprintf("%0*d", width, k))
		}
		return out, nil
	}
	if !strings.Contains(body, ",") {
		return nil, fmt.Errorf("bad brace pattern {%s} (want {FIRST..LAST} or {a,b,...})", body)
	}
	return strings.Split(body, ","), nil
}

// Member extensions of a webdataset sample.
var (
	tarImageExts = []string{"jpg", "jpeg", "png", "webp"}
	// maxMember bounds one tar member read into memory.
	maxMember int64 = 256 << 20
)

// sample collects the members of one webdataset sample (one key).
type sample struct {
	key, shard string
	image      []byte
	imageName  string
	captions   []string
	bad        error
}

func (s *sample) where() string {
	if s.imageName != "" {
		return s.shard + ":" + s.imageName
	}
	return s.shard + ":" + s.key
}

// splitKey splits a member name into the sample key and the extension, as
// webdataset does: the key is the path up to the first dot of the base name.
func splitKey(name string) (key, ext string) {
	dir, base := path.Split(name)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		return dir + base[:i], strings.ToLower(base[i+1:])
	}
	return name, ""
}

// eachTar reads the shards in order, one sample at a time.
func (d *Dataset) eachTar(ctx context.Context, fn func(Record) error) error {
	idx := 0
	for _, shard := range d.Spec.Shards {
		err := d.eachInShard(ctx, shard, &idx, fn)
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	if idx == 0 {
		return fmt.Errorf("dataset: %s: no samples in %d tar shards", d.Spec.Path, len(d.Spec.Shards))
	}
	return nil
}

var errStop = errors.New("limit reached")

// truncatedError marks a shard that ends inside a member or header.
type truncatedError struct {
	shard, after string
	err          error
}

func (e *truncatedError) Error() string {
	if e.after == "" {
		return fmt.Sprintf("dataset: %s: truncated or corrupt tar at its start: %v", e.shard, e.err)
	}
	return fmt.Sprintf("dataset: %s: truncated or corrupt tar after member %s: %v", e.shard, e.after, e.err)
}

func (d *Dataset) eachInShard(ctx context.Context, shard string, idx *int, fn func(Record) error) error {
	f, err := os.Open(shard)
	if err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	var cur *sample
	last := ""
	flush := func() error {
		if cur == nil {
			return nil
		}
		s := cur
		cur = nil
		if s.bad == nil && s.image == nil {
			s.bad = fmt.Errorf("dataset: %s: sample %s has no image (.jpg, .jpeg, .png or .webp member)", s.shard, s.key)
		}
		if s.bad == nil && len(s.captions) == 0 {
			s.bad = fmt.Errorf("dataset: %s: no captions (want %s.txt lines or %s.json \"caption\"/\"captions\")", s.where(), path.Base(s.key), path.Base(s.key))
		}
		if s.bad != nil {
			return d.Bad(s.bad)
		}
		if d.opt.Limit > 0 && *idx >= d.opt.Limit {
			return errStop
		}
		r := Record{Index: *idx, Where: s.where(), Bytes: s.image, Captions: s.captions, Label: -1}
		*idx++
		return fn(r)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			// The sample in progress and the rest of the shard are lost:
			// one error (or, with SkipBad, one skip) names the shard and
			// the last member read.
			return d.Bad(&truncatedError{shard: shard, after: last, err: err})
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
			continue
		}
		last = h.Name
		key, ext := splitKey(h.Name)
		if strings.HasPrefix(path.Base(key), ".") || key == "" {
			continue
		}
		if cur == nil || cur.key != key {
			if err := flush(); err != nil {
				return err
			}
			cur = &sample{key: key, shard: shard}
		}
		if cur.bad != nil {
			continue
		}
		isImage := false
		for _, e := range tarImageExts {
			isImage = isImage || ext == e
		}
		if !isImage && ext != "txt" && ext != "json" {
			continue
		}
		if h.Size > maxMember {
			cur.bad = fmt.Errorf("dataset: %s:%s: member of %d bytes exceeds the limit of %d", shard, h.Name, h.Size, maxMember)
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return d.Bad(&truncatedError{shard: shard, after: h.Name, err: err})
		}
		switch {
		case isImage:
			if cur.image == nil {
				cur.image, cur.imageName = data, path.Base(h.Name)
			}
		case ext == "txt":
			caps := txtCaptions(data)
			if len(caps) == 0 {
				cur.bad = fmt.Errorf("dataset: %s:%s: empty caption (a blank .txt member)", shard, h.Name)
				continue
			}
			cur.captions = append(cur.captions, caps...)
		case ext == "json":
			caps, err := jsonCaptions(data)
			if err != nil {
				cur.bad = fmt.Errorf("dataset: %s:%s: %v", shard, h.Name, err)
				continue
			}
			cur.captions = append(cur.captions, caps...)
		}
	}
	return flush()
}

// jsonCaptions reads "caption" (a string) and "captions" (a list of
// strings) of a sample's JSON; both may be absent or null, but a blank
// caption is an error.
func jsonCaptions(data []byte) ([]string, error) {
	var v struct {
		Caption  *string  `json:"caption"`
		Captions []string `json:"captions"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("malformed JSON: %v", err)
	}
	var out []string
	if v.Caption != nil {
		c := strings.TrimSpace(*v.Caption)
		if c == "" {
			return nil, fmt.Errorf("empty caption (\"caption\": %q)", *v.Caption)
		}
		out = append(out, c)
	}
	for k, c := range v.Captions {
		if c = strings.TrimSpace(c); c == "" {
			return nil, fmt.Errorf("empty caption (\"captions\"[%d])", k)
		}
		out = append(out, c)
	}
	return out, nil
}

// txtCaptions reads the captions of a sample's .txt member: one a line,
// blank lines (a trailing newline, a CRLF) ignored.
func txtCaptions(data []byte) []string {
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if c := strings.TrimSpace(line); c != "" {
			out = append(out, c)
		}
	}
	return out
}
