// Package export writes a loaded (possibly pruned) CLIP model in formats
// other tools read: a Hugging Face directory that stock transformers loads
// as CLIPModel (per-layer widths padded with zeros, see Dense), and ONNX
// graphs of both towers that keep the pruned shapes (ImageEncoder,
// TextEncoder), encoded with a small protowire writer (onnxpb.go).
//
// It sits above clip: it reads a *clip.Model, builds the ONNX graphs from
// its lowering (clip/lower) and writes model directories through
// (*clip.Model).SaveWith.
package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/internal/atomicfile"
)

// Format is an export format.
type Format int

// The formats.
const (
	// HF is a Hugging Face CLIPModel directory with uniform layer widths.
	HF Format = iota + 1
	// ONNX is image_encoder.onnx and text_encoder.onnx with the real shapes.
	ONNX
)

// String returns the format's command-line name.
func (f Format) String() string {
	switch f {
	case HF:
		return "hf"
	case ONNX:
		return "onnx"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat maps "hf" or "onnx" to a Format.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "hf":
		return HF, nil
	case "onnx":
		return ONNX, nil
	}
	return 0, fmt.Errorf("unknown export format %q (want hf or onnx)", s)
}

// TowerSummary describes one exported tower.
type TowerSummary struct {
	Layers       int   `json:"layers"`
	Heads        []int `json:"heads"`
	Intermediate []int `json:"intermediate"`
}

// Summary says what an export wrote.
type Summary struct {
	Format string       `json:"format"`
	Out    string       `json:"out"`
	Files  []string     `json:"files"`
	Bytes  int64        `json:"bytes"`
	Vision TowerSummary `json:"vision"`
	Text   TowerSummary `json:"text"`
	Params int          `json:"params"`
}

// Options control Write.
type Options struct {
	// Source is the directory m was loaded from; its tokenizer and
	// preprocessor files are copied along ("" copies none).
	Source string
	// Replace allows out to exist already; it is replaced only once the new
	// export is complete.
	Replace bool
	// Tokenizer, when Source has no tokenizer files (an open_clip
	// directory, a bare checkpoint), is written as vocab.json and
	// merges.txt. Its vocabulary must be the model's size.
	Tokenizer *tokenizer.Tokenizer
}

