package clip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Reading config.json as transformers writes it.
//
// transformers serialises every attribute of PretrainedConfig and of the
// CLIP configs; which ones depends on the release (the generation keys of
// early 4.x, torch_dtype until 4.5x, dtype from 5.0, diff-saved sub-configs
// that omit defaults in later 4.x). The key lists below were taken from
// transformers' configuration_utils.py (PretrainedConfig.__init__ in 4.x,
// the PreTrainedConfig dataclass fields in 5.x, GenerationConfig's default
// generation parameters) and models/clip/configuration_clip.py. Keys that
// carry no meaning for inference are accepted and dropped; keys that would
// change the computation are checked against the one value the model here
// implements; anything else is recorded in ConfigNotes.Unknown for the
// caller to warn about.

// ignoredKeys carry no meaning for the forward pass. They may appear at the
// top level and in text_config / vision_config.
var ignoredKeys = setOf(`
	return_dict output_hidden_states output_attentions torchscript use_bfloat16 tf_legacy_loss
	tie_word_embeddings chunk_size_feed_forward is_encoder_decoder is_decoder cross_attention_hidden_size
	add_cross_attention tie_encoder_decoder architectures finetuning_task id2label label2id num_labels
	tokenizer_class prefix bos_token_id pad_token_id eos_token_id sep_token_id decoder_start_token_id
	task_specific_params problem_type _name_or_path name_or_path transformers_version _commit_hash
	_attn_implementation_autoset _attn_implementation attn_implementation _attn_implementation_internal
	experts_implementation _experts_implementation_internal gradient_checkpointing xla_device use_cache
	output_past initializer_range initializer_factor attention_dropout dropout torch_dtype dtype
	projection_dim
	max_length min_length do_sample early_stopping num_beams num_beam_groups diversity_penalty temperature
	top_k top_p typical_p repetition_penalty length_penalty no_repeat_ngram_size
	encoder_no_repeat_ngram_size bad_words_ids num_return_sequences output_scores return_dict_in_generate
	forced_bos_token_id forced_eos_token_id remove_invalid_values exponential_decay_length_penalty
	suppress_tokens begin_suppress_tokens epsilon_cutoff eta_cutoff`)

// Keys mopeclip adds to a tower for pruned and distilled models.
var mopeclipKeys = setOf(`mopeclip_layer_heads mopeclip_layer_intermediate mopeclip_teacher_layers`)

// Tower keys that the model reads, per tower.
var (
	sharedTowerKeys = setOf(`hidden_size intermediate_size num_attention_heads num_hidden_layers hidden_act layer_norm_eps`)
	visionOnlyKeys  = setOf(`image_size patch_size num_channels`)
	textOnlyKeys    = setOf(`vocab_size max_position_embeddings eos_token_id bos_token_id pad_token_id`)
)

// computeKeys change the computation in models related to CLIP; the model
// here implements exactly one value of each (absent means that value). A
// config that asks for another is an error naming the key.
var computeKeys = map[string]string{
	"pruned_heads":           "empty", // transformers' head pruning; mopeclip stores real shapes instead
	"per_layer_config":       "null",
	"qkv_bias":               "true",
	"attention_bias":         "true",
	"projection_bias":        "false",
	"use_projection_bias":    "false",
	"attentional_pool":       "false",
	"use_attentional_pool":   "false",
	"layerscale_value":       "null",
	"layer_scale_init_value": "null",
	"ls_init_value":          "null",
	"qk_normalization":       "false",
	"use_qk_norm":            "false",
	"rope_theta":             "null",
	"rope_scaling":           "null",
	"rope_parameters":        "null",
	"vision_use_head":        "false",
}

