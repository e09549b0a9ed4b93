package clip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/internal/safetensors"
)

// open_clip's hub layout: open_clip_config.json ({"model_cfg": ...,
// "preprocess_cfg": ...}) and open_clip_model.safetensors with open_clip's
// state-dict names (model.py CLIP, transformer.py VisionTransformer /
// TextTransformer / ResidualAttentionBlock). The names and defaults below
// were taken from open_clip's source as facts: CLIPVisionCfg (layers,
// width, head_width 64, mlp_ratio 4, patch_size 16, image_size 224, ...),
// CLIPTextCfg (context_length 77, vocab_size 49408, width 512, heads 8,
// layers 12, mlp_ratio 4, pool_type "argmax", ...). Only the ViT CLIP that
// package clip computes loads: QuickGELU (quick_gelu true) or exact GELU,
// class-token pooling with ln_post, a learnable position embedding, linear
// projections without bias, no layer scale, no attentional pooler; any
// setting that asks for something else is an error naming it.

// File names of open_clip's hub layout.
const (
	OpenCLIPConfigFile  = "open_clip_config.json"
	OpenCLIPWeightsFile = "open_clip_model.safetensors"
)

// openCLIPConfig is open_clip_config.json, decoded as far as it is used.
type openCLIPConfig struct {
	Model struct {
		EmbedDim  int  `json:"embed_dim"`
		QuickGELU bool `json:"quick_gelu"`
		Vision    struct {
			ImageSize int     `json:"-"`
			Layers    int     `json:"layers"`
			Width     int     `json:"width"`
			HeadWidth int     `json:"head_width"`
			MLPRatio  float64 `json:"mlp_ratio"`
			PatchSize int     `json:"patch_size"`
		} `json:"-"`
		Text struct {
			ContextLength int     `json:"context_length"`
			VocabSize     int     `json:"vocab_size"`
			Width         int     `json:"width"`
			Heads         int     `json:"heads"`
			Layers        int     `json:"layers"`
			MLPRatio      float64 `json:"mlp_ratio"`
		} `json:"-"`
	} `json:"-"`
	Pre struct {
		Mean          []float64 `json:"mean"`
		Std           []float64 `json:"std"`
		Interpolation string    `json:"interpolation"`
		ResizeMode    string    `json:"resize_mode"`
	} `json:"-"`
	notes ConfigNotes
}

// Settings of open_clip configs that change the computation, with the one
// value (as JSON) that package clip implements; null is accepted for each
// (absent = open_clip's default, which is that value).
var (
	openCLIPModelMust = map[string]string{"custom_text": "false", "init_logit_bias": "null", "multimodal_cfg": "null",
		"nonscalar_logit_scale": "false", "text_cfg.hf_model_name": "null"}
	openCLIPVisionMust = map[string]string{"ls_init_value": "null", "attentional_pool": "false", "input_patchnorm": "false",
		"global_average_pool": "false", "no_ln_pre": "false", "pos_embed_type": `"learnable"`, "final_ln_after_pool": "false",
		"pool_type": `"tok"`, "timm_model_name": "null", "eva_model_name": "null", "act_kwargs": "null", "norm_kwargs": "null",
		"qk_norm": "false", "scaled_cosine_attn": "false", "scale_heads": "false", "scale_attn": "false", "scale_fc": "false",
		"block_type": "null", "embed_cls": "false"}
	openCLIPTextMust = map[string]string{"ls_init_value": "null", "embed_cls": "false", "no_causal_mask": "false",
		"final_ln_after_pool": "false", "pool_type": `"argmax"`, "proj_bias": "false", "proj_type": `"linear"`,
		"hf_model_name": "null", "act_kwargs": "null", "norm_kwargs": "null", "qk_norm": "false", "scaled_cosine_attn": "false",
		"scale_heads": "false", "scale_attn": "false", "scale_fc": "false", "block_type": "null", "attn_pooler_heads": "null"}
	// Keys without effect on inference (training-only or tokenizer settings).
	openCLIPIgnored = setOf(`patch_dropout drop_path_rate output_tokens n_queries attn_pooler_queries attn_pooler_heads
		timm_model_pretrained timm_pool timm_proj timm_proj_bias timm_drop timm_drop_path hf_tokenizer_name tokenizer_kwargs
		pad_id hf_model_pretrained hf_proj_type hf_pooler_type proj pooler_type image_resolution name cast_dtype
		init_logit_scale output_dict freeze_logit_scale fill_color`)
)

