package clip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
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

// Keys of Hugging Face's PretrainedConfig and CLIP configs that carry no
// meaning for inference here; they are accepted and dropped. Anything not
// known is an error naming the key.
var ignoredKeys = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`return_dict output_hidden_states output_attentions torchscript torch_dtype dtype
	use_bfloat16 tf_legacy_loss pruned_heads tie_word_embeddings chunk_size_feed_forward is_encoder_decoder
	is_decoder cross_attention_hidden_size add_cross_attention tie_encoder_decoder max_length min_length
	do_sample early_stopping num_beams num_beam_groups diversity_penalty temperature top_k top_p typical_p
	repetition_penalty length_penalty no_repeat_ngram_size encoder_no_repeat_ngram_size bad_words_ids
	num_return_sequences output_scores return_dict_in_generate forced_bos_token_id forced_eos_token_id
	remove_invalid_values exponential_decay_length_penalty suppress_tokens begin_suppress_tokens
	finetuning_task id2label label2id tokenizer_class prefix sep_token_id decoder_start_token_id
	task_specific_params problem_type _name_or_path transformers_version _commit_hash
	_attn_implementation_autoset _attn_implementation attention_dropout dropout initializer_range
	initializer_factor gradient_checkpointing text_config_dict vision_config_dict projection_dim
	model_type architectures`) {
		ignoredKeys[k] = true
	}
}

var towerKeys = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`hidden_size intermediate_size num_attention_heads num_hidden_layers hidden_act
	layer_norm_eps image_size patch_size num_channels vocab_size max_position_embeddings eos_token_id
	bos_token_id pad_token_id mopeclip_layer_heads mopeclip_layer_intermediate mopeclip_teacher_layers`) {
		towerKeys[k] = true
	}
}

// ParseConfig reads a CLIPConfig JSON document strictly: unknown keys, wrong
// types and inconsistent values are errors that name the key.
func ParseConfig(data []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config: invalid JSON: %w", err)
	}
	for k := range raw {
		switch k {
		case "text_config", "vision_config", "projection_dim", "logit_scale_init_value", "model_type", "architectures":
		default:
			if !ignoredKeys[k] {
				return nil, fmt.Errorf("config: unknown key %q", k)
			}
		}
	}
	for _, tower := range []string{"text_config", "vision_config"} {
		msg, ok := raw[tower]
		if !ok {
			return nil, fmt.Errorf("config: missing %q", tower)
		}
		var sub map[string]json.RawMessage
		if err := json.Unmarshal(msg, &sub); err != nil {
			return nil, fmt.Errorf("config: %s: not an object: %w", tower, err)
		}
		for k := range sub {
			if !towerKeys[k] && !ignoredKeys[k] {
				return nil, fmt.Errorf("config: unknown key %q in %s", tower+"."+k, tower)
			}
		}
	}
	c := &Config{}
	// Hugging Face defaults for keys a config may leave out.
	c.Text = TowerConfig{HiddenAct: "quick_gelu", LayerNormEps: 1e-5, VocabSize: 49408, MaxPositionEmbeddings: 77, EOSTokenID: 49407}
	c.Vision = TowerConfig{HiddenAct: "quick_gelu", LayerNormEps: 1e-5, NumChannels: 3}
	c.LogitScaleInitValue = 2.6592
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadConfig reads and validates path (a config.json).
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate checks that every value is usable and consistent, naming the key
// at fault.
func (c *Config) Validate() error {
	if c.ProjectionDim <= 0 {
		return fmt.Errorf("config: projection_dim must be positive, got %d", c.ProjectionDim)
	}
	if math.IsNaN(c.LogitScaleInitValue) || math.IsInf(c.LogitScaleInitValue, 0) {
		return fmt.Errorf("config: logit_scale_init_value must be finite")
	}
	for _, tw := range []struct {
		name string
		t    *TowerConfig
	}{{"text_config", &c.Text}, {"vision_config", &c.Vision}} {
		t, n := tw.t, tw.name
		pos := func(key string, v int) error {
			if v <= 0 {
				return fmt.Errorf("config: %s.%s must be positive, got %d", n, key, v)
			}
			return nil
		}
		for _, kv := range []struct {
			k string
			v int
		}{{"hidden_size", t.HiddenSize}, {"intermediate_size", t.IntermediateSize},
			{"num_attention_heads", t.NumAttentionHeads}, {"num_hidden_layers", t.NumHiddenLayers}} {
			if err := pos(kv.k, kv.v); err != nil {
				return err
			}
		}
		if t.HiddenSize%t.NumAttentionHeads != 0 {
			return fmt.Errorf("config: %s.hidden_size %d is not a multiple of num_attention_heads %d", n, t.HiddenSize, t.NumAttentionHeads)
		}
		switch t.HiddenAct {
		case "quick_gelu", "gelu":
		default:
			return fmt.Errorf("config: %s.hidden_act %q not supported (quick_gelu, gelu)", n, t.HiddenAct)
		}
		if !(t.LayerNormEps > 0) || t.LayerNormEps > 1 {
			return fmt.Errorf("config: %s.layer_norm_eps must be in (0, 1], got %g", n, t.LayerNormEps)
		}
		for key, per := range map[string][]int{"mopeclip_layer_heads": t.LayerHeads, "mopeclip_layer_intermediate": t.LayerIntermediate, "mopeclip_teacher_layers": t.TeacherLayers} {
			if len(per) == 0 {
				continue
			}
			if len(per) != t.NumHiddenLayers {
				return fmt.Errorf("config: %s.%s has %d entries for %d layers", n, key, len(per), t.NumHiddenLayers)
			}
			for l, v := range per {
				if v < 0 || (key == "mopeclip_layer_heads" && v > t.NumAttentionHeads) {
					return fmt.Errorf("config: %s.%s[%d] = %d out of range", n, key, l, v)
				}
			}
		}
		if len(t.TeacherLayers) > 0 && !sort.IntsAreSorted(t.TeacherLayers) {
			return fmt.Errorf("config: %s.mopeclip_teacher_layers must be increasing", n)
		}
	}
	v := &c.Vision
	if v.ImageSize <= 0 || v.PatchSize <= 0 || v.ImageSize%v.PatchSize != 0 {
		return fmt.Errorf("config: vision_config.image_size %d must be a positive multiple of patch_size %d", v.ImageSize, v.PatchSize)
	}
	if v.NumChannels != 3 {
		return fmt.Errorf("config: vision_config.num_channels must be 3, got %d", v.NumChannels)
	}
	t := &c.Text
	if t.VocabSize <= 0 || t.MaxPositionEmbeddings <= 1 {
		return fmt.Errorf("config: text_config.vocab_size and max_position_embeddings must be positive (got %d, %d)", t.VocabSize, t.MaxPositionEmbeddings)
	}
	if t.EOSTokenID < 0 || t.EOSTokenID >= t.VocabSize {
		return fmt.Errorf("config: text_config.eos_token_id %d outside the vocabulary of %d", t.EOSTokenID, t.VocabSize)
	}
	return nil
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
	b, err := json.MarshalIndent(&out, "", "  ")
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