// Defaults of transformers' CLIPTextConfig / CLIPVisionConfig / CLIPConfig
// (the values a key takes when config.json leaves it out; diff-saved
// configs omit every key that equals them).
var (
	textDefaults = map[string]any{"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048,
		"num_hidden_layers": 12, "num_attention_heads": 8, "max_position_embeddings": 77,
		"hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "eos_token_id": 49407}
	visionDefaults = map[string]any{"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
		"num_attention_heads": 12, "num_channels": 3, "image_size": 224, "patch_size": 32,
		"hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
	topDefaults = map[string]any{"projection_dim": 512, "logit_scale_init_value": 2.6592}
)

func setOf(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// ParseConfig reads a CLIPConfig JSON document as transformers does: keys it
// leaves out take transformers' defaults (listed in ConfigNotes.Defaulted),
// text_config_dict / vision_config_dict override text_config / vision_config
// when not null, keys without meaning for inference are dropped, and keys
// never seen before are listed in ConfigNotes.Unknown (see
// ParseConfigNotes and ConfigNotes.Warning). Wrong
// types, unsupported settings and inconsistent values are errors that name
// the key.
func ParseConfig(data []byte) (*Config, error) {
	c, _, err := ParseConfigNotes(data)
	return c, err
}

// ParseConfigNotes is ParseConfig that also returns the notes: unknown keys
// (for a warning), keys that took defaults, the declared dtype.
func ParseConfigNotes(data []byte) (*Config, ConfigNotes, error) {
	c, notes, err := parseConfig(data)
	if err != nil {
		return nil, ConfigNotes{}, err
	}
	return c, notes, nil
}

func parseConfig(data []byte) (*Config, ConfigNotes, error) {
	var notes ConfigNotes
	top, err := decodeObject(data, "config")
	if err != nil {
		return nil, notes, err
	}
	c := &Config{}
	if err := checkModelType(top, "model_type", "clip"); err != nil {
		return nil, notes, err
	}
	for k, v := range top {
		switch k {
		case "text_config", "vision_config", "text_config_dict", "vision_config_dict",
			"projection_dim", "logit_scale_init_value", "model_type", "architectures", "torch_dtype", "dtype":
		default:
			if err := classify(k, k, v, &notes); err != nil {
				return nil, notes, err
			}
		}
	}
	for _, tw := range []struct {
		name     string
		t        *TowerConfig
		defaults map[string]any
		own      map[string]bool
		typ      string
	}{{"text_config", &c.Text, textDefaults, textOnlyKeys, "clip_text_model"},
		{"vision_config", &c.Vision, visionDefaults, visionOnlyKeys, "clip_vision_model"}} {
		eff, err := effectiveTower(top, tw.name, tw.defaults)
		if err != nil {
			return nil, notes, err
		}
		if err := checkModelType(eff, tw.name+".model_type", tw.typ); err != nil {
			return nil, notes, err
		}
		if err := decodeTower(tw.t, tw.name, eff, tw.defaults, tw.own, &notes); err != nil {
			return nil, notes, err
		}
	}
	if err := setInt(&c.ProjectionDim, top, "projection_dim", "projection_dim", topDefaults, &notes); err != nil {
		return nil, notes, err
	}
	if err := setFloat(&c.LogitScaleInitValue, top, "logit_scale_init_value", "logit_scale_init_value", topDefaults, &notes); err != nil {
		return nil, notes, err
	}
	if raw, ok := top["model_type"]; ok && !isNull(raw) {
		c.ModelType = "clip"
	}
	if raw, ok := top["architectures"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &c.Architectures); err != nil {
			return nil, notes, fmt.Errorf("config: architectures: want a list of strings, got %s", abbrevJSON(raw))
		}
	}
	// transformers 5 keeps dtype when both are given.
	for _, k := range []string{"torch_dtype", "dtype"} {
		if raw, ok := top[k]; ok && !isNull(raw) {
			if err := json.Unmarshal(raw, &notes.DType); err != nil {
				return nil, notes, fmt.Errorf("config: %s: want a string, got %s", k, abbrevJSON(raw))
			}
		}
	}
	sort.Strings(notes.Unknown)
	sort.Strings(notes.Defaulted)
	if err := c.Validate(); err != nil {
		return nil, notes, err
	}
	return c, notes, nil
}

// decodeObject parses data as a JSON object, keeping the raw values.
func decodeObject(data []byte, what string) (map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %w", what, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%s: want a JSON object, got null", what)
	}
	return raw, nil
}