// readOpenCLIPConfig reads and checks dir/open_clip_config.json.
func readOpenCLIPConfig(dir string) (*openCLIPConfig, error) {
	path := filepath.Join(dir, OpenCLIPConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	oc, err := parseOpenCLIPConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	oc.notes.Source = path
	return oc, nil
}

func parseOpenCLIPConfig(data []byte) (*openCLIPConfig, error) {
	top, err := decodeObject(data, "config")
	if err != nil {
		return nil, err
	}
	oc := &openCLIPConfig{}
	notes := &oc.notes
	rawModel, ok := top["model_cfg"]
	if !ok || isNull(rawModel) {
		return nil, fmt.Errorf("config: model_cfg is missing")
	}
	model, err := decodeObject(rawModel, "config: model_cfg")
	if err != nil {
		return nil, err
	}
	sub := func(key string) (map[string]json.RawMessage, error) {
		raw, ok := model[key]
		if !ok || isNull(raw) {
			return nil, fmt.Errorf("config: model_cfg.%s is missing", key)
		}
		return decodeObject(raw, "config: model_cfg."+key)
	}
	vision, err := sub("vision_cfg")
	if err != nil {
		return nil, err
	}
	text, err := sub("text_cfg")
	if err != nil {
		return nil, err
	}
	for k, v := range model {
		switch k {
		case "embed_dim", "quick_gelu", "vision_cfg", "text_cfg":
		default:
			if err := openCLIPKey("model_cfg", k, v, openCLIPModelMust, notes); err != nil {
				return nil, err
			}
		}
	}
	if raw, ok := text["hf_model_name"]; ok && !isNull(raw) {
		return nil, fmt.Errorf("config: model_cfg.text_cfg.hf_model_name = %s: a Hugging Face text tower is not supported (the model here has CLIP's text transformer)", abbrevJSON(raw))
	}
	m := &oc.Model
	none := map[string]any{}
	if err := setInt(&m.EmbedDim, model, "embed_dim", "model_cfg.embed_dim", none, notes); err != nil {
		return nil, err
	}
	if raw, ok := model["quick_gelu"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &m.QuickGELU); err != nil {
			return nil, fmt.Errorf("config: model_cfg.quick_gelu: want true or false, got %s", abbrevJSON(raw))
		}
	}
	vUsed := map[string]bool{"layers": true, "width": true, "head_width": true, "mlp_ratio": true, "patch_size": true, "image_size": true}
	for k, v := range vision {
		if !vUsed[k] {
			if err := openCLIPKey("model_cfg.vision_cfg", k, v, openCLIPVisionMust, notes); err != nil {
				return nil, err
			}
		}
	}
	if raw, ok := vision["layers"]; ok && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		return nil, fmt.Errorf("config: model_cfg.vision_cfg.layers = %s: a ResNet image tower is not supported (ViT only)", abbrevJSON(raw))
	}
	vd := map[string]any{"head_width": 64, "mlp_ratio": 4.0, "patch_size": 16, "image_size": 224}
	v := &m.Vision
	for _, f := range []struct {
		key string
		p   *int
	}{{"layers", &v.Layers}, {"width", &v.Width}, {"head_width", &v.HeadWidth}, {"patch_size", &v.PatchSize}} {
		if err := setInt(f.p, vision, f.key, "model_cfg.vision_cfg."+f.key, vd, notes); err != nil {
			return nil, err
		}
	}
	if err := setFloat(&v.MLPRatio, vision, "mlp_ratio", "model_cfg.vision_cfg.mlp_ratio", vd, notes); err != nil {
		return nil, err
	}
	if v.ImageSize, err = squareSize(vision, "image_size", "model_cfg.vision_cfg.image_size", 224, notes); err != nil {
		return nil, err
	}
	tUsed := map[string]bool{"context_length": true, "vocab_size": true, "width": true, "heads": true, "layers": true, "mlp_ratio": true}
	for k, raw := range text {
		if !tUsed[k] {
			if err := openCLIPKey("model_cfg.text_cfg", k, raw, openCLIPTextMust, notes); err != nil {
				return nil, err
			}
		}
	}
	td := map[string]any{"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12, "mlp_ratio": 4.0}
	t := &m.Text
	for _, f := range []struct {
		key string
		p   *int
	}{{"context_length", &t.ContextLength}, {"vocab_size", &t.VocabSize}, {"width", &t.Width}, {"heads", &t.Heads}, {"layers", &t.Layers}} {
		if err := setInt(f.p, text, f.key, "model_cfg.text_cfg."+f.key, td, notes); err != nil {
			return nil, err
		}
	}
	if err := setFloat(&t.MLPRatio, text, "mlp_ratio", "model_cfg.text_cfg.mlp_ratio", td, notes); err != nil {
		return nil, err
	}
	if raw, ok := top["preprocess_cfg"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &oc.Pre); err != nil {
			return nil, fmt.Errorf("config: preprocess_cfg: %v", err)
		}
	}
	for k := range top {
		if k != "model_cfg" && k != "preprocess_cfg" {
			notes.Unknown = append(notes.Unknown, k)
		}
	}
	sort.Strings(notes.Unknown)
	sort.Strings(notes.Defaulted)
	return oc, nil
}

