package clip

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/mopeclip/mopeclip/nn"
)

// TowerConfig describes one CLIP encoder (vision or text) in Hugging Face
// CLIPVisionConfig / CLIPTextConfig terms, plus mopeclip's per-layer width
// extension for pruned models.
type TowerConfig struct {
	HiddenSize        int     `json:"hidden_size"`
	IntermediateSize  int     `json:"intermediate_size"`
	NumAttentionHeads int     `json:"num_attention_heads"`
	NumHiddenLayers   int     `json:"num_hidden_layers"`
	HiddenAct         string  `json:"hidden_act"`
	LayerNormEps      float64 `json:"layer_norm_eps"`

	// Vision only.
	ImageSize   int `json:"image_size,omitempty"`
	PatchSize   int `json:"patch_size,omitempty"`
	NumChannels int `json:"num_channels,omitempty"`

	// Text only.
	VocabSize             int `json:"vocab_size,omitempty"`
	MaxPositionEmbeddings int `json:"max_position_embeddings,omitempty"`
	EOSTokenID            int `json:"eos_token_id,omitempty"`
	BOSTokenID            int `json:"bos_token_id,omitempty"`
	PadTokenID            int `json:"pad_token_id,omitempty"`

	// LayerHeads and LayerIntermediate give per-layer head counts and MLP
	// widths of a pruned tower (len NumHiddenLayers). Empty means every
	// layer has NumAttentionHeads heads and IntermediateSize neurons. The head
	// dimension is always HiddenSize/NumAttentionHeads of the unpruned model.
	LayerHeads        []int `json:"mopeclip_layer_heads,omitempty"`
	LayerIntermediate []int `json:"mopeclip_layer_intermediate,omitempty"`
	// TeacherLayers maps each kept layer to the index of the teacher layer it
	// came from (for hidden-state distillation); empty means the identity.
	TeacherLayers []int `json:"mopeclip_teacher_layers,omitempty"`
}

// Config is a CLIP model configuration, read from and written to Hugging
// Face's CLIPConfig JSON (config.json).
type Config struct {
	Text                TowerConfig `json:"text_config"`
	Vision              TowerConfig `json:"vision_config"`
	ProjectionDim       int         `json:"projection_dim"`
	LogitScaleInitValue float64     `json:"logit_scale_init_value"`
	ModelType           string      `json:"model_type,omitempty"`
	Architectures       []string    `json:"architectures,omitempty"`
}

// ConfigNotes records how a config document was read: keys nobody knows
// (ignored, to be shown as one warning), keys that were absent and took
// transformers' defaults, and which file layout it came from.
type ConfigNotes struct {
	// DType is the weights' dtype the config declares (torch_dtype, or
	// dtype since transformers 5), "" when absent. Informational: weights
	// are converted to float32 whatever they are stored as.
	DType     string
	Unknown   []string // dotted key paths, sorted ("text_config.foo")
	Defaulted []string // "text_config.vocab_size=49408", sorted
	Source    string   // file the config came from, when known
	Layout    Layout   // checkpoint layout the model was read from
}

// Warning returns the one-line warning for unknown keys, or "" when there
// are none.
func (n *ConfigNotes) Warning() string {
	if len(n.Unknown) == 0 {
		return ""
	}
	src := n.Source
	if src == "" {
		src = "config"
	}
	return fmt.Sprintf("warning: %s: ignoring %d unknown key(s): %s", src, len(n.Unknown), strings.Join(n.Unknown, ", "))
}

// HeadDim returns the per-head dimension of a tower.
func (t *TowerConfig) HeadDim() int {
	if t.NumAttentionHeads == 0 {
		return 0
	}
	return t.HiddenSize / t.NumAttentionHeads
}

// Heads returns the number of heads of layer l.
func (t *TowerConfig) Heads(l int) int {
	if len(t.LayerHeads) > 0 {
		return t.LayerHeads[l]
	}
	return t.NumAttentionHeads
}

// Intermediate returns the MLP width of layer l.
func (t *TowerConfig) Intermediate(l int) int {
	if len(t.LayerIntermediate) > 0 {
		return t.LayerIntermediate[l]
	}
	return t.IntermediateSize
}

// TeacherLayer returns the teacher layer index that layer l came from.
func (t *TowerConfig) TeacherLayer(l int) int {
	if len(t.TeacherLayers) > 0 {
		return t.TeacherLayers[l]
	}
	return l
}

// NumPatches returns (image_size/patch_size)²; the vision sequence length is
// NumPatches()+1 (class token).
func (t *TowerConfig) NumPatches() int {
	if t.PatchSize == 0 {
		return 0
	}
	g := t.ImageSize / t.PatchSize
	return g * g
}

// LoadConfig reads and validates path (a config.json).
func LoadConfig(path string) (*Config, error) {
	c, _, err := LoadConfigNotes(path)
	return c, err
}