// effectiveTower returns the key/value map transformers would build for a
// tower: vision_config, or — when vision_config_dict is not null — the
// keys of vision_config that are not CLIPVisionConfig attributes plus
// vision_config_dict (whose missing attributes take their defaults, as
// CLIPVisionConfig(**vision_config_dict).to_dict() overrides them all).
func effectiveTower(top map[string]json.RawMessage, name string, defaults map[string]any) (map[string]json.RawMessage, error) {
	eff := map[string]json.RawMessage{}
	if raw, ok := top[name]; ok && !isNull(raw) {
		sub, err := decodeObject(raw, "config: "+name)
		if err != nil {
			return nil, err
		}
		for k, v := range sub {
			eff[k] = v
		}
	}
	raw, ok := top[name+"_dict"]
	if !ok || isNull(raw) {
		return eff, nil
	}
	dict, err := decodeObject(raw, "config: "+name+"_dict")
	if err != nil {
		return nil, err
	}
	for k := range defaults {
		delete(eff, k)
	}
	for k, v := range dict {
		eff[k] = v
	}
	return eff, nil
}

// checkModelType accepts key absent, null or equal to want.
func checkModelType(m map[string]json.RawMessage, key, want string) error {
	raw, ok := m[key[strings.LastIndex(key, ".")+1:]]
	if !ok || isNull(raw) {
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("config: %s: want a string, got %s", key, abbrevJSON(raw))
	}
	if s != want {
		return fmt.Errorf("config: %s is %q, not a CLIP model (want %q)", key, s, want)
	}
	return nil
}

// classify handles a key the caller does not read itself: ignored keys are
// dropped, compute keys are checked, the rest are noted as unknown. path
// is the dotted name for messages.
func classify(k, path string, v json.RawMessage, notes *ConfigNotes) error {
	if want, ok := computeKeys[k]; ok {
		if !hasValue(v, want) {
			return fmt.Errorf("config: %s = %s is not supported (the model here implements %s)", path, abbrevJSON(v), want)
		}
		return nil
	}
	if ignoredKeys[k] {
		return nil
	}
	notes.Unknown = append(notes.Unknown, path)
	return nil
}

// hasValue reports whether raw means want: "null" (null), "empty" (null,
// {} or []), "true" or "false" (the boolean, or null for its default).
func hasValue(raw json.RawMessage, want string) bool {
	s := string(bytes.TrimSpace(raw))
	switch want {
	case "null":
		return s == "null"
	case "empty":
		if s == "null" {
			return true
		}
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return false
		}
		switch x := v.(type) {
		case map[string]any:
			return len(x) == 0
		case []any:
			return len(x) == 0
		}
		return false
	}
	return s == want || s == "null"
}