// openCLIPKey checks one setting not read directly.
func openCLIPKey(section, k string, v json.RawMessage, must map[string]string, notes *ConfigNotes) error {
	path := section + "." + k
	if want, ok := must[k]; ok {
		var a, b any
		if isNull(v) || (json.Unmarshal(v, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && fmt.Sprint(a) == fmt.Sprint(b)) {
			return nil
		}
		return fmt.Errorf("config: %s = %s is not supported (the model here implements %s)", path, abbrevJSON(v), want)
	}
	if !openCLIPIgnored[k] {
		notes.Unknown = append(notes.Unknown, path)
	}
	return nil
}

// squareSize reads an integer or a [h, w] pair with h == w.
func squareSize(m map[string]json.RawMessage, key, path string, def int, notes *ConfigNotes) (int, error) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		notes.Defaulted = append(notes.Defaulted, fmt.Sprintf("%s=%d", path, def))
		return def, nil
	}
	var pair []json.Number
	if json.Unmarshal(raw, &pair) == nil {
		if len(pair) != 2 || pair[0] != pair[1] {
			return 0, fmt.Errorf("config: %s = %s: only square images are supported", path, abbrevJSON(raw))
		}
		return parseInt(pair[0])
	}
	var n int
	err := setInt(&n, m, key, path, nil, notes)
	return n, err
}

