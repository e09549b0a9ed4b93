package clip

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/mopeclip/mopeclip/internal/safetensors"
	"github.com/mopeclip/mopeclip/nn"
)

// ParamShape is the name and shape of one parameter of a model.
type ParamShape struct {
	Name  string
	Shape []int
}

// ParamShapes lists every parameter of a model with configuration cfg,
// under its Hugging Face name, in the order of Model.Params, without
// allocating anything: loaders compare it with a checkpoint before they
// build the model.
func ParamShapes(cfg *Config) []ParamShape {
	v, t := &cfg.Vision, &cfg.Text
	cv, ct := v.HiddenSize, t.HiddenSize
	ps := []ParamShape{
		{"vision_model.embeddings.class_embedding", []int{cv}},
		{"vision_model.embeddings.patch_embedding.weight", []int{cv, 3, v.PatchSize, v.PatchSize}},
		{"vision_model.embeddings.position_embedding.weight", []int{v.NumPatches() + 1, cv}},
	}
	ps = appendLN(ps, "vision_model.pre_layrnorm", cv)
	ps = appendLayers(ps, "vision_model", v)
	ps = appendLN(ps, "vision_model.post_layernorm", cv)
	ps = append(ps, ParamShape{"text_model.embeddings.token_embedding.weight", []int{t.VocabSize, ct}},
		ParamShape{"text_model.embeddings.position_embedding.weight", []int{t.MaxPositionEmbeddings, ct}})
	ps = appendLayers(ps, "text_model", t)
	ps = appendLN(ps, "text_model.final_layer_norm", ct)
	return append(ps, ParamShape{"visual_projection.weight", []int{cfg.ProjectionDim, cv}},
		ParamShape{"text_projection.weight", []int{cfg.ProjectionDim, ct}},
		ParamShape{"logit_scale", []int{}})
}

func appendLN(ps []ParamShape, name string, c int) []ParamShape {
	return append(ps, ParamShape{name + ".weight", []int{c}}, ParamShape{name + ".bias", []int{c}})
}

func appendLinear(ps []ParamShape, name string, in, out int) []ParamShape {
	return append(ps, ParamShape{name + ".weight", []int{out, in}}, ParamShape{name + ".bias", []int{out}})
}

func appendLayers(ps []ParamShape, prefix string, t *TowerConfig) []ParamShape {
	c, hd := t.HiddenSize, t.HeadDim()
	for l := 0; l < t.NumHiddenLayers; l++ {
		p := fmt.Sprintf("%s.encoder.layers.%d.", prefix, l)
		ps = appendLN(ps, p+"layer_norm1", c)
		if h := t.Heads(l); h > 0 {
			for _, n := range []string{"q_proj", "k_proj", "v_proj"} {
				ps = appendLinear(ps, p+"self_attn."+n, c, h*hd)
			}
			ps = appendLinear(ps, p+"self_attn.out_proj", h*hd, c)
		}
		ps = appendLN(ps, p+"layer_norm2", c)
		if i := t.Intermediate(l); i > 0 {
			ps = appendLinear(ps, p+"mlp.fc1", c, i)
			ps = appendLinear(ps, p+"mlp.fc2", i, c)
		}
	}
	return ps
}

// checkShapes compares the checkpoint's tensors with the shapes cfg
// implies, before anything is allocated: a missing or mis-shaped tensor is
// an error naming it and, when the config left sizes to transformers'
// defaults, saying so.
func checkShapes(cfg *Config, notes ConfigNotes, tensors map[string]*safetensors.Tensor) error {
	for _, p := range ParamShapes(cfg) {
		t, ok := tensors[p.Name]
		if !ok {
			return fmt.Errorf("missing tensor %q (shape %v)%s", p.Name, p.Shape, defaultsHint(notes))
		}
		if !t.DType.IsFloat() {
			return fmt.Errorf("tensor %q has dtype %s, want a float type", p.Name, t.DType)
		}
		if !sameShape(t.Shape, p.Shape) {
			return fmt.Errorf("tensor %q has shape %v, the config wants %v%s", p.Name, t.Shape, p.Shape, defaultsHint(notes))
		}
	}
	return nil
}

// defaultsHint names the size keys config.json lacked, if any.
func defaultsHint(notes ConfigNotes) string {
	var sizes []string
	for _, d := range notes.Defaulted {
		if !strings.Contains(d, "token_id") && !strings.Contains(d, "hidden_act") && !strings.Contains(d, "layer_norm_eps") &&
			!strings.Contains(d, "logit_scale") {
			sizes = append(sizes, d)
		}
	}
	if len(sizes) == 0 {
		return ""
	}
	sort.Strings(sizes)
	if len(sizes) > 4 {
		sizes = append(sizes[:4], "...")
	}
	return fmt.Sprintf(" (config.json lacks %s: transformers' defaults were used)", strings.Join(sizes, ", "))
}

// checkFinite reports the first parameter that holds a NaN or an infinity.
func checkFinite(params []*nn.Param) error {
	for _, p := range params {
		for i, x := range p.Value.Data {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("tensor %q holds a non-finite value (%v at flat index %d): the checkpoint is corrupt or diverged", p.Name, x, i)
			}
		}
	}
	return nil
}