// LoadConfigNotes is LoadConfig that also returns how the file was read.
func LoadConfigNotes(path string) (*Config, ConfigNotes, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, ConfigNotes{}, fmt.Errorf("config: %w", err)
	}
	c, notes, err := ParseConfigNotes(data)
	if err != nil {
		return nil, notes, fmt.Errorf("%s: %w", path, err)
	}
	notes.Source = path
	return c, notes, nil
}

// Sane upper bounds on config sizes: far above any CLIP (ViT-bigG/14 has
// width 1664, MLP 8192, 48 layers), low enough that a corrupt or hostile
// config cannot make a loader allocate terabytes or overflow int.
const (
	MaxWidth         = 1 << 16 // hidden_size, projection_dim
	MaxIntermediate  = 1 << 18 // intermediate_size
	MaxLayers        = 1 << 10 // num_hidden_layers
	MaxImageSize     = 1 << 13 // image_size
	MaxPatches       = 1 << 18 // (image_size/patch_size)²
	MaxPositions     = 1 << 16 // max_position_embeddings
	MaxVocab         = 1 << 22 // vocab_size
	maxBoundedHeads  = MaxWidth
	maxLayerNormEps  = 1.0
	minContextLength = 2
)

// Validate checks that every value is usable, consistent and within the
// sane bounds above, naming the key at fault.
func (c *Config) Validate() error {
	if err := checkRange("projection_dim", c.ProjectionDim, 1, MaxWidth); err != nil {
		return err
	}
	if math.IsNaN(c.LogitScaleInitValue) || math.IsInf(c.LogitScaleInitValue, 0) {
		return fmt.Errorf("config: logit_scale_init_value must be finite")
	}
	for _, tw := range []struct {
		name string
		t    *TowerConfig
	}{{"text_config", &c.Text}, {"vision_config", &c.Vision}} {
		if err := tw.t.validate(tw.name); err != nil {
			return err
		}
	}
	v := &c.Vision
	if err := checkRange("vision_config.image_size", v.ImageSize, 1, MaxImageSize); err != nil {
		return err
	}
	if err := checkRange("vision_config.patch_size", v.PatchSize, 1, v.ImageSize); err != nil {
		return err
	}
	if v.ImageSize%v.PatchSize != 0 {
		return fmt.Errorf("config: vision_config.image_size %d must be a positive multiple of patch_size %d", v.ImageSize, v.PatchSize)
	}
	if v.NumPatches() > MaxPatches {
		return fmt.Errorf("config: vision_config: %d patches (image_size %d / patch_size %d) exceed the limit %d", v.NumPatches(), v.ImageSize, v.PatchSize, MaxPatches)
	}
	if v.NumChannels != 3 {
		return fmt.Errorf("config: vision_config.num_channels must be 3, got %d", v.NumChannels)
	}
	t := &c.Text
	if err := checkRange("text_config.vocab_size", t.VocabSize, 1, MaxVocab); err != nil {
		return err
	}
	if err := checkRange("text_config.max_position_embeddings", t.MaxPositionEmbeddings, minContextLength, MaxPositions); err != nil {
		return err
	}
	if t.EOSTokenID < 0 || t.EOSTokenID >= t.VocabSize {
		return fmt.Errorf("config: text_config.eos_token_id %d outside the vocabulary of %d", t.EOSTokenID, t.VocabSize)
	}
	return nil
}

// checkRange reports key's value outside [lo, hi] as an error naming it.
func checkRange(key string, v, lo, hi int) error {
	switch {
	case v < lo && lo == 1:
		return fmt.Errorf("config: %s must be positive, got %d", key, v)
	case v < lo:
		return fmt.Errorf("config: %s must be at least %d, got %d", key, lo, v)
	case v > hi:
		return fmt.Errorf("config: %s = %d exceeds the limit %d", key, v, hi)
	}
	return nil
}

// validate checks the keys both towers share.
func (t *TowerConfig) validate(n string) error {
	for _, kv := range []struct {
		k      string
		v, max int
	}{{"hidden_size", t.HiddenSize, MaxWidth}, {"intermediate_size", t.IntermediateSize, MaxIntermediate},
		{"num_attention_heads", t.NumAttentionHeads, maxBoundedHeads}, {"num_hidden_layers", t.NumHiddenLayers, MaxLayers}} {
		if err := checkRange(n+"."+kv.k, kv.v, 1, kv.max); err != nil {
			return err
		}
	}
	if t.HiddenSize%t.NumAttentionHeads != 0 {
		return fmt.Errorf("config: %s.hidden_size %d is not a multiple of num_attention_heads %d", n, t.HiddenSize, t.NumAttentionHeads)
	}
	if !supportedAct(t.HiddenAct) {
		return fmt.Errorf("config: %s.hidden_act %q not supported (quick_gelu, gelu)", n, t.HiddenAct)
	}
	if !(t.LayerNormEps > 0) || t.LayerNormEps > maxLayerNormEps {
		return fmt.Errorf("config: %s.layer_norm_eps must be in (0, 1], got %g", n, t.LayerNormEps)
	}
	for _, per := range []struct {
		key  string
		v    []int
		max  int
		name string
	}{{"mopeclip_layer_heads", t.LayerHeads, t.NumAttentionHeads, "heads"},
		{"mopeclip_layer_intermediate", t.LayerIntermediate, MaxIntermediate, "width"},
		{"mopeclip_teacher_layers", t.TeacherLayers, MaxLayers, "layer"}} {
		if len(per.v) == 0 {
			continue
		}
		if len(per.v) != t.NumHiddenLayers {
			return fmt.Errorf("config: %s.%s has %d entries for %d layers", n, per.key, len(per.v), t.NumHiddenLayers)
		}
		for l, v := range per.v {
			if v < 0 || v > per.max {
				return fmt.Errorf("config: %s.%s[%d] = %d out of range", n, per.key, l, v)
			}
		}
	}
	if len(t.TeacherLayers) > 0 && !sort.IntsAreSorted(t.TeacherLayers) {
		return fmt.Errorf("config: %s.mopeclip_teacher_layers must be increasing", n)
	}
	return nil
}