// config converts to package clip's Config (Hugging Face terms). Text
// pooling is open_clip's argmax of the token ids, which Hugging Face
// configs express as the legacy eos_token_id 2.
func (oc *openCLIPConfig) config() (*Config, error) {
	m := &oc.Model
	act := "gelu"
	if m.QuickGELU {
		act = "quick_gelu"
	}
	v, t := &m.Vision, &m.Text
	if v.HeadWidth <= 0 || v.Width%v.HeadWidth != 0 {
		return nil, fmt.Errorf("config: model_cfg.vision_cfg.width %d is not a multiple of head_width %d", v.Width, v.HeadWidth)
	}
	mlp := func(path string, width int, ratio float64) (int, error) {
		f := float64(width) * ratio
		if !(ratio > 0) || f > MaxIntermediate {
			return 0, fmt.Errorf("config: %s %g out of range", path, ratio)
		}
		return int(f), nil
	}
	vi, err := mlp("model_cfg.vision_cfg.mlp_ratio", v.Width, v.MLPRatio)
	if err != nil {
		return nil, err
	}
	ti, err := mlp("model_cfg.text_cfg.mlp_ratio", t.Width, t.MLPRatio)
	if err != nil {
		return nil, err
	}
	c := &Config{
		Vision: TowerConfig{HiddenSize: v.Width, IntermediateSize: vi, NumAttentionHeads: v.Width / v.HeadWidth,
			NumHiddenLayers: v.Layers, HiddenAct: act, LayerNormEps: 1e-5, ImageSize: v.ImageSize, PatchSize: v.PatchSize, NumChannels: 3},
		Text: TowerConfig{HiddenSize: t.Width, IntermediateSize: ti, NumAttentionHeads: t.Heads, NumHiddenLayers: t.Layers,
			HiddenAct: act, LayerNormEps: 1e-5, VocabSize: t.VocabSize, MaxPositionEmbeddings: t.ContextLength, EOSTokenID: 2},
		ProjectionDim: m.EmbedDim, LogitScaleInitValue: math.Log(1 / 0.07), ModelType: "clip", Architectures: []string{"CLIPModel"},
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%w (converted from open_clip's model_cfg)", err)
	}
	return c, nil
}

// imageConfig is open_clip's preprocess_cfg as an imageproc.Config.
func (oc *openCLIPConfig) imageConfig() (imageproc.Config, error) {
	pc := imageproc.DefaultConfig(oc.Model.Vision.ImageSize)
	p := &oc.Pre
	for _, f := range []struct {
		key string
		v   []float64
		dst *[3]float32
	}{{"mean", p.Mean, &pc.Mean}, {"std", p.Std, &pc.Std}} {
		if f.v == nil {
			continue
		}
		if len(f.v) != 3 {
			return pc, fmt.Errorf("preprocess_cfg.%s has %d values, want 3", f.key, len(f.v))
		}
		*f.dst = imageproc.F32([3]float64(f.v))
	}
	if p.Interpolation != "" && p.Interpolation != "bicubic" {
		return pc, fmt.Errorf("preprocess_cfg.interpolation %q is not supported (bicubic)", p.Interpolation)
	}
	switch p.ResizeMode {
	case "", "shortest":
	case "squash":
		pc.Mode = imageproc.Squash
	default:
		return pc, fmt.Errorf("preprocess_cfg.resize_mode %q is not supported (shortest, squash)", p.ResizeMode)
	}
	return pc, pc.Validate()
}

var openCLIPBlockRe = regexp.MustCompile(`^(visual\.)?transformer\.resblocks\.(\d+)\.(.+)$`)

// openCLIPToHF renames open_clip tensors to Hugging Face's, splitting
// in_proj into q/k/v and transposing the projections ([width, embed] in
// open_clip, [embed, width] in Hugging Face). Tensors it does not know are
// errors naming them; the attn_mask buffer of old checkpoints is dropped.
func openCLIPToHF(in map[string]*safetensors.Tensor) (map[string]*safetensors.Tensor, map[string]string, error) {
	out := make(map[string]*safetensors.Tensor, len(in)+64)
	from := make(map[string]string, len(in)+64) // HF name → open_clip name
	simple := map[string]string{
		"visual.conv1.weight":         "vision_model.embeddings.patch_embedding.weight",
		"visual.class_embedding":      "vision_model.embeddings.class_embedding",
		"visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
		"visual.ln_pre.weight":        "vision_model.pre_layrnorm.weight",
		"visual.ln_pre.bias":          "vision_model.pre_layrnorm.bias",
		"visual.ln_post.weight":       "vision_model.post_layernorm.weight",
		"visual.ln_post.bias":         "vision_model.post_layernorm.bias",
		"token_embedding.weight":      "text_model.embeddings.token_embedding.weight",
		"positional_embedding":        "text_model.embeddings.position_embedding.weight",
		"ln_final.weight":             "text_model.final_layer_norm.weight",
		"ln_final.bias":               "text_model.final_layer_norm.bias",
		"logit_scale":                 "logit_scale",
	}
	block := map[string]string{"ln_1.weight": "layer_norm1.weight", "ln_1.bias": "layer_norm1.bias",
		"ln_2.weight": "layer_norm2.weight", "ln_2.bias": "layer_norm2.bias",
		"attn.out_proj.weight": "self_attn.out_proj.weight", "attn.out_proj.bias": "self_attn.out_proj.bias",
		"mlp.c_fc.weight": "mlp.fc1.weight", "mlp.c_fc.bias": "mlp.fc1.bias",
		"mlp.c_proj.weight": "mlp.fc2.weight", "mlp.c_proj.bias": "mlp.fc2.bias"}
	names := make([]string, 0, len(in))
	for n := range in {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t := in[name]
		if hf, ok := simple[name]; ok {
			out[hf], from[hf] = t, name
			continue
		}
		switch name {
		case "visual.proj", "text_projection":
			hf := map[string]string{"visual.proj": "visual_projection.weight", "text_projection": "text_projection.weight"}[name]
			tr, err := transpose2D(name, t)
			if err != nil {
				return nil, nil, err
			}
			out[hf], from[hf] = tr, name
			continue
		case "attn_mask", "logit_bias":
			if name == "logit_bias" {
				return nil, nil, fmt.Errorf("tensor %q: a sigmoid (SigLIP) logit bias is not supported", name)
			}
			continue
		}
		mm := openCLIPBlockRe.FindStringSubmatch(name)
		if mm == nil {
			return nil, nil, fmt.Errorf("unexpected tensor %q (not part of open_clip's ViT CLIP)", name)
		}
		tower := "text_model"
		if mm[1] != "" {
			tower = "vision_model"
		}
		prefix := fmt.Sprintf("%s.encoder.layers.%s.", tower, mm[2])
		if hf, ok := block[mm[3]]; ok {
			out[prefix+hf], from[prefix+hf] = t, name
			continue
		}
		switch mm[3] {
		case "attn.in_proj_weight", "attn.in_proj_bias":
			kind := "weight"
			if strings.HasSuffix(mm[3], "bias") {
				kind = "bias"
			}
			parts, err := split3(name, t)
			if err != nil {
				return nil, nil, err
			}
			for i, p := range []string{"q_proj", "k_proj", "v_proj"} {
				out[prefix+"self_attn."+p+"."+kind] = parts[i]
				from[prefix+"self_attn."+p+"."+kind] = name
			}
		default:
			return nil, nil, fmt.Errorf("unexpected tensor %q (not part of open_clip's ViT CLIP)", name)
		}
	}
	return out, from, nil
}

// split3 cuts a fused [3·n, ...] in_proj tensor into q, k and v.
func split3(name string, t *safetensors.Tensor) ([3]*safetensors.Tensor, error) {
	var parts [3]*safetensors.Tensor
	if len(t.Shape) == 0 || t.Shape[0]%3 != 0 || !t.DType.IsFloat() {
		return parts, fmt.Errorf("tensor %q has shape %v (%s): want a float tensor of 3·n rows", name, t.Shape, t.DType)
	}
	rows := t.Shape[0] / 3
	per := len(t.F32) / 3
	for i := range parts {
		shape := append([]int{rows}, t.Shape[1:]...)
		parts[i] = &safetensors.Tensor{DType: t.DType, Shape: shape, F32: t.F32[i*per : (i+1)*per : (i+1)*per]}
	}
	return parts, nil
}

// transpose2D returns t's transpose.
func transpose2D(name string, t *safetensors.Tensor) (*safetensors.Tensor, error) {
	if len(t.Shape) != 2 || !t.DType.IsFloat() {
		return nil, fmt.Errorf("tensor %q has shape %v (%s): want a 2-D float tensor", name, t.Shape, t.DType)
	}
	r, c := t.Shape[0], t.Shape[1]
	d := make([]float32, len(t.F32))
	for i := range r {
		for j := range c {
			d[j*r+i] = t.F32[i*c+j]
		}
	}
	return &safetensors.Tensor{DType: t.DType, Shape: []int{c, r}, F32: d}, nil
}

// loadOpenCLIP reads an open_clip hub directory.
func loadOpenCLIP(dir string) (*Model, error) {
	oc, err := readOpenCLIPConfig(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := oc.config()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, OpenCLIPConfigFile), err)
	}
	pc, err := LoadPreprocess(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, OpenCLIPWeightsFile)
	f, err := safetensors.Load(path)
	if err != nil {
		return nil, err
	}
	tensors, from, err := openCLIPToHF(f.Tensors)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	notes := oc.notes
	notes.Layout = LayoutOpenCLIP
	m, err := buildModel(dir, cfg, notes, tensors)
	if err != nil {
		return nil, openCLIPNames(err, path, from)
	}
	m.Preprocess = &pc
	return m, nil
}

