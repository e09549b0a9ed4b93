package clip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/internal/atomicfile"
	"github.com/mopeclip/mopeclip/internal/safetensors"
)

// More file names of a Hugging Face CLIP model directory.
const (
	TokenizerConfigFile  = "tokenizer_config.json"
	SpecialTokensFile    = "special_tokens_map.json"
	FastTokenizerFile    = "tokenizer.json"
	PreprocessorFile     = preprocessorCfg
	clipStartOfText      = "<|startoftext|>"
	clipEndOfText        = "<|endoftext|>"
	defaultCLIPImageSize = 224
)

// SaveOptions says what a saved model directory holds besides the weights
// and config.json.
type SaveOptions struct {
	// From is a model directory whose tokenizer (vocab.json + merges.txt,
	// or tokenizer.json) and preprocessor_config.json the new directory
	// takes, e.g. the teacher of a pruned or distilled model.
	From string
	// Tokenizer is written when From gives none.
	Tokenizer *tokenizer.Tokenizer
}

// Save writes m as a complete Hugging Face CLIP directory; see SaveWith.
// With no tokenizer given, tokenizer files already in dir are kept.
func (m *Model) Save(dir string) error { return m.SaveWith(dir, SaveOptions{}) }

// SaveWith writes m as a Hugging Face CLIP directory, as a whole: the files
// go to a temporary sibling directory that then replaces dir by rename,
// under a lock on dir's parent, so a failed or concurrent write never
// leaves a mix of two models (internal/atomicfile.WriteDir). The directory
// holds config.json (per-layer widths of a pruned model under mopeclip_*
// keys), model.safetensors (float32), preprocessor_config.json (the
// model's image preprocessing, or From's file), and, when a tokenizer is
// known (From, o.Tokenizer, or the tokenizer files dir already holds),
// vocab.json, merges.txt, tokenizer_config.json (model_max_length = the
// text context) and special_tokens_map.json. Other entries of an existing
// dir (checkpoint/, curves, reports) are carried over; old weight files
// are not.
func (m *Model) SaveWith(dir string, o SaveOptions) error {
	var tok *tokenizer.Tokenizer
	var copyVocab bool
	tokSrc := o.From
	if tokSrc == "" && o.Tokenizer == nil {
		tokSrc = dir // keep (and complete) the tokenizer dir already has
	}
	if tokSrc != "" {
		switch {
		case fileExists(filepath.Join(tokSrc, VocabFile)) && fileExists(filepath.Join(tokSrc, MergesFile)):
			copyVocab = true
		case fileExists(filepath.Join(tokSrc, FastTokenizerFile)):
			t, err := LoadTokenizer(tokSrc)
			if err != nil {
				return err
			}
			tok = t
		}
	}
	if !copyVocab && tok == nil {
		tok = o.Tokenizer
	}
	wroteTokenizer := copyVocab || tok != nil
	fill := func(tmp string) error {
		if err := m.writeWeights(tmp); err != nil {
			return err
		}
		if copyVocab {
			for _, name := range []string{VocabFile, MergesFile} {
				if err := copyFileTo(filepath.Join(tokSrc, name), filepath.Join(tmp, name)); err != nil {
					return err
				}
			}
		} else if tok != nil {
			if err := tok.SaveHF(tmp); err != nil {
				return err
			}
		}
		if wroteTokenizer {
			if err := writeTokenizerConfigs(tmp, m.Config.Text.MaxPositionEmbeddings); err != nil {
				return err
			}
		}
		if o.From != "" && fileExists(filepath.Join(o.From, PreprocessorFile)) {
			return copyFileTo(filepath.Join(o.From, PreprocessorFile), filepath.Join(tmp, PreprocessorFile))
		}
		pc := m.ImageConfig()
		if m.Preprocess == nil && o.From != "" {
			// e.g. open_clip's preprocess_cfg, for a model pruned from it
			if p, err := LoadPreprocess(o.From); err == nil && p.Size == pc.Size {
				pc = p
			}
		}
		return WritePreprocessorConfig(tmp, pc)
	}
	keep := func(name string) bool {
		switch {
		case name == ConfigFile || name == OpenCLIPConfigFile || name == WeightsIndex ||
			strings.HasSuffix(name, ".safetensors") || strings.HasSuffix(name, ".bin"):
			return false // old weights never outlive new ones
		case wroteTokenizer && (name == FastTokenizerFile || name == TokenizerConfigFile || name == SpecialTokensFile):
			return false
		}
		return true
	}
	if err := atomicfile.WriteDir(dir, fill, keep); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	return nil
}