// Write exports m to the directory out in format f. The export is built in
// a temporary directory beside out and renamed into place at the end, so a
// failed or cancelled export leaves nothing behind (and an existing out,
// with Replace, intact).
func Write(ctx context.Context, m *clip.Model, out string, f Format, o Options) (*Summary, error) {
	if f != HF && f != ONNX {
		return nil, fmt.Errorf("export: unknown format %v", f)
	}
	if err := checkPaths(o.Source, out, o.Replace); err != nil {
		return nil, err
	}
	if f == HF {
		if err := checkExportable(m); err != nil {
			return nil, err
		}
	}
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if o.Tokenizer != nil {
		if n, want := o.Tokenizer.VocabSize(), m.Config.Text.VocabSize; n != want {
			return nil, fmt.Errorf("export: the tokenizer has %d tokens but the model's text_config.vocab_size is %d", n, want)
		}
	}
	var written *clip.Model
	switch f {
	case HF:
		written, err = writeHF(ctx, m, tmp, o)
	case ONNX:
		written, err = m, writeONNX(ctx, m, tmp)
		if err == nil {
			err = completeDir(m, tmp, o)
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("export %s to %s: %w", f, out, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	s, err := summarize(written, tmp, f)
	if err != nil {
		return nil, err
	}
	s.Out = out
	if err := replaceDir(tmp, out); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return s, nil
}

// checkPaths refuses an out that is the source directory or contains it
// (replacing it would destroy the model being exported), and an existing
// out without replace.
func checkPaths(src, out string, replace bool) error {
	if out == "" {
		return errors.New("export: no output directory")
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if src != "" {
		absSrc, err := filepath.Abs(src)
		if err != nil {
			return err
		}
		if absSrc == absOut || strings.HasPrefix(absSrc, absOut+string(filepath.Separator)) {
			return fmt.Errorf("--out %s would overwrite the model directory %s; choose another directory", out, src)
		}
		if a, errA := os.Stat(src); errA == nil {
			if b, errB := os.Stat(out); errB == nil && os.SameFile(a, b) {
				return fmt.Errorf("--out %s is the model directory %s; choose another directory", out, src)
			}
		}
	}
	st, err := os.Stat(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("export: %w", err)
	case !st.IsDir():
		return fmt.Errorf("--out %s exists and is not a directory", out)
	case !replace:
		if empty, _ := isEmptyDir(out); !empty {
			return fmt.Errorf("--out %s already exists (give --force to replace it)", out)
		}
	}
	return nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// replaceDir renames the finished tmp to out; an existing out is moved aside
// first and removed once the new one is in place.
func replaceDir(tmp, out string) error {
	if _, err := os.Lstat(out); err == nil {
		old := tmp + ".old"
		if err := os.Rename(out, old); err != nil {
			return err
		}
		if err := os.Rename(tmp, out); err != nil {
			os.Rename(old, out) // put the old export back
			return err
		}
		return os.RemoveAll(old)
	}
	return os.Rename(tmp, out)
}

// completeDir adds the tokenizer and preprocessing files of a model
// directory to an ONNX export: those of o.Source, the ones it lacks filled
// in (tokenizer_config.json, special_tokens_map.json from the tokenizer;
// preprocessor_config.json from the model's preprocessing), the tokenizer
// o.Tokenizer when o.Source has none.
func completeDir(m *clip.Model, dir string, o Options) error {
	if o.Source != "" {
		if err := clip.CopyTokenizer(o.Source, dir); err != nil {
			return err
		}
	}
	tok := o.Tokenizer
	if hasTokenizer(dir) {
		t, err := clip.LoadTokenizer(dir)
		if err != nil {
			return err
		}
		tok = t
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	if tok != nil && !(hasTokenizer(dir) && exists(clip.TokenizerConfigFile) && exists(clip.SpecialTokensFile)) {
		if err := clip.WriteTokenizerFiles(dir, tok, m.Config.Text.MaxPositionEmbeddings); err != nil {
			return err
		}
	}
	if !exists(clip.PreprocessorFile) {
		return clip.WritePreprocessorConfig(dir, m.ImageConfig())
	}
	return nil
}

// hasTokenizer reports whether dir holds a tokenizer (vocab.json and
// merges.txt, or tokenizer.json).
func hasTokenizer(dir string) bool {
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	return (exists(clip.VocabFile) && exists(clip.MergesFile)) || exists("tokenizer.json")
}

// HasTokenizer reports whether the model directory dir holds a tokenizer
// (vocab.json and merges.txt, or tokenizer.json).
func HasTokenizer(dir string) bool { return hasTokenizer(dir) }

// writeHF saves Dense(m) as a complete Hugging Face directory (SaveWith:
// the tokenizer and preprocessor files of o.Source, or o.Tokenizer, the
// missing ones filled in); it returns the padded model.
func writeHF(ctx context.Context, m *clip.Model, dir string, o Options) (*clip.Model, error) {
	d, err := Dense(m)
	if err != nil {
		return nil, err
	}
	d.Preprocess = m.Preprocess
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return d, d.SaveWith(dir, clip.SaveOptions{From: o.Source, Tokenizer: o.Tokenizer})
}

// writeONNX writes image_encoder.onnx and text_encoder.onnx.
func writeONNX(ctx context.Context, m *clip.Model, dir string) error {
	for _, e := range []struct {
		file  string
		build func(*clip.Model) (*ModelProto, error)
	}{{ImageEncoderFile, ImageEncoder}, {TextEncoderFile, TextEncoder}} {
		if err := ctx.Err(); err != nil {
			return err
		}
		mp, err := e.build(m)
		if err != nil {
			return err
		}
		if n := mp.Graph.weightBytes(); n > maxProtoBytes {
			return fmt.Errorf("%s: %.2f GB of weights exceed protobuf's 2 GB limit (ONNX external data is not written)", e.file, float64(n)/1e9)
		}
		err = atomicfile.Write(filepath.Join(dir, e.file), func(w io.Writer) error {
			_, err := mp.WriteTo(w)
			return err
		})
		if err != nil {
			return err
		}
	}
	info, err := json.MarshalIndent(describe(m), "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, InfoFile), append(info, '\n'))
}

// InfoFile is the JSON file of an ONNX export that describes its inputs.
const InfoFile = "export.json"

// Info is the content of InfoFile: what a caller needs to feed the graphs.
type Info struct {
	Format        string `json:"format"`
	Opset         int    `json:"opset"`
	ImageEncoder  string `json:"image_encoder"`
	TextEncoder   string `json:"text_encoder"`
	ImageSize     int    `json:"image_size"`
	ContextLength int    `json:"context_length"`
	ProjectionDim int    `json:"projection_dim"`
	EOSTokenID    int    `json:"eos_token_id"`
	// Pooling is how the text encoder picks each row's pooled token.
	Pooling string `json:"pooling"`
}

func describe(m *clip.Model) Info {
	c := m.Config
	pool := "first eos_token_id (last position when absent)"
	if c.Text.EOSTokenID == 2 {
		pool = "argmax of input_ids (legacy eos_token_id 2)"
	}
	return Info{Format: ONNX.String(), Opset: Opset, ImageEncoder: ImageEncoderFile, TextEncoder: TextEncoderFile,
		ImageSize: c.Vision.ImageSize, ContextLength: c.Text.MaxPositionEmbeddings, ProjectionDim: c.ProjectionDim,
		EOSTokenID: c.Text.EOSTokenID, Pooling: pool}
}

func towerSummary(t *clip.TowerConfig) TowerSummary {
	s := TowerSummary{Layers: t.NumHiddenLayers, Heads: []int{}, Intermediate: []int{}}
	for l := 0; l < t.NumHiddenLayers; l++ {
		s.Heads = append(s.Heads, t.Heads(l))
		s.Intermediate = append(s.Intermediate, t.Intermediate(l))
	}
	return s
}

func summarize(m *clip.Model, dir string, f Format) (*Summary, error) {
	_, _, params := m.NumParams()
	s := &Summary{Format: f.String(), Files: []string{}, Params: params,
		Vision: towerSummary(&m.Config.Vision), Text: towerSummary(&m.Config.Text)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		s.Files = append(s.Files, e.Name())
		s.Bytes += info.Size()
	}
	return s, nil
}