// supportedAct reports whether the encoder implements hidden_act name.
func supportedAct(name string) bool {
	_, err := nn.ParseActivation(name) // the one list of activation names
	return err == nil
}

// JSON returns the config as Hugging Face config.json bytes (indented).
func (c *Config) JSON() ([]byte, error) {
	out := *c
	if out.ModelType == "" {
		out.ModelType = "clip"
	}
	if len(out.Architectures) == 0 {
		out.Architectures = []string{"CLIPModel"}
	}
	b, err := json.MarshalIndent(&struct {
		*Config
		DType string `json:"torch_dtype"`
	}{&out, "float32"}, "", "  ") // Save writes float32 weights
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Clone returns a deep copy.
func (c *Config) Clone() *Config {
	d := *c
	for _, t := range []*TowerConfig{&d.Text, &d.Vision} {
		t.LayerHeads = append([]int(nil), t.LayerHeads...)
		t.LayerIntermediate = append([]int(nil), t.LayerIntermediate...)
		t.TeacherLayers = append([]int(nil), t.TeacherLayers...)
		if len(t.LayerHeads) == 0 {
			t.LayerHeads = nil
		}
		if len(t.LayerIntermediate) == 0 {
			t.LayerIntermediate = nil
		}
		if len(t.TeacherLayers) == 0 {
			t.TeacherLayers = nil
		}
	}
	return &d
}

// Presets are the standard CLIP architectures, plus tiny ones for tests and
// the built-in shapes world.
var presets = map[string]func() *Config{
	"ViT-B/32":     func() *Config { return preset(224, 32, 768, 12, 12, 512, 8, 12, 512) },
	"ViT-B/16":     func() *Config { return preset(224, 16, 768, 12, 12, 512, 8, 12, 512) },
	"ViT-L/14":     func() *Config { return preset(224, 14, 1024, 24, 16, 768, 12, 12, 768) },
	"ViT-L/14-336": func() *Config { return preset(336, 14, 1024, 24, 16, 768, 12, 12, 768) },
	// tiny: for tests; a few thousand parameters per layer.
	"tiny": func() *Config {
		c := preset(32, 8, 64, 2, 4, 48, 4, 2, 32)
		c.Text.VocabSize = 49408
		return c
	},
}

func preset(img, patch, vw, vl, vh, tw, th, tl, proj int) *Config {
	return &Config{
		Vision: TowerConfig{HiddenSize: vw, IntermediateSize: 4 * vw, NumAttentionHeads: vh, NumHiddenLayers: vl,
			HiddenAct: "quick_gelu", LayerNormEps: 1e-5, ImageSize: img, PatchSize: patch, NumChannels: 3},
		Text: TowerConfig{HiddenSize: tw, IntermediateSize: 4 * tw, NumAttentionHeads: th, NumHiddenLayers: tl,
			HiddenAct: "quick_gelu", LayerNormEps: 1e-5, VocabSize: 49408, MaxPositionEmbeddings: 77,
			EOSTokenID: 49407, BOSTokenID: 49406, PadTokenID: 1},
		ProjectionDim:       proj,
		LogitScaleInitValue: 2.6592,
		ModelType:           "clip",
		Architectures:       []string{"CLIPModel"},
	}
}

// RegisterPreset adds a named preset (used by packages that define
// world-specific models, e.g. the shapes teacher).
func RegisterPreset(name string, f func() *Config) {
	if _, dup := presets[name]; dup {
		panic("clip: preset registered twice: " + name)
	}
	presets[name] = f
}

// Preset returns a fresh copy of the named preset.
func Preset(name string) (*Config, error) {
	f, ok := presets[name]
	if !ok {
		return nil, fmt.Errorf("unknown preset %q (have %s)", name, strings.Join(PresetNames(), ", "))
	}
	return f(), nil
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	var n []string
	for k := range presets {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