// writeWeights writes model.safetensors and config.json into dir.
func (m *Model) writeWeights(dir string) error {
	f := &safetensors.File{Tensors: map[string]*safetensors.Tensor{}, Metadata: map[string]string{"format": "pt"}}
	for _, p := range m.Params() {
		f.Add(p.Name, &safetensors.Tensor{DType: safetensors.F32, Shape: append([]int{}, p.Value.Shape...), F32: p.Value.Data})
	}
	if err := safetensors.Save(filepath.Join(dir, WeightsFile), f); err != nil {
		return err
	}
	cfg, err := m.Config.JSON()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, ConfigFile), cfg)
}

// WriteTokenizerFiles writes a complete Hugging Face CLIP tokenizer into
// dir: vocab.json, merges.txt, tokenizer_config.json (model_max_length =
// context) and special_tokens_map.json.
func WriteTokenizerFiles(dir string, tok *tokenizer.Tokenizer, context int) error {
	if err := tok.SaveHF(dir); err != nil {
		return err
	}
	return writeTokenizerConfigs(dir, context)
}

// writeTokenizerConfigs writes CLIPTokenizer's tokenizer_config.json and
// special_tokens_map.json: <|startoftext|> as bos, <|endoftext|> as eos,
// pad and unk (as openai/clip-vit-* do), lower-casing, the context.
func writeTokenizerConfigs(dir string, context int) error {
	special := map[string]any{"bos_token": clipStartOfText, "eos_token": clipEndOfText,
		"pad_token": clipEndOfText, "unk_token": clipEndOfText}
	tc := map[string]any{"tokenizer_class": "CLIPTokenizer", "model_max_length": context,
		"do_lower_case": true, "errors": "replace", "add_prefix_space": false, "clean_up_tokenization_spaces": true}
	for k, v := range special {
		tc[k] = v
	}
	if err := writeJSON(filepath.Join(dir, TokenizerConfigFile), tc); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, SpecialTokensFile), special)
}

// WritePreprocessorConfig writes Hugging Face's CLIPImageProcessor config
// (preprocessor_config.json) for pc: resize of the shorter side to
// pc.Resize (or Size) with bicubic resampling and a Size×Size center crop,
// or, in Squash mode, a direct Size×Size resize; rescale by 1/255; pc's mean
// and std; RGB conversion.
func WritePreprocessorConfig(dir string, pc imageproc.Config) error {
	if err := pc.Validate(); err != nil {
		return err
	}
	resize := pc.Resize
	if resize == 0 {
		resize = pc.Size
	}
	doc := map[string]any{
		"image_processor_type":   "CLIPImageProcessor",
		"feature_extractor_type": "CLIPFeatureExtractor",
		"do_resize":              true,
		"size":                   map[string]int{"shortest_edge": resize},
		"resample":               3, // PIL.Image.BICUBIC
		"do_center_crop":         true,
		"crop_size":              map[string]int{"height": pc.Size, "width": pc.Size},
		"do_rescale":             true,
		"rescale_factor":         1.0 / 255,
		"do_normalize":           true,
		"image_mean":             meanStdJSON(pc.Mean, imageproc.CLIPMean),
		"image_std":              meanStdJSON(pc.Std, imageproc.CLIPStd),
		"do_convert_rgb":         true,
	}
	if pc.Mode == imageproc.Squash {
		doc["size"] = map[string]int{"height": pc.Size, "width": pc.Size}
		doc["do_center_crop"] = false
	}
	return writeJSON(filepath.Join(dir, PreprocessorFile), doc)
}

// meanStdJSON writes CLIP's constants with their usual digits when v is
// them rounded to float32, v's float32 values otherwise.
func meanStdJSON(v [3]float32, clip [3]float64) []float64 {
	if v == imageproc.F32(clip) {
		return clip[:]
	}
	return []float64{float64(v[0]), float64(v[1]), float64(v[2])}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'))
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

func copyFileTo(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// CopyTokenizer copies the tokenizer and preprocessing files of src
// (vocab.json, merges.txt, tokenizer.json, tokenizer_config.json,
// special_tokens_map.json, preprocessor_config.json: those present) into
// the existing directory dst. Writing a model directory is SaveWith's job
// (with SaveOptions.From), which also fills in what src lacks.
func CopyTokenizer(src, dst string) error {
	for _, name := range []string{VocabFile, MergesFile, FastTokenizerFile, TokenizerConfigFile, SpecialTokensFile, PreprocessorFile} {
		err := copyFileTo(filepath.Join(src, name), filepath.Join(dst, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}