// LoadModelConfig reads the config of a model directory of either layout
// (config.json, or open_clip_config.json converted), without weights.
func LoadModelConfig(dir string) (*Config, ConfigNotes, error) {
	layout, err := DetectLayout(dir)
	if err != nil {
		return nil, ConfigNotes{}, err
	}
	if layout == LayoutHF {
		cfg, notes, err := LoadConfigNotes(filepath.Join(dir, ConfigFile))
		notes.Layout = LayoutHF
		return cfg, notes, err
	}
	oc, err := readOpenCLIPConfig(dir)
	if err != nil {
		return nil, ConfigNotes{}, err
	}
	cfg, err := oc.config()
	if err != nil {
		return nil, ConfigNotes{}, fmt.Errorf("%s: %w", filepath.Join(dir, OpenCLIPConfigFile), err)
	}
	oc.notes.Layout = LayoutOpenCLIP
	return cfg, oc.notes, nil
}

// openCLIPNames rewrites the Hugging Face tensor names in a load error as
// the open_clip names of path they came from (the Hugging Face name in
// parentheses), so the error names what is in the user's file.
func openCLIPNames(err error, path string, from map[string]string) error {
	msg := err.Error()
	hfs := make([]string, 0, len(from))
	for hf := range from {
		hfs = append(hfs, hf)
	}
	sort.Slice(hfs, func(i, j int) bool { return len(hfs[i]) > len(hfs[j]) })
	for _, hf := range hfs {
		msg = strings.ReplaceAll(msg, `"`+hf+`"`, fmt.Sprintf("%q (%s)", from[hf], hf))
	}
	return fmt.Errorf("%s: %s", path, msg)
}