// decodeTower reads one tower's effective keys into t.
func decodeTower(t *TowerConfig, name string, eff map[string]json.RawMessage, defaults map[string]any, own map[string]bool, notes *ConfigNotes) error {
	for k, v := range eff {
		switch {
		case sharedTowerKeys[k] || own[k] || mopeclipKeys[k] || k == "model_type":
		default:
			if err := classify(k, name+"."+k, v, notes); err != nil {
				return err
			}
		}
	}
	ints := map[string]*int{"hidden_size": &t.HiddenSize, "intermediate_size": &t.IntermediateSize,
		"num_attention_heads": &t.NumAttentionHeads, "num_hidden_layers": &t.NumHiddenLayers}
	if own["image_size"] {
		ints["image_size"], ints["patch_size"], ints["num_channels"] = &t.ImageSize, &t.PatchSize, &t.NumChannels
	} else {
		ints["vocab_size"], ints["max_position_embeddings"], ints["eos_token_id"] = &t.VocabSize, &t.MaxPositionEmbeddings, &t.EOSTokenID
	}
	for k, p := range ints {
		if err := setInt(p, eff, k, name+"."+k, defaults, notes); err != nil {
			return err
		}
	}
	if !own["image_size"] {
		// Token ids that the model does not use: kept when given (absent
		// and null leave 0; mope's own files omit a 0).
		for k, p := range map[string]*int{"bos_token_id": &t.BOSTokenID, "pad_token_id": &t.PadTokenID} {
			if raw, ok := eff[k]; !ok || isNull(raw) {
				continue
			}
			if err := setInt(p, eff, k, name+"."+k, defaults, notes); err != nil {
				return err
			}
		}
	}
	if err := setString(&t.HiddenAct, eff, "hidden_act", name+".hidden_act", defaults, notes); err != nil {
		return err
	}
	if err := setFloat(&t.LayerNormEps, eff, "layer_norm_eps", name+".layer_norm_eps", defaults, notes); err != nil {
		return err
	}
	for k, p := range map[string]*[]int{"mopeclip_layer_heads": &t.LayerHeads,
		"mopeclip_layer_intermediate": &t.LayerIntermediate, "mopeclip_teacher_layers": &t.TeacherLayers} {
		raw, ok := eff[k]
		if !ok || isNull(raw) {
			continue
		}
		var vs []json.Number
		if err := json.Unmarshal(raw, &vs); err != nil {
			return fmt.Errorf("config: %s.%s: want a list of integers, got %s", name, k, abbrevJSON(raw))
		}
		out := make([]int, len(vs))
		for i, n := range vs {
			v, err := parseInt(n)
			if err != nil {
				return fmt.Errorf("config: %s.%s[%d]: %v", name, k, i, err)
			}
			out[i] = v
		}
		*p = out
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// lookup returns the raw value of key, or marks the default as used. A null
// for a key the model needs is an error.
func lookup(m map[string]json.RawMessage, key, path string, defaults map[string]any, notes *ConfigNotes) (json.RawMessage, any, error) {
	raw, ok := m[key]
	if !ok {
		d, has := defaults[key]
		if !has {
			return nil, nil, fmt.Errorf("config: %s is missing", path)
		}
		notes.Defaulted = append(notes.Defaulted, fmt.Sprintf("%s=%v", path, d))
		return nil, d, nil
	}
	if isNull(raw) {
		return nil, nil, fmt.Errorf("config: %s is null (want a value)", path)
	}
	return raw, nil, nil
}

// setValue sets *p to the value of key, decoded by decode, or to its
// default; a value decode refuses is an error naming path.
func setValue[T any](p *T, m map[string]json.RawMessage, key, path string, defaults map[string]any, notes *ConfigNotes,
	decode func(json.RawMessage) (T, error)) error {
	raw, d, err := lookup(m, key, path, defaults, notes)
	if err != nil {
		return err
	}
	if raw == nil {
		*p = d.(T)
		return nil
	}
	v, err := decode(raw)
	if err != nil {
		return fmt.Errorf("config: %s: %v", path, err)
	}
	*p = v
	return nil
}

func setInt(p *int, m map[string]json.RawMessage, key, path string, defaults map[string]any, notes *ConfigNotes) error {
	return setValue(p, m, key, path, defaults, notes, func(raw json.RawMessage) (int, error) {
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return 0, fmt.Errorf("want an integer, got %s", abbrevJSON(raw))
		}
		return parseInt(n)
	})
}

// parseInt accepts integers and integral floats (1e3) within ±2^40: config
// sizes past that are rejected by the bounds later, without overflow.
func parseInt(n json.Number) (int, error) {
	if v, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if v > 1<<40 || v < -(1<<40) {
			return 0, fmt.Errorf("%s is out of range", n)
		}
		return int(v), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<40 {
		return 0, fmt.Errorf("want an integer, got %s", n)
	}
	return int(f), nil
}

func setFloat(p *float64, m map[string]json.RawMessage, key, path string, defaults map[string]any, notes *ConfigNotes) error {
	return setValue(p, m, key, path, defaults, notes, decodeAs[float64]("a number"))
}

func setString(p *string, m map[string]json.RawMessage, key, path string, defaults map[string]any, notes *ConfigNotes) error {
	return setValue(p, m, key, path, defaults, notes, decodeAs[string]("a string"))
}

// decodeAs decodes a raw value as a T; want names a T in the error.
func decodeAs[T any](want string) func(json.RawMessage) (T, error) {
	return func(raw json.RawMessage) (T, error) {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return v, fmt.Errorf("want %s, got %s", want, abbrevJSON(raw))
		}
		return v, nil
	}
}

// abbrevJSON shortens a raw value for an error message.
func abbrevJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	s := string(bytes.TrimSpace(raw))
	if json.Compact(&b, raw) == nil {
		s = b.String()
	}
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}
